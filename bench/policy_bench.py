"""Policy-engine benchmark: telemetry events consumed per second, and how soon a crossing is decided.

Run with ``make bench`` (``.venv/bin/python bench/policy_bench.py --write docs/benchmarks.md``).

Starts its own Tansu broker and Redis on free ports in a temporary directory, and the policy engine as
a child process (``opsmeter_policy.main``), exactly as the local stack runs it. Every workspace has a
daily budget that its events cross (warning at 80 %, exceeded at 100 %).

* burst: N events produced as fast as the broker takes them; events/s = N / (first send → last event
  counted in Redis); decision latency = event sent → its ``policy.budget_*`` decision read back.
* paced: 1,000 events/s for 10 s (the issue's target load); projection latency = the crossing event
  sent → ``budget_warning`` visible in ``opsmeter:policy:status:{<ws>}`` (what the gateway reads).
* baseline, same run: a bare aiokafka consumer reading the burst's events (no decode, no Redis).
Everything talks to 127.0.0.1 only; every loop is bounded in count and time.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from report import machine, percentile, write_section

from opsmeter_cli.stack import http_ready
from opsmeter_contracts import LlmRequestIngested, LlmRequestIngestedPayload, Topics, decode_event, encode_event
from opsmeter_contracts.policy import PolicySettingsPayload
from opsmeter_contracts.topics import ALL_TOPICS, COMPACTED_TOPICS
from opsmeter_policy.adapters.redis import RedisSettingsStore, counter_key
from opsmeter_policy.domain import day_window, spend_counter
from opsmeter_runtime.kafka import ensure_topics
from opsmeter_runtime.localstack import (
    ManagedProcess,
    broker_process,
    free_port,
    port_open,
    redis_process,
    wait_for,
)
from opsmeter_runtime.projections import policy_status_key

COST = 1_000
PER_WORKSPACE = 100
BUDGET = COST * PER_WORKSPACE
WARNING_AT = 80
"""The 80th event of a workspace reaches 80 % of its budget; the 100th exceeds it."""


@dataclass(frozen=True)
class Engines:
    bootstrap: str
    redis_url: str


@contextmanager
def local_engines(data_dir: Path) -> Iterator[Engines]:
    broker_port, redis_port = free_port(), free_port()
    broker = broker_process(broker_port, data_dir / "logs" / "broker.log").start()
    redis = redis_process(redis_port, data_dir / "redis", data_dir / "logs" / "redis.log").start()
    try:
        wait_for(lambda: port_open(broker_port), timeout=30, what="broker", process=broker)
        wait_for(lambda: port_open(redis_port), timeout=30, what="redis", process=redis)
        engines = Engines(f"127.0.0.1:{broker_port}", f"redis://127.0.0.1:{redis_port}/0")
        asyncio.run(ensure_topics(engines.bootstrap, ALL_TOPICS, compacted=COMPACTED_TOPICS))
        yield engines
    finally:
        redis.stop(10)
        broker.stop(10)


@contextmanager
def policy_engine(engines: Engines, data_dir: Path) -> Iterator[None]:
    port = free_port()
    env = {
        "OPSMETER_ENV": "test",
        "OPSMETER_LOG_LEVEL": "WARNING",
        "OPSMETER_DATA_DIR": str(data_dir),
        "OPSMETER_KAFKA_BOOTSTRAP": engines.bootstrap,
        "OPSMETER_REDIS_URL": engines.redis_url,
        "OPSMETER_KAFKA_SESSION_TIMEOUT_MS": "3000",
        "OPSMETER_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "OPSMETER_POLICY_ENGINE_PORT": str(port),
    }
    argv = [sys.executable, "-c", "from opsmeter_policy.main import run; run()"]
    engine = ManagedProcess("policy-engine", argv, data_dir / "logs" / "policy-engine.log", env).start()
    try:
        wait_for(
            lambda: http_ready(f"http://127.0.0.1:{port}"), timeout=60, what="policy-engine /readyz", process=engine
        )
        yield
    finally:
        engine.stop(40)


def event(workspace_id: str, index: int) -> LlmRequestIngested:
    from datetime import UTC, datetime
    from uuid import uuid4

    now = datetime.now(UTC)
    return LlmRequestIngested(
        event_id=uuid4(),
        occurred_at=now,
        ingested_at=now,
        workspace_id=workspace_id,
        payload=LlmRequestIngestedPayload(
            external_request_id=f"bench-{index}",
            provider="openai",
            model="gpt-4o-mini",
            model_normalized="gpt-4o-mini",
            endpoint_tag="bench",
            user_id="u",
            input_tokens=812,
            output_tokens=164,
            total_tokens=976,
            cost_micro_usd=COST,
            priced=True,
            price_catalog_version="bench",
            api_key_id="bench",
        ),
    )


async def configure(redis: Redis, workspaces: list[str]) -> None:
    store = RedisSettingsStore(redis)
    for ws in workspaces:
        settings = PolicySettingsPayload(
            version=1, daily_limit_micro_usd=BUDGET, changed_by_credential_id="bench", changed_by_role="system"
        )
        await store.apply(ws, settings)


@dataclass
class Burst:
    events: int
    seconds: float
    decision_latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.events / self.seconds


async def burst(engines: Engines, prefix: str, workspaces_count: int) -> Burst:
    workspaces = [f"ws_{prefix}{i:05d}" for i in range(workspaces_count)]
    redis = Redis.from_url(engines.redis_url)
    await configure(redis, workspaces)
    decisions = AIOKafkaConsumer(
        Topics.POLICY_DECISIONS, bootstrap_servers=engines.bootstrap, auto_offset_reset="earliest"
    )
    await decisions.start()
    producer = AIOKafkaProducer(bootstrap_servers=engines.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    sent_at: dict[tuple[str, int], float] = {}
    total = workspaces_count * PER_WORKSPACE
    started = time.perf_counter()
    for k in range(1, PER_WORKSPACE + 1):
        for ws in workspaces:
            if k in (WARNING_AT, PER_WORKSPACE):
                sent_at[(ws, k)] = time.perf_counter()
            await producer.send(Topics.TELEMETRY, encode_event(event(ws, k)), key=ws.encode())
    await producer.flush()
    keys = [counter_key(ws, spend_counter(day_window(event(ws, 0).occurred_at))) for ws in workspaces]
    deadline = time.perf_counter() + 300
    while time.perf_counter() < deadline:
        if sum(int(v or 0) for v in await redis.mget(keys)) >= total * COST:
            break
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - started
    latencies: list[float] = []
    deadline = time.perf_counter() + 60
    while len(latencies) < 2 * workspaces_count and time.perf_counter() < deadline:
        for records in (await decisions.getmany(timeout_ms=200)).values():
            now = time.perf_counter()
            for record in records:
                decision = decode_event(record.value or b"")
                k = PER_WORKSPACE if decision.type == "policy.budget_exceeded" else WARNING_AT
                if (decision.workspace_id, k) in sent_at:
                    latencies.append((now - sent_at[(decision.workspace_id, k)]) * 1000)
    await producer.stop()
    await decisions.stop()
    await redis.aclose()
    return Burst(total, seconds, sorted(latencies))


async def paced(engines: Engines, prefix: str, rate: int, seconds: int) -> list[float]:
    """Send ``rate`` events/s; return the ms from each crossing event's send to its visible warning flag."""
    workspaces = [f"ws_{prefix}{i:05d}" for i in range(rate * seconds // PER_WORKSPACE)]
    redis = Redis.from_url(engines.redis_url)
    await configure(redis, workspaces)
    producer = AIOKafkaProducer(bootstrap_servers=engines.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    waiting: dict[str, float] = {}
    latencies: list[float] = []

    async def watch() -> None:
        while True:
            if waiting:
                names = list(waiting)
                pipe = redis.pipeline(transaction=False)
                for ws in names:
                    pipe.hget(policy_status_key(ws), "budget_warning")
                flags = await pipe.execute()
                now = time.perf_counter()
                for ws, flag in zip(names, flags, strict=True):
                    if flag == b"1":
                        latencies.append((now - waiting.pop(ws)) * 1000)
            await asyncio.sleep(0.002)

    watcher = asyncio.create_task(watch())
    tick, per_tick = 0.01, rate // 100
    order = [(ws, k) for k in range(1, PER_WORKSPACE + 1) for ws in workspaces]
    start = time.perf_counter()
    for i in range(0, len(order), per_tick):
        for ws, k in order[i : i + per_tick]:
            await producer.send(Topics.TELEMETRY, encode_event(event(ws, k)), key=ws.encode())
            if k == WARNING_AT:
                waiting[ws] = time.perf_counter()
        await asyncio.sleep(max(0.0, start + (i // per_tick + 1) * tick - time.perf_counter()))
    await producer.flush()
    for _ in range(600):  # at most 30 s for the last flags
        if not waiting:
            break
        await asyncio.sleep(0.05)
    watcher.cancel()
    await producer.stop()
    await redis.aclose()
    return sorted(latencies)


async def bare_consume(engines: Engines, expected: int) -> float:
    consumer = AIOKafkaConsumer(
        Topics.TELEMETRY, bootstrap_servers=engines.bootstrap, auto_offset_reset="earliest", group_id="bench-bare"
    )
    await consumer.start()
    count, started = 0, 0.0
    deadline = time.perf_counter() + 120
    while count < expected and time.perf_counter() < deadline:
        for records in (await consumer.getmany(timeout_ms=200, max_records=500)).values():
            started = started or time.perf_counter()
            count += len(records)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return count / elapsed if elapsed else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the policy section of this markdown file")
    parser.add_argument("--workspaces", type=int, default=200, help="burst: workspaces × 100 events each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsmeter-policy-bench-") as tmp:
        data_dir = Path(tmp)
        with local_engines(data_dir) as engines, policy_engine(engines, data_dir):
            result = asyncio.run(burst(engines, "burst", args.workspaces))
            paced_ms = asyncio.run(paced(engines, "paced", 1000, 10))
            baseline = asyncio.run(bare_consume(engines, result.events))
    d = result.decision_latencies_ms
    info = machine()
    where = f"{info.get('cpu', '?')}, {info.get('cores', '?')} usable cores, {info.get('os', '?')}"
    burst_rate = f"{result.events:,} in {result.seconds:.2f} s = **{result.rate:,.0f} events/s**"
    burst_p = f"{percentile(d, 50):.0f} / **{percentile(d, 95):.0f} ms**"
    paced_p = f"{percentile(paced_ms, 50):.0f} / **{percentile(paced_ms, 95):.0f} ms**"
    markdown = f"""## Policy engine (`bench/policy_bench.py`)

Command: `.venv/bin/python bench/policy_bench.py --write docs/benchmarks.md` (`make bench`).
Machine: {where}, commit {info.get("commit", "?")}.
Local Tansu broker and Redis, the engine as one process (one consumer, batches of ≤ 500), every workspace
with a daily budget crossed by its own events.

| measure | value |
|---|---|
| burst: events consumed (dedupe, spend, evaluation, projection) | {burst_rate} |
| burst: event sent → decision read back (p50 / p95, n={len(d)}) | {burst_p} |
| 1,000 events/s: crossing sent → flag in the projection (p50 / p95, n={len(paced_ms)}) | {paced_p} |
| baseline, same run: bare aiokafka consumer of the same events | {baseline:,.0f} events/s |

Burst latencies include the backlog: every crossing waits behind the events produced before it.
"""
    print(markdown)
    if args.write:
        write_section(args.write, "policy", markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
