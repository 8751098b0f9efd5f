"""The ingest contract's pure rules: strict parsing, field rules, the event, the answer. No I/O."""

import json
import math
import re
import types
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import orjson
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo

from opsmeter_contracts import LlmRequestIngested
from opsmeter_pricing import PriceQuote
from opsmeter_runtime.money import format_micro_usd
from opsmeter_runtime.projections import BudgetWindowStatus, PolicyStatus
from opsmeter_wire import Answers, Encoder, Records, key_ends

Pricing = PriceQuote
"""What the gateway needs of a price: the catalog's quote of one call."""

UNKNOWN = "unknown"
DROPPED_CONTENT_FIELDS = frozenset(
    {
        "prompt",
        "prompts",
        "completion",
        "completions",
        "messages",
        "systemprompt",
        "input",
        "output",
        "content",
        "text",
        "response",
    }
)
"""Names of prompt or completion text, as :func:`content_key` spells them: such a field is never stored."""
_KEY_NOISE = re.compile(r"[\s_\-.]")


def content_key(name: str) -> bool:
    """Whether a key names prompt or completion text, however it is spelled (ADR 55).

    Compared after Unicode NFKC (full-width letters), case folding, and removing whitespace, format
    characters (zero-width spaces and joiners) and the separators ``_ - .`` (``system_prompt``,
    ``systemPrompt``, ``"prompt "``, ``"prompt\u200b"`` and ``ｐｒｏｍｐｔ`` are all content).
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    kept = "".join(c for c in folded if unicodedata.category(c) != "Cf")
    return _KEY_NOISE.sub("", kept) in DROPPED_CONTENT_FIELDS


MAX_METADATA_KEYS = 20
MAX_METADATA_BYTES = 4096
EVENT_NAMESPACE = uuid.UUID("6f1c1d52-5d0e-4d7c-9a5e-6f70736d6574")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with each lone surrogate written as its ``\\uXXXX`` escape, so it can be answered as JSON."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"field": printable(self.field), "message": printable(self.message)}


class PayloadRejected(Exception):
    """The body is JSON but breaks a field rule (422)."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


class MalformedJson(Exception):
    """The body is not a JSON document (400)."""


class _NonFinite:
    """Marks NaN / Infinity / overflowing numbers so the field they sit in is named in the error."""

    message = "is not a finite number"

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


class _OutOfRange(_NonFinite):
    """An integer literal longer than any field takes (parsed without building the integer)."""

    message = "is out of range"

    def __repr__(self) -> str:
        return f"{self.literal[:12]}...({len(self.literal)} digits)"


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT_DIGITS = 20
"""Every integer a record takes is below 2**63; a longer literal is out of range however it ends."""


def _int(text: str) -> int | _OutOfRange:
    return int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else _OutOfRange(text)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = dict(pairs)
    if len(seen) != len(pairs):
        keys: set[str] = set()
        for key, _ in pairs:
            if key in keys:
                raise _DuplicateKey(key)
            keys.add(key)
    return seen


def _float(text: str) -> float | _NonFinite:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _NonFinite(text)
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_NonFinite, parse_float=_float, parse_int=_int)


def parse_json_strict(body: bytes) -> Any:
    """Parse JSON keeping NaN, Infinity and duplicate keys as field errors rather than values."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedJson(f"body is not UTF-8: {exc.reason}") from exc
    try:
        document = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise PayloadRejected([FieldError(exc.key, "duplicate key in JSON object")]) from None
    except json.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise MalformedJson("JSON nested too deeply") from None
    if "\\u" not in text:  # a lone surrogate can only come from an escape: UTF-8 cannot carry one
        return document
    unpaired = _lone_surrogates(document)
    if unpaired:
        raise PayloadRejected(
            [FieldError(name, "must not contain control characters or lone surrogates") for name in unpaired]
        )
    return document


def _lone_surrogates(value: Any, name: str = "body") -> list[str]:
    """The fields (dotted, as errors name them) whose key or text holds a lone surrogate."""
    if isinstance(value, str):
        return [name] if _SURROGATE.search(value) else []
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _lone_surrogates(item, f"{name}.{i}")]
    if isinstance(value, dict):
        found: list[str] = []
        for key, item in value.items():
            path = key if name == "body" else f"{name}.{key}"
            found.extend([path] if _SURROGATE.search(key) else _lone_surrogates(item, path))
        return found
    return []


_CLEAN_TEXT = r"^(?:[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f\s])?)?$"
Text = Annotated[str, StringConstraints(pattern=_CLEAN_TEXT)]
"""A string without control characters (or lone surrogates) and without whitespace at either end.

