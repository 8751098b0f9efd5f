"""OTLP/HTTP trace requests and answers as the specification encodes them (protobuf or JSON, gzip or not). No I/O.

Both encodings give the same :class:`OtlpSpan` list: protobuf through ``opentelemetry-proto``'s
``ExportTraceServiceRequest``, JSON read by the OTLP/JSON rules (protobuf's JSON mapping with hex ids, integer
enums, 64-bit integers as numbers or strings, unknown fields ignored).
"""

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Encoding = Literal["protobuf", "json"]
PROTOBUF_MEDIA_TYPE = "application/x-protobuf"
JSON_MEDIA_TYPE = "application/json"


class OtlpRejected(Exception):
    """The request as a whole cannot be read: answered with ``status`` and a ``google.rpc.Status``."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedMediaType(OtlpRejected):
    status = 415


class BodyTooLarge(OtlpRejected):
    status = 413


def encoding_of(content_type: str | None) -> Encoding:
    """The request's encoding from its ``Content-Type``; 415 for any other."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == PROTOBUF_MEDIA_TYPE:
        return "protobuf"
    if media_type == JSON_MEDIA_TYPE:
        return "json"
    raise UnsupportedMediaType(f"Content-Type must be {PROTOBUF_MEDIA_TYPE} or {JSON_MEDIA_TYPE}")


def decompress(body: bytes, content_encoding: str | None, *, limit: int) -> bytes:
    """The body without its ``Content-Encoding`` (gzip, deflate or none), refused past ``limit`` bytes unpacked."""
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return body
    if coding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(f"Content-Encoding {coding!r} is not supported (gzip, deflate or none)")
    unpacker = zlib.decompressobj(wbits=31 if coding == "gzip" else 15)
    try:
        unpacked = unpacker.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpRejected(f"the body is not valid {coding}: {exc}") from None
    if len(unpacked) > limit or unpacker.unconsumed_tail:
        raise BodyTooLarge(f"the body is over {limit} bytes once decompressed")
    if not unpacker.eof:
        raise OtlpRejected(f"the body is truncated {coding}")
    return unpacked


Scalar = str | int | float | bool
AttributeValue = Scalar | tuple[Scalar, ...]
Attributes = Mapping[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class OtlpSpan:
    """What the mapping reads of one span, whichever encoding it came in: ids in hex, times in Unix nanoseconds,
    and only the attributes asked for (scalars, and arrays of scalars)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    error: bool
    """The span's status is ERROR."""
    attributes: Attributes
    resource: Attributes


def decode_spans(body: bytes, encoding: Encoding, wanted: frozenset[str]) -> list[OtlpSpan]:
    """The spans of an ``ExportTraceServiceRequest`` body, with the ``wanted`` attributes only (no other is read);
    :class:`OtlpRejected` naming what is wrong."""
    if encoding == "protobuf":
        return _protobuf_spans(body, wanted)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpRejected(f"the body is not JSON: {exc}") from None
    return _json_spans(document, wanted)


def _protobuf_spans(body: bytes, wanted: frozenset[str]) -> list[OtlpSpan]:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpRejected(f"the body is not an ExportTraceServiceRequest: {exc}") from None
    spans: list[OtlpSpan] = []
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _proto_attributes(resource_spans.resource.attributes, wanted)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for i, span in enumerate(scope_spans.spans):
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or len(span.parent_span_id) not in (0, 8):
                    where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                    raise OtlpRejected(f"{where} must have a 16-byte traceId, an 8-byte spanId and parentSpanId")
                spans.append(
                    OtlpSpan(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        error=span.status.code == _STATUS_ERROR,
                        attributes=_proto_attributes(span.attributes, wanted),
                        resource=resource,
                    )
                )
    return spans


_STATUS_ERROR = 2
"""``Status.STATUS_CODE_ERROR``."""


def _proto_attributes(pairs: Iterable[KeyValue], wanted: frozenset[str]) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    for pair in pairs:
        if pair.key in wanted:
            value = _proto_value(pair.value)
            if value is not None:
                found[pair.key] = value
    return found


def _proto_value(value: AnyValue) -> AttributeValue | None:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        items = [_proto_scalar(v) for v in value.array_value.values]
        return tuple(v for v in items if v is not None)
    return _proto_scalar(value)


def _proto_scalar(value: AnyValue) -> Scalar | None:
    kind = value.WhichOneof("value")
    if kind in ("string_value", "int_value", "double_value", "bool_value"):
        scalar: Scalar = getattr(value, kind)
        return scalar
    return None


# OTLP/JSON ("JSON Protobuf Encoding"): lowerCamelCase keys, ids in hex, enums as integers, 64-bit integers as
# numbers or strings; unknown fields ignored. Read directly: protobuf's generic JSON parser took about 0.4 ms a
# span (a 512-span export blocked the event loop ~250 ms), and reads ids as base64.


def _json_spans(document: Any, wanted: frozenset[str]) -> list[OtlpSpan]:
    if not isinstance(document, dict):
        raise OtlpRejected("the body must be a JSON object (an ExportTraceServiceRequest)")
    spans: list[OtlpSpan] = []
    for r, resource_spans in enumerate(_list(document, "resourceSpans", "")):
        where = f"resourceSpans[{r}]"
        resource_spans = _object(resource_spans, where)
        resource = _object(resource_spans.get("resource") or {}, f"{where}.resource")
        resource_attributes = _json_attributes(resource, wanted, f"{where}.resource")
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}.scopeSpans[{s}]"
            for i, span in enumerate(_list(_object(scope_spans, scope_where), "spans", scope_where)):
                span_where = f"{scope_where}.spans[{i}]"
                span = _object(span, span_where)
                status = _object(span.get("status") or {}, f"{span_where}.status")
                spans.append(
                    OtlpSpan(
                        trace_id=_hex_id(span, "traceId", 16, span_where, required=True),
                        span_id=_hex_id(span, "spanId", 8, span_where, required=True),
                        parent_span_id=_hex_id(span, "parentSpanId", 8, span_where, required=False),
                        name=_string(span.get("name", ""), f"{span_where}.name"),
                        start_ns=_uint64(span.get("startTimeUnixNano", 0), f"{span_where}.startTimeUnixNano"),
                        end_ns=_uint64(span.get("endTimeUnixNano", 0), f"{span_where}.endTimeUnixNano"),
                        error=status.get("code") in (_STATUS_ERROR, "STATUS_CODE_ERROR"),
                        attributes=_json_attributes(span, wanted, span_where),
                        resource=resource_attributes,
                    )
                )
    return spans


