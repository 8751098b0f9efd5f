"""What the ingest use case answers for each event, as types; the route renders them (``api/ingest_http.py``)."""

from dataclasses import dataclass
from typing import Any

from opsmeter_ingest.answer import PolicyFlags
from opsmeter_ingest.event import Pricing
from opsmeter_ingest.record import FieldError
from opsmeter_runtime.money import format_micro_usd


def accepted_event(event_id: str, pricing: Pricing, warnings: tuple[str, ...]) -> dict[str, Any]:
    """An accepted event's own part of its answer (stored for repeats): its id, its cost and its price."""
    return {
        "eventId": event_id,
        "costUsd": format_micro_usd(pricing.cost_micro_usd),
        "costMicroUsd": pricing.cost_micro_usd,
        "priced": pricing.priced,
        "modelNormalized": pricing.model_normalized,
        "priceCatalogVersion": pricing.catalog_version,
        "warnings": list(warnings),
    }


@dataclass(frozen=True, slots=True)
class Accepted:
    """202: the event is durable (in Kafka; or in the spool, ``event["spooled"]``)."""

    event: dict[str, Any]
    budget_warning: bool
    budget_exceeded: bool


@dataclass(frozen=True, slots=True)
class Duplicate:
    """202: a repeat of an accepted externalRequestId, answered like the first (``event`` is its stored answer)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Invalid:
    """422: a field breaks a rule."""

    errors: list[FieldError]


@dataclass(frozen=True, slots=True)
class RateLimited:
    """429: over the per-minute limit."""

    limit: int
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class PlanLimited:
    """402: the plan's request quota for the period is used up."""


@dataclass(frozen=True, slots=True)
class BudgetStopped:
    """402: the budget is exceeded and the workspace enforces hard-stop."""

    scope: tuple[str, str] | None = None
    """The exceeded scoped budget (dimension, value) that stops this event; None: a workspace budget."""


@dataclass(frozen=True, slots=True)
class Unavailable:
    """503: the event could be neither published nor spooled (or its first is still in flight)."""

    message: str


Outcome = Accepted | Duplicate | Invalid | RateLimited | PlanLimited | BudgetStopped | Unavailable


@dataclass(frozen=True)
class IngestResult:
    """One request's outcomes (one per event, in order) and what its answer's headers say."""

    outcomes: list[Outcome]
    flags: PolicyFlags
    rate_limit: int
    remaining: int
    window_end: int
    retry_after_s: int | None
