"""What the SDK knows of its workspace (from ingest answers and status checks) and what it has done."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WorkspaceFlags:
    """The client-side flags of SPEC §5, as the last ingest answer or status check said them."""

    budget_warning: bool = False
    budget_exceeded: bool = False
    telemetry_paused: bool = False
    plan_limit_reached: bool = False
    policy_mode: str = "enforce"
    reason: str | None = None

    @classmethod
    def from_answer(cls, body: Mapping[str, Any]) -> WorkspaceFlags:
        return cls(
            budget_warning=bool(body.get("budgetWarning") or body.get("isBudgetWarning")),
            budget_exceeded=bool(body.get("budgetExceeded") or body.get("isBudgetExceeded")),
            telemetry_paused=bool(body.get("telemetryPaused")),
            plan_limit_reached=bool(body.get("isPlanLimitReached")),
            policy_mode=str(body.get("policyMode") or "enforce"),
            reason=body.get("reason") if isinstance(body.get("reason"), str) else None,
        )


@dataclass(frozen=True)
class Stats:
    """Counters since the client started. ``dropped`` is keyed by reason."""

    recorded: int
    sent: int
    accepted: int
    duplicates: int
    dropped: dict[str, int] = field(default_factory=dict)
    queue_depth: int = 0
    batches: int = 0
    retries: int = 0

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())
