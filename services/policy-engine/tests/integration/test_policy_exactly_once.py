"""Exactly-once spend: a property over random delivery streams, and a SIGKILL in the middle of 10,000 events.

Whatever the order, duplicates, redeliveries and half-applied batches, and wherever the engine dies,
the totals equal the sum of the distinct real events, to the micro-dollar.
"""

import asyncio
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from opsmeter_cli.stack import http_ready
from opsmeter_contracts import LlmRequestIngested
from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_contracts.policy import PolicySettingsPayload, ScopedBudget
from opsmeter_policy.adapters.redis import RedisDecisionMarks, RedisSettingsStore, RedisSpendLedger, counter_key
from opsmeter_policy.domain import day_window, increments_for, month_window, spend_counter
from opsmeter_policy.evaluator import PolicyEvaluator
from opsmeter_policy.handlers import account_spend, facts_of
from opsmeter_runtime.localstack import ManagedProcess, free_port, wait_for
from opsmeter_runtime.projections import PolicyStatusProjection
from opsmeter_runtime.testing import Engines, build_telemetry, produce_telemetry

NOW = datetime.now(UTC)


class RecordingPublisher:
    """Stands in for the decisions topic; the property here is about Redis state."""

    def __init__(self) -> None:
        self.published: list[EventEnvelope[Any]] = []

    async def publish(self, topic: str, event: EventEnvelope[Any]) -> None:
        self.published.append(event)


event_specs = st.lists(
    st.tuples(
        st.integers(0, 400_000),
        st.sampled_from(["real", "real", "real", "test", "demo"]),
        st.integers(0, 60),
        st.sampled_from(["a", "b"]),
    ),
    min_size=1,
    max_size=25,
)
deliveries = st.lists(
    st.tuples(st.lists(st.integers(0, 1000), min_size=1, max_size=12), st.integers(0, 12), st.booleans()),
    max_size=10,
)


async def run_stream(redis_url: str, specs: list[tuple[int, str, int, str]], plan: list[Any]) -> None:
    redis = Redis.from_url(redis_url)
    try:
        workspace_id = f"ws_{uuid.uuid4().hex[:16]}"
        events = [
            build_telemetry(workspace_id, cost, mode, NOW - timedelta(hours=hours), tag)
            for cost, mode, hours, tag in specs
        ]
        ledger, store, publisher = RedisSpendLedger(redis), RedisSettingsStore(redis), RecordingPublisher()
        evaluator = PolicyEvaluator(ledger, store, RedisDecisionMarks(redis), PolicyStatusProjection(redis), publisher)
        settings_ = PolicySettingsPayload(
            version=1,
            daily_limit_micro_usd=1_000_000,
            monthly_limit_micro_usd=3_000_000,
            alert_thresholds=(0.5,),
            scoped=(ScopedBudget(dimension="endpoint_tag", value="a", monthly_limit_micro_usd=500_000),),
            changed_by_credential_id="c",
            changed_by_role="owner",
        )
        await store.apply(workspace_id, settings_)

        for indexes, crash_after, crashed in plan:
            batch = [events[i % len(events)] for i in indexes]
            if crashed:  # the consumer died after Redis applied a prefix of the batch; it is redelivered whole
                prefix = [e for e in batch[:crash_after] if e.payload.data_mode == "real"]
                await ledger.add_many(
                    [(workspace_id, e.event_id, increments_for(facts_of(e), settings_)) for e in prefix]
                )
            await account_spend(batch, ledger=ledger, evaluator=evaluator)
        await account_spend(events, ledger=ledger, evaluator=evaluator)  # at-least-once: everything arrives

        expected: Counter[str] = Counter()
        for event in {e.event_id: e for e in events if e.payload.data_mode == "real"}.values():
            for window in (day_window(event.occurred_at), month_window(event.occurred_at)):
                expected[spend_counter(window)] += event.payload.cost_micro_usd
                if event.payload.endpoint_tag == "a":
                    expected[spend_counter(window, "endpoint_tag", "a")] += event.payload.cost_micro_usd
        counters = sorted(
            {spend_counter(w(e.occurred_at), *scope) for e in events for w in (day_window, month_window)
             for scope in (("workspace", None), ("endpoint_tag", "a"))}
        )  # fmt: skip
        assert await ledger.totals(workspace_id, counters) == {c: expected.get(c, 0) for c in counters}

        ids = [d.event_id for d in publisher.published]
        assert len(ids) == len(set(ids)), "each crossing is decided once"
        status = await evaluator.projection.get(workspace_id)
        today = expected.get(spend_counter(day_window(NOW)), 0)
        assert status.budget_exceeded == (
            today >= 1_000_000
            or expected.get(spend_counter(month_window(NOW)), 0) >= 3_000_000
            or expected.get(spend_counter(month_window(NOW), "endpoint_tag", "a"), 0) >= 500_000
        )
    finally:
        await redis.aclose()