def _list(parent: dict[str, Any], name: str, where: str) -> list[Any]:
    value = parent.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpRejected(f"{where + '.' if where else ''}{name} must be a list")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise OtlpRejected(f"{where} must be an object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise OtlpRejected(f"{where} must be a string")
    return value


def _uint64(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise OtlpRejected(f"{where} must be an unsigned 64-bit integer (a number or a string of digits)")
    return value


def _hex_id(span: dict[str, Any], name: str, size: int, where: str, *, required: bool) -> str:
    value = span.get(name, "")
    if value == "" and not required:
        return ""
    if not isinstance(value, str) or len(value) != 2 * size:
        raise OtlpRejected(f"{where}.{name} must be {2 * size} hex digits")
    try:
        return bytes.fromhex(value).hex()
    except ValueError:
        raise OtlpRejected(f"{where}.{name} must be {2 * size} hex digits") from None


def _json_attributes(owner: dict[str, Any], wanted: frozenset[str], where: str) -> dict[str, AttributeValue]:
    found: dict[str, AttributeValue] = {}
    for k, pair in enumerate(_list(owner, "attributes", where)):
        key = pair.get("key") if isinstance(pair, dict) else None
        if key in wanted:
            value = _json_value(pair.get("value"), f"{where}.attributes[{k}].value")
            if value is not None:
                found[key] = value
    return found


def _json_value(value: Any, where: str) -> AttributeValue | None:
    if isinstance(value, dict) and "arrayValue" in value:
        items = _list(_object(value["arrayValue"], f"{where}.arrayValue"), "values", f"{where}.arrayValue")
        scalars = [_json_scalar(v, f"{where}.arrayValue.values[{i}]") for i, v in enumerate(items)]
        return tuple(v for v in scalars if v is not None)
    return _json_scalar(value, where)


def _json_scalar(value: Any, where: str) -> Scalar | None:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return _string(value["stringValue"], f"{where}.stringValue")
    if "boolValue" in value:
        if not isinstance(value["boolValue"], bool):
            raise OtlpRejected(f"{where}.boolValue must be true or false")
        return bool(value["boolValue"])
    if "intValue" in value:
        number = value["intValue"]
        if isinstance(number, str) and number.lstrip("-").isdigit() and len(number) <= 20:
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or not -(2**63) <= number < 2**63:
            raise OtlpRejected(f"{where}.intValue must be a 64-bit integer (a number or a string of digits)")
        return number
    if "doubleValue" in value:
        number = value["doubleValue"]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise OtlpRejected(f"{where}.doubleValue must be a number")
        return float(number)
    return None


def encode_response(response: ExportTraceServiceResponse, encoding: Encoding) -> bytes:
    if encoding == "protobuf":
        return response.SerializeToString()
    return _json(response)


def encode_status(code: int, message: str, encoding: Encoding) -> bytes:
    """A failed export's body: a ``google.rpc.Status`` (``code`` is a gRPC code) in the request's encoding."""
    status = Status(code=code, message=message)
    if encoding == "protobuf":
        serialized: bytes = status.SerializeToString()
        return serialized
    return _json(status)


def _json(message: Any) -> bytes:
    return orjson.dumps(json_format.MessageToDict(message))


def media_type_of(encoding: Encoding) -> str:
    return PROTOBUF_MEDIA_TYPE if encoding == "protobuf" else JSON_MEDIA_TYPE
