"""Use cases behind the API and the spike job: each reads the store through its port and applies the rules."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from uuid import NAMESPACE_URL, uuid5

from opsmeter_contracts import SpikeDetected, SpikeDetectedPayload, SpikeDriverPayload, Topics
from opsmeter_reporting.adapters import SpikeState, StoredDecision, TelemetryStore
from opsmeter_reporting.domain import (
    DAY,
    Breakdown,
    Retention,
    SpikeAnalysis,
    SpikeRule,
    SpikeWindowName,
    Totals,
    TrackingFacts,
    UsageWindow,
    analyse_spike,
    retention_applied,
    spike_transition,
    spike_windows,
    weekly_windows,
)
from opsmeter_runtime.kafka import EventPublisher
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.money import format_micro_usd
from opsmeter_runtime.projections import PolicyStatus

log = get_logger(__name__)

SPIKE_NAMESPACE = uuid5(NAMESPACE_URL, "https://opsmeter.dev/events/reporting.spike_detected")


async def investigate(
    store: TelemetryStore, workspace_id: str, current: UsageWindow, previous: UsageWindow, data_mode: str
) -> SpikeAnalysis:
    rows = await store.breakdown(workspace_id, {"cur": current, "prev": previous}, data_mode)
    return analyse_spike(Breakdown.of(rows), current, previous)


@dataclass(frozen=True)
class WeeklyReport:
    analysis: SpikeAnalysis
    current_days: list[tuple[date, Totals]]
    previous_days: list[tuple[date, Totals]]
    policy: PolicyStatus
    decisions: list[StoredDecision]
    previous_decisions: list[StoredDecision]


async def weekly_report(
    store: TelemetryStore, policy: PolicyStatus, workspace_id: str, *, now: datetime, data_mode: str
) -> WeeklyReport:
    current, previous = weekly_windows(now)
    return WeeklyReport(
        analysis=await investigate(store, workspace_id, current, previous, data_mode),
        current_days=await store.daily_series(workspace_id, current, data_mode),
        previous_days=await store.daily_series(workspace_id, previous, data_mode),
        policy=policy,
        decisions=await store.decisions(workspace_id, current),
        previous_decisions=await store.decisions(workspace_id, previous),
    )


@dataclass(frozen=True)
class BoardPack:
    window: UsageWindow
    totals: Totals
    breakdown: Breakdown
    days: list[tuple[date, Totals]]
    decisions: list[StoredDecision]
    policy: PolicyStatus
    retention: Retention
    retention_applied: bool


async def board_pack(
    store: TelemetryStore,
    policy: PolicyStatus,
    retention: Retention,
    workspace_id: str,
    window: UsageWindow,
    *,
    now: datetime,
    data_mode: str,
) -> BoardPack:
    breakdown = Breakdown.of(await store.breakdown(workspace_id, {"range": window}, data_mode))
    return BoardPack(
        window=window,
        totals=breakdown.total("range"),
        breakdown=breakdown,
        days=await store.daily_series(workspace_id, window, data_mode),
        decisions=await store.decisions(workspace_id, window),
        policy=policy,
        retention=retention,
        retention_applied=retention_applied(window, retention, now=now),
    )


async def tracking_facts(store: TelemetryStore, workspace_id: str, *, now: datetime) -> TrackingFacts:
    """Facts over the last 7 days (UTC, up to now)."""
    return await store.tracking_facts(workspace_id, now - timedelta(days=7))


def spike_event(workspace_id: str, analysis: SpikeAnalysis, window: SpikeWindowName, rule: SpikeRule) -> SpikeDetected:
    """The decision of one detection run (its id derives from the workspace, window and run time)."""
    return SpikeDetected(
        event_id=uuid5(SPIKE_NAMESPACE, f"{workspace_id}:{window}:{analysis.current_window.end.isoformat()}"),
        occurred_at=analysis.current_window.end,
        ingested_at=analysis.current_window.end,
        workspace_id=workspace_id,
        payload=SpikeDetectedPayload(
            window=window,
            current_from=analysis.current_window.start,
            current_to=analysis.current_window.end,
            current_cost_micro_usd=analysis.current.cost_micro_usd,
            previous_cost_micro_usd=analysis.previous.cost_micro_usd,
            cost_delta_micro_usd=analysis.cost_delta_micro_usd,
            min_increase_ratio=str(float(rule.min_increase_ratio)),
            top_drivers=[
                SpikeDriverPayload(
                    dimension=d.dimension,
                    key=d.key[:128],
                    cost_delta_micro_usd=d.cost_delta_micro_usd,
                    is_new=d.is_new,
                )
                for d in analysis.top_drivers(5)
            ],
        ),
    )


def spike_summary(event: SpikeDetected) -> str:
    p = event.payload
    top = ", ".join(
        f"{d.dimension}={d.key} (+{format_micro_usd(d.cost_delta_micro_usd)} USD)" for d in p.top_drivers[:3]
    )
    before, after = format_micro_usd(p.previous_cost_micro_usd), format_micro_usd(p.current_cost_micro_usd)
    return (
        f"Cost over the last {p.window} rose by {format_micro_usd(p.cost_delta_micro_usd)} USD "
        f"({before} → {after}); top drivers: {top}"
    )


async def detect_spikes(
    *,
    store: TelemetryStore,
    spike_state: SpikeState,
    publisher: EventPublisher,
    rule: SpikeRule,
    window: SpikeWindowName,
    now: datetime,
) -> list[SpikeDetected]:
    """One pass of the spike job over every workspace with recent real data; returns the decisions emitted."""
    current, previous = spike_windows(window, None, None, now=now)
    emitted: list[SpikeDetected] = []
    for workspace_id in await store.active_workspaces(previous.start - DAY):
        analysis = await investigate(store, workspace_id, current, previous, "real")
        was_active = await spike_state.active(workspace_id)
        emit, active = spike_transition(was_active, rule.passes(analysis))
        if emit:
            event = spike_event(workspace_id, analysis, window, rule)
            await publisher.publish(Topics.POLICY_DECISIONS, event)
            await store.record_decision(event, spike_summary(event))
            log.info("spike_detected", workspace_id=workspace_id, delta=analysis.cost_delta_micro_usd)
            emitted.append(event)
        if active != was_active:
            await spike_state.set_active(workspace_id, active)
    return emitted
