"""Billing's reactions to events: one literal dict."""

from collections.abc import Awaitable, Callable

from opsmeter_billing.domain import limits_for
from opsmeter_contracts import WorkspaceCreated
from opsmeter_runtime.projections import PlanProjection, PlanRecord


async def project_initial_plan(event: WorkspaceCreated, *, plans: PlanProjection) -> None:
    p = event.payload
    limits = limits_for(p.plan, p.rate_limit_per_minute, p.monthly_request_quota)
    await plans.save(event.workspace_id, PlanRecord(p.plan, limits.rate_limit_per_minute, limits.monthly_request_quota))


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    WorkspaceCreated: [project_initial_plan],
}
