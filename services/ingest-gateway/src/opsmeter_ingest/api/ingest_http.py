"""The two ingest endpoints' work between the route and the use case: the key, the body's JSON, and the
rendering of the use case's typed outcomes as the answers and headers of SPEC §5."""

import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from redis.exceptions import RedisError

from opsmeter_ingest import outcomes
from opsmeter_ingest.answer import PolicyFlags, answer_body, rate_limit_headers
from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.errors import (
    IngestRejected,
    InvalidPayload,
    NotJson,
    RateLimited,
    Unauthorized,
    Unavailable,
    WrongContentType,
)
from opsmeter_ingest.ingest import UNAVAILABLE_RETRY_AFTER_S
from opsmeter_ingest.metrics import REJECTED_REQUESTS, REQUEST_LATENCY, count_outcomes
from opsmeter_ingest.ports import Admission
from opsmeter_ingest.record import FieldError, MalformedJson, PayloadRejected, field_error, parse_json
from opsmeter_ingest.windows import retry_after_s
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.logs import bind_contextvars, get_logger

log = get_logger("opsmeter_ingest.api")
T = TypeVar("T", bound=BaseModel)

SCOPE_NAMES = {"endpoint_tag": "endpointTag", "model": "model", "user_id": "userId"}
"""A scoped budget's dimension as the API names it."""

_SINGLE_LATENCY = REQUEST_LATENCY.labels("single")
_BATCH_LATENCY = REQUEST_LATENCY.labels("batch")


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        reason: str | None = self.body["reason"]
        return reason


def render(outcome: outcomes.Outcome, flags: PolicyFlags) -> Reply:
    """One event's answer: its status and its body with every status field."""
    match outcome:
        case outcomes.Accepted(event, budget_warning, budget_exceeded):
            these = replace(flags, budget_warning=budget_warning, budget_exceeded=budget_exceeded)
            return Reply(202, answer_body(status="accepted", reason=None, flags=these, **event))
        case outcomes.Duplicate(event):
            return Reply(202, answer_body(status="accepted", reason=None, flags=flags, **event))
        case outcomes.Invalid(errors):
            return Reply(
                422,
                answer_body(
                    status="rejected",
                    reason="invalid_payload",
                    flags=flags,
                    message="a field breaks a rule",
                    errors=[e.as_json() for e in errors],
                ),
            )
        case outcomes.RateLimited(limit, retry_after):
            message = f"over {limit} requests per minute; telemetry only, provider calls continue"
            return Reply(
                429,
                answer_body(
                    status="rejected",
                    reason="rate_limited",
                    flags=flags,
                    message=message,
                    retryAfterSeconds=retry_after,
                ),
            )
        case outcomes.PlanLimited():
            paused = replace(flags, plan_limit_reached=True)
            message = "Telemetry paused due to plan limit. LLM calls keep running."
            return Reply(
                402,
                answer_body(
                    status="rejected", reason="plan_limit_reached", flags=paused, telemetry_paused=True, message=message
                ),
            )
        case outcomes.BudgetStopped(scope):
            message = "budget exceeded and the workspace enforces hard-stop; provider calls continue"
            if scope is None:
                return Reply(
                    402,
                    answer_body(
                        status="rejected", reason="budget_exceeded", flags=flags, telemetry_paused=True, message=message
                    ),
                )
            name, value = SCOPE_NAMES.get(scope[0], scope[0]), scope[1]
            message = (
                f"the {name} {value!r} budget is exceeded and the workspace enforces hard-stop: its events are "
                "refused, others go in; provider calls continue"
            )
            return Reply(
                402,
                answer_body(
                    status="rejected",
                    reason="budget_exceeded",
                    flags=flags,
                    telemetry_paused=True,
                    message=message,
                    budgetScope={"dimension": name, "value": value},
                ),
            )
        case outcomes.Unavailable(message):
            message = f"{message}; retry later"
            return Reply(503, answer_body(status="rejected", reason="unavailable", flags=flags, message=message))


def result_headers(result: outcomes.IngestResult) -> dict[str, str]:
    headers = rate_limit_headers(result.rate_limit, result.remaining, result.window_end)
    if result.retry_after_s:
        headers["Retry-After"] = str(result.retry_after_s)
    return headers


