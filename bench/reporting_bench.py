"""Reporting benchmark: sink throughput, freshness at 1,000 events/s, Investigate Spike over 10M events.

Run with ``make bench`` (``.venv/bin/python bench/reporting_bench.py --write docs/benchmarks.md``).

* Sink: ``ClickHouseTelemetryStore.append`` (dedupe against raw by event id, insert, the hourly and
  daily materialized views) on chDB in a temporary directory, in batches of the sink's default size.
* Freshness: a Tansu broker on a free port; a producer publishes 1,000 events/s for a fixed time;
  the runtime's ``ConsumerEngine`` (linger 250 ms, max 5,000) runs the sink handler; freshness is the
  time from an event's ``ingested_at`` to the end of the insert that made it queryable in the rollups.
* Spike: 10M events (one workspace, 60 days, correlated dimensions: 2,000 users on 30 endpoints, 8
  models, 3 providers, 3 prompt versions, and a planted driver in the last two days) generated
  server-side with ``INSERT … SELECT FROM numbers()`` in 100k-row blocks; then ``investigate`` over
  the tiers (daily + hourly + raw edges) against the baseline, the same comparison over raw rows (FINAL).
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from report import machine, write_section

from opsmeter_contracts import LlmRequestIngested, LlmRequestIngestedPayload, Topics
from opsmeter_contracts.topics import ALL_TOPICS
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.domain import HOUR, Breakdown, Segment, UsageWindow, analyse_spike, floor_to
from opsmeter_reporting.metrics import SinkStats
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.consumer import ConsumerEngine, build_dispatcher
from opsmeter_runtime.kafka import EventPublisher, ensure_topics
from opsmeter_runtime.localstack import broker_process, free_port, port_open, wait_for
from opsmeter_runtime.settings import RuntimeSettings

WORKSPACE = "ws_benchmark000001"
SINK_EVENTS = 100_000
SINK_BATCH = 5_000
FRESHNESS_RATE = 1_000
FRESHNESS_SECONDS = 15
BIG = 10_000_000
RUNS = 7


def make_event(i: int, at: datetime) -> LlmRequestIngested:
    payload = LlmRequestIngestedPayload(
        external_request_id=f"req_{i}",
        provider="openai",
        model="gpt-4o-mini",
        model_normalized="gpt-4o-mini",
        endpoint_tag=f"feature.{i % 30}",
        user_id=f"u_{i % 2000}",
        prompt_version=f"v{i % 3}",
        input_tokens=812,
        output_tokens=164,
        total_tokens=976,
        cost_micro_usd=220,
        priced=True,
        price_catalog_version="bench",
        api_key_id="k",
    )
    return LlmRequestIngested(
        event_id=uuid.uuid4(), occurred_at=at, ingested_at=at, workspace_id=WORKSPACE, payload=payload
    )


async def sink_throughput(store: ClickHouseTelemetryStore) -> dict[str, float]:
    now = datetime.now(UTC)
    events = [make_event(i, now - timedelta(seconds=i % 3600)) for i in range(SINK_EVENTS)]
    started = time.perf_counter()
    for i in range(0, len(events), SINK_BATCH):
        await store.append(events[i : i + SINK_BATCH])
    elapsed = time.perf_counter() - started
    redelivery_started = time.perf_counter()
    result = await store.append(events[:SINK_BATCH])
    redelivery = time.perf_counter() - redelivery_started
    assert result.inserted == 0
    return {"events_per_s": SINK_EVENTS / elapsed, "redelivered_batch_ms": redelivery * 1000}


async def freshness(store: ClickHouseTelemetryStore, data_dir: Path) -> dict[str, float]:
    port = free_port()
    broker = broker_process(port, data_dir / "broker.log").start()
    try:
        wait_for(lambda: port_open(port), timeout=30, what="the Tansu broker", process=broker)
        settings = RuntimeSettings(
            env="test",
            kafka_bootstrap=f"127.0.0.1:{port}",
            data_dir=data_dir,
            kafka_session_timeout_ms=3000,
            kafka_heartbeat_interval_ms=1000,
        )
        await ensure_topics(settings.kafka_bootstrap, ALL_TOPICS)
        publisher = EventPublisher(settings, client_id="bench")
        await publisher.start()
        stats = SinkStats()

        async def sink(events: list[LlmRequestIngested]) -> None:
            result = await store.append(events)
            stats.observe(events, result.inserted, result.redelivered, result.resent)

        engine = ConsumerEngine(
            settings=settings,
            group_id="bench.sink",
            topics=[Topics.TELEMETRY],
            dispatch=build_dispatcher(batch_handlers={LlmRequestIngested: [sink]}, deps={}),
            dead_letters=publisher,
            max_batch=5000,
            linger_ms=250,
        )
        await engine.start()
        deadline = time.monotonic() + 30
        while not engine.assigned and time.monotonic() < deadline:  # noqa: ASYNC110 - the engine exposes no event
            await asyncio.sleep(0.1)
        sent = 0
        started = time.monotonic()
        for tick in range(FRESHNESS_SECONDS * 10):
            await asyncio.sleep(max(0.0, started + tick / 10 - time.monotonic()))
            now = datetime.now(UTC)
            burst = [make_event(sent + j, now) for j in range(FRESHNESS_RATE // 10)]
            await asyncio.gather(*(publisher.publish(Topics.TELEMETRY, e) for e in burst))
            sent += len(burst)
        deadline = time.monotonic() + 30
        while stats.inserted < sent and time.monotonic() < deadline:  # noqa: ASYNC110 - polled with a deadline
            await asyncio.sleep(0.1)
        await engine.stop()
        await publisher.stop()
        return {
            "sent": sent,
            "stored": stats.inserted,
            "p95_s": stats.freshness_p95_s() or 0.0,
            "batches": stats.batches,
            "rate": sent / FRESHNESS_SECONDS,
        }
    finally:
        broker.stop(10)


GENERATE = """
INSERT INTO llm_requests_raw
    (event_id, workspace_id, occurred_at, ingested_at, external_request_id, provider, model, model_normalized,
     endpoint_tag, user_id, prompt_version, input_tokens, output_tokens, total_tokens, cost_micro_usd, priced,
     price_catalog_version, data_mode, environment, status)
