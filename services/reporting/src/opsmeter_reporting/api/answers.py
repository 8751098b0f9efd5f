"""The JSON the reporting API answers with, as models: its OpenAPI schema documents them (``views.py``
writes the JSON; these describe it)."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmeter_reporting.domain import DIMENSIONS


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class UsageTotals(_Answer):
    requests: int
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")
    total_tokens: int = Field(alias="totalTokens")
    cost_usd: str = Field(alias="costUsd")
    cost_micro_usd: int = Field(alias="costMicroUsd")


class UsageCosts(UsageTotals):
    """costUsd is by the workspace's cost basis (ADR 57); both costs it chose between, and their gap."""

    computed_cost_usd: str = Field(alias="computedCostUsd")
    reported_cost_usd: str = Field(alias="reportedCostUsd")
    reported_requests: int = Field(alias="reportedRequests")
    reported_minus_computed_usd: str = Field(
        alias="reportedMinusComputedUsd",
        description="Reported cost minus the computed cost of the same requests (those that reported one).",
    )


class UsageRow(UsageCosts):
    key: str


class UsageWindowCosts(UsageCosts):
    """The window's costs by the workspace's cost basis (ADR 57), both costs it chose between, their gap, and the
    calls no price covered."""

    unpriced_requests: int = Field(
        alias="unpricedRequests",
        description="Calls to models no price covered: counted at $0 computed cost until priced "
        "(GET /v1/workspaces/{id}/prices/unpriced lists them; PUT /v1/workspaces/{id}/prices prices them).",
    )


class Rejections(_Answer):
    """Events the gateway refused in the window (SPEC §5: none is silent), whatever their dataMode: a refused
    event's fields are not trusted. Counted per UTC hour, so the window is taken to the hour."""

    total: int
    rate_limited: int = Field(alias="rateLimited", description="429: over the per-minute limit.")
    invalid_payload: int = Field(alias="invalidPayload", description="400/415/422: a body or field broke a rule.")
    plan_limit_reached: int = Field(alias="planLimitReached", description="402: the plan's request quota was used up.")
    budget_exceeded: int = Field(alias="budgetExceeded", description="402: a budget's hard-stop refused it.")


class _RetentionNotice(_Answer):
    retention_window_applied: bool = Field(
        alias="retentionWindowApplied",
        description="The answer reaches back before the plan's raw-event window (SPEC §8): what is older is gone and "
        "not in its figures.",
    )
    raw_retention_days: int = Field(alias="rawRetentionDays", description="The plan's raw-event window, in days.")
    notice: str | None = Field(description="'Retention window applied' when it is; None otherwise.")


class UsageAnswer(_RetentionNotice):
    workspace_id: str = Field(alias="workspaceId")
    from_: str = Field(alias="from")
    to: str
    group_by: str = Field(alias="groupBy")
    data_mode: str = Field(alias="dataMode")
    totals: UsageWindowCosts
    rows: list[UsageRow]
    rejections: Rejections


class Totals(_Answer):
    cost_usd: str = Field(alias="costUsd")
    cost_micro_usd: int = Field(alias="costMicroUsd")
    requests: int
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")
    tokens: int
    cost_per_request_usd: str | None = Field(alias="costPerRequestUsd")
    cost_per_request_micro_usd: int | None = Field(alias="costPerRequestMicroUsd")


class WindowTotals(Totals):
    from_: str = Field(alias="from")
    to: str


class Delta(_Answer):
    cost_usd: str = Field(alias="costUsd")
    cost_micro_usd: int = Field(alias="costMicroUsd")
    cost_change_ratio: str | None = Field(alias="costChangeRatio")
    requests: int
    tokens: int
    cost_per_request_usd: str | None = Field(alias="costPerRequestUsd")
    cost_per_request_micro_usd: int | None = Field(alias="costPerRequestMicroUsd")


class Driver(_Answer):
    dimension: str
    key: str
    current_cost_usd: str = Field(alias="currentCostUsd")
    previous_cost_usd: str = Field(alias="previousCostUsd")
    cost_delta_usd: str = Field(alias="costDeltaUsd")
    cost_delta_micro_usd: int = Field(alias="costDeltaMicroUsd")
    current_requests: int = Field(alias="currentRequests")
    previous_requests: int = Field(alias="previousRequests")
    share_of_change: str | None = Field(alias="shareOfChange")
    is_new: bool = Field(alias="isNew")


class Money(_Answer):
    usd: str
    micro_usd: int = Field(alias="microUsd")


