"""The decisions the board pack's budget history and the weekly report's alert count list: every decision on
``policy.decisions`` (budgets, unit-cost rules, the kill switch and enforcement, the plan limit, spikes), and every
settings change of the audit trail, each as one line a finance reader can take in. Pure: the handlers store them."""

from opsmeter_contracts import SpikeDetected
from opsmeter_contracts.events import PlanLimitReached
from opsmeter_contracts.policy import (
    BudgetExceeded,
    BudgetThresholdPayload,
    BudgetWarningReached,
    EnforcementChanged,
    KillSwitchChanged,
    PolicySettingsPayload,
    UnitCostBreached,
)
from opsmeter_reporting.reports import spike_summary
from opsmeter_runtime.money import format_micro_usd

Decision = (
    BudgetWarningReached
    | BudgetExceeded
    | UnitCostBreached
    | KillSwitchChanged
    | EnforcementChanged
    | PlanLimitReached
    | SpikeDetected
)
DECISION_TYPES: tuple[type[Decision], ...] = (
    BudgetWarningReached,
    BudgetExceeded,
    UnitCostBreached,
    KillSwitchChanged,
    EnforcementChanged,
    PlanLimitReached,
    SpikeDetected,
)


def _budget(p: BudgetThresholdPayload) -> str:
    scope = "workspace" if p.scope_value is None else f"{p.scope} {p.scope_value}"
    return (
        f"{scope} {p.window} budget: {format_micro_usd(p.spend_micro_usd)} of {format_micro_usd(p.limit_micro_usd)} USD"
    )


def decision_summary(event: Decision) -> str:
    match event:
        case BudgetWarningReached(payload=p):
            return f"Budget warning ({round(p.threshold_ratio * 100)} %): {_budget(p)}"
        case BudgetExceeded(payload=p):
            stopped = "ingest stopped" if p.scope_value is None else f"its {p.scope} events stopped"
            stop = f"; {stopped} (hard-stop)" if p.blocks_ingest else ""
            return f"Budget exceeded: {_budget(p)}{stop}"
        case UnitCostBreached(payload=p):
            per = "per request" if p.metric == "cost_per_request" else "per 1K tokens"
            scope = " ".join(x for x in (p.model, p.endpoint_tag) if x)
            return (
                f"Unit cost {format_micro_usd(p.observed_micro_usd)} USD {per} over the "
                f"{format_micro_usd(p.max_micro_usd)} USD rule{f' for {scope}' if scope else ''}"
            )
        case KillSwitchChanged(payload=p):
            return f"Kill switch turned {'on (observe mode)' if p.kill_switch else 'off'} by the {p.changed_by_role}"
        case EnforcementChanged(payload=p):
            return f"Enforcement {p.previous_enforcement} → {p.enforcement} by the {p.changed_by_role}"
        case PlanLimitReached(payload=p):
            return f"Plan request quota used up: {p.monthly_request_quota:,} requests on {p.plan} for {p.period}"
        case SpikeDetected():
            return spike_summary(event)


def _usd(micro: int | None) -> str:
    return "none" if micro is None else f"{format_micro_usd(micro)} USD"


def settings_summary(p: PolicySettingsPayload) -> str:
    """What a settings change left each section it changed as, e.g. "Budgets: daily 10 USD, monthly none, ..."."""
    parts = []
    for section in p.changed_sections:
        if section == "budgets":
            line = (
                f"Budgets: daily {_usd(p.daily_limit_micro_usd)}, monthly {_usd(p.monthly_limit_micro_usd)}, "
                f"warning at {round(p.warning_threshold_ratio * 100)} %"
            )
            line += "".join(
                f"; {b.dimension} {b.value}: daily {_usd(b.daily_limit_micro_usd)}, "
                f"monthly {_usd(b.monthly_limit_micro_usd)}"
                for b in p.scoped
            )
            parts.append(line)
        elif section == "policy":
            actions = p.runtime_actions
            line = f"Policy: enforcement {p.enforcement}, kill switch {'on' if p.kill_switch else 'off'}"
            line += f", cost basis {p.cost_basis}"
            if (actions.on_budget_warning, actions.on_budget_exceeded) != ("none", "none"):
                line += f", SDKs {actions.on_budget_warning} on warning and {actions.on_budget_exceeded} when exceeded"
            parts.append(line)
        else:
            enabled = sum(r.enabled for r in p.unit_cost_rules)
            parts.append(f"Unit-cost rules: {len(p.unit_cost_rules)} ({enabled} enabled)")
    return "; ".join(parts) or "Settings saved"