Checked by pydantic-core's regex engine (the same whitespace as ``str.strip``); the messages are
made readable in :func:`_field_error`."""


class IngestRequest(BaseModel):
    """One telemetry record exactly as clients send it (camelCase; strict; unknown fields rejected)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        alias_generator=to_camel,
        populate_by_name=False,
        frozen=True,
        cache_strings="keys",  # values are mostly unique (ids); caching them costs more than it saves
    )

    external_request_id: Text = Field(min_length=1, max_length=128)
    provider: Text = Field(min_length=1, max_length=64)
    model: Text = Field(min_length=1, max_length=128)
    endpoint_tag: Text | None = Field(default=None, max_length=128)
    prompt_version: Text | None = Field(default=None, max_length=64)
    user_id: Text | None = Field(default=None, max_length=128)
    input_tokens: int = Field(ge=0, le=10_000_000)
    output_tokens: int = Field(ge=0, le=10_000_000)
    total_tokens: int | None = Field(default=None, ge=0, le=20_000_000)
    cached_input_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    reasoning_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    latency_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    status: Literal["success", "error"] = "success"
    error_code: Text | None = Field(default=None, max_length=64)
    data_mode: Literal["real", "test", "demo"] = "real"
    environment: Literal["prod", "staging", "dev"] = "prod"
    timestamp: str | None = Field(default=None, max_length=40)
    metadata: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _rfc3339(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timestamp(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if len(value) > MAX_METADATA_KEYS:
            raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
        for key, item in value.items():
            if not key or len(key) > 64 or _FORBIDDEN_CHARS.search(key):
                raise ValueError(f"key {key[:64]!r} must be 1-64 printable characters")
            if item is not None and not isinstance(item, str | int | float | bool):
                raise ValueError(f"value of {key!r} must be a string, number, boolean or null")
            if type(item) is int and not _INT64_MIN <= item <= _INT64_MAX:
                raise ValueError(f"value of {key!r} is out of range (a 64-bit integer)")
            if isinstance(item, str) and _FORBIDDEN_CHARS.search(item):
                raise ValueError(f"value of {key!r} must not contain control characters or lone surrogates")
        if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"at most {MAX_METADATA_BYTES} bytes as JSON")
        return value


def parse_timestamp(value: str) -> datetime:
    """RFC 3339 with a mandatory offset, as aware UTC."""
    match = _RFC3339.match(value)
    if match is None:
        raise ValueError("must be RFC 3339 with an offset, e.g. 2026-11-25T10:00:00Z")
    date, time, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{date}T{time}{fraction}{offset}").astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"is not a valid date and time: {exc}") from None


@dataclass(slots=True)
class ValidatedRecord:
    request: IngestRequest
    """Its fields as they will be stored (content fields dropped, metadata included)."""
    occurred_at: datetime
    warnings: tuple[str, ...] = field(default=())


def validate_record(document: Any, *, now: datetime, max_age: timedelta, max_skew: timedelta) -> ValidatedRecord:
    """Apply every field rule of the ingest contract; raise PayloadRejected naming each bad field."""
    if not isinstance(document, dict):
        raise PayloadRejected([FieldError("body", "must be a JSON object")])
    request, warnings = _request_fast(document) or _request(document)
    return _finish(request, warnings, now=now, max_age=max_age, max_skew=max_skew)


def validate_records(
    documents: list[Any], *, now: datetime, max_age: timedelta, max_skew: timedelta
) -> list[ValidatedRecord | PayloadRejected]:
    """:func:`validate_record` for each document (or the request :func:`parse_fast` already validated)."""
    results: list[ValidatedRecord | PayloadRejected] = []
    for document in documents:
        if isinstance(document, PayloadRejected):
            results.append(document)
            continue
        if isinstance(document, IngestRequest):
            if document.timestamp is None and document.total_tokens is None and document.cached_input_tokens is None:
                results.append(ValidatedRecord(document, now))  # the common record: no rule across fields applies
            else:
                results.append(_finished_or_rejected(document, now=now, max_age=max_age, max_skew=max_skew))
            continue
        try:
            results.append(validate_record(document, now=now, max_age=max_age, max_skew=max_skew))
        except PayloadRejected as rejected:
            results.append(rejected)
    return results


def _finished_or_rejected(
    request: "IngestRequest", *, now: datetime, max_age: timedelta, max_skew: timedelta
) -> ValidatedRecord | PayloadRejected:
    try:
        return _finish(request, (), now=now, max_age=max_age, max_skew=max_skew)
    except PayloadRejected as rejected:
        return rejected


def _finish(
    request: "IngestRequest", warnings: tuple[str, ...], *, now: datetime, max_age: timedelta, max_skew: timedelta
) -> ValidatedRecord:
    """The rules across fields, and the time of the call."""
    errors: list[FieldError] = []
    if request.total_tokens is not None and request.total_tokens != request.input_tokens + request.output_tokens:
        errors.append(FieldError("totalTokens", "must equal inputTokens + outputTokens"))
    if request.cached_input_tokens is not None and request.cached_input_tokens > request.input_tokens:
        errors.append(FieldError("cachedInputTokens", "must not exceed inputTokens"))
    occurred_at = now
    if request.timestamp is not None:
        occurred_at = parse_timestamp(request.timestamp)
        if occurred_at < now - max_age:
            errors.append(FieldError("timestamp", f"is more than {max_age.days} days old"))
        elif occurred_at > now + max_skew:
            errors.append(FieldError("timestamp", f"is more than {int(max_skew.total_seconds() // 60)} minutes ahead"))
    if errors:
        raise PayloadRejected(errors)
    return ValidatedRecord(request, occurred_at, warnings)


_FIELD_NAMES = frozenset(f.alias or name for name, f in IngestRequest.model_fields.items())


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, cache_strings="keys")

    events: list[IngestRequest]


