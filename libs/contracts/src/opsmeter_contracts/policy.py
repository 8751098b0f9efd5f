"""Policy events: settings snapshots (compacted ``policy.settings``) and decisions (``policy.decisions``).

Money is integer micro-USD; ratios are plain numbers (0.8 = 80 % of a limit). Every settings event is a
full snapshot of the workspace's policy, so the compacted topic's last record per workspace rebuilds it.
"""

from typing import Literal

from pydantic import AwareDatetime, Field

from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.registry import event

Dimension = Literal["endpoint_tag", "model", "user_id"]
Scope = Literal["workspace", "endpoint_tag", "model", "user_id"]
BudgetWindow = Literal["daily", "monthly"]
Enforcement = Literal["advisory", "hard_stop"]
PolicyMode = Literal["enforce", "observe"]
SettingsSection = Literal["budgets", "policy", "rules"]
CostBasis = Literal["computed", "reported", "reported_when_present"]
UnitCostMetric = Literal["cost_per_request", "cost_per_1k_tokens"]
RuntimeAction = Literal["none", "block", "clamp", "fallback", "queue"]
Ratio = float


class ScopedBudget(Payload):
    """A budget on the spend of one ``endpoint_tag``, ``model`` or ``user_id`` value."""

    dimension: Dimension
    value: str = Field(min_length=1, max_length=128)
    daily_limit_micro_usd: int | None = Field(default=None, ge=0)
    monthly_limit_micro_usd: int | None = Field(default=None, ge=0)


class UnitCostRule(Payload):
    """Breached when the average cost per request (or per 1K tokens) over the rolling window is above the max."""

    rule_id: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    metric: UnitCostMetric
    max_micro_usd: int = Field(ge=0)
    model: str | None = Field(default=None, max_length=128)
    endpoint_tag: str | None = Field(default=None, max_length=128)
    window_seconds: int = Field(default=3600, ge=60, le=86_400)
    min_requests: int = Field(default=1, ge=1, le=1_000_000)
    enabled: bool = True


class FallbackModel(Payload):
    """A cheaper model an SDK calls instead of ``from_model`` when the ``fallback`` action applies."""

    from_model: str = Field(min_length=1, max_length=128)
    to_model: str = Field(min_length=1, max_length=128)


class RuntimeActions(Payload):
    """What SDKs in runtime enforcement mode do before a provider call, by budget state (ADR 54).

    Applied only while the kill switch is off; with it on, SDKs report what they would have done.
    """

    on_budget_warning: RuntimeAction = "none"
    on_budget_exceeded: RuntimeAction = "none"
    clamp_max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    fallback_models: tuple[FallbackModel, ...] = Field(default=(), max_length=50)
    queue_max_wait_seconds: int = Field(default=30, ge=1, le=3600)


class PolicySettingsPayload(Payload):
    """The whole policy of a workspace at ``version``, and who changed which section."""

    version: int = Field(ge=0, description="Increases by one per change; 0 only for a never-configured workspace.")
    daily_limit_micro_usd: int | None = Field(default=None, ge=0)
    monthly_limit_micro_usd: int | None = Field(default=None, ge=0)
    warning_threshold_ratio: Ratio = Field(default=0.8, gt=0, le=1)
    alert_thresholds: tuple[Ratio, ...] = Field(
        default=(), description="Extra ratios that each emit a decision once crossed (for example 0.5, 0.9)."
    )
    scoped: tuple[ScopedBudget, ...] = ()
    enforcement: Enforcement = "advisory"
    kill_switch: bool = False
    unit_cost_rules: tuple[UnitCostRule, ...] = ()
    runtime_actions: RuntimeActions = Field(default_factory=RuntimeActions)
    cost_basis: CostBasis = Field(
        default="computed",
        description="Which cost budgets and reports use: the computed cost, the client's reportedCostUsd "
        "(0 when absent), or the reported cost when present and the computed one otherwise.",
    )
    changed_sections: tuple[SettingsSection, ...] = ()
    changed_by_credential_id: str = Field(max_length=64)
    changed_by_role: Literal["owner", "admin", "member", "ingest", "system"]


@event
class PolicySettingsChanged(EventEnvelope[PolicySettingsPayload]):
    type: Literal["policy.settings_changed"] = "policy.settings_changed"
    version: Literal[1] = 1


class BudgetThresholdPayload(Payload):
    """A budget's spend reached ``threshold_ratio`` × limit in one period (once per crossing per period)."""

    scope: Scope
    scope_value: str | None = Field(default=None, max_length=128)
    window: BudgetWindow
    period_start: AwareDatetime
    period_end: AwareDatetime
    limit_micro_usd: int = Field(ge=0)
    threshold_ratio: Ratio
    threshold_micro_usd: int = Field(ge=0)
    spend_micro_usd: int = Field(ge=0)
    enforcement: Enforcement
    policy_mode: PolicyMode
    blocks_ingest: bool
    projected_end_of_period_micro_usd: int | None = Field(default=None, ge=0)
    projected_exhaust_at: AwareDatetime | None = None


@event
class BudgetWarningReached(EventEnvelope[BudgetThresholdPayload]):
    type: Literal["policy.budget_warning_reached"] = "policy.budget_warning_reached"
    version: Literal[1] = 1


@event
class BudgetExceeded(EventEnvelope[BudgetThresholdPayload]):
    type: Literal["policy.budget_exceeded"] = "policy.budget_exceeded"
    version: Literal[1] = 1


class UnitCostBreachedPayload(Payload):
    rule_id: str
    metric: UnitCostMetric
    max_micro_usd: int = Field(ge=0)
    observed_micro_usd: int = Field(ge=0)
    requests: int = Field(ge=0)
    model: str | None = None
    endpoint_tag: str | None = None
    window_start: AwareDatetime
    window_end: AwareDatetime
    policy_mode: PolicyMode


@event
class UnitCostBreached(EventEnvelope[UnitCostBreachedPayload]):
    type: Literal["policy.unit_cost_breached"] = "policy.unit_cost_breached"
    version: Literal[1] = 1


class PolicySwitchPayload(Payload):
    """Who turned the kill switch or the enforcement, from what to what, at which settings version."""

    settings_version: int = Field(ge=1)
    enforcement: Enforcement
    kill_switch: bool
    policy_mode: PolicyMode
    previous_enforcement: Enforcement
    previous_kill_switch: bool
    changed_by_credential_id: str = Field(max_length=64)
    changed_by_role: Literal["owner", "admin", "member", "ingest", "system"]


@event
class KillSwitchChanged(EventEnvelope[PolicySwitchPayload]):
    type: Literal["policy.kill_switch_changed"] = "policy.kill_switch_changed"
    version: Literal[1] = 1


@event
class EnforcementChanged(EventEnvelope[PolicySwitchPayload]):
    type: Literal["policy.enforcement_changed"] = "policy.enforcement_changed"
    version: Literal[1] = 1
