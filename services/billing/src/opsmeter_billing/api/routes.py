from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from opsmeter_billing.api.answers import (
    AnyJson,
    CheckoutAnswer,
    PlanChangePending,
    PortalAnswer,
    ReconcileAnswer,
    SubscriptionAnswer,
    WebhookReceived,
    WorkspacePlanAnswer,
)
from opsmeter_billing.api.deps import AccountReader, AccountWriter, Deps, Operator, WorkspaceReader
from opsmeter_billing.commands import Scope
from opsmeter_billing.domain import BillingAccount
from opsmeter_billing.errors import InvalidRequest, NotFound
from opsmeter_contracts.events import Plan
from opsmeter_runtime.http import json_body, json_response

router = APIRouter(tags=["billing"])


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


@router.get("/v1/workspaces/{workspace_id}/plan", response_model=WorkspacePlanAnswer)
async def workspace_plan(principal: WorkspaceReader, deps: Deps) -> Response:
    found = await deps.plans.get(principal.workspace_id)
    if found is None:
        raise NotFound("no plan recorded for this workspace yet")
    return json_response(
        {
            "workspaceId": principal.workspace_id,
            "planTier": found.plan,
            "rateLimitPerMinute": found.rate_limit_per_minute,
            "monthlyRequestQuota": found.monthly_request_quota,
        }
    )


def subscription_view(account: BillingAccount) -> dict[str, Any]:
    pending = account.pending
    return {
        "workspaceId": account.workspace_id,
        "plan": account.plan,
        "status": account.status,
        "subscriptionId": account.subscription_id,
        "renewsAt": _iso(account.renews_at),
        "endsAt": _iso(account.ends_at),
        "updatedAt": _iso(account.updated_at),
        "testMode": account.test_mode,
        "pendingChange": (
            {"status": "pending_webhook", "plan": pending.plan, "requestedAt": _iso(pending.requested_at)}
            if pending
            else None
        ),
    }


@router.get("/v1/billing/subscription", response_model=SubscriptionAnswer)
async def subscription(principal: AccountReader, deps: Deps) -> Response:
    return json_response(subscription_view(await deps.billing.account(principal.workspace_id)))


class ChangePlanBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    plan: Plan


@router.post("/v1/billing/subscription/change-plan", status_code=202, response_model=PlanChangePending)
async def change_plan(
    principal: AccountWriter,
    body: ChangePlanBody,
    deps: Deps,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    if not idempotency_key or len(idempotency_key) > 255:
        raise InvalidRequest("an Idempotency-Key header (1 to 255 characters) is required")
    reply = await deps.billing.request_plan_change(principal, body.plan, idempotency_key)
    return json_response(reply.body, reply.status_code)


class CheckoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    plan: Plan
    redirect_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Where Lemon Squeezy sends the customer after paying (its product_options.redirect_url).",
    )


@router.post("/v1/billing/checkout", status_code=201, response_model=CheckoutAnswer)
async def checkout(principal: AccountWriter, body: CheckoutBody, deps: Deps) -> Response:
    """Subscribe a workspace that has no live subscription: a Lemon Squeezy checkout whose subscription claims it."""
    created = await deps.billing.create_checkout(principal.workspace_id, body.plan, body.redirect_url)
    return json_response({"workspaceId": created.workspace_id, "plan": created.plan, "url": created.url}, 201)


@router.get("/v1/billing/portal", response_model=PortalAnswer)
async def portal(principal: AccountWriter, deps: Deps) -> Response:
    url = await deps.billing.portal_url(principal.workspace_id)
    return json_response({"workspaceId": principal.workspace_id, "url": url, "for": ["payment_method", "invoices"]})


@router.post(
    "/v1/billing/webhooks/lemonsqueezy",
    response_model=WebhookReceived,
    openapi_extra={"requestBody": json_body(AnyJson)},
)
async def lemonsqueezy_webhook(
    request: Request, deps: Deps, x_signature: Annotated[str | None, Header()] = None
) -> Response:
    await deps.billing.receive_delivery(await request.body(), x_signature)
    return json_response({"status": "received"}, 200)


class LinkSubscriptionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel)

    workspace_id: str = Field(min_length=1, max_length=64)
    subscription_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    plan: Plan
    test_mode: bool = False


@router.post("/v1/admin/billing/subscriptions", status_code=201, response_model=SubscriptionAnswer, tags=["admin"])
async def link_subscription(_: Operator, body: LinkSubscriptionBody, deps: Deps) -> Response:
    account = await deps.billing.link_subscription(
        body.workspace_id, body.subscription_id, body.plan, test_mode=body.test_mode
    )
    return json_response(subscription_view(account), 201)


RECONCILE_WAIT_S = 10.0
"""How long an operator's call waits for a reconciliation another replica is running before answering 409."""


@router.post("/v1/admin/billing/reconcile", response_model=ReconcileAnswer, tags=["admin"])
async def reconcile(
    _: Operator,
    deps: Deps,
    scope: Annotated[
        Scope,
        Query(
            description="all (default): every linked subscription, least recently verified first, up to the "
            "per-run bound; due: only what the periodic run would read now."
        ),
    ] = "all",
) -> Response:
    report = await deps.billing.reconcile(scope=scope, wait_for_lease_s=RECONCILE_WAIT_S)
    return json_response(
        {
            "scope": scope,
            "checked": report.checked,
            "applied": report.applied,
            "failed": report.failed,
            "remaining": report.remaining,
        }
    )
