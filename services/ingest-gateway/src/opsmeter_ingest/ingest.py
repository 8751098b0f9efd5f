"""The ingest use case: validate → admit (rate limit, idempotency, budget, quota) → price → publish → settle.

One request may carry one event or a batch; every event gets its own outcome. An event is answered
202 only once it is durable (acknowledged by Kafka, or fsynced to the spool).
"""

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from opsmeter_ingest.adapters import Durability, PriceBook, TelemetrySink
from opsmeter_ingest.adapters.admission import (
    Admission,
    AdmissionUnavailable,
    AdmitItem,
    DegradedAdmission,
    DegradedSettlement,
    Kind,
    RedisAdmission,
    Settlement,
    Settler,
)
from opsmeter_ingest.adapters.notices import PlanLimitNotices
from opsmeter_ingest.config import GatewaySettings
from opsmeter_ingest.domain import (
    AcceptedAnswers,
    EventWriter,
    IngestRequest,
    OutgoingEvent,
    PayloadRejected,
    PolicyFlags,
    Pricing,
    ValidatedRecord,
    answer_body,
    rate_limit_headers,
    retry_after_s,
    validate_records,
)
from opsmeter_ingest.metrics import DEGRADED_DECISIONS, count_outcomes
from opsmeter_runtime.auth import Principal
from opsmeter_runtime.logs import bind_contextvars, get_logger

log = get_logger(__name__)


@dataclass(slots=True)
class Outcome:
    """One event's answer: its HTTP status, its reason (for the metrics) and its body, rendered once.

    The body is JSON without its closing brace, so a batch's 207 numbers each result by appending its
    position (:meth:`numbered`) and a single answer just closes it (:meth:`answer`): no answer is built
    or serialised twice.
    """

    status: int
    reason: str | None
    json: bytes

    @classmethod
    def of(cls, status: int, body: dict[str, Any]) -> "Outcome":
        return cls(status, body["reason"], orjson.dumps(body)[:-1])

    def answer(self) -> orjson.Fragment:
        return orjson.Fragment(self.json + b"}")

    def numbered(self, index: int) -> bytes:
        """This answer as a result of a batch: with its position and its status."""
        return b'%b,"index":%d,"httpStatus":%d}' % (self.json, index, self.status)


@dataclass(frozen=True)
class IngestResult:
    outcomes: list[Outcome]
    headers: dict[str, str]
    admission: Admission


@dataclass(slots=True)
class _Checked:
    """One valid event: its record, priced and encoded, its answer; once admitted, where its answer goes and how."""

    record: ValidatedRecord
    event: OutgoingEvent
    pricing: Pricing
    warnings: tuple[str, ...]
    stored: bytes
    """Its part of an accepted answer as stored for repeats, as it is once in Kafka (``spooled`` false)."""
    part: bytes
    """The same without its braces: what follows the status fields in its own answer."""
    index: int = 0
    status: bytes = b""
    """The status fields of its answer as open JSON (shared by the events admitted with the same flags)."""


UNAVAILABLE_RETRY_AFTER_S = 5
"""``Retry-After`` of a 503: an event that could not be made durable (Kafka slow and the spool full), or a
repeat of an event still being processed."""

_INVALID: AdmitItem = ("invalid", "x", 0, "", b"")
"""How admission sees an event (or a body) that is not valid: counted for the rate limit, nothing else."""


def _kind(request: IngestRequest) -> Kind:
    """How admission and the reconcile see a valid event: 'r' counts toward the quota (dataMode=real)."""
    return "r" if request.data_mode == "real" else "o"


def _open_status(body: dict[str, Any]) -> bytes:
    """An accepted answer's status fields as JSON left open for the event's own part (which has its warnings)."""
    del body["warnings"]
    return orjson.dumps(body)[:-1] + b","


