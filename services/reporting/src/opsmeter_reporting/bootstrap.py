"""Composition root of reporting: ClickHouse (owner of the embedded engine), Redis, the sink consumer."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.resources import files

from opsmeter_contracts import Topics
from opsmeter_reporting.adapters import TelemetryStore
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_reporting.config import ReportingSettings
from opsmeter_reporting.handlers import BATCH_HANDLERS
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.consumer import build_dispatcher

SERVICE = "reporting"


@dataclass
class ReportingDeps:
    resources: Resources
    settings: ReportingSettings
    store: TelemetryStore


async def open_clickhouse(settings: ReportingSettings) -> ClickHouse:
    clickhouse = ClickHouse.from_settings(settings.runtime)
    await clickhouse.connect()
    await clickhouse.migrate(files("opsmeter_reporting") / "migrations")
    return clickhouse


@contextlib.asynccontextmanager
async def bootstrap(settings: ReportingSettings) -> AsyncIterator[ReportingDeps]:
    clickhouse = await open_clickhouse(settings)
    try:
        async with open_resources(SERVICE, settings.runtime) as resources:
            resources.extra_checks["clickhouse"] = clickhouse.ping
            store = ClickHouseTelemetryStore(clickhouse)
            await resources.consume(
                "sink",
                [Topics.TELEMETRY],
                build_dispatcher(batch_handlers=BATCH_HANDLERS, deps={"store": store}),
                max_batch=settings.sink_max_batch,
            )
            yield ReportingDeps(resources=resources, settings=settings, store=store)
    finally:
        await clickhouse.close()
