"""The ingest API: thin entrypoints that parse, build the typed message and hand it on."""

import asyncio
import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from redis.exceptions import RedisError

from opsmeter_contracts.envelope import WORKSPACE_ID_PATTERN
from opsmeter_ingest import demo
from opsmeter_ingest.adapters.admission import quota_snapshot
from opsmeter_ingest.adapters.spool import SpoolUnavailable
from opsmeter_ingest.api.deps import Deps
from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.commands import CreateWorkspace, create_workspace, set_plan
from opsmeter_ingest.domain import (
    PLAN_NAMES,
    FieldError,
    MalformedJson,
    PayloadRejected,
    PolicyFlags,
    answer_body,
    budget_windows,
    build_event,
    iso_z,
    month_period,
    parse_json_strict,
    period_bounds,
    rate_limit_headers,
    retry_after_s,
)
from opsmeter_ingest.errors import (
    BodyTooLarge,
    IngestRejected,
    InvalidPayload,
    NotJson,
    RateLimited,
    Unauthorized,
    Unavailable,
    WrongContentType,
)
from opsmeter_ingest.ingest import IngestResult, Outcome
from opsmeter_ingest.metrics import REGISTRY, REQUEST_LATENCY
from opsmeter_runtime.auth import Principal, verify_operator_token
from opsmeter_runtime.errors import Unauthorized as OperatorUnauthorized
from opsmeter_runtime.http import json_response
from opsmeter_runtime.kafka import PublishError
from opsmeter_runtime.logs import bind_contextvars, get_logger
from opsmeter_runtime.projections import PolicyStatusProjection

log = get_logger(__name__)
router = APIRouter()


async def read_limited_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge(f"body is over {limit} bytes")
    return bytes(body)


async def ingest_principal(deps: GatewayDeps, api_key: str | None) -> Principal:
    try:
        principal = await deps.credentials.authenticate(api_key, "api_key")
    except (RedisError, OSError):
        raise Unavailable("cannot verify the API key right now", headers={"Retry-After": "5"}) from None
    if principal is None:
        raise Unauthorized("missing, unknown or revoked X-API-Key")
    return principal


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _answer(result: IngestResult, outcome: Outcome) -> Response:
    return json_response(outcome.body, outcome.status, result.headers)


async def _unparsed(deps: GatewayDeps, principal: Principal, error: IngestRejected) -> Response:
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
        return json_response(limited.body(), limited.status_code, limited.headers)
    error.flags = flags
    return json_response(error.body(), error.status_code, {**headers, **error.headers})


async def _parse(request: Request, body: bytes) -> Any:
    if not _is_json(request.headers.get("content-type")):
        raise WrongContentType("Content-Type must be application/json")
    try:
        return parse_json_strict(body)
    except MalformedJson as exc:
        raise NotJson(str(exc)) from None


