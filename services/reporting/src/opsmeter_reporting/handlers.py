"""Reporting's reactions to events: one literal dict, batch handlers for the ClickHouse sink."""

from collections.abc import Awaitable, Callable, Sequence

from opsmeter_contracts import LlmRequestIngested
from opsmeter_contracts.events import TelemetryDataDeleted
from opsmeter_contracts.policy import PolicySettingsChanged
from opsmeter_contracts.pricing import CostCorrected
from opsmeter_reporting.adapters import CostBasisReader, PlanReader, TelemetryStore
from opsmeter_reporting.decisions import DECISION_TYPES, Decision, decision_summary, settings_summary
from opsmeter_reporting.metrics import SinkStats
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)


async def store_llm_requests(
    events: Sequence[LlmRequestIngested],
    *,
    store: TelemetryStore,
    plans: PlanReader,
    costs: CostBasisReader,
    sink_stats: SinkStats,
) -> None:
    workspaces = {e.workspace_id for e in events}
    retention = {ws: await plans.retention(ws) for ws in workspaces}
    bases = {ws: await costs.cost_basis(ws) for ws in workspaces}
    result = await store.append(events, retention, bases)
    sink_stats.observe(events, result.inserted, result.redelivered, result.resent, result.repaired_days)
    if result.repaired_days:
        log.warning("rollups_repaired", days=result.repaired_days, redelivered=result.redelivered)


async def store_cost_corrections(events: Sequence[CostCorrected], *, store: TelemetryStore) -> None:
    await store.append_corrections(events)


async def delete_telemetry(event: TelemetryDataDeleted, *, store: TelemetryStore) -> None:
    p = event.payload
    await store.delete_telemetry(event.workspace_id, p.data_mode, p.api_key_ids if p.scope == "mine" else None)


async def record_decision(event: Decision, *, store: TelemetryStore) -> None:
    """A decision on ``policy.decisions``, kept for the board pack's budget history and the weekly report."""
    await store.record_decision(event, decision_summary(event))


async def record_settings_change(event: PolicySettingsChanged, *, store: TelemetryStore) -> None:
    """A change on ``policy.settings``, kept for the audit trail (the topic keeps only the newest)."""
    await store.record_settings_change(event, settings_summary(event.payload))


BATCH_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    LlmRequestIngested: [store_llm_requests],
    CostCorrected: [store_cost_corrections],
}

EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    TelemetryDataDeleted: [delete_telemetry],
}

DECISION_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    **{t: [record_decision] for t in DECISION_TYPES},
    PolicySettingsChanged: [record_settings_change],
}
"""The ``policy.decisions`` and ``policy.settings`` consumer's: every decision type the reports list, and every
settings change."""