def _key_ends(body: bytes) -> int:
    """How many times a quote is followed by a colon, JSON whitespace between them skipped (in C).

    Every key ends that way, so this never counts fewer than the keys in the text (skipping whitespace
    can only join a quote and a colon, inside a string too, which counts more). When it equals the
    number of fields parsed, the text has no duplicate key.
    """
    return key_ends(body)


def _record_rule(name: str, info: FieldInfo, validated: set[str]) -> tuple[Any, ...]:
    """One field of :class:`IngestRequest` as ``opsmeter_wire.Records`` checks it (see :data:`_RECORDS`).

    Read from the model itself, so the rules are written once: a field of a kind it does not know
    raises here, at import, rather than being let through unchecked.
    """
    annotation, nullable = info.annotation, False
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        nullable, annotation = len(options) < len(get_args(annotation)), options[0]
        if len(options) != 1:
            raise TypeError(f"{name}: a union of several types")
    metadata = list(info.metadata)
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata += extra
    lo = next((m.min_length for m in metadata if isinstance(m, MinLen)), 0)
    hi = next((m.max_length for m in metadata if isinstance(m, MaxLen)), 2**62)
    patterns = {m.pattern for m in metadata if isinstance(m, StringConstraints)}
    required = info.is_required()
    default = None if required else info.default
    choices: tuple[str, ...] = ()
    if name in validated:
        kind = "absent"  # a Python validator's rule: such a record takes pydantic's path
    elif annotation is str and patterns == {_CLEAN_TEXT}:
        kind = "text"
    elif annotation is int and not patterns:
        kind = "int"
        lo = _int_bound(name, [m.ge for m in metadata if isinstance(m, Ge)], -(2**63))
        hi = _int_bound(name, [m.le for m in metadata if isinstance(m, Le)], 2**63 - 1)
    elif get_origin(annotation) is Literal and all(type(c) is str for c in get_args(annotation)):
        kind, choices = "choice", get_args(annotation)
    else:
        raise TypeError(f"{name}: no rule for {info.annotation!r} in opsmeter_wire.Records")
    return (info.alias or name, name, kind, nullable, required, default, lo, hi, choices)


