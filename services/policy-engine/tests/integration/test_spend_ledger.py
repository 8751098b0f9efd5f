import asyncio
from datetime import UTC, datetime
from uuid import uuid4

from redis.asyncio import Redis

from opsmeter_contracts.policy import PolicySettingsPayload, ScopedBudget
from opsmeter_policy.adapters.redis import RedisSpendLedger
from opsmeter_policy.domain import EventFacts, day_window, default_settings, increments_for, month_window, spend_counter

AT = datetime(2026, 11, 25, 12, tzinfo=UTC)


def facts(cost: int, at: datetime = AT, endpoint_tag: str = "checkout") -> EventFacts:
    return EventFacts(at, cost, 1000, "gpt-4o-mini", endpoint_tag, "u_1")


class TestRedisSpendLedger:
    async def test_an_event_counts_once_even_when_redelivered_concurrently(
        self, redis_client: Redis, unique: str
    ) -> None:
        ledger = RedisSpendLedger(redis_client)
        ws, event_id = f"ws_{unique}", uuid4()
        increments = increments_for(facts(220), default_settings())
        results = await asyncio.gather(*(ledger.add(ws, event_id, increments) for _ in range(20)))
        assert results.count(True) == 1
        assert await ledger.spend(ws, day_window(AT)) == 220
        assert await ledger.spend(ws, month_window(AT)) == 220

    async def test_distinct_events_add_up_per_window(self, redis_client: Redis, unique: str) -> None:
        ledger = RedisSpendLedger(redis_client)
        ws = f"ws_{unique}"
        await ledger.add(ws, uuid4(), increments_for(facts(100), default_settings()))
        next_day = datetime(2026, 11, 26, 0, tzinfo=UTC)
        await ledger.add(ws, uuid4(), increments_for(facts(5, next_day), default_settings()))
        assert await ledger.spend(ws, day_window(AT)) == 100
        assert await ledger.spend(ws, day_window(next_day)) == 5
        assert await ledger.spend(ws, month_window(AT)) == 105

    async def test_a_batch_is_one_round_trip_and_each_event_stays_once(self, redis_client: Redis, unique: str) -> None:
        ledger = RedisSpendLedger(redis_client)
        ws = f"ws_{unique}"
        settings = PolicySettingsPayload(
            version=1,
            scoped=(ScopedBudget(dimension="endpoint_tag", value="checkout", monthly_limit_micro_usd=10),),
            changed_by_credential_id="c",
            changed_by_role="owner",
        )
        first, second = uuid4(), uuid4()
        added = await ledger.add_many(
            [
                (ws, first, increments_for(facts(7), settings)),
                (ws, first, increments_for(facts(7), settings)),
                (ws, second, increments_for(facts(3, endpoint_tag="search"), settings)),
            ]
        )
        assert added == [True, False, True]
        scoped = spend_counter(month_window(AT), "endpoint_tag", "checkout")
        totals = await ledger.totals(ws, [scoped, spend_counter(month_window(AT))])
        assert totals == {scoped: 7, spend_counter(month_window(AT)): 10}
