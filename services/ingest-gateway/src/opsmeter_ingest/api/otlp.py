"""OpenTelemetry ingest: ``POST /v1/traces`` (OTLP/HTTP) into the same use case as ``/v1/ingest/llm-requests``, and
each workspace's attribute names for it (ADR 58)."""

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from opsmeter_contracts.events import AttributeName
from opsmeter_ingest.answer import rate_limit_headers
from opsmeter_ingest.api.deps import Deps, WorkspaceReader, WorkspaceWriter
from opsmeter_ingest.api.ingest_http import ingest_principal, internal_error, render, result_headers
from opsmeter_ingest.api.otlp_models import ExportTraceAnswer, ExportTraceRequest, OtlpStatus
from opsmeter_ingest.api.routes import API_KEY_HEADER, read_limited_body
from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.commands import set_otel_attributes
from opsmeter_ingest.errors import IngestRejected
from opsmeter_ingest.ingest import UNAVAILABLE_RETRY_AFTER_S
from opsmeter_ingest.metrics import OTLP_SPANS, REJECTED_REQUESTS, REQUEST_LATENCY, count_outcomes
from opsmeter_ingest.otlp.answers import export_answer
from opsmeter_ingest.otlp.decode import (
    PROTOBUF_MEDIA_TYPE,
    Encoding,
    OtlpRejected,
    decode_spans,
    decompress,
    encode_response,
    encode_status,
    encoding_of,
    media_type_of,
)
from opsmeter_ingest.otlp.mapping import AttributeNames, content_attribute, map_spans, wanted_attributes
from opsmeter_ingest.windows import retry_after_s
from opsmeter_runtime.errors import Unavailable as ServiceUnavailable
from opsmeter_runtime.http import json_body, json_response
from opsmeter_runtime.kafka import PublishError
from opsmeter_runtime.logs import bind_contextvars, get_logger

log = get_logger(__name__)
router = APIRouter(tags=["opentelemetry"])

_LATENCY = REQUEST_LATENCY.labels("otlp")
_MODEL_SPANS, _SKIPPED_SPANS = OTLP_SPANS.labels("model"), OTLP_SPANS.labels("skipped")

_GRPC_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}
"""The ``google.rpc.Status`` code of each HTTP status an export may get (INVALID_ARGUMENT, UNAUTHENTICATED,
RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE)."""


def _both_encodings(model: type[BaseModel]) -> dict[str, Any]:
    """JSON as the model says, protobuf as the same message in binary."""
    return {
        PROTOBUF_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        **json_body(model)["content"],
    }


_REFUSALS = {
    400: "The body is not an ExportTraceServiceRequest",
    401: "Missing or invalid X-API-Key",
    413: "The body is too large (as sent or decompressed)",
    415: "Not application/x-protobuf or application/json, or an unknown Content-Encoding",
    429: "Over the rate limit: retry after Retry-After",
    500: "An unexpected error",
    503: "The spans could not be made durable now: retry after Retry-After",
}


