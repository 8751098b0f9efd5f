"""Ports of the billing service."""

from typing import Protocol

from opsmeter_billing.domain import PlanLimits
from opsmeter_contracts.events import Plan


class PlanProjection(Protocol):
    async def save(self, workspace_id: str, plan: Plan, limits: PlanLimits) -> None: ...

    async def get(self, workspace_id: str) -> tuple[Plan, PlanLimits] | None: ...
