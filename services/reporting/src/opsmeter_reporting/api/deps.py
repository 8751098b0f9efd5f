from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from opsmeter_reporting.bootstrap import ReportingDeps
from opsmeter_reporting.errors import PlanRequired, Unauthorized
from opsmeter_runtime.api import WorkspaceReader, WorkspaceWriter, app_deps
from opsmeter_runtime.auth import Principal, verify_operator_token
from opsmeter_runtime.projections import PlanTier, plan_at_least

__all__ = ["Deps", "Operator", "ProReader", "StarterReader", "TeamReader", "WorkspaceReader", "WorkspaceWriter"]

Deps = Annotated[ReportingDeps, Depends(app_deps(ReportingDeps))]


def _plan_at_least(required: PlanTier) -> Callable[..., Awaitable[Principal]]:
    async def check(principal: WorkspaceReader, deps: Deps) -> Principal:
        plan = await deps.plans.plan(principal.workspace_id, fresh=True)
        if not plan_at_least(plan, required):
            raise PlanRequired(required, plan)
        return principal

    return check


StarterReader = Annotated[Principal, Depends(_plan_at_least("starter"))]
ProReader = Annotated[Principal, Depends(_plan_at_least("pro"))]
TeamReader = Annotated[Principal, Depends(_plan_at_least("team"))]


async def _operator(request: Request, x_operator_token: Annotated[str | None, Header()] = None) -> None:
    deps: ReportingDeps = request.app.state.deps
    if not verify_operator_token(x_operator_token, deps.settings.runtime.operator_token_sha256):
        raise Unauthorized("a valid X-Operator-Token is required")


Operator = Annotated[None, Depends(_operator)]
"""The operator's token (``X-Operator-Token``): every workspace."""
