"""OTLP/HTTP trace requests and answers as the specification encodes them (protobuf or JSON, gzip or not). No I/O.

The JSON encoding is protobuf's JSON mapping with three differences (OTLP "JSON Protobuf Encoding"): trace and
span ids are hex, not base64; enums are integers; unknown fields are ignored. Ids are turned into what protobuf's
parser reads, and the rest is left to it, so both encodings give the same ``ExportTraceServiceRequest``.
"""

import base64
import zlib
from typing import Any, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

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


def decode_request(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    """The ``ExportTraceServiceRequest`` a body holds; :class:`OtlpRejected` naming what is wrong."""
    request = ExportTraceServiceRequest()
    if encoding == "protobuf":
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise OtlpRejected(f"the body is not an ExportTraceServiceRequest: {exc}") from None
        return request
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpRejected(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpRejected("the body must be a JSON object (an ExportTraceServiceRequest)")
    try:
        json_format.ParseDict(_ids_as_base64(document), request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpRejected(f"the body is not an ExportTraceServiceRequest: {exc}") from None
    return request


_ID_BYTES = {"traceId": 16, "spanId": 8, "parentSpanId": 8}


def _ids_as_base64(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OTLP/JSON request with each span's (and link's) hex ids as protobuf's JSON mapping reads them."""
    resource_spans = document.get("resourceSpans")
    if not isinstance(resource_spans, list):
        return document
    fixed_resources = []
    for r, resource in enumerate(resource_spans):
        if not isinstance(resource, dict) or not isinstance(resource.get("scopeSpans"), list):
            fixed_resources.append(resource)
            continue
        scopes = []
        for s, scope in enumerate(resource["scopeSpans"]):
            if not isinstance(scope, dict) or not isinstance(scope.get("spans"), list):
                scopes.append(scope)
                continue
            spans = []
            for i, span in enumerate(scope["spans"]):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                if isinstance(span, dict):
                    span = _span_ids(span, where)
                    links = span.get("links")
                    if isinstance(links, list):
                        span["links"] = [
                            _span_ids(link, f"{where}.links[{k}]") if isinstance(link, dict) else link
                            for k, link in enumerate(links)
                        ]
                spans.append(span)
            scopes.append({**scope, "spans": spans})
        fixed_resources.append({**resource, "scopeSpans": scopes})
    return {**document, "resourceSpans": fixed_resources}


def _span_ids(span: dict[str, Any], where: str) -> dict[str, Any]:
    fixed = dict(span)
    for name, size in _ID_BYTES.items():
        value = span.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) != 2 * size:
            raise OtlpRejected(f"{where}.{name} must be {2 * size} hex digits")
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise OtlpRejected(f"{where}.{name} must be {2 * size} hex digits") from None
        fixed[name] = base64.b64encode(raw).decode()
    return fixed


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