Handler = Callable[..., Awaitable[Reply]]


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


async def count_demo_request(deps: GatewayDeps, principal: Principal) -> None:
    """A demo load counts as one request against the rate limit, checked before its body (SPEC §5's order);
    raises the 429 once the workspace's minute is used up."""
    limited = _over_rate_limit(await deps.ingestor.count_request(principal))
    if limited is not None:
        raise limited


def parse_demo_body(content_type: str | None, body: bytes, model: type[T]) -> T:
    """A demo load's body, as strictly as an event's: 415, 400, or 422 naming each bad field."""
    document = _parse(content_type, body, batch=False)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = [field_error(e) for e in exc.errors(include_url=False)]
        raise InvalidPayload("a field breaks a rule", errors=errors) from None


async def allow_demo_load(deps: GatewayDeps, principal: Principal, events: int) -> None:
    """A demo load's events count against the workspace's daily demo allowance (ADR 65); raises the 429 when it
    is used up, a 503 when the allowance cannot be read."""
    now = datetime.now(UTC)
    try:
        taken = await deps.demo_allowance.take(principal.workspace_id, events, now.date())
    except (RedisError, OSError):
        raise Unavailable("cannot check the demo allowance right now", headers={"Retry-After": "5"}) from None
    if not taken:
        next_day = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        raise RateLimited(
            f"at most {deps.demo_allowance.events_per_day:,} demo events per workspace per UTC day; "
            "load fewer, or more after 00:00 UTC",
            headers={"Retry-After": str(math.ceil((next_day - now).total_seconds()))},
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
    try:
        return parse_json(body)
    except MalformedJson as exc:
        raise NotJson(str(exc)) from None


def _over_rate_limit(admission: Admission) -> RateLimited | None:
    """The 429 of a request counted by :meth:`Ingestor.count_request` once the workspace's minute is used up."""
    if admission.decisions != ["rate_limited"]:
        return None
    headers = rate_limit_headers(admission.rate_limit, admission.remaining, admission.window_end)
    return RateLimited(
        f"over {admission.rate_limit} requests per minute; telemetry only, provider calls continue",
        flags=PolicyFlags.from_status(admission.policy),
        headers={**headers, "Retry-After": str(retry_after_s(admission.window_end, time.time()))},
    )


async def _unparsed(deps: GatewayDeps, principal: Principal, error: IngestRejected) -> Reply:
    """A body that is not JSON still counts against the rate limit, which is checked first."""
    admission = await deps.ingestor.refuse_body(principal)
    limited = _over_rate_limit(admission)
    if limited is not None:
        return rejection(limited)
    headers = rate_limit_headers(admission.rate_limit, admission.remaining, admission.window_end)
    error.flags = PolicyFlags.from_status(admission.policy)
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
        headers = {**rate_limit_headers(*refused), "Retry-After": str(UNAVAILABLE_RETRY_AFTER_S)}
        return rejection(
            Unavailable("the events cannot be made durable now (the spool is full); retry later", headers=headers)
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
    [reply] = [render(outcome, result.flags) for outcome in result.outcomes]
    count_outcomes([reply])
    _SINGLE_LATENCY.observe(time.perf_counter() - started)
    return Reply(reply.status, reply.body, result_headers(result))


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
    replies = [render(outcome, result.flags) for outcome in result.outcomes]
    count_outcomes(replies)
    _BATCH_LATENCY.observe(time.perf_counter() - started)
    accepted = [r.status for r in replies].count(202)
    plan_limited = any(isinstance(o, outcomes.PlanLimited) for o in result.outcomes)
    stopped = plan_limited or any(isinstance(o, outcomes.BudgetStopped) for o in result.outcomes)
    return Reply(
        207,
        answer_body(
            status="accepted" if accepted == len(replies) else "rejected",
            reason=None,
            flags=replace(result.flags, plan_limit_reached=result.flags.plan_limit_reached or plan_limited),
            telemetry_paused=stopped,
            accepted=accepted,
            rejected=len(replies) - accepted,
            results=[{**r.body, "index": i, "httpStatus": r.status} for i, r in enumerate(replies)],
        ),
        result_headers(result),
    )
