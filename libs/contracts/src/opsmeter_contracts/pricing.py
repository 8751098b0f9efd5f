"""Pricing events (ADR 57): a workspace's own prices, and cost corrections when calls are re-priced."""

from typing import Literal

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
