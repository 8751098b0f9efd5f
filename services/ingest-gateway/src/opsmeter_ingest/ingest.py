"""The ingest use case: validate → admit → price → build ``LlmRequestIngested`` → publish → typed outcomes.

One request carries one event or a batch; every event gets its own outcome. An event is accepted only once
it is durable (acknowledged by Kafka, or fsynced to the spool).
"""

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from opsmeter_ingest.answer import PolicyFlags
from opsmeter_ingest.event import OutgoingEvent, budget_scope, build_event
from opsmeter_ingest.outcomes import (
    Accepted,
    BudgetStopped,
    Duplicate,
    IngestResult,
    Invalid,
    Outcome,
    PlanLimited,
    RateLimited,
    Unavailable,
    accepted_event,
)
from opsmeter_ingest.ports import (
    Admission,
    AdmissionPort,
    AdmissionUnavailable,
    AdmitItem,
    Admitted,
    Kind,
    PriceBook,
    RejectionLog,
    Repeat,
    Settlement,
    TelemetrySink,
    Unconfirmed,
)
from opsmeter_ingest.record import PayloadRejected, ValidatedRecord, validate_records
from opsmeter_ingest.windows import retry_after_s
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.rejections import RejectionReason

UNAVAILABLE_RETRY_AFTER_S = 5
"""``Retry-After`` of a 503: an event that could not be made durable, or a repeat of one still in flight."""

UNCONFIRMED = (
    "the event is not confirmed: Kafka has not acknowledged it yet and the spool cannot take it; resend it with "
    "the same externalRequestId, whose answer says whether it was taken (it is counted once either way)"
)
"""A 503 whose event the broker may take yet (ADR 62): its idempotency key stays reserved until that is known."""

INVALID = AdmitItem("invalid", "x", 0, "", b"")
"""How admission sees an event (or a body) that is not valid: counted for the rate limit, nothing else."""


_REFUSED: dict[type, RejectionReason] = {
    RateLimited: "rate_limited",
    Invalid: "invalid_payload",
    PlanLimited: "plan_limit_reached",
    BudgetStopped: "budget_exceeded",
}
"""The outcomes the workspace's usage report counts as rejections (a 503 is not one: the client sends it again)."""


@dataclass(frozen=True, slots=True)
class _Priced:
    """A valid event, priced and built, with its answer's own part (what a repeat is answered with)."""

    record: ValidatedRecord
    event: OutgoingEvent
    answer: dict[str, Any]
    item: AdmitItem


