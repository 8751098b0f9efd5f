"""The JSON the policy engine's API answers with, as models: its OpenAPI schema documents them."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RuntimeActionName = Literal["none", "block", "clamp", "fallback", "queue"]


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class ChangedBy(_Answer):
    credential_id: str | None = Field(alias="credentialId")
    role: str | None


class Audited(_Answer):
    version: int
    changed_by: ChangedBy = Field(alias="changedBy")


class ScopedBudget(_Answer):
    dimension: Literal["endpointTag", "model", "userId"]
    value: str
    daily_usd: str | None = Field(alias="dailyUsd")
    monthly_usd: str | None = Field(alias="monthlyUsd")


class BudgetsAnswer(Audited):
    daily_usd: str | None = Field(alias="dailyUsd")
    monthly_usd: str | None = Field(alias="monthlyUsd")
    warning_threshold_ratio: float = Field(alias="warningThresholdRatio")
    alert_thresholds: list[float] = Field(alias="alertThresholds")
    scoped: list[ScopedBudget]


class RuntimeActionsAnswer(_Answer):
    on_budget_warning: RuntimeActionName = Field(alias="onBudgetWarning")
    on_budget_exceeded: RuntimeActionName = Field(alias="onBudgetExceeded")
    clamp_max_tokens: int | None = Field(alias="clampMaxTokens")
    fallback_models: dict[str, str] = Field(alias="fallbackModels")
    queue_max_wait_seconds: int = Field(alias="queueMaxWaitSeconds")


class PolicyAnswer(Audited):
    enforcement: Literal["advisory", "hard_stop"]
    kill_switch: bool = Field(alias="killSwitch")
    policy_mode: Literal["enforce", "observe"] = Field(alias="policyMode")
    runtime_actions: RuntimeActionsAnswer = Field(alias="runtimeActions")
    cost_basis: Literal["computed", "reported", "reported_when_present"] = Field(alias="costBasis")


class Rule(_Answer):
    id: str
    metric: Literal["costPerRequest", "costPer1kTokens"]
    max_usd: str = Field(alias="maxUsd")
    model: str | None
    endpoint_tag: str | None = Field(alias="endpointTag")
    window_minutes: int = Field(alias="windowMinutes")
    min_requests: int = Field(alias="minRequests")
    enabled: bool


class RulesAnswer(Audited):
    rules: list[Rule]


class BudgetWindow(_Answer):
    limit_usd: str | None = Field(alias="limitUsd")
    current_spend_usd: str | None = Field(alias="currentSpendUsd")
    utilization_ratio: float = Field(alias="utilizationRatio")
    is_warning: bool = Field(alias="isWarning")
    is_exceeded: bool = Field(alias="isExceeded")
    period_start: str = Field(alias="periodStart")
    period_end: str = Field(alias="periodEnd")


class SpendWindow(_Answer):
    period_start: str = Field(alias="periodStart")
    period_end: str = Field(alias="periodEnd")
    current_spend_usd: str = Field(alias="currentSpendUsd")
    current_spend_micro_usd: int = Field(alias="currentSpendMicroUsd")
    budget: BudgetWindow | None


class ScopedSpend(BudgetWindow):
    """One scoped budget in its current window. It counts from when it was set (ADR 10)."""

    dimension: Literal["endpointTag", "model", "userId"]
    value: str
    window: Literal["daily", "monthly"]


class SpendAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    budget_warning: bool = Field(alias="budgetWarning")
    budget_exceeded: bool = Field(alias="budgetExceeded")
    policy_mode: Literal["enforce", "observe"] = Field(alias="policyMode")
    enforcement: Literal["advisory", "hard_stop"]
    warning_threshold_ratio: float = Field(alias="warningThresholdRatio")
    projected_end_of_period_usd: str | None = Field(alias="projectedEndOfPeriodUsd")
    projected_exhaust_at: str | None = Field(alias="projectedExhaustAt")
    daily: SpendWindow
    monthly: SpendWindow
    scoped: list[ScopedSpend] = Field(description="Every scoped budget, so a crossing of one can be told apart.")


class ExceededWindow(_Answer):
    window: Literal["daily", "monthly"]
    period_end: str = Field(alias="periodEnd")


class BudgetFlags(_Answer):
    warning: bool
    exceeded: bool


class ScopedBudgetFlags(_Answer):
    dimension: Literal["endpointTag", "model", "userId"]
    value: str = Field(description="For a model: its normalized name (what the event's modelNormalized says).")
    window: Literal["daily", "monthly"]
    warning: bool
    exceeded: bool
    period_end: str = Field(alias="periodEnd")


class RuntimePolicyAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    policy_mode: Literal["enforce", "observe"] = Field(alias="policyMode")
    enforcement: Literal["advisory", "hard_stop"]
    kill_switch: bool = Field(alias="killSwitch")
    budget_warning: bool = Field(alias="budgetWarning", description="Any budget, workspace or scoped, is at warning.")
    budget_exceeded: bool = Field(alias="budgetExceeded", description="Any budget, workspace or scoped, is exceeded.")
    exceeded_windows: list[ExceededWindow] = Field(alias="exceededWindows")
    workspace_budget: BudgetFlags = Field(
        alias="workspaceBudget", description="The workspace's own daily and monthly budgets: every call's."
    )
    scoped_budgets: list[ScopedBudgetFlags] = Field(
        alias="scopedBudgets",
        description="Every scoped budget in its current window: it concerns only calls of its endpoint, model or user.",
    )
    runtime_actions: RuntimeActionsAnswer = Field(alias="runtimeActions")
