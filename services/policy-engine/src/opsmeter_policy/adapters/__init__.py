"""Ports of the policy engine."""

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from opsmeter_contracts.policy import PolicySettingsPayload
from opsmeter_policy.domain import Crossing, Increment


class SpendLedger(Protocol):
    async def add(self, workspace_id: str, event_id: UUID, increments: Sequence[Increment]) -> bool:
        """Apply the increments once per event id, atomically with the dedupe mark; False when already counted."""

    async def add_many(self, items: Sequence[tuple[str, UUID, Sequence[Increment]]]) -> list[bool]:
        """``add`` for a batch of (workspace, event id, increments) in one round trip; each event stays atomic."""

    async def totals(self, workspace_id: str, counters: Sequence[str]) -> dict[str, int]: ...

    async def totals_many(self, wanted: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
        """``totals`` of several workspaces in one round trip."""


class SettingsStore(Protocol):
    async def get(self, workspace_id: str) -> PolicySettingsPayload | None: ...

    async def get_many(self, workspace_ids: Sequence[str]) -> dict[str, PolicySettingsPayload | None]: ...

    async def apply(self, workspace_id: str, settings: PolicySettingsPayload) -> bool:
        """Store ``settings`` unless the same or a newer version is stored; True when stored."""

    def locked(self, workspace_id: str) -> AbstractAsyncContextManager[None]:
        """Serialise read-modify-publish of one workspace's settings across processes."""

    async def workspaces(self) -> list[str]:
        """Workspaces whose policy must be re-evaluated when a period ends."""

    async def track(self, workspace_ids: Sequence[str]) -> None: ...


class DecisionMarks(Protocol):
    async def unmarked(self, crossings: Sequence[tuple[str, Crossing]]) -> list[tuple[str, Crossing]]:
        """The (workspace, crossing) pairs whose decision was not yet emitted in their period."""

    async def mark(self, crossings: Sequence[tuple[str, Crossing]]) -> None: ...

    async def unit_cost_state(self, workspace_id: str, rule_id: str) -> tuple[bool, int]:
        """(breached now, how many breaches this rule has had)."""

    async def set_unit_cost_state(self, workspace_id: str, rule_id: str, breached: bool, episodes: int) -> None: ...