class Ingestor:
    def __init__(
        self,
        *,
        admission: AdmissionPort,
        sink: TelemetrySink,
        prices: PriceBook,
        settlement: Settlement,
        rejections: RejectionLog,
        max_timestamp_age: timedelta = timedelta(days=7),
        max_timestamp_skew: timedelta = timedelta(minutes=5),
    ) -> None:
        self._admission = admission
        self._sink = sink
        self._prices = prices
        self._settlement = settlement
        self._rejections = rejections
        self._max_age = max_timestamp_age
        self._max_skew = max_timestamp_skew

    async def ingest(self, principal: Principal, documents: list[Any]) -> IngestResult:
        workspace_id = principal.workspace_id
        priced = self._validate_and_price(documents, principal, datetime.now(UTC))
        admission = await self._admission.admit(
            workspace_id, [p.item if isinstance(p, _Priced) else INVALID for p in priced]
        )
        outcomes: list[Outcome | None] = [None] * len(priced)
        admitted: list[tuple[int, _Priced, Admitted]] = []
        repeats: list[tuple[int, str]] = []
        for index, (decision, entry) in enumerate(zip(admission.decisions, priced, strict=True)):
            if isinstance(decision, Admitted) and isinstance(entry, _Priced):
                admitted.append((index, entry, decision))
            elif decision == "in_flight" and isinstance(entry, _Priced):
                repeats.append((index, entry.record.request.external_request_id))
            else:
                outcomes[index] = self._refused(decision, entry, admission)

        durable = await self._sink.publish_many([p.event for _, p, _ in admitted]) if admitted else []
        for (index, entry, decision), where in zip(admitted, durable, strict=True):
            if where is None:
                outcomes[index] = Unavailable("the event could not be made durable")
            elif isinstance(where, Unconfirmed):
                outcomes[index] = Unavailable(UNCONFIRMED)
            else:
                answer = {**entry.answer, "duplicate": False, "spooled": where == "spool"}
                outcomes[index] = Accepted(answer, *_budget(decision))
        self._settlement.settle(
            workspace_id, admission, [(p.item, w) for (_, p, _), w in zip(admitted, durable, strict=True)]
        )
        for index, external_request_id in repeats:
            outcomes[index] = await self._answer_like_the_first(workspace_id, external_request_id)

        done = [o for o in outcomes if o is not None]
        self._count_refused(workspace_id, done)
        retry_after = (
            retry_after_s(admission.window_end, time.time()) if "rate_limited" in admission.decisions else None
        )
        if any(isinstance(o, Unavailable) for o in done):
            retry_after = max(retry_after or 0, UNAVAILABLE_RETRY_AFTER_S)
        return IngestResult(
            outcomes=done,
            flags=PolicyFlags.from_status(admission.policy, plan_limit_reached=admission.plan_limit_reached),
            rate_limit=admission.rate_limit,
            remaining=admission.remaining,
            window_end=admission.window_end,
            retry_after_s=retry_after,
        )

    async def count_request(self, principal: Principal) -> Admission:
        """Count a request with no events to decide against the rate limit: a demo load."""
        return await self._admission.admit(principal.workspace_id, [INVALID])

    async def refuse_body(self, principal: Principal) -> Admission:
        """A body refused as a whole (not JSON, not an object of events): counted against the rate limit, which is
        checked first, and as one rejection (rate-limited, or an invalid payload)."""
        admission = await self.count_request(principal)
        reason: RejectionReason = "rate_limited" if admission.decisions == ["rate_limited"] else "invalid_payload"
        self._rejections.count(principal.workspace_id, {reason: 1})
        return admission

    def _count_refused(self, workspace_id: str, outcomes: list[Outcome]) -> None:
        reasons: dict[RejectionReason, int] = {}
        for outcome in outcomes:
            reason = _REFUSED.get(type(outcome))
            if reason is not None:
                reasons[reason] = reasons.get(reason, 0) + 1
        if reasons:
            self._rejections.count(workspace_id, reasons)

    def refused_early(self, principal: Principal, size: int) -> tuple[int, int, int] | None:
        """For a body of ``size`` bytes that could only get 503s now (the sink ``refuses`` it), before any work on
        it: the rate-limit state its answer shows (it is not admitted, so not counted); None when it may go on."""
        if not self._sink.refuses(principal.workspace_id.encode(), size):
            return None
        return self._admission.rate_state(principal.workspace_id, time.time())

    def _validate_and_price(
        self, documents: list[Any], principal: Principal, now: datetime
    ) -> list[_Priced | PayloadRejected]:
        quote = self._prices.quoter(principal.workspace_id)
        priced: list[_Priced | PayloadRejected] = []
        for record in validate_records(documents, now=now, max_age=self._max_age, max_skew=self._max_skew):
            if isinstance(record, PayloadRejected):
                priced.append(record)
                continue
            pricing = quote(record)
            event = build_event(
                record,
                workspace_id=principal.workspace_id,
                api_key_id=principal.credential_id,
                pricing=pricing,
                now=now,
            )
            answer = accepted_event(event.event_id, pricing, record.warnings + pricing.warnings)
            request = record.request
            kind: Kind = "r" if request.data_mode == "real" else "o"
            item = AdmitItem(
                request.external_request_id,
                kind,
                pricing.cost_micro_usd,
                event.event_id,
                orjson.dumps(answer),
                budget_scope(record, pricing),
            )
            priced.append(_Priced(record, event, answer, item))
        return priced

    def _refused(self, decision: object, entry: "_Priced | PayloadRejected", admission: Admission) -> Outcome:
        if isinstance(decision, Repeat):
            return Duplicate({**decision.answer, "duplicate": True})
        if decision == "rate_limited":
            return RateLimited(admission.rate_limit, retry_after_s(admission.window_end, time.time()))
        if decision == "invalid" and isinstance(entry, PayloadRejected):
            return Invalid(entry.errors)
        if decision == "plan_limit":
            return PlanLimited()
        if decision == "budget_stop":
            scope = admission.policy.stopping_scope(*entry.item.scope) if isinstance(entry, _Priced) else None
            return BudgetStopped(None if admission.policy.blocks_ingest else scope)
        raise AssertionError(f"unexpected admission decision {decision!r}")

    async def _answer_like_the_first(self, workspace_id: str, external_request_id: str) -> Outcome:
        """The same externalRequestId is in flight: answer like the first once it settles (at most 2 s)."""
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                first = await self._admission.first_answer(workspace_id, external_request_id)
            except AdmissionUnavailable:
                break
            if first is None:
                break
            if first != "pending":
                return Duplicate({**first, "duplicate": True})
            await asyncio.sleep(0.02)
        return Unavailable("the same externalRequestId is being processed; retry")


def _budget(decision: Admitted) -> tuple[bool, bool]:
    return decision.budget_warning, decision.budget_exceeded
