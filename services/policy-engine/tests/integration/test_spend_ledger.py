import asyncio
from datetime import UTC, datetime
from uuid import uuid4

from redis.asyncio import Redis

from opsmeter_policy.adapters.redis import RedisSpendLedger
from opsmeter_policy.domain import day_window, month_window

AT = datetime(2026, 11, 25, 12, tzinfo=UTC)


class TestRedisSpendLedger:
    async def test_an_event_counts_once_even_when_redelivered_concurrently(
        self, redis_client: Redis, unique: str
    ) -> None:
        ledger = RedisSpendLedger(redis_client)
        ws, event_id = f"ws_{unique}", uuid4()
        windows = [day_window(AT), month_window(AT)]
        results = await asyncio.gather(*(ledger.add(ws, event_id, 220, windows) for _ in range(20)))
        assert results.count(True) == 1
        assert await ledger.spend(ws, windows[0]) == 220
        assert await ledger.spend(ws, windows[1]) == 220

    async def test_distinct_events_add_up_per_window(self, redis_client: Redis, unique: str) -> None:
        ledger = RedisSpendLedger(redis_client)
        ws = f"ws_{unique}"
        await ledger.add(ws, uuid4(), 100, [day_window(AT), month_window(AT)])
        next_day = datetime(2026, 11, 26, 0, tzinfo=UTC)
        await ledger.add(ws, uuid4(), 5, [day_window(next_day), month_window(next_day)])
        assert await ledger.spend(ws, day_window(AT)) == 100
        assert await ledger.spend(ws, day_window(next_day)) == 5
        assert await ledger.spend(ws, month_window(AT)) == 105
