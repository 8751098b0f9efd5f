"""What the ingest use case needs from the world, as small Protocols (real adapters in ``adapters/``,
in-memory ones in ``testing``), and the typed values that cross them."""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Protocol

from opsmeter_contracts.pricing import WorkspacePricesSetPayload
from opsmeter_ingest.event import OutgoingEvent, Pricing
from opsmeter_ingest.record import ValidatedRecord
from opsmeter_runtime.projections import PolicyStatus
from opsmeter_runtime.rejections import RejectionReason

Kind = Literal["x", "r", "o"]
"""How admission sees an event: 'x' invalid, 'r' valid and counted toward the quota (dataMode=real), 'o' valid
and not counted."""


class AdmitItem(NamedTuple):
    """One event as admission sees it. The stored answer (JSON) is what a repeat is answered with once the event is
    durable; the scope is what a scoped budget's hard-stop looks at (it refuses its own events only)."""

    external_request_id: str
    kind: Kind
    cost_micro_usd: int
    event_id: str
    answer: bytes
    scope: tuple[str, str, str] = ("", "", "")
    """(endpointTag, normalized model, userId)."""


Durability = Literal["kafka", "spool"]
"""Where an event became durable."""


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """An event handed to Kafka that was neither acknowledged in time nor spooled: the broker may take it yet.

    ``landed`` settles once the producer knows: True when the broker acknowledged it after all, False when the
    producer gave up. Its answer now is a 503 (not confirmed); its idempotency key stays reserved until then, so
    a retry with the same externalRequestId learns which way it went (ADR 62).
    """

    landed: Awaitable[bool]


Sent = Durability | Unconfirmed | None
"""What became of an event handed to the sink: durable (where), unconfirmed, or None: refused, nothing kept."""


@dataclass(frozen=True, slots=True)
class Admitted:
    """The event may go in (its quota unit and budget reserved); the budget flags its answer shows."""

    budget_warning: bool = False
    budget_exceeded: bool = False


@dataclass(frozen=True, slots=True)
class Repeat:
    """The externalRequestId was accepted before: the first event's stored answer, as data."""

    answer: dict[str, Any]


Refusal = Literal["rate_limited", "invalid", "in_flight", "plan_limit", "budget_stop"]
"""An event admission did not let in: over the rate limit, invalid (counted for the rate limit only), the same
externalRequestId still in flight, the plan quota used up, or the budget's hard-stop."""

Decision = Admitted | Repeat | Refusal


@dataclass(frozen=True)
class Admission:
    """Admission's answer for one request: the workspace's counters and one decision per event, in order."""

    rate_limit: int
    rate_used: int
    window_end: int
    quota_limit: int | None
    quota_used: int
    period: str
    policy: PolicyStatus
    plan: str | None
    decisions: list[Decision]
    degraded: bool = False
    """Decided in-process while Redis was away."""
    token: str = ""
    """The request's token: its events' keys name it until one write settles them all (``lua/idem.lua``)."""

    @property
    def remaining(self) -> int:
        return max(0, self.rate_limit - self.rate_used)

    @property
    def plan_limit_reached(self) -> bool:
        return self.quota_limit is not None and self.quota_used >= self.quota_limit


class AdmissionPort(Protocol):
    """Rate limit, idempotency, plan quota and budget hard-stop, decided atomically for a request's events."""

    async def admit(self, workspace_id: str, items: list[AdmitItem]) -> Admission: ...

    async def first_answer(
        self, workspace_id: str, external_request_id: str
    ) -> dict[str, Any] | Literal["pending"] | None:
        """A repeat's wait: the first event's stored answer, 'pending' while in flight, None when it may go in anew."""

    def rate_state(self, workspace_id: str, now: float) -> tuple[int, int, int]:
        """``(limit, remaining, window end)`` as the last admission left them, for an answer that was not admitted."""


SettledEvent = tuple[AdmitItem, Sent]
"""An admitted event and what became of it: durable (its key answers repeats), unconfirmed (its key stays reserved
until the producer knows), or None (its reservation is released)."""


class Settlement(Protocol):
    """Makes admitted events' keys answer repeats once they are durable (off the answer's path)."""

    def settle(self, workspace_id: str, admission: Admission, events: list[SettledEvent]) -> None: ...


class RejectionLog(Protocol):
    """Counts the events refused for a known workspace, by reason, for its usage report (SPEC §5: none is silent)."""

    def count(self, workspace_id: str, reasons: Mapping[RejectionReason, int]) -> None:
        """Add these; never blocks the answer and never fails it (written off the answer's path)."""


class TelemetrySink(Protocol):
    async def publish_many(self, events: list[OutgoingEvent]) -> list[Sent]:
        """Where each event became durable (Kafka or the spool); Unconfirmed when the producer holds it yet
        and the spool could not take it; None when nothing of it was kept."""

    def refuses(self, key: bytes, size: int) -> bool:
        """Whether events of ``key`` of about ``size`` bytes could not be made durable now, for certain."""


class PriceBook(Protocol):
    @property
    def version(self) -> str: ...

    def quoter(self, workspace_id: str) -> Callable[[ValidatedRecord], Pricing]:
        """Prices the workspace's records at the price effective when each call happened (its own prices first,
        ADR 57); one per request (it keeps what it resolved)."""

    def set_workspace_prices(self, workspace_id: str, payload: WorkspacePricesSetPayload) -> None:
        """Apply a workspace's new price list in this process at once (other processes reload it)."""

    def public_catalog(self) -> dict[str, Any]: ...


class AdmissionUnavailable(Exception):
    """Admission could not be asked: Redis did not answer in time (``timed_out``) or refused the connection."""

    def __init__(self, message: str, *, timed_out: bool = True) -> None:
        super().__init__(message)
        self.timed_out = timed_out