SELECT generateUUIDv4(number) AS event_id, {ws:String}, at, at, toString(number),
       ['openai', 'anthropic', 'google'][m % 3 + 1], concat('model-', toString(m)), concat('model-', toString(m)),
       if(at >= {spike_from:DateTime64(3, 'UTC')} AND number % 4 = 0, 'search.rerank', concat('feature.', toString(e))),
       concat('u_', toString(u)), concat('v', toString(intDiv(toRelativeWeekNum(at), 2) % 3)),
       800, 160, 960, (m + 1) * 100 + number % 50, true, 'bench', 'real', 'prod', 'success'
FROM (
    SELECT number, u, e, (e + intDiv(u, 1000)) % 8 AS m,
           fromUnixTimestamp64Milli(
               toInt64({start_ms:Int64} + intDiv(number * {span_ms:Int64}, {n:Int64})), 'UTC') AS at
    FROM (SELECT number, cityHash64(number) % 2000 AS u, u % 30 AS e FROM numbers({n:Int64}))
)
SETTINGS max_block_size = 100000, max_insert_block_size = 100000, min_insert_block_size_rows = 100000
"""


async def timed(fn: Callable[[], Awaitable[Any]], runs: int = RUNS) -> float:
    await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def spike_over_10m(ch: ClickHouse, store: ClickHouseTelemetryStore) -> dict[str, Any]:
    end = floor_to(datetime.now(UTC), HOUR) + timedelta(minutes=17)
    start = end - timedelta(days=60)
    started = time.perf_counter()
    await ch.command(
        GENERATE,
        {
            "ws": WORKSPACE + "x",
            "start_ms": int(start.timestamp() * 1000),
            "span_ms": int((end - start).total_seconds() * 1000),
            "n": BIG,
            "spike_from": end - timedelta(days=2),
        },
    )
    generated_s = time.perf_counter() - started
    counts = {
        table: (
            await ch.query(
                f"SELECT count() AS n FROM {table} WHERE workspace_id = {{ws:String}}", {"ws": WORKSPACE + "x"}
            )
        )[0]["n"]
        for table in ("llm_requests_raw", "llm_requests_hourly", "llm_requests_daily")
    }
    results: dict[str, Any] = {"generated_s": generated_s, "rows": counts}

    def raw_only(window: UsageWindow) -> list[Segment]:
        return [Segment("raw", window.start, window.end)]

    for name, duration in (("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30))):
        current = UsageWindow(end - duration, end)
        periods = {"cur": current, "prev": current.previous()}

        async def tiered(periods: dict[str, UsageWindow] = periods) -> Any:
            return await store.breakdown(WORKSPACE + "x", periods, "real")

        async def raw(periods: dict[str, UsageWindow] = periods) -> Any:
            return await store.breakdown(WORKSPACE + "x", periods, "real", planner=raw_only)

        answer = analyse_spike(Breakdown.of(await tiered()), current, current.previous())
        baseline = analyse_spike(Breakdown.of(await raw()), current, current.previous())
        assert answer.current == baseline.current
        assert answer.previous == baseline.previous
        results[name] = {
            "tiered_ms": await timed(tiered),
            "raw_ms": await timed(raw, runs=2),
            "top": answer.drivers["endpointTag"][0].key,
            "events": answer.current.requests + answer.previous.requests,
        }
    return results


async def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="opsmeter-reporting-bench-") as tmp:
        data_dir = Path(tmp)
        ch = ClickHouse(f"chdb://{data_dir / 'clickhouse'}")
        await ch.connect()
        try:
            await ch.migrate(files("opsmeter_reporting") / "migrations")
            store = ClickHouseTelemetryStore(ch)
            print("sink throughput…", file=sys.stderr)
            sink = await sink_throughput(store)
            print("freshness at 1,000 events/s…", file=sys.stderr)
            fresh = await freshness(store, data_dir)
            print("10M events and the spike query…", file=sys.stderr)
            spike = await spike_over_10m(ch, store)
        finally:
            await ch.close()
    return {"sink": sink, "freshness": fresh, "spike": spike}


def markdown(results: dict[str, Any], total_s: float) -> str:
    m = machine()
    sink, fresh, spike = results["sink"], results["freshness"], results["spike"]
    rows = spike["rows"]
    lines = [
        "## Reporting (bench/reporting_bench.py)",
        "",
        "`.venv/bin/python bench/reporting_bench.py --write docs/benchmarks.md` "
        f"({datetime.now(UTC):%Y-%m-%d}, {total_s:.0f} s in all). Machine: {m['cpu']}, {m['cores']}, {m['ram']}, "
        f"{m['os']}, Python {m['python']}, commit {m['commit']}. ClickHouse: chDB in-process, temp dir.",
        "",
        "| measure | figure |",
        "|---|---|",
        f"| sink: `append` of {SINK_EVENTS:,} events in batches of {SINK_BATCH:,} (dedupe + insert + 2 MVs) "
        f"| **{sink['events_per_s']:,.0f} events/s** |",
        f"| sink: a redelivered batch of {SINK_BATCH:,} (all already stored; nothing inserted) "
        f"| {sink['redelivered_batch_ms']:.0f} ms |",
        f"| freshness at {fresh['rate']:,.0f} events/s for {FRESHNESS_SECONDS} s (Tansu → ConsumerEngine → rollups) "
        f"| **p95 {fresh['p95_s']:.2f} s** ({fresh['stored']:,}/{fresh['sent']:,} stored, "
        f"{fresh['batches']} batches) |",
        f"| generating {BIG:,} events server-side (100k-row blocks, MVs on) | {spike['generated_s']:.0f} s |",
        f"| rows: raw / hourly / daily | {rows['llm_requests_raw']:,} / {rows['llm_requests_hourly']:,} / "
        f"{rows['llm_requests_daily']:,} |",
        "",
        f"Investigate Spike over the {BIG:,}-event workspace (current vs previous window; median of {RUNS} after "
        "a warm-up; windows end at an odd minute so every tier is used). Baseline: the same comparison over raw "
        "rows with FINAL, measured in the same run; both give identical totals.",
        "",
        "| window | events compared | tiers (daily + hourly + raw edges) | baseline: raw rows | top endpoint |",
        "|---|---|---|---|---|",
    ]
    for name in ("24h", "7d", "30d"):
        r = spike[name]
        lines.append(
            f"| {name} | {r['events']:,} | **{r['tiered_ms']:.0f} ms** | {r['raw_ms']:.0f} ms | `{r['top']}` |"
        )
    lines += ["", "Target: spike under 300 ms over 10 million events."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", type=Path, help="Write the section into this markdown file")
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(run())
    text = markdown(results, time.perf_counter() - started)
    print(text)
    if args.write:
        write_section(args.write, "reporting", text)


if __name__ == "__main__":
    main()