@router.post("/v1/ingest/llm-request", status_code=202, tags=["ingest"])
async def ingest_llm_request(
    request: Request,
    deps: Deps,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    started = time.perf_counter()
    body = await read_limited_body(request, deps.settings.max_body_bytes)
    principal = await ingest_principal(deps, x_api_key)
    bind_contextvars(workspace_id=principal.workspace_id)
    try:
        document = await _parse(request, body)
    except (WrongContentType, NotJson) as error:
        return await _unparsed(deps, principal, error)
    except PayloadRejected as rejected:
        document = rejected
    result = await deps.ingestor.ingest(principal, [document])
    [outcome] = result.outcomes
    REQUEST_LATENCY.labels("single").observe(time.perf_counter() - started)
    return _answer(result, outcome)


@router.post("/v1/ingest/llm-requests", status_code=207, tags=["ingest"])
async def ingest_llm_requests(
    request: Request,
    deps: Deps,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Up to 500 events in ``{"events": [...]}``; 207 with one result per event, in order."""
    started = time.perf_counter()
    body = await read_limited_body(request, deps.settings.max_batch_bytes)
    principal = await ingest_principal(deps, x_api_key)
    bind_contextvars(workspace_id=principal.workspace_id)
    try:
        document = await _parse(request, body)
    except (WrongContentType, NotJson) as error:
        return await _unparsed(deps, principal, error)
    except PayloadRejected as rejected:
        return await _unparsed(deps, principal, InvalidPayload("a field breaks a rule", errors=rejected.errors))
    events = document.get("events") if isinstance(document, dict) else None
    extra = set(document) - {"events"} if isinstance(document, dict) else set()
    if not isinstance(events, list) or not events or len(events) > deps.settings.max_batch_events or extra:
        field = sorted(extra)[0] if extra else "events"
        message = "unknown field" if extra else f"must be a list of 1 to {deps.settings.max_batch_events} events"
        return await _unparsed(
            deps, principal, InvalidPayload("a field breaks a rule", errors=[FieldError(field, message)])
        )
    result = await deps.ingestor.ingest(principal, events)
    REQUEST_LATENCY.labels("batch").observe(time.perf_counter() - started)
    accepted = sum(1 for o in result.outcomes if o.status == 202)
    flags = PolicyFlags.from_status(result.admission.policy)
    return json_response(
        answer_body(
            status="accepted" if accepted == len(result.outcomes) else "rejected",
            reason=None,
            flags=flags,
            accepted=accepted,
            rejected=len(result.outcomes) - accepted,
            results=[{"index": i, "httpStatus": o.status, **o.body} for i, o in enumerate(result.outcomes)],
        ),
        207,
        result.headers,
    )


@router.get("/v1/public/pricing-models", tags=["pricing"])
async def pricing_models(deps: Deps) -> Response:
    return json_response(deps.prices.public_catalog(), headers={"Cache-Control": "public, max-age=300"})


class CreateWorkspaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    name: str = Field(min_length=1, max_length=128)
    plan: Literal["free", "starter", "pro", "team", "enterprise"] = "free"
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    monthly_request_quota: int | None = Field(default=None, ge=0)


@router.post("/v1/admin/workspaces", status_code=201, tags=["admin"])
async def create_workspace_route(
    body: CreateWorkspaceBody,
    deps: Deps,
    x_operator_token: Annotated[str | None, Header()] = None,
) -> Response:
    if not verify_operator_token(x_operator_token, deps.settings.runtime.operator_token_sha256):
        raise OperatorUnauthorized("a valid X-Operator-Token is required")
    try:
        created = await create_workspace(
            CreateWorkspace(body.name, body.plan, body.rate_limit_per_minute, body.monthly_request_quota),
            publisher=deps.resources.publisher,
            credentials=deps.store,
        )
    except PublishError as exc:
        raise Unavailable(f"workspace not created: {exc}", headers={"Retry-After": "5"}) from None
    answer: dict[str, Any] = {
        "workspaceId": created.workspace_id,
        "name": body.name,
        "plan": body.plan,
        "apiKey": created.api_key.plaintext,
        "apiKeyId": created.api_key.credential_id,
        "adminToken": created.admin_token.plaintext,
    }
    return json_response(answer, 201)


class DemoBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    events: int = Field(default=3000, ge=1, le=20_000)
    days: int = Field(default=14, ge=1, le=30)


@router.post("/v1/ingest/demo", status_code=202, tags=["ingest"])
async def ingest_demo(
    body: DemoBody,
    deps: Deps,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Write realistic demo events (``dataMode=demo``) to the caller's workspace."""
    principal = await ingest_principal(deps, x_api_key)
    now = datetime.now(UTC)
    demo_set = demo.generate(count=body.events, days=body.days, now=now, seed=secrets.randbits(48))
    events = [
        build_event(
            record,
            workspace_id=principal.workspace_id,
            api_key_id=principal.credential_id,
            pricing=deps.prices.quote(record),
            now=now,
        )
        for record in demo_set.records
    ]
    try:
        for start in range(0, len(events), 500):
            await asyncio.gather(*(deps.sink.publish(e) for e in events[start : start + 500]))
    except SpoolUnavailable as exc:
        raise Unavailable(f"demo data only partly written: {exc}", headers={"Retry-After": "5"}) from None
    return json_response(
        {
            "status": "accepted",
            "accepted": len(events),
            "dataMode": "demo",
            "spikeDay": demo_set.spike_day,
            "spikeDriver": demo_set.spike_driver,
        },
        202,
    )


class SetPlanBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    plan: Literal["free", "starter", "pro", "team", "enterprise"]
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    monthly_request_quota: int | None = Field(default=None, ge=0)


@router.put("/v1/admin/workspaces/{workspace_id}/plan", status_code=202, tags=["admin"])
async def set_plan_route(
    workspace_id: Annotated[str, Path(pattern=WORKSPACE_ID_PATTERN)],
    body: SetPlanBody,
    deps: Deps,
    x_operator_token: Annotated[str | None, Header()] = None,
) -> Response:
    """Operator override of a workspace's plan; billing projects it and ingest follows within seconds."""
    if not verify_operator_token(x_operator_token, deps.settings.runtime.operator_token_sha256):
        raise OperatorUnauthorized("a valid X-Operator-Token is required")
    try:
        await set_plan(
            workspace_id,
            body.plan,
            rate_limit_per_minute=body.rate_limit_per_minute,
            monthly_request_quota=body.monthly_request_quota,
            publisher=deps.resources.publisher,
        )
    except PublishError as exc:
        raise Unavailable(f"plan not changed: {exc}", headers={"Retry-After": "5"}) from None
    return json_response({"status": "accepted", "workspaceId": workspace_id, "plan": body.plan}, 202)


@router.get("/v1/diagnostics/workspace-status", tags=["ingest"])
async def workspace_status(deps: Deps, x_api_key: Annotated[str | None, Header()] = None) -> Response:
    """Plan counters and budget flags of the caller's workspace, without counting a request."""
    principal = await ingest_principal(deps, x_api_key)
    now = time.time()
    period = month_period(now)
    redis = deps.resources.redis
    snapshot = await quota_snapshot(
        redis, principal.workspace_id, default_quota=deps.settings.default_monthly_quota, period=period
    )
    policy = await PolicyStatusProjection(redis).get(principal.workspace_id)
    start, end = period_bounds(period)
    limit = snapshot.quota_limit
    plan_limit_reached = limit is not None and snapshot.used >= limit
    paused = plan_limit_reached or policy.blocks_ingest
    severity = (
        "critical"
        if paused or policy.budget_exceeded
        else ("warning" if policy.budget_warning or (limit is not None and snapshot.used >= 0.8 * limit) else "ok")
    )
    plan_tier = snapshot.plan or "free"
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "isPlanLimitReached": plan_limit_reached,
            "telemetryPaused": paused,
            "providerCallsContinue": True,
            "isBudgetWarning": policy.budget_warning,
            "isBudgetExceeded": policy.budget_exceeded,
            "budgetWarning": policy.budget_warning,
            "budgetExceeded": policy.budget_exceeded,
            "policyMode": policy.policy_mode,
            "severity": severity,
            "plan": {
                "planTier": plan_tier,
                "planName": PLAN_NAMES.get(plan_tier, plan_tier.title()),
                "currentRequestCount": snapshot.used,
                "planRequestLimit": limit,
                "remainingRequestCount": None if limit is None else max(0, limit - snapshot.used),
                "periodStart": iso_z(start),
                "periodEnd": iso_z(end),
            },
            "budget": budget_windows(policy),
        }
    )


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
