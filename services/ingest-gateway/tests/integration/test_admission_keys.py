"""The gateway's idempotency keys against the real local Redis: settled per request (ADR 47), and the
reconcile after Redis was away or answered late (ADR 46).

A request's admitted events are settled with one write when they all went the same way: the repeats each
form of settlement answers, what an unsettled key means (in flight, or abandoned and taken over), the
event-by-event settlement of a request whose events ended differently; then each event decided
in-process counted once whatever Redis saw of it.
"""

import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest
from redis.asyncio import Redis

from opsmeter_ingest.adapters.admission import (
    PENDING_TTL_S,
    DegradedSettlement,
    RedisAdmission,
    Settlement,
    admission_scripts,
    idempotency_key,
    quota_key,
    record_prefix,
)
from opsmeter_ingest.ports import AdmitItem, Admitted, Repeat
from opsmeter_runtime.projections import (
    PolicyStatus,
    PolicyStatusProjection,
    policy_pending_key,
    policy_status_key,
)
from opsmeter_runtime.testing import Engines

PERIOD = "2026-12"


@pytest.fixture
async def admission(engines: Engines) -> AsyncIterator[tuple[RedisAdmission, Redis]]:
    redis = Redis.from_url(engines.redis_url)
    scripts = admission_scripts(engines.redis_url, timeout_s=2.0)
    yield RedisAdmission(redis, scripts, default_rate_limit=120, default_quota=10_000), redis
    await scripts.close()
    await redis.aclose()


def _answer(event_id: str) -> bytes:
    """A stored answer as the gateway writes it at admission (its request's record then says where it went)."""
    return orjson.dumps({"eventId": event_id, "costUsd": "0.00022"})


def _in(event_id: str, *, spooled: bool = False) -> dict[str, object]:
    """The stored answer as a repeat gets it: with where its event went."""
    return {**orjson.loads(_answer(event_id)), "spooled": spooled}


def _items(*names: str) -> list[AdmitItem]:
    return [AdmitItem(name, "r", 220, f"ev-{name}", _answer(f"ev-{name}")) for name in names]


def _workspace() -> str:
    return f"ws_rec_{uuid.uuid4().hex[:12]}"


async def _quota(redis: Redis, ws: str) -> int:
    return int(await redis.hget(quota_key(ws), "n") or 0)


