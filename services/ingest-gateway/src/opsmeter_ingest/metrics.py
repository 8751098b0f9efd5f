"""Prometheus metrics of the gateway, served at ``/metrics``.

With several worker processes each writes its metrics to files in ``PROMETHEUS_MULTIPROC_DIR`` (set by
``opsmeter_runtime.service.serve``) and :func:`exposition` merges them: a scrape answers for every worker,
whichever one it reached.
"""

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from opsmeter_runtime.processes import pid_alive

REGISTRY = CollectorRegistry(auto_describe=True)

INGEST_EVENTS = Counter(
    "opsmeter_ingest_events_total",
    "Ingest decisions per event, by HTTP status and reason",
    ["status", "reason"],
    registry=REGISTRY,
)
REJECTED_REQUESTS = Counter(
    "opsmeter_ingest_rejected_requests_total",
    "Ingest requests refused as a whole before their events were decided (API key, body, spool full), "
    "by HTTP status and reason",
    ["status", "reason"],
    registry=REGISTRY,
)
REQUEST_LATENCY = Histogram(
    "opsmeter_ingest_request_seconds",
    "Ingest request latency",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
KAFKA_SEND_LATENCY = Histogram(
    "opsmeter_kafka_send_seconds",
    "Time until the broker acknowledged an ingest event",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 2.5),
    registry=REGISTRY,
)
OTLP_SPANS = Counter(
    "opsmeter_otlp_spans_total",
    "Spans received on /v1/traces: model calls (each then an ingest decision) and the others, skipped",
    ["kind"],
    registry=REGISTRY,
)
SPOOL_DEPTH = Gauge(
    "opsmeter_spool_events",
    "Events in the gateway's local spools (each worker's own, summed over the live ones)",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
SPOOLED_EVENTS = Counter(
    "opsmeter_spooled_events_total",
    "Accepted events written to the local spool (Kafka too slow, or their workspace's earlier events spooled)",
    registry=REGISTRY,
)
DEGRADED_DECISIONS = Counter(
    "opsmeter_degraded_decisions_total",
    "Admission decisions taken in-process because Redis was unreachable",
    registry=REGISTRY,
)


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def exposition() -> bytes:
    """The metrics in Prometheus's text format: this process's, or with several workers all of theirs."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return generate_latest(REGISTRY)
    for pid in {int(m[1]) for f in Path(path).glob("gauge_live*.db") if (m := _LIVE_GAUGE_FILE.fullmatch(f.name))}:
        if not pid_alive(pid):  # a worker that died (and was replaced): its spool is another's now
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path)  # type: ignore[no-untyped-call]
    return generate_latest(merged)


class _Answered(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def reason(self) -> str | None: ...


_EVENT_COUNTERS: dict[tuple[int, str], Any] = {}


def count_outcomes(outcomes: Iterable[_Answered]) -> None:
    """Count each event's decision (label children resolved once: this runs for every event)."""
    tally: dict[tuple[int, str], int] = {}
    for outcome in outcomes:
        key = (outcome.status, outcome.reason or "accepted")
        tally[key] = tally.get(key, 0) + 1
    for (status, reason), n in tally.items():
        child = _EVENT_COUNTERS.get((status, reason))
        if child is None:
            child = _EVENT_COUNTERS[(status, reason)] = INGEST_EVENTS.labels(str(status), reason)
        child.inc(n)
