"""Pure policy rules: spend windows, budgets and their thresholds, model scopes, flags, forecasts, unit-cost rules.
No I/O."""

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from functools import cache

from opsmeter_contracts.policy import (
    BudgetWindow,
    Dimension,
    PolicySettingsPayload,
    Scope,
    UnitCostRule,
)
from opsmeter_pricing import PriceCatalog, normalize_model
from opsmeter_runtime.projections import BudgetWindowStatus, PolicyStatus

DEFAULT_WARNING_RATIO = 0.8


@dataclass(frozen=True)
class SpendWindow:
    """A half-open UTC window ``[start, end)`` with a stable name ("day:2026-11-25", "month:2026-11")."""

    name: str
    start: datetime
    end: datetime


def day_window(at: datetime) -> SpendWindow:
    start = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return SpendWindow(f"day:{start:%Y-%m-%d}", start, start + timedelta(days=1))


def month_window(at: datetime) -> SpendWindow:
    start = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return SpendWindow(f"month:{start:%Y-%m}", start, end)


def window_of(kind: BudgetWindow, at: datetime) -> SpendWindow:
    return day_window(at) if kind == "daily" else month_window(at)


def counts_toward_budget(data_mode: str) -> bool:
    return data_mode == "real"


def default_settings() -> PolicySettingsPayload:
    """A workspace nobody configured: no budgets, advisory, kill switch off, no rules."""
    return PolicySettingsPayload(version=0, changed_by_credential_id="", changed_by_role="system")


# --- model scopes ---------------------------------------------------------------------------------------

ANY_PROVIDER = ""
"""A model scope names no provider: the catalog looks the name up under every provider."""


@cache
def _catalog_model_ids() -> frozenset[str]:
    catalog = PriceCatalog.load_default()
    return frozenset(m.id for p in catalog.providers for m in p.models)


def model_scope(model: str) -> str:
    """The ``model_normalized`` a model scope counts (ADR 68): a catalog model id as it is, since some provider's
    events carry it (``openai/gpt-4o`` is OpenRouter's); any other name as the gateway normalises a model name
    (``GPT-4o``, ``gpt-4o-2024-08-06`` -> ``gpt-4o``; a model the catalog does not know, lowercased without its
    path: ``Acme/My-Model`` -> ``my-model``)."""
    name = model.strip()
    if name in _catalog_model_ids():
        return name
    return normalize_model(ANY_PROVIDER, name) or model  # a blank name stays as it was (the contract wants one)


def with_model_scopes(settings: PolicySettingsPayload) -> PolicySettingsPayload:
    """``settings`` with the model of every scoped budget and unit-cost rule as :func:`model_scope` names it."""
    scoped = tuple(
        b.model_copy(update={"value": model_scope(b.value)}) if b.dimension == "model" else b for b in settings.scoped
    )
    rules = tuple(
        r if r.model is None else r.model_copy(update={"model": model_scope(r.model)}) for r in settings.unit_cost_rules
    )
    if scoped == settings.scoped and rules == settings.unit_cost_rules:
        return settings
    return settings.model_copy(update={"scoped": scoped, "unit_cost_rules": rules})


# --- spend counters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFacts:
    """What the rules need of one telemetry event."""

    occurred_at: datetime
    cost_micro_usd: int
    total_tokens: int
    model: str
    endpoint_tag: str
    user_id: str

    def value_of(self, dimension: Dimension) -> str:
        return {"endpoint_tag": self.endpoint_tag, "model": self.model, "user_id": self.user_id}[dimension]


def scope_suffix(scope: Scope, value: str | None) -> str:
    return "" if scope == "workspace" else f"|{scope}={value}"


def spend_counter(window: SpendWindow, scope: Scope = "workspace", value: str | None = None) -> str:
    """The name of a spend counter: a window, and for a scoped budget its dimension and value."""
    return window.name + scope_suffix(scope, value)


@dataclass(frozen=True)
class Increment:
    counter: str
    amount: int
    expires_at: datetime


KEEP_AFTER_WINDOW = timedelta(days=35)
UNIT_COST_BUCKET_S = 60


def unit_cost_bucket(rule: UnitCostRule, minute: int, part: str) -> str:
    return f"uc:{rule.rule_id}:{minute}:{part}"


def rule_applies(rule: UnitCostRule, facts: EventFacts) -> bool:
    return (
        rule.enabled
        and (rule.model is None or rule.model == facts.model)
        and (rule.endpoint_tag is None or rule.endpoint_tag == facts.endpoint_tag)
    )