async def test_a_request_settled_with_its_record_answers_every_repeat_like_the_first(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    gateway, redis = admission
    ws = _workspace()
    first = await gateway.admit(ws, _items("a", "b"))
    assert first.decisions == [Admitted(), Admitted()]
    # Before the settlement the events are in flight: a repeat waits, whatever Redis is asked.
    assert (await gateway.admit(ws, _items("a"))).decisions == ["in_flight"]
    assert await gateway.first_answer(ws, "b") == "pending"

    await gateway.settle_many([(ws, first.period, first.token, "kafka")])
    repeat = await gateway.admit(ws, _items("a", "b"))
    assert repeat.decisions == [Repeat(_in("ev-a")), Repeat(_in("ev-b"))]
    assert await gateway.first_answer(ws, "b") == _in("ev-b")
    assert await _quota(redis, ws) == 2  # each counted once

    spooled = await gateway.admit(ws, _items("c"))
    await gateway.settle_many([(ws, spooled.period, spooled.token, "spool")])
    assert (await gateway.admit(ws, _items("c"))).decisions == [Repeat(_in("ev-c", spooled=True))]
    assert await redis.ttl(record_prefix(ws) + spooled.token) > 24 * 3600 - 60  # as long as its keys


async def test_a_key_never_settled_is_taken_over_once_its_request_is_abandoned(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    gateway, redis = admission
    ws = _workspace()
    # Admitted by a request whose gateway died before settling it, longer ago than the pending TTL.
    long_ago = int(time.time()) - PENDING_TTL_S - 5
    await redis.set(idempotency_key(ws, "lost"), f"@{long_ago}:dead01|{_answer('ev-old').decode()}")
    assert await gateway.first_answer(ws, "lost") is None  # a waiting repeat may go in as new

    retry = await gateway.admit(ws, _items("lost"))
    assert retry.decisions == [Admitted()]  # counted as new: the first was never made durable
    await gateway.settle_many([(ws, retry.period, retry.token, "kafka")])
    assert await gateway.first_answer(ws, "lost") == _in("ev-lost")


async def test_a_retry_taking_over_the_key_of_a_gateway_that_died_counts_the_event_once(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    gateway, redis = admission
    ws = _workspace()
    await redis.hset(policy_status_key(ws), mapping={"warning_headroom_micro_usd": 1_000_000})
    # Admitted (a quota unit and a budget reservation taken), then the gateway was killed before settling.
    assert (await gateway.admit(ws, _items("crashed"))).decisions == [Admitted()]
    key = idempotency_key(ws, "crashed")
    admitted_at = int(time.time()) - PENDING_TTL_S - 5
    admitted = await redis.get(key)
    assert isinstance(admitted, bytes)
    await redis.set(key, re.sub(rb"^@\d+:", f"@{admitted_at}:".encode(), admitted))

    retry = await gateway.admit(ws, _items("crashed"))
    assert retry.decisions == [Admitted()]
    await gateway.settle_many([(ws, retry.period, retry.token, "kafka")])
    assert await _quota(redis, ws) == 1  # the plan counter agrees with /usage, which counts the event id once
    assert await redis.hgetall(policy_pending_key(ws)) == {b"ev-crashed": b"220", b"total": b"220"}


async def test_events_that_ended_differently_are_settled_one_by_one(admission: tuple[RedisAdmission, Redis]) -> None:
    gateway, redis = admission
    ws = _workspace()
    admitted = await gateway.admit(ws, _items("durable", "lost", "taken-over"))
    assert await _quota(redis, ws) == 3
    # The third key was taken over by another request meanwhile (its first abandoned): left as it is.
    other = f"@{int(time.time())}:0ther|{_answer('ev-other').decode()}"
    await redis.set(idempotency_key(ws, "taken-over"), other)
    outcomes: list[Settlement] = [
        ("durable", _answer("ev-durable"), "ev-durable"),
        ("lost", "-", "ev-lost"),
        ("taken-over", "-", "ev-taken-over"),
    ]
    await gateway.settle_many([(ws, admitted.period, admitted.token, outcomes)])

    assert await redis.get(idempotency_key(ws, "durable")) == _answer("ev-durable")
    assert await redis.get(idempotency_key(ws, "lost")) is None  # a retry counts as new
    assert await redis.get(idempotency_key(ws, "taken-over")) == other.encode()
    assert await _quota(redis, ws) == 2  # the lost event's unit given back, and only its
    assert (await gateway.admit(ws, _items("lost"))).decisions == [Admitted()]


async def test_each_event_decided_in_process_counts_once_whatever_redis_saw_of_it(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    gateway, redis = admission
    ws = f"ws_rec_{uuid.uuid4().hex[:12]}"
    await redis.hset(quota_key(ws), mapping={"p": PERIOD, "n": 10})
    # A script admitted these (counted, key reserved: no request settled it) but its answer came after the
    # deadline: one in the current form (see lua/idem.lua), one long ago (abandoned), one in the older form.
    await redis.set(idempotency_key(ws, "late-durable"), '@1796140000:aa01|{"eventId":"x"}')
    await redis.set(idempotency_key(ws, "late-lost"), "@1796140000:aa02|{}")
    await redis.set(idempotency_key(ws, "late-old-form"), "pending")
    await redis.set(idempotency_key(ws, "settled-before"), '{"eventId":"first"}')
    # Admitted and settled by a request of another gateway (its record says Kafka): a repeat too.
    await redis.set(idempotency_key(ws, "settled-by-record"), '@1796140000:bb01|{"eventId":"other"}')
    await redis.set(record_prefix(ws) + "bb01", "k")
    settlements: list[DegradedSettlement] = [
        ("never-seen", b'{"eventId":"e1"}', "e1", "r"),  # Redis away when it came: counts now
        ("late-durable", b'{"eventId":"e2"}', "e2", "r"),  # counted already: its answer stored
        ("late-lost", "-", "e3", "r"),  # not durable: the script's reservation released
        ("late-old-form", b'{"eventId":"e7"}', "e7", "r"),  # counted already: its answer stored
        ("never-seen-lost", "-", "e4", "r"),  # not durable, never counted: nothing
        ("settled-before", b'{"eventId":"e5"}', "e5", "r"),  # a repeat of a settled event: nothing
        ("settled-by-record", b'{"eventId":"e8"}', "e8", "r"),  # the same
        ("demo", b'{"eventId":"e6"}', "e6", "o"),  # not real data: never counts
    ]
    assert await gateway.reconcile(ws, PERIOD, settlements) == 0  # +1 (never-seen) -1 (late-lost)

    async def state() -> tuple[object, list[object]]:
        names = [s[0] for s in settlements]
        return await redis.hget(quota_key(ws), "n"), [await redis.get(idempotency_key(ws, n)) for n in names]

    after = await state()
    assert after == (
        b"10",
        [
            b'{"eventId":"e1"}',
            b'{"eventId":"e2"}',
            None,
            b'{"eventId":"e7"}',
            None,
            b'{"eventId":"first"}',
            b'@1796140000:bb01|{"eventId":"other"}',
            b'{"eventId":"e6"}',
        ],
    )
    # Sent again (a reconcile put back after failing part way): nothing changes.
    assert await gateway.reconcile(ws, PERIOD, settlements) == 0
    assert await state() == after


async def test_events_of_a_period_redis_has_not_counted_yet_start_it(admission: tuple[RedisAdmission, Redis]) -> None:
    gateway, redis = admission
    ws = f"ws_rec_{uuid.uuid4().hex[:12]}"
    await redis.hset(quota_key(ws), mapping={"p": "2026-11", "n": 500})
    many: list[DegradedSettlement] = [(f"r{i}", b"{}", f"e{i}", "r") for i in range(4_500)]  # three writes
    assert await gateway.reconcile(ws, PERIOD, many) == 4_500
    assert await redis.hmget(quota_key(ws), ["p", "n"]) == [PERIOD.encode(), b"4500"]


async def test_an_exceeded_scoped_budget_refuses_its_own_events_in_the_script(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    """The policy engine's projection, as it writes it, read by the admission script on Redis."""
    gateway, redis = admission
    ws = _workspace()
    status = PolicyStatus(
        budget_exceeded=True,
        enforcement="hard_stop",
        settings_version=1,
        workspace_exceeded=False,
        stopped_scopes=(("user_id", "u_heavy"), ("model", "gpt-4o")),
    )
    assert await PolicyStatusProjection(redis).save(ws, status)
    items = [
        AdmitItem("heavy", "r", 220, "ev-heavy", _answer("ev-heavy"), ("chat", "gpt-4o-mini", "u_heavy")),
        AdmitItem("big", "r", 220, "ev-big", _answer("ev-big"), ("chat", "gpt-4o", "u_light")),
        AdmitItem("light", "r", 220, "ev-light", _answer("ev-light"), ("chat", "gpt-4o-mini", "u_light")),
        AdmitItem("test", "o", 220, "ev-test", _answer("ev-test"), ("chat", "gpt-4o", "u_heavy")),
    ]
    decided = await gateway.admit(ws, items)
    assert decided.decisions == ["budget_stop", "budget_stop", Admitted(False, True), Admitted(False, True)]
    assert decided.policy.stopping_scope("chat", "gpt-4o", "u_light") == ("model", "gpt-4o")
    assert not decided.policy.blocks_ingest

    await PolicyStatusProjection(redis).save(ws, replace(status, settings_version=2, workspace_exceeded=True))
    assert (await gateway.admit(ws, _items("after"))).decisions == ["budget_stop"]


async def test_a_status_written_before_scoped_stops_stops_on_any_exceeded_budget(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    gateway, redis = admission
    ws = _workspace()
    await redis.hset(policy_status_key(ws), mapping={"budget_exceeded": 1, "enforcement": "hard_stop"})
    assert (await gateway.admit(ws, _items("old"))).decisions == ["budget_stop"]
