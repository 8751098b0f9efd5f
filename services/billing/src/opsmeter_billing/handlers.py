"""Billing's reactions to events: one literal dict."""

from collections.abc import Awaitable, Callable

from opsmeter_billing.commands import Billing
from opsmeter_contracts import WorkspaceCreated
from opsmeter_contracts.billing import LemonSqueezyWebhookReceived
from opsmeter_contracts.events import WorkspacePlanSet


async def open_billing_account(event: WorkspaceCreated, *, billing: Billing) -> None:
    p = event.payload
    await billing.open_account(event.workspace_id, p.plan, p.rate_limit_per_minute, p.monthly_request_quota)


async def apply_operator_plan(event: WorkspacePlanSet, *, billing: Billing) -> None:
    p = event.payload
    await billing.set_plan_by_operator(event.workspace_id, p.plan, p.rate_limit_per_minute, p.monthly_request_quota)


async def apply_lemonsqueezy_delivery(event: LemonSqueezyWebhookReceived, *, billing: Billing) -> None:
    await billing.apply_delivery(event)


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    WorkspaceCreated: [open_billing_account],
    WorkspacePlanSet: [apply_operator_plan],
    LemonSqueezyWebhookReceived: [apply_lemonsqueezy_delivery],
}
