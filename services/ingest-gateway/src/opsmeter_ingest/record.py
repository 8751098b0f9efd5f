"""The ingest record: the one model of what a client sends, its strict parsing and every field rule. No I/O."""

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from pydantic.alias_generators import to_camel

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
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
_DECIMAL_USD = re.compile(r"^\d{1,9}(?:\.\d{1,12})?$")


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


_KEY_END = re.compile(rb'"[ \t\r\n]*:')


def parse_json(body: bytes) -> Any:
    """The body as JSON, every number exact and no key given twice; a field error for each that is not.

    orjson reads the common body; only one it may have read loosely (a float, a key seen twice: each key
    ends with a quote and a colon, so fewer keys parsed than such ends found means a repeat, or a ``":``
    inside a string) is read again by :func:`parse_json_strict`, which names the field.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return parse_json_strict(body)
    keys = _exact_keys(document)
    if keys is None or keys != len(_KEY_END.findall(body)):
        return parse_json_strict(body)
    return document


def _exact_keys(value: Any) -> int | None:
    """How many keys ``value`` holds, or None when it holds a float (read again, exactly)."""
    if isinstance(value, dict):
        total = len(value)
        for item in value.values():
            if isinstance(item, dict | list | float):
                more = _exact_keys(item)
                if more is None:
                    return None
                total += more
        return total
    if isinstance(value, list):
        total = 0
        for item in value:
            more = _exact_keys(item)
            if more is None:
                return None
            total += more
        return total
    return None if isinstance(value, float) else 0


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
made readable in :func:`field_error`."""


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
    cache_write_input_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    cache_write_1h_input_tokens: int | None = Field(
        default=None, ge=0, le=10_000_000, alias="cacheWrite1hInputTokens"
    )  # the camel-case generator would spell it cacheWrite1HInputTokens
    reasoning_tokens: int | None = Field(default=None, ge=0, le=10_000_000)
    latency_ms: int | None = Field(default=None, ge=0, le=3_600_000)
    status: Literal["success", "error"] = "success"
    error_code: Text | None = Field(default=None, max_length=64)
    data_mode: Literal["real", "test", "demo"] = "real"
    environment: Literal["prod", "staging", "dev"] = "prod"
    timestamp: str | None = Field(default=None, max_length=40)
    metadata: dict[str, Any] | None = None
    reported_cost_usd: str | None = Field(default=None, max_length=32)

    @field_validator("reported_cost_usd")
    @classmethod
    def _decimal_usd(cls, value: str | None) -> str | None:
        if value is not None and _DECIMAL_USD.match(value) is None:
            raise ValueError('must be a non-negative decimal string of USD, at most 12 decimals (e.g. "0.0123")')
        return value

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

    @property
    def reported_cost_micro_usd(self) -> int | None:
        """``reportedCostUsd`` in integer micro-USD, rounded half up (None when not sent)."""
        reported = self.request.reported_cost_usd
        if reported is None:
            return None
        return int((Decimal(reported) * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))


def validate_record(document: Any, *, now: datetime, max_age: timedelta, max_skew: timedelta) -> ValidatedRecord:
    """Apply every field rule of the ingest contract; raise PayloadRejected naming each bad field."""
    if not isinstance(document, dict):
        raise PayloadRejected([FieldError("body", "must be a JSON object")])
    request, warnings = _request_fast(document) or _request(document)
    return _finish(request, warnings, now=now, max_age=max_age, max_skew=max_skew)


def validate_records(
    documents: list[Any], *, now: datetime, max_age: timedelta, max_skew: timedelta
) -> list[ValidatedRecord | PayloadRejected]:
    """:func:`validate_record` for each document: its record, or why it was rejected."""
    results: list[ValidatedRecord | PayloadRejected] = []
    for document in documents:
        if isinstance(document, PayloadRejected):
            results.append(document)
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
    cache_reads, cache_writes = request.cached_input_tokens or 0, request.cache_write_input_tokens or 0
    if cache_reads > request.input_tokens:
        errors.append(FieldError("cachedInputTokens", "must not exceed inputTokens"))
    elif cache_reads + cache_writes > request.input_tokens:
        errors.append(
            FieldError(
                "cacheWriteInputTokens",
                "cachedInputTokens + cacheWriteInputTokens must not exceed inputTokens (both are part of it)",
            )
        )
    if (request.cache_write_1h_input_tokens or 0) > cache_writes:
        errors.append(
            FieldError(
                "cacheWrite1hInputTokens",
                "must not exceed cacheWriteInputTokens (1-hour cache writes are part of it)",
            )
        )
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
        more = [field_error(e) for e in exc.errors(include_url=False)]
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


def field_error(error: Mapping[str, Any]) -> FieldError:
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