class Ingestor:
    def __init__(
        self,
        *,
        settings: GatewaySettings,
        admission: RedisAdmission,
        degraded: DegradedAdmission,
        settler: Settler,
        sink: TelemetrySink,
        prices: PriceBook,
        notices: PlanLimitNotices,
    ) -> None:
        self._notices = notices
        self._settler = settler
        self._settings = settings
        self._admission = admission
        self._degraded = degraded
        self._sink = sink
        self._prices = prices
        self._max_age = timedelta(seconds=settings.max_timestamp_age_s)
        self._max_skew = timedelta(seconds=settings.max_timestamp_skew_s)

    def _checked(
        self, documents: list[Any], principal: Principal, now: datetime
    ) -> tuple[list["_Checked | PayloadRejected"], list[AdmitItem]]:
        """Each document validated, priced and encoded as its event; and how admission sees each."""
        records = validate_records(documents, now=now, max_age=self._max_age, max_skew=self._max_skew)
        writer = EventWriter(workspace_id=principal.workspace_id, api_key_id=principal.credential_id, now=now)
        quote = self._prices.quoter()
        answers = AcceptedAnswers()
        checked: list[_Checked | PayloadRejected] = []
        items: list[AdmitItem] = []
        for record in records:
            if isinstance(record, PayloadRejected):
                checked.append(record)
                items.append(_INVALID)
                continue
            pricing = quote(record)
            event = writer.event(record, pricing)
            warnings = record.warnings + pricing.warnings if pricing.warnings else record.warnings
            # Rendered before admission, which stores it with the key: a repeat's answer once this is durable.
            stored, part = answers.render(b"", event.event_id, pricing, warnings, spooled=False)
            checked.append(_Checked(record, event, pricing, warnings, stored, part))
            request = record.request
            items.append((request.external_request_id, _kind(request), pricing.cost_micro_usd, event.event_id, stored))
        return checked, items

    async def ingest(self, principal: Principal, documents: list[Any]) -> IngestResult:
        now = datetime.now(UTC)
        checked, items = self._checked(documents, principal, now)
        admission = await self._admit(principal.workspace_id, items)
        flags = PolicyFlags.from_status(
            admission.policy,
            plan_limit_reached=admission.quota_limit is not None and admission.quota_used >= admission.quota_limit,
        )
        outcomes: list[Outcome | None] = [None] * len(documents)
        admitted: list[_Checked] = []
        waits: list[tuple[int, ValidatedRecord]] = []
        statuses: dict[str, bytes] = {}
        for index, (code, entry) in enumerate(zip(admission.codes, checked, strict=True)):
            if code[0] == "A" and isinstance(entry, _Checked):
                status = statuses.get(code)
                if status is None:
                    these = replace(flags, budget_warning=code[1] == "1", budget_exceeded=code[2] == "1")
                    status = statuses[code] = _open_status(answer_body(status="accepted", reason=None, flags=these))
                entry.index, entry.status = index, status
                admitted.append(entry)
            elif code == "P" and isinstance(entry, _Checked):
                waits.append((index, entry.record))
            else:
                outcomes[index] = self._rejection(code, entry, admission, flags)
        if len(admitted) == 1 and len(documents) == 1:
            bind_contextvars(event_id=admitted[0].event.event_id)

        if "Q" in admission.codes and admission.quota_limit is not None:
            await self._notices.reached(principal.workspace_id, admission.plan, admission.quota_limit, admission.period)
        durable = await self._sink.publish_many([i.event for i in admitted]) if admitted else []
        self._answer_admitted(admitted, durable, outcomes, flags)
        self._settle(principal.workspace_id, admission, admitted, durable)
        for index, record in waits:
            outcomes[index] = await self._await_first(principal.workspace_id, record, flags)

        done = [o for o in outcomes if o is not None]
        count_outcomes(done)
        headers = rate_limit_headers(admission.rate_limit, admission.remaining, admission.window_end)
        retry_after = retry_after_s(admission.window_end, time.time()) if "R" in admission.codes else 0  # a 429
        if any(o.status == 503 for o in done):
            retry_after = max(retry_after, UNAVAILABLE_RETRY_AFTER_S)
        if retry_after:
            headers["Retry-After"] = str(retry_after)
        return IngestResult(done, headers, admission)

    def refused_early(self, principal: Principal, size: int) -> dict[str, str] | None:
        """The headers of a 503 for a body of ``size`` bytes that could only get 503s now (see the sink's
        ``refuses``), before any work on it; None when it may go on.

        It is not admitted, so not counted: its rate-limit headers are those the workspace's last
        admission here left (a new window: the whole limit).
        """
        if not self._sink.refuses(principal.workspace_id.encode(), size):
            return None
        headers = rate_limit_headers(*self._degraded.rate_state(principal.workspace_id, time.time()))
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return headers

    async def admit_unparsed(self, principal: Principal) -> Admission:
        """Count a request whose body is not JSON (or not JSON at all) against the rate limit."""
        return await self._admit(principal.workspace_id, [_INVALID])

    async def _admit(self, workspace_id: str, items: list[AdmitItem]) -> Admission:
        degraded = self._degraded
        if degraded.redis_away(time.monotonic()):
            DEGRADED_DECISIONS.inc(len(items))
            return degraded.admit(workspace_id, items, time.time())
        try:
            admission = await self._admission.admit(workspace_id, items)
        except AdmissionUnavailable as exc:
            log.warning("admission_degraded", error=str(exc))
            degraded.mark_away(time.monotonic())
            DEGRADED_DECISIONS.inc(len(items))
            return degraded.admit(workspace_id, items, time.time())
        degraded.mark_back()
        degraded.remember(workspace_id, admission)
        await self._reconcile(workspace_id)
        return admission

    async def reconcile_forever(self, interval_s: float = 0.5) -> None:
        """Settle what was decided in-process as soon as Redis answers again, whether or not requests come."""
        while True:
            await asyncio.sleep(interval_s)
            for workspace_id in self._degraded.pending_workspaces():
                if self._degraded.redis_away(time.monotonic()):
                    break
                await self._reconcile(workspace_id)

    async def _reconcile(self, workspace_id: str) -> None:
        """Settle with Redis what was decided in-process while it was away (or answered too late), once.

        Each list is taken before the call is awaited: concurrent requests of the workspace find it gone
        and do not send it again; if Redis fails meanwhile, it is put back (before what came since). A
        reconcile applied twice changes nothing the second time, so putting back a part already applied
        is safe.
        """
        pending, overflow = self._degraded.unreconciled, self._degraded.overflow
        for key in [key for key in pending if key[0] == workspace_id]:
            settlements = pending.pop(key, [])
            if not settlements:
                continue
            try:
                counted = await self._admission.reconcile(key[0], key[1], settlements)
            except Exception as exc:  # Redis away again: keep them for next time
                pending[key] = settlements + pending.get(key, [])
                self._degraded.mark_away(time.monotonic())
                log.warning("quota_reconcile_failed", error=str(exc))
                return
            self._degraded.mark_back()
            log.info("quota_reconciled", period=key[1], events=len(settlements), counted=counted)
        for key in [key for key in overflow if key[0] == workspace_id]:
            count = overflow.pop(key, 0)
            try:
                await self._admission.reconcile_count(key[0], key[1], count)
            except Exception as exc:
                overflow[key] = overflow.get(key, 0) + count
                log.warning("quota_reconcile_failed", error=str(exc))
                return

    def _answer_admitted(
        self,
        admitted: list[_Checked],
        durable: list[Durability | None],
        outcomes: list[Outcome | None],
        flags: PolicyFlags,
    ) -> None:
        """Answer each admitted event: 202 once durable (with ``spooled`` true if in the spool), else 503."""
        answers: AcceptedAnswers | None = None
        for item, where in zip(admitted, durable, strict=True):
            if where is None:
                outcomes[item.index] = self._unavailable(flags)
                continue
            if where == "spool":
                answers = answers or AcceptedAnswers()
                item.stored, item.part = answers.render(
                    b"", item.event.event_id, item.pricing, item.warnings, spooled=True
                )
            outcomes[item.index] = Outcome(202, None, item.status + item.part)

    def _settle(
        self, workspace_id: str, admission: Admission, admitted: list[_Checked], durable: list[Durability | None]
    ) -> None:
        """Make the keys of admitted events answer repeats once durable, and give back those of the others.

        A request of several events that all went the same way is settled with one write (its record, see
        ``lua/idem.lua``); otherwise each event: its stored answer, or its reservation released ('-' for a
        real event, '~' another) so that a retry counts as new. (A single event is settled on its own: that
        is one write too, and its key then holds its answer, without a record beside it for 24 h.)
        """
        if not admitted:
            return
        if admission.degraded:
            # Decided in-process: kept, as they ended, for the reconcile (which counts each durable real
            # event once, whatever Redis saw of it). Nothing is counted before an event's end is known.
            degraded: list[DegradedSettlement] = []
            for item, where in zip(admitted, durable, strict=True):
                request = item.record.request
                if where is not None:
                    self._degraded.record_answer(workspace_id, request.external_request_id, item.stored.decode())
                ended: bytes | str = item.stored if where is not None else "-"
                degraded.append((request.external_request_id, ended, item.event.event_id, _kind(request)))
            self._degraded.settled(workspace_id, admission.period, degraded)
            return
        first = durable[0]
        if len(durable) > 1 and first is not None and durable.count(first) == len(durable):
            self._settler.submit(workspace_id, admission.period, admission.token, first)
            return
        settlements: list[Settlement] = []
        for item, where in zip(admitted, durable, strict=True):
            request = item.record.request
            outcome: bytes | str = item.stored if where is not None else "-" if _kind(request) == "r" else "~"
            settlements.append((request.external_request_id, outcome, item.event.event_id))
        self._settler.submit(workspace_id, admission.period, admission.token, settlements)

    async def _await_first(self, workspace_id: str, record: ValidatedRecord, flags: PolicyFlags) -> Outcome:
        """The same externalRequestId is in flight: answer like the first once it settles."""
        ext_id = record.request.external_request_id
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                stored = await self._admission.read_answer(workspace_id, ext_id)
            except AdmissionUnavailable:
                break
            if stored is None:
                break
            if stored != "pending":
                return self._duplicate(stored, flags)
            await asyncio.sleep(0.02)
        return self._unavailable(flags, "the same externalRequestId is being processed; retry")

    def _duplicate(self, stored: str, flags: PolicyFlags) -> Outcome:
        first: dict[str, Any] = orjson.loads(stored)
        first["duplicate"] = True
        return Outcome.of(202, answer_body(status="accepted", reason=None, flags=flags, **first))

    def _unavailable(self, flags: PolicyFlags, message: str = "the event could not be made durable") -> Outcome:
        return Outcome.of(
            503, answer_body(status="rejected", reason="unavailable", flags=flags, message=f"{message}; retry later")
        )

    def _rejection(
        self, code: str, record: "_Checked | PayloadRejected", admission: Admission, flags: PolicyFlags
    ) -> Outcome:
        if code.startswith("D"):
            return self._duplicate(code[1:], flags)
        if code == "R":
            return Outcome.of(
                429,
                answer_body(
                    status="rejected",
                    reason="rate_limited",
                    flags=flags,
                    message=f"over {admission.rate_limit} requests per minute; telemetry only, provider calls continue",
                    retryAfterSeconds=retry_after_s(admission.window_end, time.time()),
                ),
            )
        if code == "X" and isinstance(record, PayloadRejected):
            return Outcome.of(
                422,
                answer_body(
                    status="rejected",
                    reason="invalid_payload",
                    flags=flags,
                    message="a field breaks a rule",
                    errors=[e.as_json() for e in record.errors],
                ),
            )
        if code == "Q":
            paused = PolicyFlags(flags.budget_warning, flags.budget_exceeded, flags.policy_mode, True)
            return Outcome.of(
                402,
                answer_body(
                    status="rejected",
                    reason="plan_limit_reached",
                    flags=paused,
                    telemetry_paused=True,
                    message="Telemetry paused due to plan limit. LLM calls keep running.",
                ),
            )
        if code == "B":
            return Outcome.of(
                402,
                answer_body(
                    status="rejected",
                    reason="budget_exceeded",
                    flags=flags,
                    telemetry_paused=True,
                    message="budget exceeded and the workspace enforces hard-stop; provider calls continue",
                ),
            )
        raise AssertionError(f"unexpected admission code {code!r}")
