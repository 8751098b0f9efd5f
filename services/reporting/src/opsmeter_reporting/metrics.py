"""The sink's own figures (events/s, freshness event → rollup) and consumer lag, as Prometheus text."""

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opsmeter_contracts import LlmRequestIngested


@dataclass
class SinkStats:
    """Counters since start, and the freshness of the last ``window`` events (ingest → queryable in rollups)."""

    inserted: int = 0
    redelivered: int = 0
    resent: int = 0
    repaired_days: int = 0
    batches: int = 0
    window: int = 20_000
    _freshness_s: deque[float] = field(default_factory=deque)

    def observe(
        self, events: Sequence[LlmRequestIngested], inserted: int, redelivered: int, resent: int, repaired_days: int = 0
    ) -> None:
        now = datetime.now(UTC)
        self.batches += 1
        self.repaired_days += repaired_days
        self.inserted += inserted
        self.redelivered += redelivered
        self.resent += resent
        for event in events:
            self._freshness_s.append((now - event.ingested_at).total_seconds())
        while len(self._freshness_s) > self.window:
            self._freshness_s.popleft()

    def freshness_p95_s(self) -> float | None:
        if not self._freshness_s:
            return None
        ordered = sorted(self._freshness_s)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def prometheus_text(stats: SinkStats, lag: Mapping[tuple[str, str, int], int]) -> str:
    """``lag`` maps (consumer group, topic, partition) to records behind the high watermark."""
    lines = [
        "# TYPE opsmeter_reporting_sink_events_total counter",
        f'opsmeter_reporting_sink_events_total{{outcome="inserted"}} {stats.inserted}',
        f'opsmeter_reporting_sink_events_total{{outcome="redelivered"}} {stats.redelivered}',
        f'opsmeter_reporting_sink_events_total{{outcome="resent"}} {stats.resent}',
        "# TYPE opsmeter_reporting_rollup_days_repaired_total counter",
        f"opsmeter_reporting_rollup_days_repaired_total {stats.repaired_days}",
        "# TYPE opsmeter_reporting_sink_batches_total counter",
        f"opsmeter_reporting_sink_batches_total {stats.batches}",
        "# TYPE opsmeter_reporting_freshness_p95_seconds gauge",
        f"opsmeter_reporting_freshness_p95_seconds {stats.freshness_p95_s() or 0:.3f}",
        "# TYPE opsmeter_consumer_lag gauge",
    ]
    lines += [
        f'opsmeter_consumer_lag{{group="{group}",topic="{topic}",partition="{partition}"}} {records}'
        for (group, topic, partition), records in sorted(lag.items())
    ]
    return "\n".join(lines) + "\n"
