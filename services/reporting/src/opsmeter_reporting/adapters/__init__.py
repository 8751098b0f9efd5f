"""Ports of the reporting service."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from opsmeter_contracts import AnyEvent, LlmRequestIngested
from opsmeter_contracts.policy import PolicySettingsChanged
from opsmeter_contracts.pricing import CostCorrected, RepricingAppliedPayload
from opsmeter_reporting.analyst_sql import AnalystLimits, AnalystQuery
from opsmeter_reporting.domain import (
    BreakdownRow,
    GroupBy,
    Retention,
    StoredCall,
    Totals,
    TrackingFacts,
    UnpricedModel,
    UsageRow,
    UsageWindow,
)
from opsmeter_reporting.explore import EventsQuery, SeriesBucket, SeriesPoint, StackBy
from opsmeter_reporting.reconcile import StoredDay
from opsmeter_runtime.money import CostBasis
from opsmeter_runtime.projections import PlanTier
from opsmeter_runtime.rejections import RejectionReason


@dataclass(frozen=True)
class StoredDecision:
    occurred_at: datetime
    type: str
    summary: str


@dataclass(frozen=True)
class SettingsChange:
    """One change of a workspace's policy settings: when, which version, which sections, by whom, and what."""

    occurred_at: datetime
    version: int
    sections: tuple[str, ...]
    changed_by: str
    role: str
    summary: str


@dataclass(frozen=True)
class AnalystResult:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


@dataclass(frozen=True)
class SinkResult:
    inserted: int
    redelivered: int
    resent: int
    repaired_days: int = 0
    """(workspace, UTC day)s whose rollups disagreed with raw on a redelivery and were rebuilt from raw."""


class TelemetryStore(Protocol):
    async def append(
        self,
        events: Sequence[LlmRequestIngested],
        retention: Mapping[str, Retention] | None = None,
        bases: Mapping[str, CostBasis] | None = None,
    ) -> SinkResult:
        """Store a batch durably; storing the same events again changes no total (raw, rollups, summaries).

        Each event's cost is stored by its workspace's cost basis in ``bases`` (computed when absent)."""

    async def append_corrections(self, events: Sequence[CostCorrected]) -> None:
        """Store cost corrections of re-priced calls (ADR 57); storing one again changes no total."""

    async def stored_calls(
        self, workspace_id: str, window: UsageWindow, data_mode: str, models: Sequence[str]
    ) -> list[StoredCall]: ...

    async def save_repricing(
        self, workspace_id: str, applied_at: datetime, record: RepricingAppliedPayload
    ) -> None: ...

    async def repricings(self, workspace_id: str) -> list[dict[str, Any]]: ...

    async def stored_days(self, workspace_id: str, provider: str, window: UsageWindow) -> list[StoredDay]:
        """What a reconciliation compares with the provider's bill (ADR 57)."""

    async def unpriced(self, workspace_id: str, data_mode: str) -> list[UnpricedModel]:
        """Models the workspace's stored calls had no price for (ADR 57), most requests first."""

    async def usage(
        self, workspace_id: str, window: UsageWindow, group_by: GroupBy, data_mode: str
    ) -> list[UsageRow]: ...

    async def series(
        self, workspace_id: str, window: UsageWindow, bucket: SeriesBucket, stack_by: StackBy, data_mode: str
    ) -> list[SeriesPoint]: ...

    async def events(self, workspace_id: str, query: EventsQuery) -> list[dict[str, Any]]:
        """Raw events, newest first (time, then id), at most ``query.limit``."""

    async def breakdown(
        self, workspace_id: str, periods: Mapping[str, UsageWindow], data_mode: str
    ) -> list[BreakdownRow]:
        """Sums per period, in total and per key of every dimension, read over the raw/hourly/daily tiers."""

    async def daily_series(
        self, workspace_id: str, window: UsageWindow, data_mode: str
    ) -> list[tuple[date, Totals]]: ...

    async def delete_telemetry(self, workspace_id: str, data_mode: str, api_key_ids: Sequence[str] | None) -> None:
        """Drop demo or test rows (all of the workspace's, or those of the given keys), their rollups and the cost
        corrections of those calls."""

    async def rebuild(self, window: UsageWindow, workspace_id: str | None = None, *, now: datetime) -> int:
        """Recompute hourly rollups and daily summaries of the whole UTC days covering ``window`` from raw, for the
        days raw still holds whole at ``now`` (ADR 30); answers the raw events of the days rebuilt."""

    async def tracking_facts(self, workspace_id: str, since: datetime) -> TrackingFacts: ...

    async def record_decision(self, event: AnyEvent, summary: str) -> None:
        """Keep a decision for the reports (idempotent: a redelivered one is stored once)."""

    async def decisions(self, workspace_id: str, window: UsageWindow) -> list[StoredDecision]: ...

    async def record_settings_change(self, event: PolicySettingsChanged, summary: str) -> None:
        """Keep a settings change for the audit trail (idempotent)."""

    async def settings_changes(self, workspace_id: str, limit: int) -> list[SettingsChange]:
        """The workspace's latest settings changes, newest first."""

    async def active_workspaces(self, since: datetime) -> list[str]: ...

    async def run_sql(self, query: AnalystQuery, max_rows: int, limits: AnalystLimits) -> AnalystResult:
        """A prepared analyst query (``analyst_sql.prepare``) under ``limits``."""


class PlanReader(Protocol):
    async def plan(self, workspace_id: str, *, fresh: bool = False) -> PlanTier:
        """The plan (Free when billing has none); ``fresh`` skips any cache (API gates)."""

    async def retention(self, workspace_id: str) -> Retention: ...


class CostBasisReader(Protocol):
    async def cost_basis(self, workspace_id: str) -> CostBasis:
        """Which cost the workspace's reports use (ADR 57); ``computed`` when never set."""


class RejectionReader(Protocol):
    async def rejections(self, workspace_id: str, start: datetime, end: datetime) -> dict[RejectionReason, int]:
        """Events the gateway refused, by reason, in the UTC hours that start in [start's hour, end)."""


class SpikeState(Protocol):
    async def active(self, workspace_id: str) -> bool: ...

    async def set_active(self, workspace_id: str, active: bool) -> None: ...

    async def take_turn(self, interval_s: float) -> bool: ...
