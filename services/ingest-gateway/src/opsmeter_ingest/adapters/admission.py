"""Admission control in one Redis round trip: rate limit, idempotency, plan quota, budget hard-stop.

The Lua scripts beside this file hold the rules that must be atomic across every gateway process.
When Redis is unreachable, :class:`DegradedAdmission` decides in-process (fail open) and remembers
what it let through, so quotas are reconciled once Redis answers again.
"""

import asyncio
import contextlib
import itertools
import secrets
import time
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from opsmeter_ingest.adapters.notices import PlanLimitNotices
from opsmeter_ingest.metrics import DEGRADED_DECISIONS
from opsmeter_ingest.ports import (
    Admission,
    AdmissionUnavailable,
    AdmitItem,
    Admitted,
    Decision,
    Durability,
    Repeat,
    SettledEvent,
    Unconfirmed,
)
from opsmeter_ingest.windows import FixedWindow, month_period
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PolicyStatus, plan_key, policy_pending_key, policy_status_key
from opsmeter_runtime.redis import workspace_tag
from opsmeter_runtime.redis_scripts import RedisScripts, ScriptError, ScriptsUnavailable

log = get_logger(__name__)

ANSWER_TTL_S = 24 * 3600


Settlement = tuple[str, bytes | str, str]
"""``(external_request_id, outcome, event id)``; the outcome is the stored answer (JSON bytes), or '-' to
release a real event, '~' to release another."""

RequestSettlement = tuple[str, str, str, "Durability | list[Settlement]"]
"""``(workspace_id, period, token, outcome)``: a request's admitted events, settled with one write when they all
went the same way (where they went), else event by event."""

_RECORDS: dict[Durability, str] = {"kafka": "k", "spool": "s"}
"""What a request's record says (``lua/idem.lua``) of events that all went to Kafka, or all to the spool."""

DegradedSettlement = tuple[str, bytes | str, str, str]
"""An event decided in-process, for :meth:`RedisAdmission.reconcile`: ``(external_request_id, stored answer
or '-' when it could not be made durable, event id, 'r' for real data or 'o')``."""

MAX_UNRECONCILED = 200_000
"""Events decided in-process kept one by one for the reconcile; beyond, durable real ones are only counted
(and may then count twice if Redis had admitted them after all: a reply that came too late)."""

PENDING_TTL_S = 60

SETTLE_TIMEOUT_S = 2.0
"""Deadline of a settlement or reconcile write: off the answer's path, so not the admission's 100 ms (a write
of thousands of events that timed out would be retried whole, again and again)."""

MAX_SETTLE_EVENTS = 2_000
"""The most events one settlement write carries: a few milliseconds of Redis's time, well inside the
scripts' deadline however many full batches are waiting."""


def rate_key(workspace_id: str) -> str:
    return f"opsmeter:rl:{workspace_tag(workspace_id)}"


def quota_key(workspace_id: str) -> str:
    return f"opsmeter:quota:{workspace_tag(workspace_id)}"


def idempotency_prefix(workspace_id: str) -> str:
    """The idempotency keys of a workspace: this prefix and the ``externalRequestId``."""
    return f"opsmeter:idem:{workspace_tag(workspace_id)}:"


def idempotency_key(workspace_id: str, external_request_id: str) -> str:
    return idempotency_prefix(workspace_id) + external_request_id


def record_prefix(workspace_id: str) -> str:
    """The records of a workspace's requests: this prefix and the request's token (see ``lua/idem.lua``)."""
    return f"opsmeter:idemreq:{workspace_tag(workspace_id)}:"


def _stored_answer(answer: str, spooled: bool | None) -> dict[str, Any]:
    """A stored answer as data; ``spooled`` from the request's record when it says (else the answer does)."""
    stored: dict[str, Any] = orjson.loads(answer)
    if spooled is not None:
        stored["spooled"] = spooled
    return stored


_REFUSALS: dict[str, Decision] = {
    "rate_limited": "rate_limited",
    "invalid": "invalid",
    "in_flight": "in_flight",
    "plan_limit": "plan_limit",
    "budget_stop": "budget_stop",
}