class TestExactlyOnceSpend:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(specs=event_specs, plan=deliveries)
    def test_totals_equal_the_sum_of_distinct_real_events(
        self, engines: Engines, specs: list[tuple[int, str, int, str]], plan: list[Any]
    ) -> None:
        asyncio.run(run_stream(engines.redis_url, specs, plan))


EVENTS = 10_000
WORKSPACES = 8
REDIS_DB = 9
"""The engine under test writes to its own database, so no other engine of the test run can count for it."""


def engine_process(engines: Engines, suffix: str, data_dir: Path, port: int) -> ManagedProcess:
    redis_url = engines.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    return ManagedProcess(
        name="policy-engine",
        argv=[sys.executable, "-c", "from opsmeter_policy.main import run; run()"],
        log_path=data_dir / "logs" / f"policy-engine-{suffix}.log",
        env={
            "OPSMETER_ENV": "test",
            "OPSMETER_LOG_LEVEL": "WARNING",
            "OPSMETER_DATA_DIR": str(data_dir),
            "OPSMETER_KAFKA_BOOTSTRAP": engines.kafka_bootstrap,
            "OPSMETER_REDIS_URL": redis_url,
            "OPSMETER_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "OPSMETER_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "OPSMETER_POLICY_ENGINE_PORT": str(port),
            "OPSMETER_POLICY_ENGINE_CONSUMER_SUFFIX": f"-{suffix}",
        },
    ).start()


async def produce(engines: Engines, events: list[LlmRequestIngested]) -> None:
    await produce_telemetry(engines.kafka_bootstrap, events)


class TestKillAndRestart:
    async def test_totals_stay_exact_across_a_sigkill_mid_stream(
        self, engines: Engines, unique: str, tmp_path: Path
    ) -> None:
        workspaces = [f"ws_{unique}k{i}" for i in range(WORKSPACES)]
        events = [
            build_telemetry(workspaces[i % WORKSPACES], 1 + (i * 7919) % 5000, "test" if i % 25 == 0 else "real")
            for i in range(EVENTS)
        ]
        redelivered = events[::20]  # the same events again, as a producer retry would send them
        expected: Counter[str] = Counter()
        for e in events:
            if e.payload.data_mode == "real":
                expected[e.workspace_id] += e.payload.cost_micro_usd
        await produce(engines, events + redelivered)

        redis = Redis.from_url(engines.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}")
        month = spend_counter(month_window(events[0].occurred_at))
        keys = [counter_key(ws, month) for ws in workspaces]

        async def counted() -> int:
            return sum(int(v or 0) for v in await redis.mget(keys))

        suffix = uuid.uuid4().hex[:8]
        port = free_port()
        first = engine_process(engines, suffix, tmp_path, port)
        try:
            deadline = time.monotonic() + 30
            while (progress := await counted()) < sum(expected.values()) // 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            os.killpg(first.pid or 0, signal.SIGKILL)
            first.process.wait(5) if first.process else None
            assert 0 < progress < sum(expected.values()), "killed while the stream was being consumed"

            second = engine_process(engines, suffix, tmp_path, port)
            try:
                await asyncio.to_thread(
                    wait_for, lambda: http_ready(f"http://127.0.0.1:{port}"), timeout=30, what="restart", process=second
                )
                deadline = time.monotonic() + 30
                while await counted() < sum(expected.values()) and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                totals = await redis.mget(keys)
                assert {ws: int(v or 0) for ws, v in zip(workspaces, totals, strict=True)} == dict(expected)
            finally:
                second.stop(30)
        finally:
            first.stop(5)
            await redis.aclose()