@router.post(
    "/v1/traces",
    status_code=200,
    openapi_extra={
        "requestBody": {"required": True, "content": _both_encodings(ExportTraceRequest)},
        "parameters": [
            API_KEY_HEADER,
            {"name": "Content-Encoding", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
    },
    responses={
        200: {"description": "Taken (see partialSuccess)", "content": _both_encodings(ExportTraceAnswer)},
        **{
            status: {"description": description, "content": _both_encodings(OtlpStatus)}
            for status, description in _REFUSALS.items()
        },
    },
)
async def export_traces(request: Request) -> Response:
    """OTLP/HTTP trace export: each model-operation span becomes one ingest record (agent, tool and workflow spans
    are skipped); answered with ``ExportTraceServiceResponse`` and its ``partial_success``."""
    deps: GatewayDeps = request.app.state.deps
    headers = request.headers
    encoding: Encoding = "json"
    with contextlib.suppress(OtlpRejected):
        encoding = encoding_of(headers.get("content-type"))
    started = time.perf_counter()
    try:
        body = await read_limited_body(request, deps.settings.otlp_max_body_bytes)
        return await _export(deps, headers, body, encoding)
    except IngestRejected as error:  # the key, the size as sent, Redis away while checking the key
        REJECTED_REQUESTS.labels(str(error.status_code), error.reason).inc()
        return _refused(error.status_code, error.message, encoding, error.headers)
    except Exception:
        internal_error()
        return _refused(500, "an unexpected error; telemetry only, provider calls continue", encoding)
    finally:
        _LATENCY.observe(time.perf_counter() - started)


async def _export(deps: GatewayDeps, headers: Mapping[str, str], body: bytes, encoding: Encoding) -> Response:
    principal = await ingest_principal(deps, headers.get("x-api-key"))
    bind_contextvars(workspace_id=principal.workspace_id)
    refused = deps.ingestor.refused_early(principal, len(body))
    if refused is not None:
        limits = {**rate_limit_headers(*refused), "Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
        return _refused(503, "the spans cannot be made durable now (the spool is full)", encoding, limits)
    names = await deps.otel_attributes.get(principal.workspace_id)
    try:
        encoding = encoding_of(headers.get("content-type"))
        decoded = decompress(body, headers.get("content-encoding"), limit=deps.settings.otlp_max_decoded_bytes)
        spans = decode_spans(decoded, encoding, wanted_attributes(names))
    except OtlpRejected as error:
        REJECTED_REQUESTS.labels(str(error.status), "invalid_payload").inc()
        admission = await deps.ingestor.refuse_body(principal)
        limits = rate_limit_headers(admission.rate_limit, admission.remaining, admission.window_end)
        if admission.decisions == ["rate_limited"]:
            wait = retry_after_s(admission.window_end, time.time())
            return _refused(429, "over the rate limit", encoding, {**limits, "Retry-After": str(wait)})
        return _refused(error.status, error.message, encoding, limits)

    mapped = map_spans(spans, names)
    _MODEL_SPANS.inc(len(mapped.records))
    _SKIPPED_SPANS.inc(mapped.skipped)
    if not mapped.records:
        return _answered(ExportTraceServiceResponse(), encoding, 200, {})
    result = await deps.ingestor.ingest(principal, [record.document for record in mapped.records])
    count_outcomes([render(outcome, result.flags) for outcome in result.outcomes])
    answer = export_answer(mapped.records, result)
    limits = result_headers(result)
    if answer.status != 200:
        return _refused(answer.status, answer.message, encoding, {**limits, "Retry-After": str(answer.retry_after_s)})
    response = ExportTraceServiceResponse()
    if answer.rejected:
        response.partial_success.rejected_spans = answer.rejected
        response.partial_success.error_message = answer.message
    limits.pop("Retry-After", None)
    return _answered(response, encoding, 200, limits)


def _answered(
    response: ExportTraceServiceResponse, encoding: Encoding, status: int, headers: dict[str, str]
) -> Response:
    return Response(encode_response(response, encoding), status, headers, media_type=media_type_of(encoding))


def _refused(status: int, message: str, encoding: Encoding, headers: Mapping[str, str] | None = None) -> Response:
    body = encode_status(_GRPC_CODES.get(status, 2), message, encoding)
    return Response(body, status, dict(headers or {}), media_type=media_type_of(encoding))


class OtelAttributesBody(BaseModel):
    """Where the workspace's spans say their endpoint tag, user and prompt version (the first name found wins)."""

    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, populate_by_name=True)

    endpoint_tag_attributes: list[AttributeName] = Field(default=["opsmeter.endpoint_tag"], max_length=10)
    endpoint_tag_from_root_span: bool = True
    user_id_attributes: list[AttributeName] = Field(default=["user.id", "enduser.id"], max_length=10)
    prompt_version_attributes: list[AttributeName] = Field(default=["opsmeter.prompt_version"], max_length=10)

    @field_validator("endpoint_tag_attributes", "user_id_attributes", "prompt_version_attributes")
    @classmethod
    def _no_content(cls, names: list[str]) -> list[str]:
        for name in names:
            if content_attribute(name):
                raise ValueError(f"{name!r} holds prompt or completion content, which is never stored")
        return names

    def names(self) -> AttributeNames:
        return AttributeNames(
            endpoint_tag=tuple(self.endpoint_tag_attributes),
            endpoint_tag_from_root_span=self.endpoint_tag_from_root_span,
            user_id=tuple(self.user_id_attributes),
            prompt_version=tuple(self.prompt_version_attributes),
        )


class OtelAttributesAnswer(OtelAttributesBody):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    workspace_id: str


def _settings(workspace_id: str, names: AttributeNames) -> dict[str, Any]:
    return {
        "workspaceId": workspace_id,
        "endpointTagAttributes": list(names.endpoint_tag),
        "endpointTagFromRootSpan": names.endpoint_tag_from_root_span,
        "userIdAttributes": list(names.user_id),
        "promptVersionAttributes": list(names.prompt_version),
    }


settings_router = APIRouter(prefix="/v1/workspaces/{workspace_id}/otel-attributes", tags=["opentelemetry"])


@settings_router.get("", response_model=OtelAttributesAnswer)
async def get_otel_attributes(reader: WorkspaceReader, deps: Deps) -> Response:
    """The attribute names ``/v1/traces`` reads for this workspace (the defaults until an admin sets others)."""
    return json_response(_settings(reader.workspace_id, await deps.otel_attributes.get(reader.workspace_id)))


@settings_router.put("", response_model=OtelAttributesAnswer)
async def put_otel_attributes(admin: WorkspaceWriter, deps: Deps, body: OtelAttributesBody) -> Response:
    """Owner or admin: set them (an event on ``workspaces.events``); every gateway reads them within 5 s."""
    try:
        await set_otel_attributes(admin, body.names(), publisher=deps.resources.publisher, store=deps.otel_attributes)
    except PublishError as exc:
        raise ServiceUnavailable(f"not changed: {exc}") from None
    return json_response(_settings(admin.workspace_id, body.names()))
