"""The ingest API: thin entrypoints that parse, build the typed message and hand it on."""

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from opsmeter_ingest import demo
from opsmeter_ingest.api.deps import Deps
from opsmeter_ingest.bootstrap import GatewayDeps
from opsmeter_ingest.commands import CreateWorkspace, create_workspace
from opsmeter_ingest.domain import (
    MalformedJson,
    PayloadRejected,
    PolicyFlags,
    answer_body,
    build_event,
    parse_json_strict,
    validate_record,
)
from opsmeter_ingest.errors import (
    BodyTooLarge,
    BudgetExceeded,
    InvalidPayload,
    NotJson,
    Unauthorized,
    Unavailable,
    WrongContentType,
)
from opsmeter_runtime.auth import Principal, verify_operator_token
from opsmeter_runtime.errors import Unauthorized as OperatorUnauthorized
from opsmeter_runtime.http import json_response
from opsmeter_runtime.kafka import PublishError
from opsmeter_runtime.logs import bind_contextvars, get_logger
from opsmeter_runtime.money import format_micro_usd

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
    principal = await deps.credentials.authenticate(api_key, "api_key")
    if principal is None:
        raise Unauthorized("missing, unknown or revoked X-API-Key")
    return principal


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


@router.post("/v1/ingest/llm-request", status_code=202, tags=["ingest"])
async def ingest_llm_request(
    request: Request,
    deps: Deps,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Response:
    body = await read_limited_body(request, deps.settings.max_body_bytes)
    principal = await ingest_principal(deps, x_api_key)
    bind_contextvars(workspace_id=principal.workspace_id)
    if not _is_json(request.headers.get("content-type")):
        raise WrongContentType("Content-Type must be application/json")
    try:
        document = parse_json_strict(body)
        now = datetime.now(UTC)
        record = validate_record(
            document,
            now=now,
            max_age=timedelta(seconds=deps.settings.max_timestamp_age_s),
            max_skew=timedelta(seconds=deps.settings.max_timestamp_skew_s),
        )
    except MalformedJson as exc:
        raise NotJson(str(exc)) from None
    except PayloadRejected as exc:
        raise InvalidPayload("a field breaks a rule", errors=exc.errors) from None

    status = await deps.policy.get(principal.workspace_id)
    flags = PolicyFlags.from_status(status)
    if status.blocks_ingest:
        raise BudgetExceeded(
            "budget exceeded and the workspace enforces hard-stop; provider calls continue",
            flags=flags,
            telemetry_paused=True,
        )
    pricing = deps.prices.quote(record)
    event = build_event(
        record, workspace_id=principal.workspace_id, api_key_id=principal.credential_id, pricing=pricing, now=now
    )
    bind_contextvars(event_id=str(event.event_id))
    try:
        await deps.sink.publish(event)
    except PublishError as exc:
        log.error("ingest_publish_failed", error=str(exc))
        raise Unavailable("the event could not be made durable; retry later", headers={"Retry-After": "5"}) from None
    log.info("ingest_accepted", cost_micro_usd=pricing.cost_micro_usd, priced=pricing.priced)
    return json_response(
        answer_body(
            status="accepted",
            reason=None,
            flags=flags,
            warnings=[*record.warnings, *pricing.warnings],
            eventId=str(event.event_id),
            costUsd=format_micro_usd(pricing.cost_micro_usd),
            costMicroUsd=pricing.cost_micro_usd,
            priced=pricing.priced,
            modelNormalized=pricing.model_normalized,
            priceCatalogVersion=pricing.catalog_version,
            duplicate=False,
            spooled=False,
        ),
        202,
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
            credentials=deps.credentials,
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
    except PublishError as exc:
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
