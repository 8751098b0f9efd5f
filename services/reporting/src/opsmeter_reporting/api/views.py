"""Domain results as the API's JSON: camelCase, money as decimal strings with the integer micro-USD beside."""

from datetime import date, datetime
from fractions import Fraction
from typing import Any

from opsmeter_reporting.adapters import SettingsChange, StoredDecision
from opsmeter_reporting.domain import (
    DIMENSIONS,
    ChecklistItem,
    Driver,
    QualityPart,
    SpikeAnalysis,
    Totals,
    UsageWindow,
    round_half_up,
)
from opsmeter_reporting.reports import BoardPack, WeeklyReport
from opsmeter_runtime.money import format_micro_usd


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ratio(value: Fraction | None, places: int = 4) -> str | None:
    """A ratio as a decimal string (``"0.6667"``), or None when undefined."""
    return None if value is None else f"{float(round(value, places)):.{places}f}"


def money(micro_usd: int) -> dict[str, Any]:
    return {"usd": format_micro_usd(micro_usd), "microUsd": micro_usd}


def window_json(window: UsageWindow) -> dict[str, str]:
    return {"from": iso(window.start), "to": iso(window.end)}


def totals_json(totals: Totals) -> dict[str, Any]:
    per_request = totals.cost_per_request
    per_request_micro = round_half_up(per_request) if per_request is not None else None
    return {
        "costUsd": format_micro_usd(totals.cost_micro_usd),
        "costMicroUsd": totals.cost_micro_usd,
        "requests": totals.requests,
        "inputTokens": totals.input_tokens,
        "outputTokens": totals.output_tokens,
        "tokens": totals.total_tokens,
        "costPerRequestUsd": None if per_request_micro is None else format_micro_usd(per_request_micro),
        "costPerRequestMicroUsd": per_request_micro,
    }


def delta_json(current: Totals, previous: Totals) -> dict[str, Any]:
    cost = current.cost_micro_usd - previous.cost_micro_usd
    cur_cpr, prev_cpr = current.cost_per_request, previous.cost_per_request
    cpr = round_half_up(cur_cpr - prev_cpr) if cur_cpr is not None and prev_cpr is not None else None
    return {
        "costUsd": format_micro_usd(cost),
        "costMicroUsd": cost,
        "costChangeRatio": ratio(Fraction(cost, previous.cost_micro_usd)) if previous.cost_micro_usd else None,
        "requests": current.requests - previous.requests,
        "tokens": current.total_tokens - previous.total_tokens,
        "costPerRequestUsd": None if cpr is None else format_micro_usd(cpr),
        "costPerRequestMicroUsd": cpr,
    }


def driver_json(driver: Driver) -> dict[str, Any]:
    return {
        "dimension": driver.dimension,
        "key": driver.key,
        "currentCostUsd": format_micro_usd(driver.current.cost_micro_usd),
        "previousCostUsd": format_micro_usd(driver.previous.cost_micro_usd),
        "costDeltaUsd": format_micro_usd(driver.cost_delta_micro_usd),
        "costDeltaMicroUsd": driver.cost_delta_micro_usd,
        "currentRequests": driver.current.requests,
        "previousRequests": driver.previous.requests,
        "shareOfChange": ratio(driver.share_of_change),
        "isNew": driver.is_new,
    }


def analysis_json(analysis: SpikeAnalysis) -> dict[str, Any]:
    d = analysis.decomposition
    return {
        "current": {**window_json(analysis.current_window), **totals_json(analysis.current)},
        "previous": {**window_json(analysis.previous_window), **totals_json(analysis.previous)},
        "delta": delta_json(analysis.current, analysis.previous),
        "drivers": {dim: [driver_json(x) for x in analysis.drivers[dim]] for dim in DIMENSIONS},
        "newDrivers": [driver_json(x) for x in analysis.new_drivers],
        "decomposition": {
            "segment": "model",
            "volume": money(d.volume_micro_usd),
            "unitCost": money(d.unit_cost_micro_usd),
            "mix": money(d.mix_micro_usd),
            "total": money(d.total_micro_usd),
        },
    }


