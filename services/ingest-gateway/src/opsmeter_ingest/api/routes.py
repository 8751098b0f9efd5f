"""The ingest API: thin entrypoints that parse, build the typed message and hand it on."""

import secrets
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from opsmeter_contracts.envelope import WORKSPACE_ID_PATTERN
from opsmeter_contracts.events import RateLimit, RequestQuota
from opsmeter_ingest import demo
from opsmeter_ingest.adapters.admission import quota_snapshot
from opsmeter_ingest.api import ingest_http
from opsmeter_ingest.api.answers import (
    BatchAnswer,
    CreatedWorkspace,
    DemoLoaded,
    EventAnswer,
    IngestBatchBody,
    PlanSet,
    PricingCatalog,
    WorkspaceStatus,
)
from opsmeter_ingest.api.deps import Deps, WorkspaceReader
from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.commands import CreateWorkspace, create_workspace, set_plan
from opsmeter_ingest.errors import BodyTooLarge, Unavailable
from opsmeter_ingest.event import build_event
from opsmeter_ingest.metrics import exposition
from opsmeter_ingest.record import IngestRequest
from opsmeter_ingest.status_view import PLAN_NAMES, budget_windows, iso_z
from opsmeter_ingest.windows import month_period, period_bounds
from opsmeter_runtime.auth import verify_operator_token
from opsmeter_runtime.errors import Unauthorized as OperatorUnauthorized
from opsmeter_runtime.http import json_body, json_response
from opsmeter_runtime.kafka import PublishError
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PolicyStatusProjection

log = get_logger(__name__)
router = APIRouter()

API_KEY_HEADER = {"name": "X-API-Key", "in": "header", "required": False, "schema": {"type": "string"}}
"""The ingest routes' key, as their OpenAPI parameters document it (missing or unknown: 401)."""


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


async def _answer(handler: ingest_http.Handler, request: Request, deps: GatewayDeps, limit: int) -> Response:
    """Read the body (at most ``limit`` bytes), run the endpoint, render its reply; any error nobody foresaw is
    a JSON 500 with every status field. (The two ingest routes take the request alone: FastAPI's dependency
    solving cost more than the rest of the route; their header is documented with ``API_KEY_HEADER``.)"""
    headers = request.headers
    try:
        body = await read_limited_body(request, limit)
        reply = await handler(
            deps, api_key=headers.get("x-api-key"), content_type=headers.get("content-type"), body=body
        )
    except BodyTooLarge as error:
        reply = ingest_http.rejection(error)
    except Exception:
        reply = ingest_http.internal_error()
    return json_response(reply.body, reply.status, reply.headers)


@router.post(
    "/v1/ingest/llm-request",
    status_code=202,
    response_model=EventAnswer,
    tags=["ingest"],
    openapi_extra={"requestBody": json_body(IngestRequest), "parameters": [API_KEY_HEADER]},
)
async def ingest_llm_request(request: Request) -> Response:
    """One LLM call's telemetry; 202 once durable (or a rejection with every status field, SPEC §5)."""
    deps: GatewayDeps = request.app.state.deps
    return await _answer(ingest_http.single, request, deps, deps.settings.max_body_bytes)


@router.post(
    "/v1/ingest/llm-requests",
    status_code=207,
    response_model=BatchAnswer,
    tags=["ingest"],
    openapi_extra={"requestBody": json_body(IngestBatchBody), "parameters": [API_KEY_HEADER]},
)
async def ingest_llm_requests(request: Request) -> Response:
    """Up to 500 events in ``{"events": [...]}``; 207 with one result per event, in order."""
    deps: GatewayDeps = request.app.state.deps
    return await _answer(ingest_http.batch, request, deps, deps.settings.max_batch_bytes)


@router.get("/v1/public/pricing-models", response_model=PricingCatalog, tags=["pricing"])
async def pricing_models(deps: Deps) -> Response:
    return json_response(deps.prices.public_catalog(), headers={"Cache-Control": "public, max-age=300"})


class CreateWorkspaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    name: str = Field(min_length=1, max_length=128)
    plan: Literal["free", "starter", "pro", "team", "enterprise"] = "free"
    rate_limit_per_minute: RateLimit | None = None
    monthly_request_quota: RequestQuota | None = None


@router.post("/v1/admin/workspaces", status_code=201, response_model=CreatedWorkspace, tags=["admin"])
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


@router.post(
    "/v1/ingest/demo",
    status_code=202,
    response_model=DemoLoaded,
    tags=["ingest"],
    openapi_extra={"requestBody": json_body(DemoBody), "parameters": [API_KEY_HEADER]},
)
async def ingest_demo(request: Request, deps: Deps) -> Response:
    """Write realistic demo events (``dataMode=demo``) to the caller's workspace. A load counts as one request
    against the rate limit; a workspace may load ``OPSMETER_INGEST_GATEWAY_DEMO_EVENTS_PER_DAY`` demo events
    (100,000 by default) per UTC day. Its checks come in the ingest API's order, with its answer shapes."""
    raw = await read_limited_body(request, deps.settings.max_body_bytes)
    principal = await ingest_http.ingest_principal(deps, request.headers.get("x-api-key"))
    await ingest_http.count_demo_request(deps, principal)
    body = ingest_http.parse_demo_body(request.headers.get("content-type"), raw, DemoBody)
    await ingest_http.allow_demo_load(deps, principal, body.events)
    now = datetime.now(UTC)
    demo_set = demo.generate(count=body.events, days=body.days, now=now, seed=secrets.randbits(48))
    quote = deps.prices.quoter(principal.workspace_id)
    events = [
        build_event(
            record,
            workspace_id=principal.workspace_id,
            api_key_id=principal.credential_id,
            pricing=quote(record),
            now=now,
        )
        for record in demo_set.records
    ]
    for start in range(0, len(events), 500):
        written = await deps.sink.publish_many(events[start : start + 500])
        if any(where not in ("kafka", "spool") for where in written):
            raise Unavailable("demo data only partly written; retry", headers={"Retry-After": "5"})
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
    rate_limit_per_minute: RateLimit | None = None
    monthly_request_quota: RequestQuota | None = None


@router.put("/v1/admin/workspaces/{workspace_id}/plan", status_code=202, response_model=PlanSet, tags=["admin"])
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


@router.get("/v1/diagnostics/workspace-status", response_model=WorkspaceStatus, tags=["ingest"])
async def workspace_status(deps: Deps, x_api_key: Annotated[str | None, Header()] = None) -> Response:
    """Plan counters and budget flags of the caller's workspace, without counting a request."""
    principal = await ingest_http.ingest_principal(deps, x_api_key)
    return json_response(await _status_body(deps, principal.workspace_id))


@router.get("/v1/workspaces/{workspace_id}/status", response_model=WorkspaceStatus, tags=["ingest"])
async def workspace_status_for_admins(principal: WorkspaceReader, deps: Deps) -> Response:
    """The same status for an admin token of the workspace (any role): what the console shows."""
    return json_response(await _status_body(deps, principal.workspace_id))


async def _status_body(deps: GatewayDeps, workspace_id: str) -> dict[str, Any]:
    now = time.time()
    period = month_period(now)
    redis = deps.resources.redis
    snapshot = await quota_snapshot(
        redis, workspace_id, default_quota=deps.settings.default_monthly_quota, period=period
    )
    policy = await PolicyStatusProjection(redis).get(workspace_id)
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
    return {
        "workspaceId": workspace_id,
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
        "budget": budget_windows(policy, datetime.now(UTC)),
    }


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
