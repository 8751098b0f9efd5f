"""Ports of the policy engine."""

from typing import Protocol
from uuid import UUID

from opsmeter_policy.domain import SpendWindow


class SpendLedger(Protocol):
    async def add(self, workspace_id: str, event_id: UUID, cost_micro_usd: int, windows: list[SpendWindow]) -> bool:
        """Add the cost to each window once per event id; False when the event was already counted."""

    async def spend(self, workspace_id: str, window: SpendWindow) -> int: ...