def _int_bound(name: str, bounds: list[object], default: int) -> int:
    if not bounds:
        return default
    if len(bounds) > 1 or type(bounds[0]) is not int:
        raise TypeError(f"{name}: a bound that is not one int")
    return bounds[0]


def _records(model: type[BaseModel]) -> Records:
    validated = {f for d in model.__pydantic_decorators__.field_validators.values() for f in d.info.fields}
    return Records(model, tuple(_record_rule(n, f, validated) for n, f in model.model_fields.items()))


_RECORDS = _records(IngestRequest)
"""The common records built as :class:`IngestRequest` models in C from orjson's dicts (ADR 43).

It accepts a record only when every field meets its rule as pydantic checks it (its text rule is
stricter: each end a printable ASCII character), and no field with a Python validator (``timestamp``,
``metadata``) is given; otherwise it declines and pydantic validates the body. The unit tests check
that whatever it accepts, pydantic accepts as the same model."""


def parse_fast(body: bytes, *, batch: bool) -> IngestRequest | dict[str, list[IngestRequest]] | None:
    """The common body in one step: parsed and validated straight from the bytes.

    Only a body the strict path (:func:`parse_json_strict`, then :func:`validate_record`) would accept
    as it is comes back: no duplicate key (the key ends counted in the text must equal the fields parsed,
    see :func:`_key_ends`), no NaN or Infinity, no field to drop, every rule met. Anything else returns
    None, and the strict path answers it with the field-by-field errors. Common records are parsed by
    orjson and built by :data:`_RECORDS`; any other body is validated by pydantic-core.
    """
    built = _parse_common(body, batch=batch)
    if built is not None:
        return built
    try:
        parsed: _Batch | IngestRequest = (_Batch if batch else IngestRequest).model_validate_json(body)
    except ValidationError:
        return None
    requests = parsed.events if isinstance(parsed, _Batch) else [parsed]
    keys = 1 if batch else 0
    for request in requests:
        keys += len(request.model_fields_set)
        metadata = request.metadata
        if metadata:
            keys += len(metadata)
            if _has_content_keys(metadata) or not all(map(_storable_number, metadata.values())):
                return None
    if _key_ends(body) != keys:
        return None
    return {"events": requests} if isinstance(parsed, _Batch) else parsed