def decision_json(decision: StoredDecision) -> dict[str, str]:
    return {"at": iso(decision.occurred_at), "type": decision.type, "summary": decision.summary}


def settings_change_json(change: SettingsChange) -> dict[str, Any]:
    return {
        "at": iso(change.occurred_at),
        "version": change.version,
        "sections": list(change.sections),
        "changedBy": {"credentialId": change.changed_by, "role": change.role},
        "summary": change.summary,
    }


def day_json(day: date, totals: Totals) -> dict[str, Any]:
    return {"day": day.isoformat(), **totals_json(totals)}


def weekly_json(workspace_id: str, report: WeeklyReport, data_mode: str) -> dict[str, Any]:
    a = report.analysis
    return {
        "workspaceId": workspace_id,
        "dataMode": data_mode,
        "week": window_json(a.current_window),
        "baseline": window_json(a.previous_window),
        "summary": {
            "current": totals_json(a.current),
            "previous": totals_json(a.previous),
            "delta": delta_json(a.current, a.previous),
        },
        "days": [day_json(d, t) for d, t in report.current_days],
        "baselineDays": [day_json(d, t) for d, t in report.previous_days],
        "topMovers": [driver_json(x) for x in a.top_drivers(5)],
        "newDrivers": [driver_json(x) for x in a.new_drivers[:5]],
        "budgetStatus": {
            "budgetWarning": report.policy.budget_warning,
            "budgetExceeded": report.policy.budget_exceeded,
            "enforcement": report.policy.enforcement,
            "policyMode": report.policy.policy_mode,
        },
        "alerts": {
            "week": len(report.decisions),
            "baseline": len(report.previous_decisions),
            "byType": _count_by_type(report.decisions),
        },
    }


def _count_by_type(decisions: list[StoredDecision]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for decision in decisions:
        counts[decision.type] = counts.get(decision.type, 0) + 1
    return counts


TOP_DRIVERS = 10


def top_drivers_json(keys: dict[str, Totals]) -> list[dict[str, Any]]:
    """The ten largest keys by cost, then one ``(N others)`` row for the rest: the rows add up to the summary."""
    ranked = sorted(keys.items(), key=lambda kv: (-kv[1].cost_micro_usd, kv[0]))
    rows = [{"key": key, **totals_json(t)} for key, t in ranked[:TOP_DRIVERS]]
    rest = ranked[TOP_DRIVERS:]
    if rest:
        other = sum((t for _, t in rest), Totals())
        rows.append({"key": f"({len(rest)} others)", **totals_json(other)})
    return rows


def board_pack_json(workspace_id: str, pack: BoardPack, data_mode: str) -> dict[str, Any]:
    b = pack.breakdown
    return {
        "workspaceId": workspace_id,
        "dataMode": data_mode,
        "range": window_json(pack.window),
        "retentionWindowApplied": pack.retention_applied,
        "notice": "Retention window applied" if pack.retention_applied else None,
        "rawRetentionDays": pack.retention.raw_days,
        "summaryRetentionDays": pack.retention.summary_days,
        "summary": totals_json(pack.totals),
        "trend": [day_json(d, t) for d, t in pack.days],
        "topDrivers": {dim: top_drivers_json(b.keys("range", dim)) for dim in DIMENSIONS},
        "budgetHistory": [decision_json(x) for x in pack.decisions],
        "budgetStatus": {
            "budgetWarning": pack.policy.budget_warning,
            "budgetExceeded": pack.policy.budget_exceeded,
            "enforcement": pack.policy.enforcement,
        },
    }


def checklist_json(items: list[ChecklistItem]) -> list[dict[str, Any]]:
    return [{"id": i.id, "title": i.title, "done": i.done, "tip": i.tip} for i in items]


def quality_parts_json(parts: list[QualityPart]) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "weight": p.weight, "ratio": ratio(p.ratio), "points": ratio(p.points, 1), "tip": p.tip}
        for p in parts
    ]
