import asyncio
from datetime import datetime, timedelta
from fractions import Fraction

from redis.asyncio import Redis
from services.reporting.tests.conftest import TelemetryFactory
from services.reporting.tests.integration.test_reporting_rollups import BASE

from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.adapters.redis import SPIKE_JOB_KEY, RedisSpikeState
from opsmeter_reporting.domain import HOUR, SpikeRule, UsageWindow
from opsmeter_reporting.reports import detect_spikes
from opsmeter_runtime.kafka import EventPublisher


class TestSpikeDetection:
    async def test_a_spike_is_decided_once_while_it_lasts(
        self,
        store: ClickHouseTelemetryStore,
        redis_client: Redis,
        publisher: EventPublisher,
        telemetry: TelemetryFactory,
        unique: str,
    ) -> None:
        ws = f"ws_{unique}"
        now = BASE + timedelta(days=5, minutes=20)
        steady = [telemetry(ws, cost=1_000, at=now - HOUR * 1.5 + timedelta(minutes=i)) for i in range(10)]
        burst = [
            telemetry(ws, cost=200_000, at=now - timedelta(minutes=30 - i), endpoint_tag="agent.loop")
            for i in range(10)
        ]
        await store.append(steady + burst)
        state = RedisSpikeState(redis_client)
        rule = SpikeRule(Fraction(1, 2), 1_000_000)

        async def run(at: datetime) -> list[str]:
            emitted = await detect_spikes(
                store=store,
                spike_state=state,
                publisher=publisher,
                rule=rule,
                window="1h",
                now=at,
            )
            return [e.workspace_id for e in emitted if e.workspace_id == ws]

        first = await detect_spikes(
            store=store, spike_state=state, publisher=publisher, rule=rule, window="1h", now=now
        )
        assert await run(now + timedelta(minutes=1)) == []
        assert await run(now + timedelta(hours=3)) == []
        assert await run(now + timedelta(minutes=2)) == [ws]

        [decision] = [e for e in first if e.workspace_id == ws]
        assert decision.payload.cost_delta_micro_usd == 2_000_000 - 10_000
        assert decision.payload.top_drivers[0].key in {"agent.loop", "u_1", "gpt-4o-mini", "openai", "v1"}
        assert any(d.dimension == "endpointTag" and d.key == "agent.loop" for d in decision.payload.top_drivers)
        stored = await store.decisions(ws, UsageWindow(now - HOUR, now + HOUR))
        assert [d.type for d in stored] == ["reporting.spike_detected"] * 2

    async def test_one_replica_at_a_time_runs_the_job(self, redis_client: Redis) -> None:
        first, second = RedisSpikeState(redis_client), RedisSpikeState(redis_client)
        await redis_client.delete(SPIKE_JOB_KEY)
        assert await first.take_turn(0.2) is True
        assert await second.take_turn(0.2) is False
        await asyncio.sleep(0.25)  # the turn lasts 90 % of an interval: the next interval is anyone's
        assert await second.take_turn(0.2) is True
