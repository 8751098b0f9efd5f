"""Pricing events (ADR 57): a workspace's own prices, and cost corrections when calls are re-priced."""

from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, Field

from opsmeter_contracts.envelope import EventEnvelope, Payload
from opsmeter_contracts.registry import event


class WorkspacePriceRow(Payload):
    """A model name or ``*`` pattern priced in integer micro-USD per 1M tokens from ``effective_from``."""

    model: str = Field(min_length=1, max_length=128)
    provider: str | None = Field(default=None, max_length=64)
    effective_from: AwareDatetime
    input_micro_usd_per_mtok: int = Field(ge=0, le=10**12)
    output_micro_usd_per_mtok: int = Field(ge=0, le=10**12)
    cached_input_micro_usd_per_mtok: int | None = Field(default=None, ge=0, le=10**12)
    cache_write_input_micro_usd_per_mtok: int | None = Field(default=None, ge=0, le=10**12)
    reasoning_micro_usd_per_mtok: int | None = Field(default=None, ge=0, le=10**12)


class WorkspacePricesSetPayload(Payload):
    """The workspace's whole price list at ``version`` (each change replaces it), and who changed it."""

    version: int = Field(ge=1)
    prices: tuple[WorkspacePriceRow, ...] = Field(max_length=200)
    changed_by_credential_id: str = Field(max_length=64)
    changed_by_role: Literal["owner", "admin"]
    reason: str = Field(default="", max_length=500)


@event
class WorkspacePricesSet(EventEnvelope[WorkspacePricesSetPayload]):
    """Published by the gateway on ``workspaces.events``; the gateway's price projection is rebuilt from it."""

    type: Literal["pricing.workspace_prices_set"] = "pricing.workspace_prices_set"
    version: Literal[1] = 1


class CostCorrectedPayload(Payload):
    """A stored call re-priced: its computed cost moves by ``computed_delta_micro_usd``, and the cost budgets and
    reports count (by the workspace's cost basis when it was stored) by ``delta_micro_usd``. The envelope's
    ``occurred_at`` is the corrected call's, so every window the call counted in moves."""

    corrected_event_id: UUID
    repricing_id: str = Field(min_length=1, max_length=64)
    provider: str = Field(max_length=64)
    model_normalized: str = Field(max_length=128)
    endpoint_tag: str = Field(max_length=128)
    user_id: str = Field(max_length=128)
    prompt_version: str | None = Field(default=None, max_length=64)
    data_mode: Literal["real", "test", "demo"]
    had_reported_cost: bool = False
    computed_delta_micro_usd: int
    delta_micro_usd: int
    new_cost_micro_usd: int = Field(ge=0, description="The call's computed cost after the correction.")
    price_catalog_version: str
    price_row: str | None = Field(default=None, max_length=300)
    requested_by: str = Field(max_length=64)


@event
class CostCorrected(EventEnvelope[CostCorrectedPayload]):
    """Published by reporting's re-pricing on ``telemetry.llm-requests``; budgets and reports add the delta."""

    type: Literal["telemetry.cost_corrected"] = "telemetry.cost_corrected"
    version: Literal[1] = 1


class RepricingAppliedPayload(Payload):
    """The audit record of one applied re-pricing: who, what range, why, and what moved."""

    repricing_id: str = Field(min_length=1, max_length=64)
    range_from: AwareDatetime
    range_to: AwareDatetime
    data_mode: Literal["real", "test", "demo"]
    models: tuple[str, ...] = Field(default=(), max_length=200, description="Empty: every model.")
    corrected_events: int = Field(ge=0)
    delta_micro_usd: int
    price_catalog_version: str
    workspace_prices_version: int = Field(ge=0)
    requested_by: str = Field(max_length=64)
    requested_by_role: Literal["owner", "admin"]
    reason: str = Field(max_length=500)


@event
class RepricingApplied(EventEnvelope[RepricingAppliedPayload]):
    type: Literal["pricing.repricing_applied"] = "pricing.repricing_applied"
    version: Literal[1] = 1
