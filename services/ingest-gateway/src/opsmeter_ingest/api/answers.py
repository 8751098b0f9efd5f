"""The JSON the gateway answers with, as models: its OpenAPI schema documents them (the ingest answers are
written by ``answer.answer_body``; these describe them)."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmeter_contracts.events import Plan
from opsmeter_ingest.answer import Reason
from opsmeter_ingest.record import IngestRequest
from opsmeter_runtime.http import FieldProblem


class _Answer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class IngestBatchBody(BaseModel):
    events: list[IngestRequest] = Field(min_length=1, max_length=500)


class StatusFields(_Answer):
    """Every ingest answer carries these (SPEC §5): what to show, and that provider calls continue."""

    status: Literal["accepted", "rejected"]
    reason: Reason | None
    telemetry_paused: bool = Field(alias="telemetryPaused")
    provider_calls_continue: Literal[True] = Field(alias="providerCallsContinue")
    is_plan_limit_reached: bool = Field(alias="isPlanLimitReached")
    budget_warning: bool = Field(alias="budgetWarning")
    budget_exceeded: bool = Field(alias="budgetExceeded")
    is_budget_warning: bool = Field(alias="isBudgetWarning")
    is_budget_exceeded: bool = Field(alias="isBudgetExceeded")
    policy_mode: Literal["enforce", "observe"] = Field(alias="policyMode")
    warnings: list[str]


class BudgetScope(_Answer):
    dimension: Literal["endpointTag", "model", "userId"]
    value: str


class EventAnswer(StatusFields):
    """One event's answer: accepted (with its id and cost) or rejected (with why)."""

    event_id: str | None = Field(default=None, alias="eventId")
    cost_usd: str | None = Field(default=None, alias="costUsd")
    cost_micro_usd: int | None = Field(default=None, alias="costMicroUsd")
    priced: bool | None = None
    model_normalized: str | None = Field(default=None, alias="modelNormalized")
    price_catalog_version: str | None = Field(default=None, alias="priceCatalogVersion")
    duplicate: bool | None = None
    spooled: bool | None = None
    message: str | None = None
    errors: list[FieldProblem] | None = None
    retry_after_seconds: int | None = Field(default=None, alias="retryAfterSeconds")
    budget_scope: BudgetScope | None = Field(
        default=None,
        alias="budgetScope",
        description="A 402 budget_exceeded of a scoped budget: which one. Events outside it still go in.",
    )


class BatchEventAnswer(EventAnswer):
    index: int
    http_status: int = Field(alias="httpStatus")


class BatchAnswer(StatusFields):
    accepted: int
    rejected: int
    results: list[BatchEventAnswer]


class PriceTierRow(_Answer):
    """A context-size tier: a call with more input tokens than ``aboveInputTokens`` pays these for every token."""

    above_input_tokens: int = Field(alias="aboveInputTokens")
    input_usd_per_mtok: str | None = Field(alias="inputUsdPerMtok")
    output_usd_per_mtok: str | None = Field(alias="outputUsdPerMtok")
    cached_input_usd_per_mtok: str | None = Field(alias="cachedInputUsdPerMtok")
    cache_write_input_usd_per_mtok: str | None = Field(alias="cacheWriteInputUsdPerMtok")


class PriceRow(_Answer):
    effective_from: str | None = Field(alias="effectiveFrom")
    time_of_day_utc: str | None = Field(alias="timeOfDayUtc", description="Daily UTC interval (off-peak prices).")
    input_usd_per_mtok: str | None = Field(alias="inputUsdPerMtok")
    output_usd_per_mtok: str | None = Field(alias="outputUsdPerMtok")
    cached_input_usd_per_mtok: str | None = Field(alias="cachedInputUsdPerMtok")
    cache_write_input_usd_per_mtok: str | None = Field(alias="cacheWriteInputUsdPerMtok")
    reasoning_usd_per_mtok: str | None = Field(alias="reasoningUsdPerMtok")
    input_audio_usd_per_mtok: str | None = Field(alias="inputAudioUsdPerMtok")
    output_audio_usd_per_mtok: str | None = Field(alias="outputAudioUsdPerMtok")
    usd_per_thousand_requests: str | None = Field(alias="usdPerThousandRequests")
    tiers: list[PriceTierRow]


class PricedModel(_Answer):
    provider: str
    model: str
    name: str | None
    aliases: list[str]
    prices: list[PriceRow]


class PricingCatalog(_Answer):
    catalog_version: str = Field(alias="catalogVersion")
    unit: str
    models: list[PricedModel]