def _decision(reply: dict[str, Any]) -> Decision:
    outcome = reply["outcome"]
    if outcome == "admitted":
        return Admitted(reply["budget_warning"], reply["budget_exceeded"])
    if outcome == "repeat":
        return Repeat(_stored_answer(reply["answer"], reply.get("spooled")))
    return _REFUSALS[outcome]


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def admission_scripts(url: str, *, timeout_s: float, cluster: bool = False) -> RedisScripts:
    """The admission and settlement scripts over their own pipelined connection."""
    lua = files("opsmeter_ingest.adapters") / "lua"
    # Shared rules are functions of their own files, prepended to each script that uses them: what a key's
    # value says and how a reservation is written (idem.lua), and how one is released (release.lua).
    uses = {
        "admit": ["idem", "release"],
        "settle": ["idem", "release"],
        "reconcile": ["idem", "release"],
        "lookup": ["idem"],
    }
    return RedisScripts(
        url,
        {name: "".join((lua / f"{part}.lua").read_text() for part in [*parts, name]) for name, parts in uses.items()},
        timeout_s=timeout_s,
        cluster=cluster,
    )


class RedisAdmission:
    def __init__(self, redis: Redis, scripts: RedisScripts, *, default_rate_limit: int, default_quota: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._head = (str(default_rate_limit), str(default_quota), str(PENDING_TTL_S), str(ANSWER_TTL_S))
        # A request's token: this process's random part and a counter, unique across processes and restarts.
        self._process = secrets.token_hex(6)
        self._requests = itertools.count()

    async def admit(self, workspace_id: str, items: list[AdmitItem]) -> Admission:
        idem = idempotency_prefix(workspace_id)
        keys = [
            plan_key(workspace_id),
            policy_status_key(workspace_id),
            rate_key(workspace_id),
            quota_key(workspace_id),
            policy_pending_key(workspace_id),
            *[idem + item[0] for item in items],
        ]
        token = f"{self._process}{next(self._requests):x}"
        args: list[str | int | bytes] = [*self._head, token, record_prefix(workspace_id)]
        for item in items:
            args += (item.kind, item.cost_micro_usd, item.event_id or "-", item.answer, *item.scope)
        try:
            raw = await self._scripts.call("admit", keys, args)
        except ScriptsUnavailable as exc:
            raise AdmissionUnavailable(str(exc), timed_out=exc.timed_out) from exc
        except ScriptError as exc:
            raise AdmissionUnavailable(str(exc)) from exc
        reply = orjson.loads(raw)
        rate, quota, policy = reply["rate"], reply["quota"], reply["policy"]
        return Admission(
            rate_limit=rate["limit"],
            rate_used=rate["used"],
            window_end=rate["window_end"],
            quota_limit=quota.get("limit"),
            quota_used=quota["used"],
            period=quota["period"],
            policy=PolicyStatus(
                budget_warning=policy["budget_warning"],
                budget_exceeded=policy["budget_exceeded"],
                enforcement="hard_stop" if policy["enforcement"] == "hard_stop" else "advisory",
                kill_switch=policy["kill_switch"],
                workspace_exceeded=policy["workspace_exceeded"],
                stopped_scopes=tuple((d, v) for d, v in policy["stopped_scopes"]),
            ),
            plan=reply.get("plan"),
            decisions=[_decision(d) for d in reply["decisions"]],
            token=token,
        )

    async def settle_many(self, batches: list[RequestSettlement]) -> None:
        """Several requests' settlements in one round trip (one write of script calls)."""
        calls: list[tuple[str, list[str], list[str | int | bytes]]] = []
        for workspace_id, period, token, outcome in batches:
            keys = [quota_key(workspace_id), policy_pending_key(workspace_id), record_prefix(workspace_id) + token]
            if isinstance(outcome, str):  # every event the same way: the request's record says it
                calls.append(("settle", keys, [period, ANSWER_TTL_S, token, _RECORDS[outcome]]))
                continue
            idem = idempotency_prefix(workspace_id)
            keys += [idem + external_request_id for external_request_id, _, _ in outcome]
            args: list[str | int | bytes] = [period, ANSWER_TTL_S, token, "e"]
            for _, answer, event_id in outcome:
                args += (answer, event_id)
            calls.append(("settle", keys, args))
        try:
            await self._scripts.call_many(calls, timeout_s=SETTLE_TIMEOUT_S)
        except ScriptsUnavailable as exc:
            raise AdmissionUnavailable(str(exc), timed_out=exc.timed_out) from exc
        except ScriptError as exc:
            raise AdmissionUnavailable(str(exc)) from exc

    async def first_answer(
        self, workspace_id: str, external_request_id: str
    ) -> dict[str, Any] | Literal["pending"] | None:
        """The stored answer of the event of ``external_request_id``, 'pending' while it is in flight, or None."""
        try:
            key = idempotency_key(workspace_id, external_request_id)
            raw = await self._scripts.call("lookup", [key], [record_prefix(workspace_id), PENDING_TTL_S])
        except ScriptsUnavailable as exc:
            raise AdmissionUnavailable(str(exc), timed_out=exc.timed_out) from exc
        except ScriptError as exc:
            raise AdmissionUnavailable(str(exc)) from exc
        if raw is None:
            return None
        found = orjson.loads(raw)
        if found["state"] == "pending":
            return "pending"
        return _stored_answer(found["answer"], found.get("spooled"))

    async def reconcile(self, workspace_id: str, period: str, settlements: list[DegradedSettlement]) -> int:
        """Settle events decided in-process (``reconcile.lua``): each counts toward the quota once, whether
        Redis never saw it or admitted it with an answer that came too late; what it added to the quota.

        In writes of at most ``MAX_SETTLE_EVENTS``. Applying the same settlements twice changes nothing
        the second time, so a caller may retry all of them after a failure part way.
        """
        idem = idempotency_prefix(workspace_id)
        delta = 0
        for start in range(0, len(settlements), MAX_SETTLE_EVENTS):
            chunk = settlements[start : start + MAX_SETTLE_EVENTS]
            keys = [quota_key(workspace_id), policy_pending_key(workspace_id), *[idem + s[0] for s in chunk]]
            args: list[str | int | bytes] = [period, ANSWER_TTL_S, record_prefix(workspace_id), PENDING_TTL_S]
            for _, outcome, event_id, kind in chunk:
                args += (outcome, event_id, kind)
            try:
                delta += int(await self._scripts.call("reconcile", keys, args, timeout_s=SETTLE_TIMEOUT_S))
            except (ScriptsUnavailable, ScriptError) as exc:
                raise AdmissionUnavailable(str(exc)) from exc
        return delta

    async def reconcile_count(self, workspace_id: str, period: str, accepted_real: int) -> None:
        """Count durable real events decided in-process beyond ``MAX_UNRECONCILED`` toward the quota."""
        await self._redis.eval(
            "if redis.call('HGET', KEYS[1], 'p') == ARGV[1] then return redis.call('HINCRBY', KEYS[1], 'n', ARGV[2]) "
            "else redis.call('HSET', KEYS[1], 'p', ARGV[1], 'n', ARGV[2]) return tonumber(ARGV[2]) end",
            1,
            quota_key(workspace_id),
            period,
            accepted_real,
        )


@dataclass
class DegradedAdmission:
    """In-process decisions while Redis is unreachable: per-workspace windows, local idempotency, a tally."""

    default_rate_limit: int
    windows: dict[str, FixedWindow] = field(default_factory=dict)
    last_known: dict[str, Admission] = field(default_factory=dict)
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)
    unreconciled: dict[tuple[str, str], list[DegradedSettlement]] = field(default_factory=dict)
    """Per (workspace, period): the events decided here, settled, and not yet reconciled with Redis."""
    overflow: dict[tuple[str, str], int] = field(default_factory=dict)
    """Durable real events beyond ``MAX_UNRECONCILED``: only counted."""
    decisions: int = 0
    probe_interval_s: float = 0.5
    away_until: float = 0.0
    """Until then Redis is taken as away and nobody waits for it; after, one request tries it again."""

    def redis_away(self, now: float) -> bool:
        """Whether to decide here without trying Redis; claims the next try when it is due."""
        if now < self.away_until:
            return True
        if self.away_until:
            self.away_until = now + self.probe_interval_s  # this request probes; the others decide here
        return False

    def pending_workspaces(self) -> list[str]:
        """Workspaces with events decided here that Redis has not counted yet."""
        return sorted({workspace_id for workspace_id, _ in [*self.unreconciled, *self.overflow]})

    def mark_away(self, now: float) -> None:
        self.away_until = now + self.probe_interval_s

    def mark_back(self) -> None:
        self.away_until = 0.0

    def settled(self, workspace_id: str, period: str, settlements: list[DegradedSettlement]) -> None:
        """Keep what became of events admitted here, for the reconcile once Redis answers again."""
        kept = sum(len(v) for v in self.unreconciled.values())
        room = max(0, MAX_UNRECONCILED - kept)
        key = (workspace_id, period)
        if room:
            self.unreconciled.setdefault(key, []).extend(settlements[:room])
        beyond = sum(1 for _, outcome, _, kind in settlements[room:] if outcome != "-" and kind == "r")
        if beyond:
            self.overflow[key] = self.overflow.get(key, 0) + beyond

    def remember(self, workspace_id: str, admission: Admission) -> None:
        self.last_known[workspace_id] = admission

    def rate_state(self, workspace_id: str, now: float) -> tuple[int, int, int]:
        """``(limit, remaining, window end)`` as the workspace's last admission here left them, for an answer
        that was not admitted (once that window has passed: the whole limit of the current one)."""
        known = self.last_known.get(workspace_id)
        if known is not None and known.window_end > now:
            return known.rate_limit, known.remaining, known.window_end
        limit = known.rate_limit if known is not None else self.default_rate_limit
        return limit, limit, FixedWindow(limit, window=int(now // 60)).window_end

    def admit(self, workspace_id: str, items: list[AdmitItem], now: float) -> Admission:
        known = self.last_known.get(workspace_id)
        limit = known.rate_limit if known else self.default_rate_limit
        policy = known.policy if known else PolicyStatus()
        window = self.windows.setdefault(workspace_id, FixedWindow(limit))
        window.limit = limit
        if known is not None and known.window_end == (int(now // 60) + 1) * 60:
            window.continue_from(now, known.rate_used)  # the count Redis had in this window, not zero
        period = month_period(now)
        decisions: list[Decision] = []
        for item in items:
            self.decisions += 1
            if not window.take(now):
                decisions.append("rate_limited")
            elif item.kind == "x":
                decisions.append("invalid")
            elif (previous := self.seen.get(f"{workspace_id}:{item.external_request_id}")) is not None:
                decisions.append(Repeat(previous))
            elif item.kind == "r" and policy.stops(*item.scope):
                decisions.append("budget_stop")
            else:
                decisions.append(Admitted(policy.budget_warning, policy.budget_exceeded))
        return Admission(
            rate_limit=limit,
            rate_used=window.used,
            window_end=window.window_end,
            quota_limit=known.quota_limit if known else None,
            quota_used=known.quota_used if known else 0,
            period=period,
            policy=policy,
            plan=known.plan if known else None,
            decisions=decisions,
            degraded=True,
        )

    def record_answer(self, workspace_id: str, external_request_id: str, answer: dict[str, Any]) -> None:
        if len(self.seen) > 100_000:
            self.seen.clear()
        self.seen[f"{workspace_id}:{external_request_id}"] = answer


@dataclass(frozen=True)
class QuotaSnapshot:
    plan: str | None
    quota_limit: int | None
    used: int
    period: str


async def quota_snapshot(redis: Redis, workspace_id: str, *, default_quota: int, period: str) -> QuotaSnapshot:
    """The plan and the quota counter as they stand, without counting anything."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(plan_key(workspace_id), "plan", "monthly_request_quota")
        pipe.hmget(quota_key(workspace_id), "p", "n")
        (plan, quota_text), (counted_period, used) = await pipe.execute()
    plan_name = _text(plan) if plan is not None else None
    if plan_name is None:
        limit: int | None = default_quota
    else:
        limit = int(_text(quota_text)) if quota_text not in (None, b"", "") else None
    current = (
        int(_text(used)) if used is not None and counted_period is not None and _text(counted_period) == period else 0
    )
    return QuotaSnapshot(plan_name, limit, current, period)


class Settler:
    """Settles admitted events off the answer's path, many requests per Redis round trip.

    An answer never waits for its settlement: a repeat that arrives first sees the key still pending
    and waits for it (``Ingestor._await_first``), so no duplicate is ever answered before it is durable.
    """

    def __init__(self, admission: RedisAdmission, *, linger_s: float = 0.005) -> None:
        self._admission = admission
        self._linger_s = linger_s
        self._queue: list[RequestSettlement] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, workspace_id: str, period: str, token: str, outcome: Durability | list[Settlement]) -> None:
        if outcome:
            self._queue.append((workspace_id, period, token, outcome))
            self._idle.clear()
            self._wake.set()

    async def run(self) -> None:
        delay = 0.05
        while True:
            await self._wake.wait()
            # Let a few milliseconds of requests gather: one Redis write settles them all. No answer waits
            # for this; a repeat of an event still settling waits for it (``Ingestor._await_first``).
            await asyncio.sleep(self._linger_s)
            self._wake.clear()
            while self._queue:
                batch = self._next_write()
                try:
                    await self._admission.settle_many(batch)
                    delay = 0.05
                except AdmissionUnavailable as exc:
                    log.warning("settle_retrying", pending=len(batch) + len(self._queue), error=str(exc))
                    self._queue = batch + self._queue
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            self._idle.set()

    def _next_write(self) -> list[RequestSettlement]:
        """The next requests to settle in one write: at most ``MAX_SETTLE_EVENTS`` events (one request at least).

        Bounded by events, not requests: one write of many full batches would keep Redis busy past the
        scripts' deadline, fail, and be retried whole, forever, while the idempotency keys stay pending.
        """
        events = taken = 0
        for _, _, _, outcome in self._queue:
            size = 1 if isinstance(outcome, str) else len(outcome)
            if taken and events + size > MAX_SETTLE_EVENTS:
                break
            events += size
            taken += 1
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until everything submitted so far is settled (shutdown, tests)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)


class FailOpenAdmission:
    """The gateway's :class:`~opsmeter_ingest.ports.AdmissionPort`: Redis's atomic decision, or, while Redis is
    away (no reply within the deadline), the in-process one; what was decided here is reconciled with Redis
    once it answers again. A quota reached is announced (once per period) to the workspace's owners."""

    def __init__(self, redis: RedisAdmission, degraded: DegradedAdmission, notices: PlanLimitNotices) -> None:
        self._redis = redis
        self._degraded = degraded
        self._notices = notices

    async def admit(self, workspace_id: str, items: list[AdmitItem]) -> Admission:
        degraded = self._degraded
        if degraded.redis_away(time.monotonic()):
            return self._in_process(workspace_id, items)
        try:
            admission = await self._redis.admit(workspace_id, items)
        except AdmissionUnavailable as exc:
            log.warning("admission_degraded", error=str(exc))
            if exc.timed_out:  # a stalled Redis: only one request in a while waits for it again
                degraded.mark_away(time.monotonic())
            return self._in_process(workspace_id, items)
        degraded.mark_back()
        degraded.remember(workspace_id, admission)
        await self._reconcile(workspace_id)
        if "plan_limit" in admission.decisions and admission.quota_limit is not None:
            await self._notices.reached(workspace_id, admission.plan, admission.quota_limit, admission.period)
        return admission

    async def first_answer(
        self, workspace_id: str, external_request_id: str
    ) -> dict[str, Any] | Literal["pending"] | None:
        return await self._redis.first_answer(workspace_id, external_request_id)

    def rate_state(self, workspace_id: str, now: float) -> tuple[int, int, int]:
        return self._degraded.rate_state(workspace_id, now)

    async def reconcile_forever(self, interval_s: float = 1.0) -> None:
        """Reconcile what was decided in-process as soon as Redis answers again, whether or not requests come."""
        while True:
            await asyncio.sleep(interval_s)
            degraded = self._degraded
            for workspace_id in {key[0] for key in [*degraded.unreconciled, *degraded.overflow]}:
                await self._reconcile(workspace_id)

    def _in_process(self, workspace_id: str, items: list[AdmitItem]) -> Admission:
        DEGRADED_DECISIONS.inc(len(items))
        return self._degraded.admit(workspace_id, items, time.time())

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
                counted = await self._redis.reconcile(key[0], key[1], settlements)
            except Exception as exc:  # Redis away again: keep them for next time
                pending[key] = settlements + pending.get(key, [])
                log.warning("quota_reconcile_failed", error=str(exc))
                return
            log.info("quota_reconciled", period=key[1], events=len(settlements), counted=counted)
        for key in [key for key in overflow if key[0] == workspace_id]:
            count = overflow.pop(key, 0)
            try:
                await self._redis.reconcile_count(key[0], key[1], count)
            except Exception as exc:
                overflow[key] = overflow.get(key, 0) + count
                log.warning("quota_reconcile_failed", error=str(exc))
                return


class Settlements:
    """The gateway's :class:`~opsmeter_ingest.ports.Settlement`: admitted events' keys made to answer repeats.

    A request of several events that all went the same way is settled with one write (its record, see
    ``lua/idem.lua``); otherwise each event: its stored answer, or its reservation released ('-' for a real
    event, '~' another) so that a retry counts as new. Events decided in-process are kept for the reconcile.
    """

    def __init__(self, settler: "Settler", degraded: DegradedAdmission) -> None:
        self._settler = settler
        self._degraded = degraded
        self._later: set[asyncio.Future[None]] = set()

    def settle(self, workspace_id: str, admission: Admission, events: list[SettledEvent]) -> None:
        known: list[tuple[AdmitItem, Durability | None]] = []
        unconfirmed: list[tuple[AdmitItem, Unconfirmed]] = []
        for item, where in events:
            if isinstance(where, Unconfirmed):
                unconfirmed.append((item, where))
            else:
                known.append((item, where))
        if unconfirmed:
            # Their keys stay reserved (a retry waits, or is told to retry) until the producer knows (ADR 62).
            later = asyncio.ensure_future(self._settle_when_known(workspace_id, admission, unconfirmed))
            self._later.add(later)
            later.add_done_callback(self._later.discard)
        if known:
            self._settle_known(workspace_id, admission, known, one_write=not unconfirmed)

    async def _settle_when_known(
        self, workspace_id: str, admission: Admission, events: list[tuple[AdmitItem, Unconfirmed]]
    ) -> None:
        known: list[tuple[AdmitItem, Durability | None]] = [
            (item, "kafka" if await where.landed else None) for item, where in events
        ]
        landed = sum(1 for _, where in known if where is not None)
        log.info("unconfirmed_events_settled", landed=landed, released=len(known) - landed)
        self._settle_known(workspace_id, admission, known, one_write=False)

    def _settle_known(
        self,
        workspace_id: str,
        admission: Admission,
        events: list[tuple[AdmitItem, Durability | None]],
        *,
        one_write: bool,
    ) -> None:
        """``one_write``: the request's record may say where all its events went (none of them is unconfirmed:
        a record would make an unconfirmed event's reservation read as answered)."""
        if admission.degraded:
            kept: list[DegradedSettlement] = []
            for (external_request_id, kind, _, event_id, answer, _), where in events:
                stored = _with_spooled(answer, where)
                if where is not None:
                    self._degraded.record_answer(workspace_id, external_request_id, orjson.loads(stored))
                kept.append((external_request_id, stored if where is not None else "-", event_id, kind))
            self._degraded.settled(workspace_id, admission.period, kept)
            return
        first = events[0][1]
        if one_write and len(events) > 1 and first is not None and all(where == first for _, where in events):
            self._settler.submit(workspace_id, admission.period, admission.token, first)
            return
        settlements: list[Settlement] = []
        for (external_request_id, kind, _, event_id, answer, _), where in events:
            outcome: bytes | str = _with_spooled(answer, where) if where is not None else "-" if kind == "r" else "~"
            settlements.append((external_request_id, outcome, event_id))
        self._settler.submit(workspace_id, admission.period, admission.token, settlements)


def _with_spooled(answer: bytes, where: Durability | None) -> bytes:
    """A stored answer that says itself whether its event is in the spool (settled without a record)."""
    return orjson.dumps({**orjson.loads(answer), "spooled": where == "spool"})
