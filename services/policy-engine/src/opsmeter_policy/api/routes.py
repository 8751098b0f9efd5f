"""Settings API (budgets, policy, unit-cost rules) and spend status; reads for any role, writes for owner/admin."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic.alias_generators import to_camel

from opsmeter_contracts.policy import PolicySettingsPayload
from opsmeter_policy.api.answers import (
    BudgetsAnswer,
    PolicyAnswer,
    RulesAnswer,
    RuntimePolicyAnswer,
    SpendAnswer,
)
from opsmeter_policy.api.deps import Deps, WorkspaceReader, WorkspaceWriter
from opsmeter_policy.commands import change_settings
from opsmeter_policy.domain import (
    day_window,
    evaluate_budgets,
    month_window,
    settings_counters,
)
from opsmeter_runtime.errors import Unauthorized
from opsmeter_runtime.http import json_response
from opsmeter_runtime.money import MICRO, format_micro_usd
from opsmeter_runtime.projections import BudgetWindowStatus

router = APIRouter(tags=["policy"])

Usd = Annotated[Decimal, Field(ge=0, le=Decimal("1000000000"), max_digits=16, decimal_places=6)]
Ratio = Annotated[float, Field(gt=0, le=1)]
DIMENSIONS = {"endpointTag": "endpoint_tag", "model": "model", "userId": "user_id"}
DIMENSION_NAMES = {v: k for k, v in DIMENSIONS.items()}


def to_micro(usd: Decimal | None) -> int | None:
    return None if usd is None else int((usd * MICRO).to_integral_value(rounding=ROUND_HALF_UP))


def usd(micro: int | None) -> str | None:
    return None if micro is None else format_micro_usd(micro)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class ScopedBudgetBody(Body):
    dimension: Literal["endpointTag", "model", "userId"]
    value: str = Field(min_length=1, max_length=128)
    daily_usd: Usd | None = None
    monthly_usd: Usd | None = None


class BudgetsBody(Body):
    daily_usd: Usd | None = None
    monthly_usd: Usd | None = None
    warning_threshold_ratio: Ratio = 0.8
    alert_thresholds: list[Ratio] = Field(default_factory=list, max_length=10)
    scoped: list[ScopedBudgetBody] = Field(default_factory=list, max_length=100)


RuntimeAction = Literal["none", "block", "clamp", "fallback", "queue"]


class RuntimeActionsBody(Body):
    """What SDKs in runtime enforcement mode do before a provider call (ADR 54)."""

    on_budget_warning: RuntimeAction = "none"
    on_budget_exceeded: RuntimeAction = "none"
    clamp_max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    fallback_models: dict[
        Annotated[str, Field(min_length=1, max_length=128)], Annotated[str, Field(min_length=1, max_length=128)]
    ] = Field(default_factory=dict, max_length=50)
    queue_max_wait_seconds: int = Field(default=30, ge=1, le=3600)

    @model_validator(mode="after")
    def _configured(self) -> "RuntimeActionsBody":
        used = {self.on_budget_warning, self.on_budget_exceeded}
        if "clamp" in used and self.clamp_max_tokens is None:
            raise ValueError("clamp needs clampMaxTokens")
        if "fallback" in used and not self.fallback_models:
            raise ValueError("fallback needs fallbackModels")
        return self


class PolicyBody(Body):
    """A partial change: a field left out keeps its value; a field sent must carry one (``null`` is 422)."""

    enforcement: Literal["advisory", "hard_stop"] | None = None
    kill_switch: StrictBool | None = None
    runtime_actions: RuntimeActionsBody | None = None
    cost_basis: Literal["computed", "reported", "reported_when_present"] | None = Field(
        default=None, description="Which cost budgets and reports use (ADR 57); default computed."
    )

    @field_validator("enforcement", "kill_switch", "runtime_actions", "cost_basis")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:  # runs only for a field sent: a default is not validated
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class RuleBody(Body):
    id: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    metric: Literal["costPerRequest", "costPer1kTokens"]
    max_usd: Usd
    model: str | None = Field(default=None, max_length=128)
    endpoint_tag: str | None = Field(default=None, max_length=128)
    window_minutes: int = Field(default=60, ge=1, le=1440)
    min_requests: int = Field(default=1, ge=1, le=1_000_000)
    enabled: bool = True


class RulesBody(Body):
    rules: list[RuleBody] = Field(max_length=50)

    @model_validator(mode="after")
    def _unique_ids(self) -> "RulesBody":
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("rule ids must be unique")
        return self


METRICS = {"costPerRequest": "cost_per_request", "costPer1kTokens": "cost_per_1k_tokens"}
METRIC_NAMES = {v: k for k, v in METRICS.items()}


def audit(s: PolicySettingsPayload) -> dict[str, Any]:
    return {"version": s.version, "changedBy": {"credentialId": s.changed_by_credential_id, "role": s.changed_by_role}}


def budgets_view(s: PolicySettingsPayload) -> dict[str, Any]:
    return {
        "dailyUsd": usd(s.daily_limit_micro_usd),
        "monthlyUsd": usd(s.monthly_limit_micro_usd),
        "warningThresholdRatio": s.warning_threshold_ratio,
        "alertThresholds": list(s.alert_thresholds),
        "scoped": [
            {
                "dimension": DIMENSION_NAMES[b.dimension],
                "value": b.value,
                "dailyUsd": usd(b.daily_limit_micro_usd),
                "monthlyUsd": usd(b.monthly_limit_micro_usd),
            }
            for b in s.scoped
        ],
        **audit(s),
    }


def runtime_actions_view(s: PolicySettingsPayload) -> dict[str, Any]:
    actions = s.runtime_actions
    return {
        "onBudgetWarning": actions.on_budget_warning,
        "onBudgetExceeded": actions.on_budget_exceeded,
        "clampMaxTokens": actions.clamp_max_tokens,
        "fallbackModels": {f.from_model: f.to_model for f in actions.fallback_models},
        "queueMaxWaitSeconds": actions.queue_max_wait_seconds,
    }


def policy_view(s: PolicySettingsPayload) -> dict[str, Any]:
    return {
        "enforcement": s.enforcement,
        "killSwitch": s.kill_switch,
        "policyMode": "observe" if s.kill_switch else "enforce",
        "runtimeActions": runtime_actions_view(s),
        "costBasis": s.cost_basis,
        **audit(s),
    }


def rules_view(s: PolicySettingsPayload) -> dict[str, Any]:
    return {
        "rules": [
            {
                "id": r.rule_id,
                "metric": METRIC_NAMES[r.metric],
                "maxUsd": usd(r.max_micro_usd),
                "model": r.model,
                "endpointTag": r.endpoint_tag,
                "windowMinutes": r.window_seconds // 60,
                "minRequests": r.min_requests,
                "enabled": r.enabled,
            }
            for r in s.unit_cost_rules
        ],
        **audit(s),
    }


@router.get("/v1/workspaces/{workspace_id}/budgets", response_model=BudgetsAnswer)
async def get_budgets(principal: WorkspaceReader, deps: Deps) -> Response:
    return json_response(budgets_view(await deps.evaluator.settings_of(principal.workspace_id)))


@router.put("/v1/workspaces/{workspace_id}/budgets", response_model=BudgetsAnswer)
async def put_budgets(body: BudgetsBody, principal: WorkspaceWriter, deps: Deps) -> Response:
    changes = {
        "daily_limit_micro_usd": to_micro(body.daily_usd),
        "monthly_limit_micro_usd": to_micro(body.monthly_usd),
        "warning_threshold_ratio": body.warning_threshold_ratio,
        "alert_thresholds": tuple(sorted(set(body.alert_thresholds))),
        "scoped": [
            {
                "dimension": DIMENSIONS[b.dimension],
                "value": b.value,
                "daily_limit_micro_usd": to_micro(b.daily_usd),
                "monthly_limit_micro_usd": to_micro(b.monthly_usd),
            }
            for b in body.scoped
        ],
    }
    return json_response(budgets_view(await change_settings(deps.evaluator, principal, "budgets", changes)))


@router.get("/v1/workspaces/{workspace_id}/policy", response_model=PolicyAnswer)
async def get_policy(principal: WorkspaceReader, deps: Deps) -> Response:
    return json_response(policy_view(await deps.evaluator.settings_of(principal.workspace_id)))


@router.put("/v1/workspaces/{workspace_id}/policy", response_model=PolicyAnswer)
async def put_policy(body: PolicyBody, principal: WorkspaceWriter, deps: Deps) -> Response:
    wanted: dict[str, Any] = {
        "enforcement": body.enforcement,
        "kill_switch": body.kill_switch,
        "cost_basis": body.cost_basis,
    }
    if body.runtime_actions is not None:
        actions = body.runtime_actions
        wanted["runtime_actions"] = {
            **actions.model_dump(exclude={"fallback_models"}),
            "fallback_models": [{"from_model": k, "to_model": v} for k, v in actions.fallback_models.items()],
        }
    changes = {k: v for k, v in wanted.items() if v is not None}
    return json_response(policy_view(await change_settings(deps.evaluator, principal, "policy", changes)))


@router.get("/v1/workspaces/{workspace_id}/rules", response_model=RulesAnswer)
async def get_rules(principal: WorkspaceReader, deps: Deps) -> Response:
    return json_response(rules_view(await deps.evaluator.settings_of(principal.workspace_id)))


@router.put("/v1/workspaces/{workspace_id}/rules", response_model=RulesAnswer)
async def put_rules(body: RulesBody, principal: WorkspaceWriter, deps: Deps) -> Response:
    changes = {
        "unit_cost_rules": [
            {
                "rule_id": r.id,
                "metric": METRICS[r.metric],
                "max_micro_usd": to_micro(r.max_usd),
                "model": r.model,
                "endpoint_tag": r.endpoint_tag,
                "window_seconds": r.window_minutes * 60,
                "min_requests": r.min_requests,
                "enabled": r.enabled,
            }
            for r in body.rules
        ]
    }
    return json_response(rules_view(await change_settings(deps.evaluator, principal, "rules", changes)))


def window_view(window: BudgetWindowStatus | None) -> dict[str, Any] | None:
    return None if window is None else budget_view(window)


def budget_view(window: BudgetWindowStatus) -> dict[str, Any]:
    return {
        "limitUsd": usd(window.limit_micro_usd),
        "currentSpendUsd": usd(window.spend_micro_usd),
        "utilizationRatio": round(window.utilization_ratio, 6),
        "isWarning": window.is_warning,
        "isExceeded": window.is_exceeded,
        "periodStart": iso(window.period_start),
        "periodEnd": iso(window.period_end),
    }


@router.get("/v1/workspaces/{workspace_id}/spend", response_model=SpendAnswer)
async def current_spend(principal: WorkspaceReader, deps: Deps) -> Response:
    """Spend so far in the current UTC day and month, with the budgets' state and the monthly forecast."""
    workspace_id = principal.workspace_id
    now = datetime.now(UTC)
    settings = await deps.evaluator.settings_of(workspace_id)
    totals = await deps.ledger.totals(workspace_id, settings_counters(settings, now))
    status = evaluate_budgets(settings, totals, now)
    body: dict[str, Any] = {
        "workspaceId": workspace_id,
        "budgetWarning": status.status.budget_warning,
        "budgetExceeded": status.status.budget_exceeded,
        "policyMode": status.status.policy_mode,
        "enforcement": status.status.enforcement,
        "warningThresholdRatio": settings.warning_threshold_ratio,
        "projectedEndOfPeriodUsd": usd(status.forecast.projected_end_of_period_micro_usd) if status.forecast else None,
        "projectedExhaustAt": iso(status.forecast.projected_exhaust_at) if status.forecast else None,
    }
    for name, window, budget in (
        ("daily", day_window(now), status.status.daily),
        ("monthly", month_window(now), status.status.monthly),
    ):
        spent = totals.get(window.name, 0)
        body[name] = {
            "periodStart": iso(window.start),
            "periodEnd": iso(window.end),
            "currentSpendUsd": format_micro_usd(spent),
            "currentSpendMicroUsd": spent,
            "budget": window_view(budget),
        }
    body["scoped"] = [
        {"dimension": DIMENSION_NAMES[b.scope], "value": b.scope_value, "window": b.window, **budget_view(w)}
        for b, w in status.scoped
    ]
    return json_response(body)


