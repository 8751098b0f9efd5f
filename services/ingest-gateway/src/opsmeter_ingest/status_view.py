"""The workspace-status view (``GET /v1/diagnostics/workspace-status``): plan and budget windows as answered."""

from datetime import UTC, datetime
from typing import Any

from opsmeter_runtime.money import format_micro_usd
from opsmeter_runtime.projections import BudgetWindowStatus, PolicyStatus

PLAN_NAMES = {"free": "Free", "starter": "Starter", "pro": "Pro", "team": "Team", "enterprise": "Enterprise"}


def iso_z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def budget_windows(status: PolicyStatus, now: datetime) -> dict[str, Any]:
    """The budget part of the workspace status, from the policy engine's last evaluation.

    A window whose period has ended shows no spend until the engine evaluates the new one.
    """

    def window(w: BudgetWindowStatus | None, *, monthly: bool) -> dict[str, Any] | None:
        if w is None:
            return None
        spend = w.spend_micro_usd if now < w.period_end else 0
        ratio = spend / w.limit_micro_usd if w.limit_micro_usd else 1.0
        body: dict[str, Any] = {
            "limitUsd": format_micro_usd(w.limit_micro_usd),
            "currentSpendUsd": format_micro_usd(spend),
            "utilizationRatio": round(ratio, 4),
            "isWarning": spend >= w.warning_at_micro_usd,
            "isExceeded": spend >= w.limit_micro_usd,
            "periodStart": iso_z(w.period_start),
            "periodEnd": iso_z(w.period_end),
        }
        if monthly:
            projected = w.projected_end_of_period_micro_usd
            body["projectedEndOfPeriodUsd"] = None if projected is None else format_micro_usd(projected)
        return body

    return {
        "warningThresholdRatio": status.warning_threshold_ratio,
        "enforcement": status.enforcement,
        "daily": window(status.daily, monthly=False),
        "monthly": window(status.monthly, monthly=True),
    }
