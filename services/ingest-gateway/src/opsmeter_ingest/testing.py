"""In-memory versions of the ingest ports, for unit tests of the use case without Redis or Kafka."""

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from opsmeter_contracts.pricing import WorkspacePricesSetPayload
from opsmeter_ingest.event import OutgoingEvent, Pricing
from opsmeter_ingest.ingest import Ingestor
from opsmeter_ingest.ports import Admission, AdmitItem, Admitted, Decision, Repeat, Sent, SettledEvent, Unconfirmed
from opsmeter_ingest.record import ValidatedRecord
from opsmeter_pricing import PriceQuote
from opsmeter_runtime.projections import PolicyStatus
from opsmeter_runtime.rejections import RejectionReason


@dataclass
class InMemoryAdmission:
    """One workspace's rules, as the Redis script applies them: rate limit, idempotency, quota, hard-stop."""

    rate_limit: int = 120
    quota_limit: int | None = None
    policy: PolicyStatus = field(default_factory=PolicyStatus)
    rate_used: int = 0
    quota_used: int = 0
    keys: dict[str, dict[str, Any] | Literal["pending"]] = field(default_factory=dict)

    async def admit(self, workspace_id: str, items: list[AdmitItem]) -> Admission:
        decisions: list[Decision] = []
        for external_request_id, kind, _, _, _answer, scope in items:
            if self.rate_used >= self.rate_limit:
                decisions.append("rate_limited")
                continue
            self.rate_used += 1
            known = self.keys.get(external_request_id)
            if kind == "x":
                decisions.append("invalid")
            elif known == "pending":
                decisions.append("in_flight")
            elif known is not None:
                decisions.append(Repeat(known))
            elif kind == "r" and self.quota_limit is not None and self.quota_used >= self.quota_limit:
                decisions.append("plan_limit")
            elif kind == "r" and self.policy.stops(*scope):
                decisions.append("budget_stop")
            else:
                self.quota_used += kind == "r"
                self.keys[external_request_id] = "pending"
                decisions.append(Admitted(self.policy.budget_warning, self.policy.budget_exceeded))
        return Admission(
            rate_limit=self.rate_limit,
            rate_used=self.rate_used,
            window_end=60,
            quota_limit=self.quota_limit,
            quota_used=self.quota_used,
            period="2026-12",
            policy=self.policy,
            plan="free",
            decisions=decisions,
        )

    async def first_answer(
        self, workspace_id: str, external_request_id: str
    ) -> dict[str, Any] | Literal["pending"] | None:
        return self.keys.get(external_request_id)

    def rate_state(self, workspace_id: str, now: float) -> tuple[int, int, int]:
        return self.rate_limit, max(0, self.rate_limit - self.rate_used), 60


@dataclass
class InMemorySettlement:
    """Settles at once into an :class:`InMemoryAdmission`'s keys: answers for durable events, releases for others."""

    admission: InMemoryAdmission

    def settle(self, workspace_id: str, admission: Admission, events: list[SettledEvent]) -> None:
        for (external_request_id, kind, _, _, answer, _), where in events:
            if isinstance(where, Unconfirmed):
                continue  # its key stays reserved: in flight, as far as a repeat can tell
            if where is None:
                del self.admission.keys[external_request_id]
                self.admission.quota_used -= kind == "r"
            else:
                self.admission.keys[external_request_id] = {**orjson.loads(answer), "spooled": where == "spool"}


@dataclass
class InMemoryRejections:
    """Adds up every rejection at once, per workspace and reason."""

    counts: dict[str, dict[RejectionReason, int]] = field(default_factory=dict)

    def count(self, workspace_id: str, reasons: Mapping[RejectionReason, int]) -> None:
        mine = self.counts.setdefault(workspace_id, {})
        for reason, n in reasons.items():
            mine[reason] = mine.get(reason, 0) + n


@dataclass
class InMemorySink:
    """Takes every event into ``published`` (Kafka), or into ``spooled`` while ``kafka_down``; none when ``full``."""

    kafka_down: bool = False
    full: bool = False
    published: list[OutgoingEvent] = field(default_factory=list)
    spooled: list[OutgoingEvent] = field(default_factory=list)
    unconfirmed: "asyncio.Future[bool] | None" = None
    """While set, every event is left unconfirmed (handed to Kafka, the spool broken); it says whether it landed."""

    async def publish_many(self, events: list[OutgoingEvent]) -> list[Sent]:
        if self.unconfirmed is not None:
            return [Unconfirmed(self.unconfirmed)] * len(events)
        if self.full:
            return [None] * len(events)
        if self.kafka_down:
            self.spooled.extend(events)
            return ["spool"] * len(events)
        self.published.extend(events)
        return ["kafka"] * len(events)

    def refuses(self, key: bytes, size: int) -> bool:
        return self.full


@dataclass
class FlatPriceBook:
    """Every call costs ``cost_micro_usd``, every model priced as it is named."""

    cost_micro_usd: int = 220

    @property
    def version(self) -> str:
        return "test-prices"

    def set_workspace_prices(self, workspace_id: str, payload: WorkspacePricesSetPayload) -> None:
        raise NotImplementedError("a flat price book has no workspace prices")

    def quoter(self, workspace_id: str) -> Callable[[ValidatedRecord], Pricing]:
        def quote(record: ValidatedRecord) -> Pricing:
            return PriceQuote(record.request.model, True, self.cost_micro_usd, self.version)

        return quote

    def public_catalog(self) -> dict[str, Any]:
        return {"version": self.version, "models": []}


class InMemoryWorld:
    """The ingest use case wired to the in-memory ports above (``admission`` takes InMemoryAdmission's fields)."""

    def __init__(self, **admission: Any) -> None:
        self.admission = InMemoryAdmission(**admission)
        self.sink = InMemorySink()
        self.rejections = InMemoryRejections()
        self.ingestor = Ingestor(
            admission=self.admission,
            sink=self.sink,
            prices=FlatPriceBook(),
            settlement=InMemorySettlement(self.admission),
            rejections=self.rejections,
        )