@router.get("/v1/runtime/policy", response_model=RuntimePolicyAnswer, tags=["runtime"])
async def runtime_policy(deps: Deps, x_api_key: Annotated[str | None, Header()] = None) -> Response:
    """What an SDK in runtime enforcement mode needs (ingest key): budget state, policy mode, runtime actions."""
    principal = await deps.resources.credentials.authenticate(x_api_key, "api_key")
    if principal is None:
        raise Unauthorized("a valid API key is required (X-API-Key)")
    workspace_id = principal.workspace_id
    now = datetime.now(UTC)
    settings = await deps.evaluator.settings_of(workspace_id)
    status = evaluate_budgets(settings, await deps.ledger.totals(workspace_id, settings_counters(settings, now)), now)
    windows = {"daily": status.status.daily, "monthly": status.status.monthly}
    return json_response(
        {
            "workspaceId": workspace_id,
            "policyMode": status.status.policy_mode,
            "enforcement": status.status.enforcement,
            "killSwitch": settings.kill_switch,
            "budgetWarning": status.status.budget_warning,
            "budgetExceeded": status.status.budget_exceeded,
            "exceededWindows": [
                {"window": name, "periodEnd": iso(w.period_end)} for name, w in windows.items() if w and w.is_exceeded
            ],
            "workspaceBudget": {
                "warning": any(w.is_warning for w in windows.values() if w),
                "exceeded": any(w.is_exceeded for w in windows.values() if w),
            },
            "scopedBudgets": [
                {
                    "dimension": DIMENSION_NAMES[b.scope],
                    "value": b.scope_value,
                    "window": b.window,
                    "warning": w.is_warning,
                    "exceeded": w.is_exceeded,
                    "periodEnd": iso(w.period_end),
                }
                for b, w in status.scoped
            ],
            "runtimeActions": runtime_actions_view(settings),
        }
    )