class Decomposition(_Answer):
    segment: str
    volume: Money
    unit_cost: Money = Field(alias="unitCost")
    mix: Money
    total: Money


class RepricingModelDiff(_Answer):
    model: str
    provider: str
    requests: int
    repriced: int = Field(description="Calls whose computed cost changes.")
    old_cost_usd: str = Field(alias="oldCostUsd")
    new_cost_usd: str = Field(alias="newCostUsd")
    computed_delta_usd: str = Field(alias="computedDeltaUsd")
    delta_usd: str = Field(alias="deltaUsd", description="What budgets and reports move by (the cost basis).")
    delta_micro_usd: int = Field(alias="deltaMicroUsd")


class RepricingAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    repricing_id: str | None = Field(alias="repricingId")
    dry_run: bool = Field(alias="dryRun")
    from_: str = Field(alias="from")
    to: str
    data_mode: str = Field(alias="dataMode")
    price_catalog_version: str = Field(alias="priceCatalogVersion")
    workspace_prices_version: int = Field(alias="workspacePricesVersion")
    corrected_events: int = Field(alias="correctedEvents")
    delta_usd: str = Field(alias="deltaUsd")
    delta_micro_usd: int = Field(alias="deltaMicroUsd")
    models: list[RepricingModelDiff]


class RepricingRecord(_Answer):
    repricing_id: str = Field(alias="repricingId")
    applied_at: str = Field(alias="appliedAt")
    from_: str = Field(alias="from")
    to: str
    data_mode: str = Field(alias="dataMode")
    models: list[str]
    corrected_events: int = Field(alias="correctedEvents")
    delta_usd: str = Field(alias="deltaUsd")
    price_catalog_version: str = Field(alias="priceCatalogVersion")
    workspace_prices_version: int = Field(alias="workspacePricesVersion")
    requested_by: str = Field(alias="requestedBy")
    requested_by_role: str = Field(alias="requestedByRole")
    reason: str


