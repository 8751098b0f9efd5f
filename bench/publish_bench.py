"""Kafka publish: a batch request's records through ``EventPublisher.send_many`` against aiokafka's per-record ``send``.

Run with ``make bench`` (``.venv/bin/python bench/publish_bench.py --write docs/benchmarks.md``).

Each caller sends runs of 100 records of ~900 bytes on one key (one workspace's batch request, one partition),
with ``acks=all``, and waits for their acknowledgements; 1 caller, then 8 concurrent ones. The baseline, in the
same run, is the same records through the producer's ``send()`` one by one (what ``send_many`` did before it
handed a run to ``send_batch``). CPU is this process's (the producer's side), per record.
"""

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiokafka import AIOKafkaProducer
from report import machine, write_section

from opsmeter_runtime.kafka import EventPublisher, ensure_topics
from opsmeter_runtime.localstack import broker_process, free_port, port_open, wait_for
from opsmeter_runtime.settings import RuntimeSettings

TOPIC = "bench.publish"
KEY = b"ws_benchpublish"
VALUE = b"x" * 900
RUN = 100
RUNS = 200


async def measure(send_run: Callable[[], Awaitable[None]], callers: int) -> tuple[float, float]:
    """(records/s, µs of CPU per record) for ``RUNS`` runs shared by ``callers`` concurrent callers."""

    async def caller(runs: int) -> None:
        for _ in range(runs):
            await send_run()

    await caller(10)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(RUNS // callers) for _ in range(callers)))
    records = RUNS // callers * callers * RUN
    return records / (time.perf_counter() - wall), (time.process_time() - cpu) * 1e6 / records


async def bench(bootstrap: str) -> list[tuple[str, int, float, float]]:
    await ensure_topics(bootstrap, [TOPIC], partitions=6)
    settings = RuntimeSettings(kafka_bootstrap=bootstrap)
    publisher = EventPublisher(settings, client_id="bench-publisher")
    await publisher.start()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=settings.kafka_linger_ms,
        max_batch_size=settings.kafka_max_batch_bytes,
    )  # fmt: skip
    await producer.start()

    async def per_record() -> None:
        await asyncio.wait([await producer.send(TOPIC, value=VALUE, key=KEY) for _ in range(RUN)])

    async def send_many() -> None:
        sent = await publisher.send_many([(TOPIC, KEY, VALUE)] * RUN, timeout_s=30)
        assert all(d is not None and d.done() and d.exception() is None for d in sent)

    rows = []
    try:
        for callers in (1, 8):
            for name, run in (("aiokafka send(), per record (baseline)", per_record), ("send_many", send_many)):
                rows.append((name, callers, *await measure(run, callers)))
    finally:
        await producer.stop()
        await publisher.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="the markdown page whose publish section to replace")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsmeter-publish-bench-") as tmp:
        port = free_port()
        broker = broker_process(port, Path(tmp) / "broker.log").start()
        try:
            wait_for(lambda: port_open(port), timeout=30, what="the broker", process=broker)
            rows = asyncio.run(bench(f"127.0.0.1:{port}"))
        finally:
            broker.stop()
    m = machine()
    table = "\n".join(f"| {name} | {callers} | {rate:,.0f} | {cpu:.1f} |" for name, callers, rate, cpu in rows)
    markdown = f"""## Kafka publish (`bench/publish_bench.py`)

Command: `.venv/bin/python bench/publish_bench.py --write docs/benchmarks.md` (`make bench`).
Machine: {m["cpu"]}, {m["cores"]}, {m["os"]}; commit {m["commit"]}. Local Tansu broker, `acks=all`.
Runs of {RUN} records of {len(VALUE)} bytes on one key (a batch request's events), {RUNS} runs per row.

| path | concurrent callers | records/s | producer CPU µs/record |
|---|---:|---:|---:|
{table}

A run goes to the broker as its own record batch (`send_batch`), so one partition carries one caller's run per
round trip (ADR 56): with 8 callers the records/s stay near the per-record path's while the CPU drops.
"""
    print(markdown)
    if args.write:
        write_section(args.write, "publish", markdown)


if __name__ == "__main__":
    main()
