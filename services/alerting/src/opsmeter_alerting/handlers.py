"""Alerting's reactions to ``policy.decisions`` and billing's alerts: one literal dict event→handlers."""

from collections.abc import Awaitable, Callable

from opsmeter_alerting.alerts import AlertService
from opsmeter_alerting.domain import alert_for_billing, alert_for_decision
from opsmeter_contracts import AnyEvent, SpikeDetected
from opsmeter_contracts.billing import BillingAlertRaised
from opsmeter_contracts.events import PlanLimitReached
from opsmeter_contracts.policy import (
    BudgetExceeded,
    BudgetWarningReached,
    EnforcementChanged,
    KillSwitchChanged,
    UnitCostBreached,
)


async def alert_on_decision(event: AnyEvent, *, alerts: AlertService) -> None:
    """One alert per decision (the event id guards redelivery); a budget's alert clears with its period."""
    content = alert_for_decision(event)
    if content is None:
        return
    clears_at = (
        event.payload.period_end
        if isinstance(event, BudgetWarningReached | BudgetExceeded | PlanLimitReached)
        else None
    )
    await alerts.raise_alert(event.workspace_id, content, guard=f"decision:{event.event_id}", clears_at=clears_at)


async def alert_on_billing(event: BillingAlertRaised, *, alerts: AlertService) -> None:
    """Billing could not apply a Lemon Squeezy change: the workspace is told (once per event)."""
    await alerts.raise_alert(event.workspace_id, alert_for_billing(event), guard=f"billing:{event.event_id}")


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    BillingAlertRaised: [alert_on_billing],
    BudgetWarningReached: [alert_on_decision],
    BudgetExceeded: [alert_on_decision],
    UnitCostBreached: [alert_on_decision],
    SpikeDetected: [alert_on_decision],
    KillSwitchChanged: [alert_on_decision],
    EnforcementChanged: [alert_on_decision],
    PlanLimitReached: [alert_on_decision],
}
