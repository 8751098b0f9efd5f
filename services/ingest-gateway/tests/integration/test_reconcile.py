"""The reconcile after Redis was away or answered late, against the real local Redis."""

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from opsmeter_ingest.adapters.admission import (
    DegradedSettlement,
    RedisAdmission,
    admission_scripts,
    idempotency_key,
    quota_key,
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


async def test_each_event_decided_in_process_counts_once_whatever_redis_saw_of_it(
    admission: tuple[RedisAdmission, Redis],
) -> None:
    gateway, redis = admission
    ws = f"ws_rec_{uuid.uuid4().hex[:12]}"
    await redis.hset(quota_key(ws), mapping={"p": PERIOD, "n": 10})
    # A script admitted these two (counted, key pending) but its answer came after the deadline.
    await redis.set(idempotency_key(ws, "late-durable"), "pending")
    await redis.set(idempotency_key(ws, "late-lost"), "pending")
    await redis.set(idempotency_key(ws, "settled-before"), '{"eventId":"first"}')
    settlements: list[DegradedSettlement] = [
        ("never-seen", b'{"eventId":"e1"}', "e1", "r"),  # Redis away when it came: counts now
        ("late-durable", b'{"eventId":"e2"}', "e2", "r"),  # counted already: its answer stored
        ("late-lost", "-", "e3", "r"),  # not durable: the script's reservation released
        ("never-seen-lost", "-", "e4", "r"),  # not durable, never counted: nothing
        ("settled-before", b'{"eventId":"e5"}', "e5", "r"),  # a repeat of a settled event: nothing
        ("demo", b'{"eventId":"e6"}', "e6", "o"),  # not real data: never counts
    ]
    assert await gateway.reconcile(ws, PERIOD, settlements) == 0  # +1 (never-seen) -1 (late-lost)

    async def state() -> tuple[object, list[object]]:
        names = ["never-seen", "late-durable", "late-lost", "never-seen-lost", "settled-before", "demo"]
        return await redis.hget(quota_key(ws), "n"), [await redis.get(idempotency_key(ws, n)) for n in names]

    after = await state()
    assert after == (
        b"10",
        [b'{"eventId":"e1"}', b'{"eventId":"e2"}', None, None, b'{"eventId":"first"}', b'{"eventId":"e6"}'],
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
