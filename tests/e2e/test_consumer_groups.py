"""Consumers scale by group members (ADR 0059): the policy engine and reporting's sink each run as two processes
of one consumer group over telemetry's 6 partitions, one of each is SIGKILLed mid-run, and nothing is lost or
counted twice.

The policy engine's members share Redis, so its spend is one set of counters and must equal the sum of the
distinct real events to the micro-dollar. Reporting's members each own an embedded chDB here (one process per
path; in production they share one ClickHouse, where the sink's dedupe and ReplacingMergeTree keep one row per
event, ADR 0030): each store holds an event at most once, and together they hold every event, each exactly as sent.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import murmur2
from redis.asyncio import Redis

from opsmeter_cli.stack import http_ready
from opsmeter_contracts import LlmRequestIngested
from opsmeter_contracts.topics import ALL_TOPICS, COMPACTED_TOPICS
from opsmeter_policy.adapters.redis import counter_key
from opsmeter_policy.domain import month_window, spend_counter
from opsmeter_runtime.kafka import ensure_topics
from opsmeter_runtime.localstack import (
    ManagedProcess,
    broker_process,
    free_port,
    port_open,
    redis_process,
    wait_for,
)
from opsmeter_runtime.testing import build_telemetry, produce_telemetry, selected_backend

PARTITIONS = 6
EVENTS = 4_000
WORKSPACES = 12


@dataclass(frozen=True)
class SixPartitionEngines:
    kafka_bootstrap: str
    redis_url: str
    root: Path


@pytest.fixture(scope="module")
def six_partitions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SixPartitionEngines]:
    """A broker of its own whose topics have 6 partitions, and a Redis of its own."""
    if selected_backend() != "local":
        pytest.skip("SIGKILLs local service processes; runs in the local mode")
    root = tmp_path_factory.mktemp("groups")
    broker_port, redis_port = free_port(), free_port()
    broker = broker_process(broker_port, root / "logs" / "broker.log").start()
    redis = redis_process(redis_port, root / "redis", root / "logs" / "redis.log").start()
    try:
        wait_for(lambda: port_open(broker_port), timeout=30, what="the broker", process=broker)
        wait_for(lambda: port_open(redis_port), timeout=30, what="Redis", process=redis)
        bootstrap = f"127.0.0.1:{broker_port}"
        asyncio.run(ensure_topics(bootstrap, ALL_TOPICS, partitions=PARTITIONS, compacted=COMPACTED_TOPICS))
        yield SixPartitionEngines(bootstrap, f"redis://127.0.0.1:{redis_port}/0", root)
    finally:
        redis.stop()
        broker.stop()


def member(engines: SixPartitionEngines, service: str, module: str, name: str) -> tuple[ManagedProcess, int]:
    """One group member as its own process (its own data dir: reporting's chDB, a gateway's spool)."""
    port = free_port()
    prefix = {"policy-engine": "OPSMETER_POLICY_ENGINE_", "reporting": "OPSMETER_REPORTING_"}[service]
    process = ManagedProcess(
        name=name,
        argv=[sys.executable, "-c", f"from {module} import run; run()"],
        log_path=engines.root / "logs" / f"{name}.log",
        env={
            "OPSMETER_ENV": "test",
            "OPSMETER_LOG_LEVEL": "WARNING",
            "OPSMETER_DATA_DIR": str(engines.root / name),
            "OPSMETER_KAFKA_BOOTSTRAP": engines.kafka_bootstrap,
            "OPSMETER_REDIS_URL": engines.redis_url,
            "OPSMETER_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "OPSMETER_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            f"{prefix}PORT": str(port),
        },
    ).start()
    return process, port


def wait_ready(process: ManagedProcess, port: int) -> None:
    wait_for(lambda: http_ready(f"http://127.0.0.1:{port}"), timeout=120, what=f"{process.name} ready", process=process)


def kill(process: ManagedProcess) -> None:
    os.killpg(process.pid or 0, signal.SIGKILL)
    if process.process is not None:
        process.process.wait(5)


def sink_partitions(port: int) -> dict[int, int]:
    """The sink's assigned telemetry partitions and their lag, from its /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found: dict[int, int] = {}
    for line in text.splitlines():
        if line.startswith("opsmeter_consumer_lag{") and 'topic="telemetry.llm-requests"' in line:
            partition = int(line.split('partition="')[1].split('"')[0])
            found[partition] = int(line.rsplit(" ", 1)[1])
    return found


def sink_inserted(port: int) -> int:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    line = next(
        li for li in text.splitlines() if li.startswith('opsmeter_reporting_sink_events_total{outcome="inserted"}')
    )
    return int(line.rsplit(" ", 1)[1])


READ_STORE = """
import asyncio, json, sys
from datetime import UTC, datetime, timedelta
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.domain import UsageWindow
from opsmeter_runtime.clickhouse import ClickHouse

async def main() -> None:
    ch = ClickHouse("chdb://" + sys.argv[1], workers=1)
    await ch.connect()
    rolled = "SELECT sum(requests) AS n, sum(cost_micro_usd) AS cost FROM llm_requests_hourly"
    rows = await ch.query("SELECT toString(event_id) AS id, cost_micro_usd AS cost FROM llm_requests_raw")
    found = {"rows": [[r["id"], int(r["cost"])] for r in rows]}
    found["rolled"] = [int(v or 0) for v in (await ch.query(rolled))[0].values()]
    if sys.argv[2] == "rebuild":
        now = datetime.now(UTC)
        window = UsageWindow(now - timedelta(days=2), now + timedelta(days=1))
        await ClickHouseTelemetryStore(ch).rebuild(window, now=now)
        found["rebuilt"] = [int(v or 0) for v in (await ch.query(rolled))[0].values()]
    await ch.close()
    print(json.dumps(found))

asyncio.run(main())
"""