def correction_increments(facts: EventFacts, settings: PolicySettingsPayload) -> list[Increment]:
    """A re-priced call's delta (``facts.cost_micro_usd``, may be negative) on every spend window it counted in,
    workspace and scoped (ADR 57). Unit-cost buckets, a day long, are not corrected."""
    increments: list[Increment] = []
    for window in (day_window(facts.occurred_at), month_window(facts.occurred_at)):
        expires = window.end + KEEP_AFTER_WINDOW
        increments.append(Increment(spend_counter(window), facts.cost_micro_usd, expires))
        for scoped in {(b.dimension, b.value) for b in settings.scoped}:
            if facts.value_of(scoped[0]) == scoped[1]:
                increments.append(Increment(spend_counter(window, *scoped), facts.cost_micro_usd, expires))
    return increments


def increments_for(facts: EventFacts, settings: PolicySettingsPayload) -> list[Increment]:
    """Every counter one real event adds to: workspace windows, matching scoped budgets, unit-cost buckets."""
    increments: list[Increment] = []
    for window in (day_window(facts.occurred_at), month_window(facts.occurred_at)):
        expires = window.end + KEEP_AFTER_WINDOW
        increments.append(Increment(spend_counter(window), facts.cost_micro_usd, expires))
        for scoped in {(b.dimension, b.value) for b in settings.scoped}:
            if facts.value_of(scoped[0]) == scoped[1]:
                increments.append(Increment(spend_counter(window, *scoped), facts.cost_micro_usd, expires))
    minute = int(facts.occurred_at.timestamp()) // UNIT_COST_BUCKET_S
    bucket_expiry = facts.occurred_at + timedelta(days=1, minutes=5)
    for rule in settings.unit_cost_rules:
        if rule_applies(rule, facts):
            increments += [
                Increment(unit_cost_bucket(rule, minute, "cost"), facts.cost_micro_usd, bucket_expiry),
                Increment(unit_cost_bucket(rule, minute, "requests"), 1, bucket_expiry),
                Increment(unit_cost_bucket(rule, minute, "tokens"), facts.total_tokens, bucket_expiry),
            ]
    return increments


# --- budgets --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    scope: Scope
    scope_value: str | None
    window: BudgetWindow
    limit_micro_usd: int


def budgets_of(settings: PolicySettingsPayload) -> list[Budget]:
    budgets = []
    if settings.daily_limit_micro_usd is not None:
        budgets.append(Budget("workspace", None, "daily", settings.daily_limit_micro_usd))
    if settings.monthly_limit_micro_usd is not None:
        budgets.append(Budget("workspace", None, "monthly", settings.monthly_limit_micro_usd))
    for scoped in settings.scoped:
        if scoped.daily_limit_micro_usd is not None:
            budgets.append(Budget(scoped.dimension, scoped.value, "daily", scoped.daily_limit_micro_usd))
        if scoped.monthly_limit_micro_usd is not None:
            budgets.append(Budget(scoped.dimension, scoped.value, "monthly", scoped.monthly_limit_micro_usd))
    return budgets


def threshold_amount(limit_micro_usd: int, ratio: float) -> int:
    """The spend at which ``ratio`` × limit is reached, rounded up to a whole micro-dollar."""
    return int((Decimal(str(ratio)) * limit_micro_usd).to_integral_value(rounding=ROUND_CEILING))


def thresholds_of(settings: PolicySettingsPayload) -> list[float]:
    """The warning ratio, any extra alert ratios below 1, and 1.0 (exceeded), ascending and distinct."""
    return sorted({settings.warning_threshold_ratio, *(r for r in settings.alert_thresholds if r < 1), 1.0})


def budget_counter(budget: Budget, now: datetime) -> str:
    return spend_counter(window_of(budget.window, now), budget.scope, budget.scope_value)


def counters_to_read(settings: PolicySettingsPayload, now: datetime) -> list[str]:
    """Counters an evaluation at ``now`` needs: every budget's current window, and yesterday for the forecast."""
    names = {budget_counter(b, now) for b in budgets_of(settings)}
    names |= {spend_counter(day_window(now)), spend_counter(day_window(now - timedelta(days=1)))}
    names.add(spend_counter(month_window(now)))
    return sorted(names)


