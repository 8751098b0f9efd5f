"""The daily demo allowance against the real local Redis: exact under concurrent loads, per workspace and day."""

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest
from redis.asyncio import Redis

from opsmeter_ingest.adapters.demo_allowance import DemoAllowance, demo_key
from opsmeter_runtime.testing import Engines

TODAY = date(2026, 12, 7)


@pytest.fixture
async def redis(engines: Engines) -> AsyncIterator[Redis]:
    client = Redis.from_url(engines.redis_url)
    yield client
    await client.aclose()


async def test_loads_fit_until_the_day_is_used_up_and_a_refused_one_takes_nothing(redis: Redis, unique: str) -> None:
    allowance = DemoAllowance(redis, events_per_day=10)
    ws = f"ws_{unique}"
    assert await allowance.take(ws, 6, TODAY)
    assert not await allowance.take(ws, 5, TODAY)  # 11 > 10: refused whole
    assert await allowance.take(ws, 4, TODAY)  # the refused 5 were not kept: exactly 10 now
    assert not await allowance.take(ws, 1, TODAY)
    assert await allowance.take(ws, 10, date(2026, 12, 8))  # a new UTC day
    assert await allowance.take(f"ws_{unique}_other", 10, TODAY)  # another workspace
    assert 0 < await redis.ttl(demo_key(ws, TODAY)) <= 2 * 24 * 3600


async def test_concurrent_loads_never_take_more_than_the_allowance(redis: Redis, unique: str) -> None:
    allowance = DemoAllowance(redis, events_per_day=25)
    taken = await asyncio.gather(*(allowance.take(f"ws_{unique}", 3, TODAY) for _ in range(20)))
    assert taken.count(True) == 8  # 8 x 3 = 24; a ninth would make 27