def read_store(data_dir: Path, *, rebuild: bool = False) -> dict[str, list[Any]]:
    """The raw rows (event id, cost) and the hourly rollups' [requests, cost] of a sink's store; with ``rebuild``,
    also those rollups after the operator's rebuild from raw (ADR 30)."""
    result = subprocess.run(
        [sys.executable, "-c", READ_STORE, str(data_dir / "clickhouse"), "rebuild" if rebuild else "read"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    parsed: dict[str, list[Any]] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def workspaces_on_every_partition() -> list[str]:
    """Two workspaces per partition (the producer's default partitioner: murmur2 of the key), so every
    partition has records and every member has work."""
    chosen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    while any(len(ws) < WORKSPACES // PARTITIONS for ws in chosen.values()):
        ws = f"ws_{uuid.uuid4().hex[:16]}"
        partition = (murmur2(ws.encode()) & 0x7FFFFFFF) % PARTITIONS
        if len(chosen[partition]) < WORKSPACES // PARTITIONS:
            chosen[partition].append(ws)
    return [ws for group in chosen.values() for ws in group]


def telemetry() -> tuple[list[LlmRequestIngested], Counter[str]]:
    workspaces = workspaces_on_every_partition()
    events = [build_telemetry(workspaces[i % WORKSPACES], 1 + (i * 7919) % 5000) for i in range(EVENTS)]
    expected: Counter[str] = Counter()
    for event in events:
        expected[event.workspace_id] += event.payload.cost_micro_usd
    return events, expected


def test_two_members_each_one_killed_mid_run_count_and_store_every_event_once(
    six_partitions: SixPartitionEngines,
) -> None:
    events, expected = telemetry()
    month = spend_counter(month_window(events[0].occurred_at))
    keys = [counter_key(ws, month) for ws in expected]

    async def counted() -> dict[str, int]:
        redis = Redis.from_url(six_partitions.redis_url)
        try:
            return {ws: int(v or 0) for ws, v in zip(expected, await redis.mget(keys), strict=True)}
        finally:
            await redis.aclose()

    members = {
        name: member(six_partitions, service, module, name)
        for name, service, module in [
            ("policy-a", "policy-engine", "opsmeter_policy.main"),
            ("policy-b", "policy-engine", "opsmeter_policy.main"),
            ("sink-a", "reporting", "opsmeter_reporting.main"),
            ("sink-b", "reporting", "opsmeter_reporting.main"),
        ]
    }
    port = {name: p for name, (_, p) in members.items()}
    try:
        for process, member_port in members.values():
            wait_ready(process, member_port)
        # The stream comes in three parts, each kill between two of them, so every kill is mid-run whatever
        # the speed of the consumers against the producer's: the survivor takes over a stream that goes on.
        first, second, last = events[:1_600], events[1_600:2_800], events[2_800:] + events[::10]  # and retries
        asyncio.run(produce_telemetry(six_partitions.kafka_bootstrap, first))
        total = sum(expected.values())
        deadline = time.monotonic() + 60
        while sum(asyncio.run(counted()).values()) < total // 5:
            assert time.monotonic() < deadline, "the policy engines consumed nothing"
            time.sleep(0.01)
        kill(members["policy-a"][0])
        asyncio.run(produce_telemetry(six_partitions.kafka_bootstrap, second))
        while sink_inserted(port["sink-a"]) == 0 or sink_inserted(port["sink-b"]) == 0:  # both have partitions
            assert time.monotonic() < deadline, "a sink stored nothing"
            time.sleep(0.01)
        kill(members["sink-a"][0])
        asyncio.run(produce_telemetry(six_partitions.kafka_bootstrap, last))

        deadline = time.monotonic() + 90
        while asyncio.run(counted()) != dict(expected) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert asyncio.run(counted()) == dict(expected)  # every real event once, to the micro-dollar
        while len(sink_partitions(port["sink-b"])) < PARTITIONS:  # the survivor took the killed member's partitions
            assert time.monotonic() < deadline, "sink-b never took over"
            time.sleep(0.2)
        members["sink-b"][0].stop(60)  # drains: consumes until a poll comes back empty, commits, leaves
    finally:
        for process, _ in members.values():
            process.stop(30)

    stored: dict[str, int] = {}
    for name in ("sink-a", "sink-b"):
        store = read_store(six_partitions.root / name, rebuild=name == "sink-a")
        rows = store["rows"]
        assert rows, f"{name} stored nothing"
        ids = [event_id for event_id, _ in rows]
        assert len(ids) == len(set(ids)), f"{name} stored an event twice"
        whole = [len(rows), sum(cost for _, cost in rows)]
        if name == "sink-a":
            # Killed mid-run. ClickHouse inserts raw and then each view, so a kill in between leaves raw rows the
            # rollups never counted; the redelivery repairs that in the store it reaches (the sink's integration
            # tests), but here it reached sink-b's own embedded store. The rollups never count more than raw, and
            # the rebuild from raw (ADR 30) makes them whole.
            assert all(r <= w for r, w in zip(store["rolled"], whole, strict=True)), f"{name} counted an event twice"
            assert store["rebuilt"] == whole, f"{name}'s rebuilt rollups differ from raw"
        else:
            assert store["rolled"] == whole, f"{name}'s rollups differ from raw"
        for event_id, cost in rows:
            assert stored.setdefault(event_id, cost) == cost
    assert stored == {str(e.event_id): e.payload.cost_micro_usd for e in events}
