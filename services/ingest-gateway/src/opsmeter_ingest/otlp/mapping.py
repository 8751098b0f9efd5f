"""Model-operation spans as ingest records (the body of ``/v1/ingest/llm-request``), by the GenAI semantic
conventions (current and deprecated names) and OpenInference's. No I/O; ADR 58 records the choices.

Only the attributes named here are read into a record, so a span's prompt and completion content (its
``gen_ai.input.messages``, ``llm.input_messages.*``, ``input.value``, events...) is never copied anywhere.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from opsmeter_ingest.record import IngestRequest, content_key

Scalar = str | int | float | bool
Attributes = Mapping[str, Scalar | tuple[Scalar, ...]]

MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
"""``gen_ai.operation.name`` of the spans that are one model call each (agent, tool and workflow spans are not)."""
OPENINFERENCE_MODEL_KINDS = frozenset({"LLM", "EMBEDDING"})
"""``openinference.span.kind`` of a model call (AGENT, TOOL, CHAIN, RETRIEVER... are not)."""
LEGACY_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
"""``llm.request.type`` of older OpenLLMetry spans that carry no ``gen_ai.operation.name``."""

PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
MODEL = ("gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion")
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)
COST = ("gen_ai.usage.cost", "llm.cost.total")
RESPONSE_ID = "gen_ai.response.id"
ERROR_TYPE = "error.type"

_CONTENT_NAMES = re.compile(
    r"^(gen_ai\.(prompt|completion|input\.messages|output\.messages|system_instructions|tool\.call\.(arguments|result)"
    r"|tool\.definitions)|llm\.(input_messages|output_messages|prompts|prompt_template|tools)|(input|output)\.value"
    r"|(traceloop\.entity\.(input|output)))(\.|$)"
)

_COUNT_PREFIXES = ("gen_ai.usage.", "llm.token_count.")
"""Token counts named after what they count (``llm.token_count.prompt``): numbers, never content."""

HAS_REPORTED_COST = "reported_cost_usd" in IngestRequest.model_fields
# TODO(pricing issue): once the record's ``reportedCostUsd`` (decimal string) lands, drop this check and always
# map the cost attribute into it; until then a span's reported cost is read but not sent.


def content_attribute(name: str) -> bool:
    """Whether an attribute name holds prompt or completion content (GenAI, OpenInference, OpenLLMetry names,
    and any name the ingest record itself drops): never read into a record, never configurable."""
    if name.startswith(_COUNT_PREFIXES):
        return False
    return bool(_CONTENT_NAMES.match(name)) or content_key(name.rsplit(".", 1)[-1])


@dataclass(frozen=True)
class AttributeNames:
    """Where a workspace's spans say their ``endpointTag``, ``userId`` and ``promptVersion`` (first name found
    wins, on the span, then its ancestors in the request, then the resource)."""

    endpoint_tag: tuple[str, ...] = ("opsmeter.endpoint_tag",)
    endpoint_tag_from_root_span: bool = True
    """With no endpoint-tag attribute: the name of the trace's root span, when the request holds it."""
    user_id: tuple[str, ...] = ("user.id", "enduser.id")
    prompt_version: tuple[str, ...] = ("opsmeter.prompt_version",)


@dataclass(frozen=True)
class SpanRecord:
    """One model-operation span as an ingest document, and the ids that name it in errors."""

    document: dict[str, Any]
    trace_id: str
    span_id: str


@dataclass
class MappedRequest:
    records: list[SpanRecord] = field(default_factory=list)
    skipped: int = 0
    """Spans that are not a model call (agent, tool, workflow, HTTP...): not counted, not rejected."""


@dataclass(frozen=True)
class _Span:
    span: Span
    attributes: Attributes
    resource: Attributes


def map_request(request: ExportTraceServiceRequest, names: AttributeNames) -> MappedRequest:
    """Every model-operation span of the request as an ingest document, in order; the others only counted."""
    spans = list(_spans(request))
    by_id = {(s.span.trace_id, s.span.span_id): s for s in spans}
    mapped = MappedRequest()
    for span in spans:
        operation = _operation(span.attributes)
        if operation is None:
            mapped.skipped += 1
            continue
        ancestors = list(_ancestors(span, by_id))
        mapped.records.append(
            SpanRecord(_document(span, operation, ancestors, names), span.span.trace_id.hex(), span.span.span_id.hex())
        )
    return mapped


def _spans(request: ExportTraceServiceRequest) -> Iterator[_Span]:
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield _Span(span, _attributes(span.attributes), resource)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Scalar | tuple[Scalar, ...]]:
    """Scalar and array attributes by name; content attributes are never read (nor maps and bytes)."""
    found: dict[str, Scalar | tuple[Scalar, ...]] = {}
    for pair in pairs:
        if content_attribute(pair.key):
            continue
        value = _value(pair.value)
        if value is not None:
            found[pair.key] = value
    return found


def _value(value: AnyValue) -> Scalar | tuple[Scalar, ...] | None:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        items = [_value(v) for v in value.array_value.values]
        return tuple(v for v in items if v is not None and not isinstance(v, tuple))
    return None


def _operation(attributes: Attributes) -> str | None:
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str):
        return operation if operation in MODEL_OPERATIONS else None
    kind = attributes.get("openinference.span.kind")
    if isinstance(kind, str):
        if kind.upper() not in OPENINFERENCE_MODEL_KINDS:
            return None
        return "embeddings" if kind.upper() == "EMBEDDING" else "chat"
    legacy = attributes.get("llm.request.type")
    return LEGACY_REQUEST_TYPES.get(legacy) if isinstance(legacy, str) else None