@dataclass(frozen=True)
class Crossing:
    """A threshold of a budget reached in one period: the unit of 'once per crossing per period'."""

    budget: Budget
    period: SpendWindow
    ratio: float
    threshold_micro_usd: int
    spend_micro_usd: int

    @property
    def exceeded(self) -> bool:
        return self.ratio >= 1

    @property
    def mark(self) -> str:
        """Names the crossing in its period; a changed limit is a new budget that may cross again."""
        b = self.budget
        return f"{self.period.name}{scope_suffix(b.scope, b.scope_value)}|limit={b.limit_micro_usd}|ratio={self.ratio}"


@dataclass(frozen=True)
class Forecast:
    projected_end_of_period_micro_usd: int
    projected_exhaust_at: datetime | None


def forecast_month(
    *, spend_micro_usd: int, limit_micro_usd: int | None, recent_micro_usd: int, recent_since: datetime, now: datetime
) -> Forecast:
    """Extrapolate the month from the recent burn rate (spend since ``recent_since``, at most the month)."""
    month = month_window(now)
    since = max(recent_since, month.start)
    elapsed = (now - since).total_seconds()
    remaining = (month.end - now).total_seconds()
    rate = recent_micro_usd / elapsed if elapsed >= 60 else 0.0
    projected = spend_micro_usd + math.ceil(rate * remaining)
    exhaust_at = None
    if limit_micro_usd is not None and rate > 0 and spend_micro_usd < limit_micro_usd:
        seconds_left = (limit_micro_usd - spend_micro_usd) / rate
        # Compared as seconds first: a tiny rate puts the date past what a datetime can hold.
        exhaust_at = now + timedelta(seconds=seconds_left) if seconds_left < remaining else None
    return Forecast(projected, exhaust_at)


@dataclass(frozen=True)
class Evaluation:
    status: PolicyStatus
    crossings: list[Crossing] = field(default_factory=list)
    forecast: Forecast | None = None
    scoped: list[tuple[Budget, BudgetWindowStatus]] = field(default_factory=list)
    """Each scoped budget (endpoint, model or user; daily or monthly) in its current window. One crossing sets the
    workspace's flags (an answer names which); under hard-stop an exceeded one stops only its own events
    (``status.stopped_scopes``)."""


def evaluate_budgets(settings: PolicySettingsPayload, totals: Mapping[str, int], now: datetime) -> Evaluation:
    """Flags, crossings, headroom and forecast of a workspace's budgets from its spend counters at ``now``."""
    crossings: list[Crossing] = []
    scoped: list[tuple[Budget, BudgetWindowStatus]] = []
    warning = exceeded = workspace_exceeded = False
    stopped: list[tuple[str, str]] = []
    warning_headroom: int | None = None
    exceeded_headroom: int | None = None
    ratios = thresholds_of(settings)
    for budget in budgets_of(settings):
        period = window_of(budget.window, now)
        spend = totals.get(budget_counter(budget, now), 0)
        warn_at = threshold_amount(budget.limit_micro_usd, settings.warning_threshold_ratio)
        warning = warning or spend >= warn_at
        exceeded = exceeded or spend >= budget.limit_micro_usd
        if budget.scope == "workspace":
            workspace_exceeded = workspace_exceeded or spend >= budget.limit_micro_usd
            warning_headroom = _min(warning_headroom, max(0, warn_at - spend))
            exceeded_headroom = _min(exceeded_headroom, max(0, budget.limit_micro_usd - spend))
        else:
            window = BudgetWindowStatus(budget.limit_micro_usd, spend, warn_at, period.start, period.end)
            scoped.append((budget, window))
            scope = (budget.scope, budget.scope_value or "")
            if spend >= budget.limit_micro_usd and scope not in stopped:
                stopped.append(scope)
        for ratio in ratios:
            amount = threshold_amount(budget.limit_micro_usd, ratio)
            if spend >= amount:
                crossings.append(Crossing(budget, period, ratio, amount, spend))

    month, today = month_window(now), day_window(now)
    yesterday = day_window(now - timedelta(days=1))
    month_spend = totals.get(spend_counter(month), 0)
    recent = totals.get(spend_counter(today), 0)
    if yesterday.start >= month.start:
        recent += totals.get(spend_counter(yesterday), 0)
    forecast = forecast_month(
        spend_micro_usd=month_spend,
        limit_micro_usd=settings.monthly_limit_micro_usd,
        recent_micro_usd=recent,
        recent_since=yesterday.start,
        now=now,
    )

    def window_status(limit: int | None, window: SpendWindow, with_forecast: bool) -> BudgetWindowStatus | None:
        if limit is None:
            return None
        return BudgetWindowStatus(
            limit_micro_usd=limit,
            spend_micro_usd=totals.get(spend_counter(window), 0),
            warning_at_micro_usd=threshold_amount(limit, settings.warning_threshold_ratio),
            period_start=window.start,
            period_end=window.end,
            projected_end_of_period_micro_usd=forecast.projected_end_of_period_micro_usd if with_forecast else None,
            projected_exhaust_at=forecast.projected_exhaust_at if with_forecast else None,
        )

    status = PolicyStatus(
        budget_warning=warning,
        budget_exceeded=exceeded,
        enforcement=settings.enforcement,
        kill_switch=settings.kill_switch,
        settings_version=settings.version,
        warning_threshold_ratio=settings.warning_threshold_ratio,
        warning_headroom_micro_usd=warning_headroom,
        exceeded_headroom_micro_usd=exceeded_headroom,
        daily=window_status(settings.daily_limit_micro_usd, today, with_forecast=False),
        monthly=window_status(settings.monthly_limit_micro_usd, month, with_forecast=True),
        evaluated_at=now,
        cost_basis=settings.cost_basis,
        workspace_exceeded=workspace_exceeded,
        stopped_scopes=tuple(stopped),
    )
    return Evaluation(status, crossings, forecast, scoped)


