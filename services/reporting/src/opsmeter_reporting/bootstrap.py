"""Composition root of reporting: ClickHouse (owner of the embedded engine), Redis, the sink, the spike job."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from importlib.resources.abc import Traversable

from opsmeter_contracts import Topics
from opsmeter_reporting.adapters import PlanReader, RejectionReader, SpikeState, TelemetryStore
from opsmeter_reporting.adapters.clickhouse import AnalystLanes, ClickHouseTelemetryStore
from opsmeter_reporting.adapters.redis import (
    RedisCostBasisReader,
    RedisPlanReader,
    RedisRejections,
    RedisSpikeState,
)
from opsmeter_reporting.config import ReportingSettings
from opsmeter_reporting.handlers import BATCH_HANDLERS, DECISION_HANDLERS, EVENT_HANDLERS
from opsmeter_reporting.metrics import SinkStats
from opsmeter_reporting.reports import detect_spikes
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.consumer import ConsumerEngine, build_dispatcher
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PolicyStatusProjection

SERVICE = "reporting"
log = get_logger(__name__)


@dataclass
class ReportingDeps:
    resources: Resources
    settings: ReportingSettings
    store: TelemetryStore
    plans: PlanReader
    policy: PolicyStatusProjection
    spike_state: SpikeState
    rejections: RejectionReader
    sink: ConsumerEngine
    sink_stats: SinkStats


async def open_clickhouse(settings: ReportingSettings) -> ClickHouse:
    clickhouse = ClickHouse.from_settings(settings.runtime)
    await clickhouse.connect()
    await clickhouse.migrate(schema_migrations(settings))
    return clickhouse


def schema_migrations(settings: ReportingSettings) -> Traversable:
    """The single-node DDL, or its twin for a sharded, replicated cluster (ADR 0059)."""
    folder = "migrations_cluster" if settings.clickhouse_topology == "cluster" else "migrations"
    return files("opsmeter_reporting") / folder


async def run_spike_job(deps: ReportingDeps) -> None:
    """Every ``spike_interval_s``: compare the configured window per workspace, emit once per spike."""
    while True:
        await asyncio.sleep(deps.settings.spike_interval_s)
        try:
            if not await deps.spike_state.take_turn(deps.settings.spike_interval_s):
                continue  # another replica runs it this interval
            await detect_spikes(
                store=deps.store,
                spike_state=deps.spike_state,
                publisher=deps.resources.publisher,
                rule=deps.settings.spike_rule,
                window=deps.settings.spike_window,
                now=datetime.now(UTC),
            )
        except Exception as exc:
            log.warning("spike_job_failed", error=repr(exc))


@contextlib.asynccontextmanager
async def bootstrap(settings: ReportingSettings) -> AsyncIterator[ReportingDeps]:
    clickhouse = await open_clickhouse(settings)
    analyst = clickhouse.lane("clickhouse-analyst", settings.analyst_workers, settings.analyst_clickhouse_url)
    operator_sql = clickhouse.lane("clickhouse-operator-sql", 1)
    await analyst.connect()
    await operator_sql.connect()
    try:
        async with open_resources(SERVICE, settings.runtime) as resources:
            resources.extra_checks["clickhouse"] = clickhouse.ping
            store = ClickHouseTelemetryStore(
                clickhouse,
                AnalystLanes(analyst, operator_sql, row_policy=settings.analyst_clickhouse_url is not None),
                cluster=settings.clickhouse_topology == "cluster",
                fault_insert_failure_file=settings.fault_insert_failure_file,
            )
            plans = RedisPlanReader(resources.redis, enterprise=settings.enterprise_retention)
            sink_stats = SinkStats()
            sink = await resources.consume(
                "sink",
                [Topics.TELEMETRY],
                build_dispatcher(
                    batch_handlers=BATCH_HANDLERS,
                    event_handlers=EVENT_HANDLERS,
                    deps={
                        "store": store,
                        "plans": plans,
                        "costs": RedisCostBasisReader(resources.redis),
                        "sink_stats": sink_stats,
                    },
                ),
                max_batch=settings.sink_max_batch,
                linger_ms=settings.sink_linger_ms,
            )
            await resources.consume(
                "decisions",
                [Topics.POLICY_DECISIONS, Topics.POLICY_SETTINGS],
                build_dispatcher(event_handlers=DECISION_HANDLERS, deps={"store": store}),
            )
            deps = ReportingDeps(
                resources=resources,
                settings=settings,
                store=store,
                plans=plans,
                policy=PolicyStatusProjection(resources.redis),
                spike_state=RedisSpikeState(resources.redis),
                rejections=RedisRejections(resources.redis),
                sink=sink,
                sink_stats=sink_stats,
            )
            job = asyncio.create_task(run_spike_job(deps), name="reporting:spike-job")
            try:
                yield deps
            finally:
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job
    finally:
        await analyst.close()
        await operator_sql.close()
        await clickhouse.close()