def _parse_common(body: bytes, *, batch: bool) -> IngestRequest | dict[str, list[IngestRequest]] | None:
    """:func:`parse_fast` for a body of common records only (no metadata, no timestamp); else None."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(document) is not dict:
        return None
    documents = document.get("events") if batch else [document]
    if type(documents) is not list or (batch and len(document) != 1):
        return None
    models: list[IngestRequest] | None = _RECORDS.build(documents)
    if models is None or _key_ends(body) != (1 if batch else 0) + sum(map(len, documents)):
        return None
    return {"events": models} if batch else models[0]


def _storable_number(value: Any) -> bool:
    if type(value) is float:
        return math.isfinite(value)
    return type(value) is not int or _INT64_MIN <= value <= _INT64_MAX


def _clean_metadata_keys(document: dict[str, Any]) -> bool:
    metadata = document.get("metadata")
    return not (isinstance(metadata, dict) and _has_content_keys(metadata))


def _has_content_keys(metadata: dict[str, Any]) -> bool:
    return any(map(content_key, metadata))


def _request_fast(document: dict[str, Any]) -> tuple[IngestRequest, tuple[str, ...]] | None:
    """The common case in one step: only known fields, nothing to drop, every rule met.

    Anything else (an unknown or content field, a bad value, NaN) returns None and takes
    :func:`_request`, which names every bad field; both accept exactly the same documents.
    """
    if not (document.keys() <= _FIELD_NAMES and _clean_metadata_keys(document)):
        return None
    try:
        return IngestRequest.model_validate(document), ()
    except ValidationError:
        return None


def _request(document: dict[str, Any]) -> tuple[IngestRequest, tuple[str, ...]]:
    """Drop content fields (with a warning each), then validate, naming every bad field."""
    warnings: list[str] = []
    document = dict(document)
    for name in list(document):
        if content_key(name):
            del document[name]
            warnings.append(f"field '{name}' dropped: prompts and completions are never stored")
    metadata_in = document.get("metadata")
    if isinstance(metadata_in, dict):
        kept = {k: v for k, v in metadata_in.items() if not content_key(k)}
        for dropped in sorted(set(metadata_in) - set(kept)):
            warnings.append(f"metadata.{dropped} dropped: prompts and completions are never stored")
        document["metadata"] = kept

    errors: list[FieldError] = _non_finite_errors(document)
    reported = reported_fields(errors)
    try:
        request = IngestRequest.model_validate({k: v for k, v in document.items() if k not in reported})
    except ValidationError as exc:
        more = [_field_error(e) for e in exc.errors(include_url=False)]
        raise PayloadRejected(errors + [e for e in more if e.field.split(".", 1)[0] not in reported]) from None
    if errors:
        raise PayloadRejected(errors)
    return request, tuple(warnings)


def reported_fields(errors: list[FieldError]) -> set[str]:
    return {e.field.split(".", 1)[0] for e in errors}


def _non_finite_errors(document: Mapping[str, Any], prefix: str = "") -> list[FieldError]:
    errors: list[FieldError] = []
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, _NonFinite):
            errors.append(FieldError(name, f"{value!r} {value.message}"))
        elif isinstance(value, dict):
            errors.extend(_non_finite_errors(value, f"{name}."))
    return errors


_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer (not a string, float or boolean)",
    "string_type": "must be a string",
    "missing": "is required",
}


def _field_error(error: Mapping[str, Any]) -> FieldError:
    loc = [str(p) for p in error["loc"]]
    name = ".".join(loc) or "body"
    message = _FRIENDLY.get(error["type"], error["msg"])
    if error["type"] in ("string_pattern_mismatch", "string_unicode"):
        value = error.get("input")
        unclean = error["type"] == "string_unicode" or (isinstance(value, str) and _FORBIDDEN_CHARS.search(value))
        message = (
            "must not contain control characters or lone surrogates"
            if unclean
            else "must not start or end with whitespace"
        )
    if error["type"] == "value_error":
        message = error["msg"].removeprefix("Value error, ")
    return FieldError(name, message)


def event_id_for(workspace_id: str, external_request_id: str) -> str:
    """Deterministic: the same LLM call from the same workspace is the same event everywhere downstream.

    A UUIDv5 in its text form: ``str(uuid.uuid5(EVENT_NAMESPACE, f"{workspace}\\x1f{request}"))``.
    """
    return _id_encoder(workspace_id).event_id(external_request_id)


def _id_encoder(workspace_id: str) -> Encoder:
    """The workspace's encoder: its event ids are :func:`event_id_for` it (the namespace and workspace are
    hashed once), its events the contract's JSON. Kept for the workspaces seen lately (one per request
    otherwise: building one costs about what encoding a few events does)."""
    encoder = _ENCODERS.get(workspace_id)
    if encoder is None:
        if len(_ENCODERS) >= 10_000:
            _ENCODERS.clear()
        parts = (
            b'{"event_id":"',
            b'",' + orjson.dumps({"type": _INGESTED_TYPE, "version": _INGESTED_VERSION})[1:-1] + b',"occurred_at":"',
            b'","ingested_at":"',
            b'","workspace_id":%b,"payload":{' % orjson.dumps(workspace_id),
            b',"cost_micro_usd":',
        )
        encoder = _ENCODERS[workspace_id] = Encoder(
            _NAMESPACE_BYTES + f"{workspace_id}\x1f".encode(), parts, _PAYLOAD_FIELDS
        )
    return encoder


_ENCODERS: dict[str, Encoder] = {}


_NAMESPACE_BYTES = EVENT_NAMESPACE.bytes


@dataclass(slots=True)
class OutgoingEvent:
    """An ``LlmRequestIngested`` event ready for the topic: its id, partition key and encoded value."""

    event_id: str
    key: bytes
    value: bytes


_INGESTED_TYPE = LlmRequestIngested.model_fields["type"].default
_INGESTED_VERSION = LlmRequestIngested.model_fields["version"].default

_PAYLOAD_LAYOUT: tuple[tuple[str, str] | tuple[str, str, str, str], ...] = (
    ("external_request_id", "str"),
    ("provider", "lower"),
    ("model", "str"),
    ("endpoint_tag", "or_unknown"),
    ("prompt_version", "or_null"),
    ("user_id", "or_unknown"),
    ("input_tokens", "int_or_zero"),
    ("output_tokens", "int_or_zero"),
    ("total_tokens", "sum", "input_tokens", "output_tokens"),
    ("cached_input_tokens", "int_or_zero"),
    ("reasoning_tokens", "int_or_zero"),
    ("latency_ms", "int_or_null"),
    ("status", "str"),
    ("error_code", "or_null"),
    ("data_mode", "str"),
    ("environment", "str"),
    ("metadata", "object"),
)
"""The payload fields copied from a request (its fields by name, in the model's order), and how each is
written (``opsmeter_wire.KINDS``): the provider lower-cased, a missing endpoint or user as ``unknown``,
the total as input + output, missing counts as 0. The cost, the price and the key follow them."""


def _payload_fields() -> tuple[tuple[bytes, str, str] | tuple[bytes, str, str, str, str], ...]:
    """The layout as ``opsmeter_wire`` takes it: each field with the JSON before its value."""
    fields: list[tuple[bytes, str, str] | tuple[bytes, str, str, str, str]] = []
    for i, spec in enumerate(_PAYLOAD_LAYOUT):
        prefix = (b"," if i else b"") + orjson.dumps(spec[0]) + b":"
        fields.append((prefix, spec[0], spec[1]) if len(spec) == 2 else (prefix, spec[0], spec[1], spec[2], spec[3]))
    return tuple(fields)


_PAYLOAD_FIELDS = _payload_fields()


class EventWriter:
    """Encodes the ``LlmRequestIngested`` events of one request as the contract's JSON.

    What the events of a workspace share (the envelope, the id's hash prefix) is rendered once; each event
    is then one call into ``opsmeter_wire``, which writes its id and its JSON from the request's fields
    (hot path: no dict, no model is built). ``decode_event`` of a value is the contract model, which the
    unit tests check field by field.
    """

    def __init__(self, *, workspace_id: str, api_key_id: str, now: datetime) -> None:
        self._api_key_id = api_key_id
        self._key = workspace_id.encode()
        self._now = now
        self._now_text = _utc_z(now)
        self._encoder = _id_encoder(workspace_id)
        self._tails: dict[tuple[str, bool, str], bytes] = {}

    def event_id(self, external_request_id: str) -> str:
        """:func:`event_id_for` this request's workspace."""
        return self._encoder.event_id(external_request_id)

    def event(self, record: ValidatedRecord, pricing: Pricing) -> OutgoingEvent:
        price = (pricing.model_normalized, pricing.priced, pricing.catalog_version)
        tail = self._tails.get(price)
        if tail is None:
            tail = self._tails[price] = self._tail(*price)
        r = record.request
        occurred = record.occurred_at
        event_id, value = self._encoder.encode(
            vars(r),
            r.external_request_id,
            self._now_text if occurred is self._now else _utc_z(occurred),
            self._now_text,
            pricing.cost_micro_usd,
            tail,
        )
        return OutgoingEvent(event_id, self._key, value)

    def _tail(self, model_normalized: str, priced: bool, catalog_version: str) -> bytes:
        """The payload's end after the cost: the price's fields and the key's id, and the closing braces."""
        price = {
            "model_normalized": model_normalized,
            "priced": priced,
            "price_catalog_version": catalog_version,
            "api_key_id": self._api_key_id,
        }
        return b"," + orjson.dumps(price)[1:] + b"}"


class AcceptedAnswers:
    """The event's own part of accepted answers, as JSON: what a repeat of the event is answered with.

    ``{"eventId", "costUsd", "costMicroUsd", "priced", "modelNormalized", "priceCatalogVersion", "warnings",
    "duplicate", "spooled"}``. What depends only on the price quote and the warnings is rendered once per
    request (by orjson, which escapes the model name and warnings); the id, the cost and the flag are
    written by ``opsmeter_wire``. The unit tests decode it against the same fields built as a dict.
    """

    _PARTS = (b'{"eventId":', b',"costUsd":"', b'","costMicroUsd":', b",", b',"duplicate":false,"spooled":}')

    def __init__(self) -> None:
        self._quoted: dict[tuple[str, bool, str, tuple[str, ...]], bytes] = {}
        self._answers = Answers(self._PARTS)

    def render(
        self, status: bytes, event_id: str, pricing: Pricing, warnings: tuple[str, ...], *, spooled: bool
    ) -> tuple[bytes, bytes]:
        """``(answer, opened)``: the event's part as a JSON object (stored for repeats), and the whole answer
        as open JSON (``status``, the open status fields, then the event's part, without its closing brace)."""
        key = (pricing.model_normalized, pricing.priced, pricing.catalog_version, warnings)
        quoted = self._quoted.get(key)
        if quoted is None:
            quoted = self._quoted[key] = orjson.dumps(
                {
                    "priced": pricing.priced,
                    "modelNormalized": pricing.model_normalized,
                    "priceCatalogVersion": pricing.catalog_version,
                    "warnings": list(warnings),
                }
            )[1:-1]
        return self._answers.render(status, event_id, pricing.cost_micro_usd, quoted, spooled)


def _utc_z(moment: datetime) -> str:
    """RFC 3339 in UTC with ``Z``, as orjson writes an aware datetime (microseconds only when non-zero)."""
    return orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()


def build_event(
    record: ValidatedRecord, *, workspace_id: str, api_key_id: str, pricing: Pricing, now: datetime
) -> OutgoingEvent:
    """The ``LlmRequestIngested`` event of a checked record (see :class:`EventWriter`)."""
    return EventWriter(workspace_id=workspace_id, api_key_id=api_key_id, now=now).event(record, pricing)


Reason = Literal[
    "invalid_payload",
    "unauthorized",
    "rate_limited",
    "plan_limit_reached",
    "budget_exceeded",
    "unavailable",
    "internal_error",
]


@dataclass(frozen=True)
class PolicyFlags:
    """What the policy projection says of a workspace right now."""

    budget_warning: bool = False
    budget_exceeded: bool = False
    policy_mode: Literal["enforce", "observe"] = "enforce"
    plan_limit_reached: bool = False

    @classmethod
    def from_status(cls, status: PolicyStatus, *, plan_limit_reached: bool = False) -> "PolicyFlags":
        return cls(status.budget_warning, status.budget_exceeded, status.policy_mode, plan_limit_reached)


def answer_body(
    *,
    status: Literal["accepted", "rejected"],
    reason: Reason | None,
    flags: PolicyFlags,
    warnings: tuple[str, ...] | list[str] = (),
    telemetry_paused: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Every JSON answer of the ingest API carries all of these status fields."""
    return {
        "status": status,
        "reason": reason,
        "telemetryPaused": telemetry_paused,
        "providerCallsContinue": True,
        "isPlanLimitReached": flags.plan_limit_reached,
        "budgetWarning": flags.budget_warning,
        "budgetExceeded": flags.budget_exceeded,
        "isBudgetWarning": flags.budget_warning,
        "isBudgetExceeded": flags.budget_exceeded,
        "policyMode": flags.policy_mode,
        "warnings": list(warnings),
        **extra,
    }


@dataclass
class FixedWindow:
    """A per-minute counter aligned to the minute; the in-process fallback when Redis is away."""

    limit: int
    window: int = -1
    used: int = 0

    def take(self, now: float) -> bool:
        current = int(now // 60)
        if current != self.window:
            self.window, self.used = current, 0
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def continue_from(self, now: float, used: int) -> None:
        """Count on from ``used`` requests already taken in the window of ``now`` (elsewhere, e.g. Redis)."""
        current = int(now // 60)
        if current != self.window:
            self.window, self.used = current, 0
        self.used = max(self.used, used)

    @property
    def window_end(self) -> int:
        return (self.window + 1) * 60


def month_period(now: float) -> str:
    """The quota period (a calendar month, UTC) that ``now`` falls in, as ``YYYY-MM``."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """``[start, end)`` of a ``YYYY-MM`` period in UTC."""
    year, month = (int(part) for part in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if month == 12 else datetime(year, month + 1, 1, tzinfo=UTC)
    return start, end


def retry_after_s(window_end: int, now: float) -> int:
    """Whole seconds until the window resets, at least 1."""
    return max(1, math.ceil(window_end - now))


def rate_limit_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(reset),
    }


PLAN_NAMES = {"free": "Free", "starter": "Starter", "pro": "Pro", "team": "Team", "enterprise": "Enterprise"}


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def budget_windows(status: PolicyStatus, now: datetime) -> dict[str, Any]:
    """The budget part of the workspace status, from the policy engine's last evaluation.

    A window whose period has ended shows no spend until the engine evaluates the new one.
    """

    def window(w: BudgetWindowStatus | None, *, monthly: bool) -> dict[str, Any] | None:
        if w is None:
            return None
        spend = w.spend_micro_usd if now < w.period_end else 0
        ratio = spend / w.limit_micro_usd if w.limit_micro_usd else 1.0
        body: dict[str, Any] = {
            "limitUsd": format_micro_usd(w.limit_micro_usd),
            "currentSpendUsd": format_micro_usd(spend),
            "utilizationRatio": round(ratio, 4),
            "isWarning": spend >= w.warning_at_micro_usd,
            "isExceeded": spend >= w.limit_micro_usd,
            "periodStart": iso_z(w.period_start),
            "periodEnd": iso_z(w.period_end),
        }
        if monthly:
            projected = w.projected_end_of_period_micro_usd
            body["projectedEndOfPeriodUsd"] = None if projected is None else format_micro_usd(projected)
        return body

    return {
        "warningThresholdRatio": status.warning_threshold_ratio,
        "enforcement": status.enforcement,
        "daily": window(status.daily, monthly=False),
        "monthly": window(status.monthly, monthly=True),
    }
