"""Composition root: real adapters in, handlers and the app's dependencies out."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass

from opsmeter_contracts import Topics
from opsmeter_ingest.adapters import PriceBook, TelemetrySink
from opsmeter_ingest.adapters.admission import DegradedAdmission, RedisAdmission, Settler, admission_scripts
from opsmeter_ingest.adapters.kafka import DurableTelemetrySink
from opsmeter_ingest.adapters.notices import PlanLimitNotices
from opsmeter_ingest.adapters.pricing import CatalogPriceBook
from opsmeter_ingest.adapters.spool import Spool
from opsmeter_ingest.config import GatewaySettings
from opsmeter_ingest.handlers import EVENT_HANDLERS
from opsmeter_ingest.ingest import Ingestor
from opsmeter_pricing import PriceCatalog
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.auth import CachedCredentials, CredentialStore
from opsmeter_runtime.consumer import build_dispatcher

SERVICE = "ingest-gateway"
GC_THRESHOLDS = (20_000, 50, 100)
"""Young collections after 20,000 allocations instead of 700: a request allocates a few hundred objects."""


@dataclass
class GatewayDeps:
    resources: Resources
    settings: GatewaySettings
    sink: TelemetrySink
    prices: PriceBook
    credentials: CachedCredentials
    store: CredentialStore
    ingestor: Ingestor


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def bootstrap(settings: GatewaySettings) -> AsyncIterator[GatewayDeps]:
    async with open_resources(SERVICE, settings.runtime) as resources:
        credentials = CredentialStore(resources.redis)
        await resources.consume(
            "credentials",
            [Topics.WORKSPACES],
            build_dispatcher(event_handlers=EVENT_HANDLERS, deps={"credentials": credentials}),
        )
        spool = Spool(
            settings.runtime.resolved_data_dir / "spool" / settings.instance, max_bytes=settings.spool_max_bytes
        )
        sink = DurableTelemetrySink(
            resources.publisher, spool, timeout_s=settings.publish_timeout_s, linger_s=settings.publish_linger_s
        )
        drainer = asyncio.create_task(sink.drain_forever(), name="spool-drainer")
        resources.stack.push_async_callback(_stop, drainer)
        prices = CatalogPriceBook(PriceCatalog.load_default())
        scripts = admission_scripts(settings.runtime.redis_url, timeout_s=settings.admission_timeout_s)
        resources.stack.push_async_callback(scripts.close)
        admission = RedisAdmission(
            resources.redis,
            scripts,
            default_rate_limit=settings.default_rate_limit_per_minute,
            default_quota=settings.default_monthly_quota,
        )
        settler = Settler(admission)
        settling = asyncio.create_task(settler.run(), name="settler")
        resources.stack.push_async_callback(_stop, settling)
        resources.stack.push_async_callback(settler.flush)
        ingestor = Ingestor(
            settings=settings,
            admission=admission,
            settler=settler,
            degraded=DegradedAdmission(
                settings.default_rate_limit_per_minute, probe_interval_s=settings.admission_probe_interval_s
            ),
            sink=sink,
            prices=prices,
            notices=PlanLimitNotices(resources.redis, resources.publisher),
        )
        reconciling = asyncio.create_task(ingestor.reconcile_forever(), name="reconcile")
        resources.stack.push_async_callback(_stop, reconciling)
        # Everything loaded so far (modules, schemas, the price catalog) lives as long as the process:
        # keep it out of the cyclic collector's full passes, which otherwise rescan it under load.
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        yield GatewayDeps(
            resources=resources,
            settings=settings,
            sink=sink,
            prices=prices,
            credentials=CachedCredentials(credentials),
            store=credentials,
            ingestor=ingestor,
        )