def _min(current: int | None, candidate: int) -> int:
    return candidate if current is None else min(current, candidate)


# --- unit-cost rules ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitCostWindow:
    start: datetime
    end: datetime
    minutes: list[int]


def unit_cost_window(rule: UnitCostRule, now: datetime) -> UnitCostWindow:
    """The rolling window of a rule: whole minutes, the current one included."""
    last = int(now.timestamp()) // UNIT_COST_BUCKET_S
    count = max(1, rule.window_seconds // UNIT_COST_BUCKET_S)
    minutes = list(range(last - count + 1, last + 1))
    return UnitCostWindow(
        datetime.fromtimestamp(minutes[0] * UNIT_COST_BUCKET_S, UTC),
        datetime.fromtimestamp((last + 1) * UNIT_COST_BUCKET_S, UTC),
        minutes,
    )


def unit_cost_counters(rule: UnitCostRule, window: UnitCostWindow) -> list[str]:
    return [unit_cost_bucket(rule, m, part) for m in window.minutes for part in ("cost", "requests", "tokens")]


@dataclass(frozen=True)
class UnitCostObservation:
    observed_micro_usd: int
    requests: int
    breached: bool


def observe_unit_cost(rule: UnitCostRule, window: UnitCostWindow, totals: Mapping[str, int]) -> UnitCostObservation:
    """Average cost per request (or per 1K tokens) over the window, and whether it is above the rule's max."""
    cost = sum(totals.get(unit_cost_bucket(rule, m, "cost"), 0) for m in window.minutes)
    requests = sum(totals.get(unit_cost_bucket(rule, m, "requests"), 0) for m in window.minutes)
    tokens = sum(totals.get(unit_cost_bucket(rule, m, "tokens"), 0) for m in window.minutes)
    # Compared as exact totals, not as the rounded-down average: 3 requests costing 3,002 µ$ are above a
    # 1,000 µ$ maximum although their average shows as 1,000.
    if rule.metric == "cost_per_request":
        observed = cost // requests if requests else 0
        above = requests > 0 and cost > rule.max_micro_usd * requests
    else:
        observed = cost * 1000 // tokens if tokens else 0
        above = tokens > 0 and cost * 1000 > rule.max_micro_usd * tokens
    breached = requests >= rule.min_requests and above
    return UnitCostObservation(observed, requests, breached)


# --- settings -------------------------------------------------------------------------------------------


def switches_changed(previous: PolicySettingsPayload, current: PolicySettingsPayload) -> list[str]:
    """Which decisions a settings change makes: 'kill_switch' and/or 'enforcement'."""
    changed = []
    if previous.kill_switch != current.kill_switch:
        changed.append("kill_switch")
    if previous.enforcement != current.enforcement:
        changed.append("enforcement")
    return changed


def distinct_thresholds(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(sorted(set(values)))


def settings_counters(settings: PolicySettingsPayload, now: datetime) -> Sequence[str]:
    names = list(counters_to_read(settings, now))
    for rule in settings.unit_cost_rules:
        if rule.enabled:
            names += unit_cost_counters(rule, unit_cost_window(rule, now))
    return names