def _ancestors(span: _Span, by_id: Mapping[tuple[bytes, bytes], _Span]) -> Iterator[_Span]:
    """The span's parent, grandparent... as far as the request holds them."""
    seen = {span.span.span_id}
    parent = span.span.parent_span_id
    while parent and parent not in seen:
        found = by_id.get((span.span.trace_id, parent))
        if found is None:
            return
        yield found
        seen.add(parent)
        parent = found.span.parent_span_id


def _first(attributes: Attributes, names: Iterable[str]) -> Scalar | tuple[Scalar, ...] | None:
    for name in names:
        if name in attributes:
            return attributes[name]
    return None


def _int(value: Scalar | tuple[Scalar, ...] | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _document(span: _Span, operation: str, ancestors: list[_Span], names: AttributeNames) -> dict[str, Any]:
    attributes, raw = span.attributes, span.span
    document: dict[str, Any] = {}

    response_id = attributes.get(RESPONSE_ID)
    trace_id, span_id = raw.trace_id.hex(), raw.span_id.hex()
    usable_id = isinstance(response_id, str) and 0 < len(response_id) <= 128 and response_id.isprintable()
    document["externalRequestId"] = response_id if usable_id else f"otel:{trace_id}:{span_id}"
    for name, value in (("provider", _first(attributes, PROVIDER)), ("model", _first(attributes, MODEL))):
        if value is not None:
            document[name] = value

    document.update(_tokens(attributes, operation))
    if raw.start_time_unix_nano:
        started = datetime.fromtimestamp(raw.start_time_unix_nano // 1_000_000_000, UTC)
        nanos = raw.start_time_unix_nano % 1_000_000_000
        document["timestamp"] = started.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
        if raw.end_time_unix_nano >= raw.start_time_unix_nano:
            document["latencyMs"] = round((raw.end_time_unix_nano - raw.start_time_unix_nano) / 1_000_000)

    error_type = attributes.get(ERROR_TYPE)
    if raw.status.code == Status.STATUS_CODE_ERROR or error_type is not None:
        document["status"] = "error"
        if isinstance(error_type, str) and error_type:
            document["errorCode"] = error_type[:64]

    chain = [attributes, *(a.attributes for a in ancestors), span.resource]
    endpoint_tag = _looked_up(chain, names.endpoint_tag)
    if endpoint_tag is None and names.endpoint_tag_from_root_span:
        root = ancestors[-1].span if ancestors else raw
        if not root.parent_span_id:
            endpoint_tag = _clean_name(root.name)
    for name, value in (
        ("endpointTag", endpoint_tag),
        ("userId", _looked_up(chain, names.user_id)),
        ("promptVersion", _looked_up(chain, names.prompt_version)),
    ):
        if value is not None:
            document[name] = value

    cost = _cost(_first(attributes, COST))
    if cost is not None and HAS_REPORTED_COST:
        document["reportedCostUsd"] = cost
    document["metadata"] = {"otel.trace_id": trace_id, "otel.span_id": span_id, "gen_ai.operation.name": operation}
    return document


def _tokens(attributes: Attributes, operation: str) -> dict[str, Any]:
    """Token counts as the record counts them: cache reads and writes inside input, reasoning inside output.

    The conventions count them inside already; an instrumentation that reports them apart shows it by parts
    larger than the whole, and then they are added. A count that is absent is 0 (an embedding has no output, a
    failed call may have none); one that is not an integer is sent as it is, for the record's rule to name.
    """
    tokens: dict[str, Any] = {}
    raw_input, raw_output = _first(attributes, INPUT_TOKENS), _first(attributes, OUTPUT_TOKENS)
    cache_read = _int(_first(attributes, CACHE_READ_TOKENS))
    cache_write = _int(_first(attributes, CACHE_WRITE_TOKENS))
    reasoning = _int(_first(attributes, REASONING_TOKENS))
    input_tokens = 0 if raw_input is None else raw_input
    output_tokens = 0 if raw_output is None else raw_output
    if isinstance(input_tokens, int) and not isinstance(input_tokens, bool):
        cached = (cache_read or 0) + (cache_write or 0)
        if cached > input_tokens:
            input_tokens += cached
    if isinstance(output_tokens, int) and not isinstance(output_tokens, bool) and (reasoning or 0) > output_tokens:
        output_tokens += reasoning or 0
    tokens["inputTokens"] = input_tokens
    tokens["outputTokens"] = output_tokens
    if cache_read:
        tokens["cachedInputTokens"] = cache_read
    if cache_write:
        tokens["cacheWriteInputTokens"] = cache_write
    if reasoning:
        tokens["reasoningTokens"] = reasoning
    return tokens


def _looked_up(chain: list[Attributes], names: tuple[str, ...]) -> Scalar | None:
    for attributes in chain:
        value = _first(attributes, names)
        if value is not None and not isinstance(value, tuple):
            return value
    return None


def _clean_name(name: str) -> str | None:
    """A root span's name as an endpoint tag: trimmed to the record's 128 characters; None if it cannot be one."""
    cleaned = name.strip()[:128].strip()
    return cleaned if cleaned and cleaned.isprintable() else None


def _cost(value: Scalar | tuple[Scalar, ...] | None) -> str | None:
    """A reported cost as a decimal string (never through a float's repr beyond what the span sent)."""
    if isinstance(value, bool) or value is None or isinstance(value, tuple):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return format(amount, "f") if amount.is_finite() and amount >= 0 else None