class CreatedWorkspace(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    name: str
    plan: Plan
    api_key: str = Field(alias="apiKey")
    api_key_id: str = Field(alias="apiKeyId")
    admin_token: str = Field(alias="adminToken")


class DemoLoaded(_Answer):
    status: Literal["accepted"]
    accepted: int
    data_mode: Literal["demo"] = Field(alias="dataMode")
    spike_day: str | None = Field(alias="spikeDay")
    spike_driver: str | None = Field(alias="spikeDriver")


class PlanSet(_Answer):
    status: Literal["accepted"]
    workspace_id: str = Field(alias="workspaceId")
    plan: Plan


class PlanCounters(_Answer):
    plan_tier: str = Field(alias="planTier")
    plan_name: str = Field(alias="planName")
    current_request_count: int = Field(alias="currentRequestCount")
    plan_request_limit: int | None = Field(alias="planRequestLimit")
    remaining_request_count: int | None = Field(alias="remainingRequestCount")
    period_start: str = Field(alias="periodStart")
    period_end: str = Field(alias="periodEnd")


class BudgetWindow(_Answer):
    limit_usd: str = Field(alias="limitUsd")
    current_spend_usd: str = Field(alias="currentSpendUsd")
    utilization_ratio: float = Field(alias="utilizationRatio")
    is_warning: bool = Field(alias="isWarning")
    is_exceeded: bool = Field(alias="isExceeded")
    period_start: str = Field(alias="periodStart")
    period_end: str = Field(alias="periodEnd")
    projected_end_of_period_usd: str | None = Field(default=None, alias="projectedEndOfPeriodUsd")


class BudgetStatus(_Answer):
    warning_threshold_ratio: float = Field(alias="warningThresholdRatio")
    enforcement: Literal["advisory", "hard_stop"]
    daily: BudgetWindow | None
    monthly: BudgetWindow | None


class WorkspaceStatus(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    is_plan_limit_reached: bool = Field(alias="isPlanLimitReached")
    telemetry_paused: bool = Field(alias="telemetryPaused")
    provider_calls_continue: Literal[True] = Field(alias="providerCallsContinue")
    is_budget_warning: bool = Field(alias="isBudgetWarning")
    is_budget_exceeded: bool = Field(alias="isBudgetExceeded")
    budget_warning: bool = Field(alias="budgetWarning")
    budget_exceeded: bool = Field(alias="budgetExceeded")
    policy_mode: Literal["enforce", "observe"] = Field(alias="policyMode")
    severity: Literal["ok", "warning", "critical"]
    plan: PlanCounters
    budget: BudgetStatus


class IssuedKey(_Answer):
    api_key_id: str = Field(alias="apiKeyId")
    api_key: str = Field(alias="apiKey")
    prefix: str
    name: str | None = None
    note: str | None = None
    rotated_from: str | None = Field(default=None, alias="rotatedFrom")


class KeyInfo(_Answer):
    api_key_id: str = Field(alias="apiKeyId")
    prefix: str
    name: str
    created_at: str | None = Field(alias="createdAt")
    last_used_at: str | None = Field(alias="lastUsedAt")
    revoked: bool
    revoked_at: str | None = Field(alias="revokedAt")


class KeyList(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    api_keys: list[KeyInfo] = Field(alias="apiKeys")


class IssuedAdminToken(_Answer):
    admin_token_id: str = Field(alias="adminTokenId")
    admin_token: str = Field(alias="adminToken")
    role: Literal["owner", "admin", "member"]
    name: str
    rotated_from: str | None = Field(default=None, alias="rotatedFrom")


class AdminTokenInfo(_Answer):
    admin_token_id: str = Field(alias="adminTokenId")
    prefix: str
    role: Literal["owner", "admin", "member"]
    name: str
    created_at: str | None = Field(alias="createdAt")
    last_used_at: str | None = Field(alias="lastUsedAt")
    revoked: bool
    revoked_at: str | None = Field(alias="revokedAt")


class AdminTokenList(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    admin_tokens: list[AdminTokenInfo] = Field(alias="adminTokens")


class DeletionRequested(_Answer):
    status: Literal["accepted"]
    workspace_id: str = Field(alias="workspaceId")
    data_mode: Literal["test", "demo"] = Field(alias="dataMode")
    scope: Literal["workspace", "mine"]
    api_key_ids: list[str] | None = Field(alias="apiKeyIds")
    message: str


class WorkspacePriceAnswer(_Answer):
    model: str
    provider: str | None
    effective_from: str = Field(alias="effectiveFrom")
    input_usd_per_mtok: str = Field(alias="inputUsdPerMtok")
    output_usd_per_mtok: str = Field(alias="outputUsdPerMtok")
    cached_input_usd_per_mtok: str | None = Field(alias="cachedInputUsdPerMtok")
    cache_write_input_usd_per_mtok: str | None = Field(alias="cacheWriteInputUsdPerMtok")
    reasoning_usd_per_mtok: str | None = Field(alias="reasoningUsdPerMtok")


class WorkspacePricesAnswer(_Answer):
    workspace_id: str = Field(alias="workspaceId")
    version: int
    reason: str
    prices: list[WorkspacePriceAnswer]
    repricing_from: str | None = Field(
        default=None,
        alias="repricingFrom",
        description="After a change: calls stored since this date keep their old price until re-priced; preview "
        "with POST /v1/workspaces/{id}/repricing (dryRun) from it.",
    )
