"""Model-operation spans as ingest records (the body of ``/v1/ingest/llm-request``), by the GenAI semantic
conventions (current and deprecated names) and OpenInference's. No I/O; ADR 58 records the choices.

Only the attributes named here (and a workspace's own names, never a content attribute) are read at all, so a
span's prompt and completion content (``gen_ai.input.messages``, ``llm.input_messages.*``, ``input.value``, its
events...) is never copied into a record, an event or a log line.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from opsmeter_ingest.otlp.decode import Attributes, AttributeValue, OtlpSpan, Scalar
from opsmeter_ingest.record import content_key

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
    "gen_ai.usage.cache_write.input_tokens",  # what opentelemetry-util-genai (the official instrumentations) sends
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


def map_spans(spans: list[OtlpSpan], names: AttributeNames) -> MappedRequest:
    """Every model-operation span as an ingest document, in order; the others only counted."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    mapped = MappedRequest()
    for span in spans:
        operation = _operation(span.attributes)
        if operation is None:
            mapped.skipped += 1
            continue
        ancestors = list(_ancestors(span, by_id))
        mapped.records.append(SpanRecord(_document(span, operation, ancestors, names), span.trace_id, span.span_id))
    return mapped


_READ = frozenset(
    {
        *PROVIDER,
        *MODEL,
        *INPUT_TOKENS,
        *OUTPUT_TOKENS,
        *CACHE_READ_TOKENS,
        *CACHE_WRITE_TOKENS,
        *REASONING_TOKENS,
        *COST,
        RESPONSE_ID,
        ERROR_TYPE,
        "gen_ai.operation.name",
        "openinference.span.kind",
        "llm.request.type",
    }
)
"""Every attribute a record is made of, whatever the workspace's names."""


def wanted_attributes(names: AttributeNames) -> frozenset[str]:
    """The attributes to read of each span for a workspace: no other is read at all (never a content one)."""
    configured = {*names.endpoint_tag, *names.user_id, *names.prompt_version}
    return _READ | {name for name in configured if not content_attribute(name)}


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


def _ancestors(span: OtlpSpan, by_id: Mapping[tuple[str, str], OtlpSpan]) -> Iterator[OtlpSpan]:
    """The span's parent, grandparent... as far as the request holds them."""
    seen = {span.span_id}
    parent = span.parent_span_id
    while parent and parent not in seen:
        found = by_id.get((span.trace_id, parent))
        if found is None:
            return
        yield found
        seen.add(parent)
        parent = found.parent_span_id


def _first(attributes: Attributes, names: Iterable[str]) -> AttributeValue | None:
    for name in names:
        if name in attributes:
            return attributes[name]
    return None


def _int(value: AttributeValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _document(span: OtlpSpan, operation: str, ancestors: list[OtlpSpan], names: AttributeNames) -> dict[str, Any]:
    attributes = span.attributes
    document: dict[str, Any] = {}

    response_id = attributes.get(RESPONSE_ID)
    usable_id = isinstance(response_id, str) and 0 < len(response_id) <= 128 and response_id.isprintable()
    document["externalRequestId"] = response_id if usable_id else f"otel:{span.trace_id}:{span.span_id}"
    for name, value in (("provider", _first(attributes, PROVIDER)), ("model", _first(attributes, MODEL))):
        if value is not None:
            document[name] = value

    document.update(_tokens(attributes, operation))
    if span.start_ns:
        started = datetime.fromtimestamp(span.start_ns // 1_000_000_000, UTC)
        document["timestamp"] = f"{started:%Y-%m-%dT%H:%M:%S}.{span.start_ns % 1_000_000_000:09d}Z"
        if span.end_ns >= span.start_ns:
            document["latencyMs"] = round((span.end_ns - span.start_ns) / 1_000_000)

    error_type = attributes.get(ERROR_TYPE)
    if span.error or error_type is not None:
        document["status"] = "error"
        if isinstance(error_type, str) and error_type:
            document["errorCode"] = error_type[:64]

    chain = [attributes, *(a.attributes for a in ancestors), span.resource]
    endpoint_tag = _looked_up(chain, names.endpoint_tag)
    if endpoint_tag is None and names.endpoint_tag_from_root_span and ancestors:
        # The root of the trace names the feature (an HTTP route, a job). A model span that is its own root has
        # only its own name ("chat gpt-4o-mini"), which says the model again, not a feature: it stays unknown.
        root = ancestors[-1]
        if not root.parent_span_id:
            endpoint_tag = _clean_name(root.name)
    for name, value in (
        ("endpointTag", endpoint_tag),
        ("userId", _looked_up(chain, names.user_id)),
        ("promptVersion", _looked_up(chain, names.prompt_version)),
    ):
        if value is not None:
            document[name] = value

    cost = reported_cost_usd(_first(attributes, COST))
    if cost is not None:
        document["reportedCostUsd"] = cost
    document["metadata"] = {
        "otel.trace_id": span.trace_id,
        "otel.span_id": span.span_id,
        "gen_ai.operation.name": operation,
    }
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
    """The first of ``names`` with a scalar value, on the span, then each ancestor, then the resource."""
    for attributes in chain:
        for name in names:
            value = attributes.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)  # a numeric user id is still an id
            if value is not None and not isinstance(value, tuple):
                return value
    return None


def _clean_name(name: str) -> str | None:
    """A root span's name as an endpoint tag: trimmed to the record's 128 characters; None if it cannot be one."""
    cleaned = name.strip()[:128].strip()
    return cleaned if cleaned and cleaned.isprintable() else None


def reported_cost_usd(value: AttributeValue | None) -> str | None:
    """A reported cost as the record's decimal string of USD: to 12 decimals (a double's ``0.30000000000000004``
    is ``0.3``), never negative, below a billion; anything else is no reported cost."""
    if isinstance(value, bool) or value is None or isinstance(value, tuple):
        return None
    try:
        amount = Decimal(str(value)).quantize(_COST_QUANTUM, ROUND_HALF_UP)
    except InvalidOperation:
        return None
    if not amount.is_finite() or not 0 <= amount < 10**9:
        return None
    return format(amount.normalize(), "f")


_COST_QUANTUM = Decimal("1e-12")
