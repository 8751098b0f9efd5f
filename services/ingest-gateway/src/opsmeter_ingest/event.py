"""The ``LlmRequestIngested`` event of an accepted record: built from the record's model, validated by the contract."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from opsmeter_contracts import LlmRequestIngested, encode_event
from opsmeter_contracts.events import LlmRequestIngestedPayload
from opsmeter_ingest.record import UNKNOWN, ValidatedRecord
from opsmeter_pricing import PriceQuote

Pricing = PriceQuote
"""What the gateway needs of a price: the catalog's quote of one call."""

EVENT_NAMESPACE = uuid.UUID("6f1c1d52-5d0e-4d7c-9a5e-6f70736d6574")

_NOT_IN_EVENT = {"timestamp", "reported_cost_usd"}
"""Record fields the event carries otherwise (the call's time is its ``occurred_at``, money in micro-USD)."""


def event_uuid(workspace_id: str, external_request_id: str) -> uuid.UUID:
    """Deterministic: the same LLM call from the same workspace is the same event everywhere downstream."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{workspace_id}\x1f{external_request_id}")


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """An event ready for the topic: its id, partition key and the contract's JSON."""

    event_id: str
    key: bytes
    value: bytes


def budget_scope(record: ValidatedRecord, pricing: Pricing) -> tuple[str, str, str]:
    """The event's (endpointTag, normalized model, userId): what its scoped budgets count and stop."""
    request = record.request
    return request.endpoint_tag or UNKNOWN, pricing.model_normalized, request.user_id or UNKNOWN


def build_event(
    record: ValidatedRecord, *, workspace_id: str, api_key_id: str, pricing: Pricing, now: datetime
) -> OutgoingEvent:
    """The record's event: every field it has by name, the server's defaults and the price; checked by the contract.

    A field added to the record and to the contract's payload flows through here without a change.
    """
    request = record.request
    endpoint_tag, model_normalized, user_id = budget_scope(record, pricing)
    payload = LlmRequestIngestedPayload.model_validate(
        {
            **request.model_dump(exclude_none=True, exclude=_NOT_IN_EVENT),
            "provider": request.provider.lower(),
            "endpoint_tag": endpoint_tag,
            "user_id": user_id,
            "total_tokens": request.input_tokens + request.output_tokens,
            "model_normalized": model_normalized,
            "cost_micro_usd": pricing.cost_micro_usd,
            "priced": pricing.priced,
            "price_catalog_version": pricing.catalog_version,
            "price_row": pricing.price_row,
            "price_tier_start_tokens": pricing.tier_start,
            "reported_cost_micro_usd": record.reported_cost_micro_usd,
            "api_key_id": api_key_id,
        }
    )
    event_id = event_uuid(workspace_id, request.external_request_id)
    event = LlmRequestIngested(
        event_id=event_id,
        occurred_at=record.occurred_at,
        ingested_at=now,
        workspace_id=workspace_id,
        payload=payload,
    )
    return OutgoingEvent(str(event_id), event.key, encode_event(event))