class RepricingHistory(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    repricings: list[RepricingRecord]


class ReconciledDayRow(_Answer):
    day: str
    model: str
    requests: int
    computed_usd: str = Field(alias="computedUsd")
    reported_usd: str = Field(alias="reportedUsd")
    billed_usd: str = Field(alias="billedUsd")
    gap_usd: str = Field(alias="gapUsd", description="Billed minus computed.")
    gap_micro_usd: int = Field(alias="gapMicroUsd")
    reason: Literal["records_missing", "unpriced_model", "cache_tokens_missing", "tier", "unexplained", "matches"]
    explanation: str


class ReconciliationTotals(_Answer):
    computed_usd: str = Field(alias="computedUsd")
    reported_usd: str = Field(alias="reportedUsd")
    billed_usd: str = Field(alias="billedUsd")
    gap_usd: str = Field(alias="gapUsd")


class ReconciliationAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    provider: Literal["openai", "anthropic"]
    from_: str = Field(alias="from")
    to: str
    totals: ReconciliationTotals
    gaps: int = Field(description="Days and models whose gap is more than $0.01 and 1% of the bill.")
    days: list[ReconciledDayRow]


class UnpricedModelRow(_Answer):
    model: str
    provider: str
    first_seen: str = Field(alias="firstSeen")
    last_seen: str = Field(alias="lastSeen")
    requests: int
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")


class UnpricedAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    data_mode: str = Field(alias="dataMode")
    models: list[UnpricedModelRow]


class SpikeAnswer(_RetentionNotice):
    workspace_id: str = Field(alias="workspaceId")
    window: str | None
    data_mode: str = Field(alias="dataMode")
    current: WindowTotals
    previous: WindowTotals
    delta: Delta
    drivers: dict[str, list[Driver]] = Field(description=f"One ranked list per dimension: {', '.join(DIMENSIONS)}")
    new_drivers: list[Driver] = Field(alias="newDrivers")
    decomposition: Decomposition


class Range(_Answer):
    from_: str = Field(alias="from")
    to: str


class DayTotals(Totals):
    day: str


class WeekSummary(_Answer):
    current: Totals
    previous: Totals
    delta: Delta


class BudgetFlags(_Answer):
    budget_warning: bool = Field(alias="budgetWarning")
    budget_exceeded: bool = Field(alias="budgetExceeded")
    enforcement: str
    policy_mode: str | None = Field(default=None, alias="policyMode")


class AlertCounts(_Answer):
    week: int
    baseline: int
    by_type: dict[str, int] = Field(alias="byType")


class WeeklyAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    data_mode: str = Field(alias="dataMode")
    week: Range
    baseline: Range
    summary: WeekSummary
    days: list[DayTotals]
    baseline_days: list[DayTotals] = Field(alias="baselineDays")
    top_movers: list[Driver] = Field(alias="topMovers")
    new_drivers: list[Driver] = Field(alias="newDrivers")
    budget_status: BudgetFlags = Field(alias="budgetStatus")
    alerts: AlertCounts


class KeyTotals(Totals):
    key: str


class Decision(_Answer):
    at: str
    type: str
    summary: str


class BoardPackAnswer(_Answer):
    """``format=json``; ``csv`` and ``pdf`` are the same pack as files."""

    model_config = ConfigDict(extra="allow")

    workspace_id: str = Field(alias="workspaceId")
    data_mode: str = Field(alias="dataMode")
    range: Range
    retention_window_applied: bool = Field(alias="retentionWindowApplied")
    notice: str | None
    raw_retention_days: int | None = Field(alias="rawRetentionDays")
    summary_retention_days: int | None = Field(alias="summaryRetentionDays")
    summary: Totals
    trend: list[DayTotals]
    top_drivers: dict[str, list[KeyTotals]] = Field(alias="topDrivers")
    budget_history: list[Decision] = Field(alias="budgetHistory")
    budget_status: BudgetFlags = Field(alias="budgetStatus")


class ChecklistItem(_Answer):
    id: str
    title: str
    done: bool
    tip: str | None


class ChecklistAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    complete: bool
    first_event_at: str | None = Field(alias="firstEventAt")
    items: list[ChecklistItem]


class QualityPart(_Answer):
    id: str
    weight: int | float
    ratio: str | None
    points: str | None
    tip: str | None


class QualityAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    score: int | float
    events: int
    freshness_p95_seconds: float | int | None = Field(alias="freshnessP95Seconds")
    duplicates_seen: int = Field(alias="duplicatesSeen")
    parts: list[QualityPart]


class SqlAnswer(_Answer):
    workspace_id: str | None = Field(alias="workspaceId")
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool


class RebuildAnswer(_Answer):
    from_: str = Field(alias="from")
    to: str
    workspace_id: str | None = Field(alias="workspaceId")
    raw_events: int = Field(alias="rawEvents")


class SeriesTotals(_Answer):
    requests: int
    errors: int
    tokens: int
    cost_micro_usd: int = Field(alias="costMicroUsd")


class SeriesBucket(_Answer):
    at: str
    requests: int
    errors: int
    cost_micro_usd: int = Field(alias="costMicroUsd")


class SeriesPoint(SeriesBucket):
    key: str
    cost_usd: str = Field(alias="costUsd")


class SeriesAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    from_: str = Field(alias="from")
    to: str
    bucket: str
    stack_by: str = Field(alias="stackBy")
    data_mode: str = Field(alias="dataMode")
    totals: SeriesTotals
    buckets: list[SeriesBucket]
    points: list[SeriesPoint]


class RawEvent(_Answer):
    event_id: str = Field(alias="eventId")
    occurred_at: str = Field(alias="occurredAt")
    provider: str
    model: str
    endpoint_tag: str | None = Field(alias="endpointTag")
    user_id: str | None = Field(alias="userId")
    prompt_version: str | None = Field(alias="promptVersion")
    status: str
    error_code: str | None = Field(alias="errorCode")
    input_tokens: int = Field(alias="inputTokens")
    output_tokens: int = Field(alias="outputTokens")
    latency_ms: int | None = Field(alias="latencyMs")
    cost_usd: str = Field(alias="costUsd")
    cost_micro_usd: int = Field(alias="costMicroUsd")


class EventsPage(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    from_: str = Field(alias="from")
    to: str
    dimension: str | None
    key: str | None
    events: list[RawEvent]
    next_before: str | None = Field(alias="nextBefore")


class ChangedBy(_Answer):
    credential_id: str = Field(alias="credentialId")
    role: str


class SettingsChangeAnswer(_Answer):
    at: str
    version: int
    sections: list[str] = Field(description="budgets, policy or rules")
    changed_by: ChangedBy = Field(alias="changedBy")
    summary: str = Field(description="What the change left each section it changed as.")


class SettingsHistoryAnswer(_Answer):
    """SPEC §6's audit trail: every change of the workspace's policy settings, newest first."""

    workspace_id: str = Field(alias="workspaceId")
    changes: list[SettingsChangeAnswer]
