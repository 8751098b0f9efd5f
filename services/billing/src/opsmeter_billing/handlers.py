"""Billing's reactions to events: one literal dict."""

from collections.abc import Awaitable, Callable

from opsmeter_billing.adapters import PlanProjection
from opsmeter_billing.domain import limits_for
from opsmeter_contracts import WorkspaceCreated


async def project_initial_plan(event: WorkspaceCreated, *, plans: PlanProjection) -> None:
    p = event.payload
    await plans.save(event.workspace_id, p.plan, limits_for(p.plan, p.rate_limit_per_minute, p.monthly_request_quota))


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    WorkspaceCreated: [project_initial_plan],
}
