"""The two ingest endpoints without a web framework: headers and body in, a reply out.

Both the FastAPI routes (for the OpenAPI schema) and the raw ASGI fast path (``api/fast.py``) call
these, so the contract is written once.
"""

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError

from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.domain import (
    FieldError,
    MalformedJson,
    PayloadRejected,
    PolicyFlags,
    answer_body,
    parse_fast,
    parse_json_strict,
    rate_limit_headers,
    retry_after_s,
)
from opsmeter_ingest.errors import (
    IngestRejected,
    InvalidPayload,
    NotJson,
    RateLimited,
    Unauthorized,
    Unavailable,
    WrongContentType,
)
from opsmeter_ingest.metrics import REJECTED_REQUESTS, REQUEST_LATENCY
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.logs import bind_contextvars, get_logger

log = get_logger("opsmeter_ingest.api")

_SINGLE_LATENCY = REQUEST_LATENCY.labels("single")
_BATCH_LATENCY = REQUEST_LATENCY.labels("batch")


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | orjson.Fragment
    """The answer; an admitted event's is already JSON (a fragment that orjson writes as it is)."""
    headers: dict[str, str] = field(default_factory=dict)


def rejection(error: IngestRejected) -> Reply:
    """A request refused as a whole (it is counted as such; its events, if any, were not decided)."""
    REJECTED_REQUESTS.labels(str(error.status_code), error.reason).inc()
    return Reply(error.status_code, error.body(), dict(error.headers))


def internal_error() -> Reply:
    """Any error nobody foresaw: logged with an id the answer carries, answered with the status fields."""
    error_id = uuid.uuid4().hex
    log.exception("ingest_internal_error", error_id=error_id)
    REJECTED_REQUESTS.labels("500", "internal_error").inc()
    return Reply(
        500,
        answer_body(
            status="rejected",
            reason="internal_error",
            flags=PolicyFlags(),
            message="an unexpected error; telemetry only, provider calls continue",
            errorId=error_id,
        ),
    )


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def ingest_principal(deps: GatewayDeps, api_key: str | None) -> Principal:
    try:
        principal = await deps.credentials.authenticate(api_key, "api_key")
    except (RedisError, OSError):
        raise Unavailable("cannot verify the API key right now", headers={"Retry-After": "5"}) from None
    if principal is None:
        raise Unauthorized("missing, unknown or revoked X-API-Key")
    return principal


def _parse(content_type: str | None, body: bytes, *, batch: bool) -> Any:
    if not is_json(content_type):
        raise WrongContentType("Content-Type must be application/json")
    fast = parse_fast(body, batch=batch)
    if fast is not None:
        return fast
    try:
        return parse_json_strict(body)
    except MalformedJson as exc:
        raise NotJson(str(exc)) from None


async def _unparsed(deps: GatewayDeps, principal: Principal, error: IngestRejected) -> Reply:
    """A body that is not JSON still counts against the rate limit, which is checked first."""
    admission = await deps.ingestor.admit_unparsed(principal)
    headers = rate_limit_headers(admission.rate_limit, admission.remaining, admission.window_end)
    flags = PolicyFlags.from_status(admission.policy)
    if admission.codes == ["R"]:
        limited = RateLimited(
            f"over {admission.rate_limit} requests per minute; telemetry only, provider calls continue",
            flags=flags,
            headers={**headers, "Retry-After": str(retry_after_s(admission.window_end, time.time()))},
        )
        return rejection(limited)
    error.flags = flags
    REJECTED_REQUESTS.labels(str(error.status_code), error.reason).inc()
    return Reply(error.status_code, error.body(), {**headers, **error.headers})


async def _principal_and_document(
    deps: GatewayDeps, api_key: str | None, content_type: str | None, body: bytes, *, batch: bool
) -> Reply | tuple[Principal, Any]:
    """The checks every ingest request passes first: the key, then the body as strict JSON."""
    try:
        principal = await ingest_principal(deps, api_key)
    except IngestRejected as error:
        return rejection(error)
    bind_contextvars(workspace_id=principal.workspace_id)
    refused = deps.ingestor.refused_early(principal, len(body))
    if refused is not None:
        return rejection(
            Unavailable("the events cannot be made durable now (the spool is full); retry later", headers=refused)
        )
    try:
        return principal, _parse(content_type, body, batch=batch)
    except (WrongContentType, NotJson) as error:
        return await _unparsed(deps, principal, error)
    except PayloadRejected as rejected:
        return principal, rejected


async def single(deps: GatewayDeps, *, api_key: str | None, content_type: str | None, body: bytes) -> Reply:
    """``POST /v1/ingest/llm-request``: one event; 202 once it is durable."""
    started = time.perf_counter()
    checked = await _principal_and_document(deps, api_key, content_type, body, batch=False)
    if isinstance(checked, Reply):
        return checked
    principal, document = checked
    result = await deps.ingestor.ingest(principal, [document])
    [outcome] = result.outcomes
    _SINGLE_LATENCY.observe(time.perf_counter() - started)
    return Reply(outcome.status, outcome.answer(), result.headers)


async def batch(deps: GatewayDeps, *, api_key: str | None, content_type: str | None, body: bytes) -> Reply:
    """``POST /v1/ingest/llm-requests``: up to 500 events; 207 with one result per event, in order."""
    started = time.perf_counter()
    checked = await _principal_and_document(deps, api_key, content_type, body, batch=True)
    if isinstance(checked, Reply):
        return checked
    principal, document = checked
    if isinstance(document, PayloadRejected):
        return await _unparsed(deps, principal, InvalidPayload("a field breaks a rule", errors=document.errors))
    limit = deps.settings.max_batch_events
    events = document.get("events") if isinstance(document, dict) else None
    extra = set(document) - {"events"} if isinstance(document, dict) else set()
    if not isinstance(events, list) or not events or len(events) > limit or extra:
        field_name = sorted(extra)[0] if extra else "events"
        message = "unknown field" if extra else f"must be a list of 1 to {limit} events"
        return await _unparsed(
            deps, principal, InvalidPayload("a field breaks a rule", errors=[FieldError(field_name, message)])
        )
    result = await deps.ingestor.ingest(principal, events)
    _BATCH_LATENCY.observe(time.perf_counter() - started)
    accepted = [o.status for o in result.outcomes].count(202)
    return Reply(
        207,
        answer_body(
            status="accepted" if accepted == len(result.outcomes) else "rejected",
            reason=None,
            flags=PolicyFlags.from_status(result.admission.policy),
            accepted=accepted,
            rejected=len(result.outcomes) - accepted,
            results=orjson.Fragment(b"[%b]" % b",".join([o.numbered(i) for i, o in enumerate(result.outcomes)])),
        ),
        result.headers,
    )
