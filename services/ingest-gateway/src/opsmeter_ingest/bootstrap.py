"""Composition root: real adapters in, handlers and the app's dependencies out."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

from opsmeter_contracts import Topics
from opsmeter_ingest.adapters.admission import (
    DegradedAdmission,
    FailOpenAdmission,
    RedisAdmission,
    Settlements,
    Settler,
    admission_scripts,
)
from opsmeter_ingest.adapters.demo_allowance import DemoAllowance
from opsmeter_ingest.adapters.kafka import DurableTelemetrySink
from opsmeter_ingest.adapters.notices import PlanLimitNotices
from opsmeter_ingest.adapters.otel_attributes import OtelAttributeStore
from opsmeter_ingest.adapters.pricing import CatalogPriceBook
from opsmeter_ingest.adapters.rejections import BufferedRejectionLog
from opsmeter_ingest.adapters.spool import Spool, claim_spool_directory
from opsmeter_ingest.config import GatewaySettings
from opsmeter_ingest.handlers import EVENT_HANDLERS
from opsmeter_ingest.ingest import Ingestor
from opsmeter_ingest.ports import PriceBook, TelemetrySink
from opsmeter_pricing import PriceCatalog
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.auth import CachedCredentials, CredentialStore
from opsmeter_runtime.consumer import build_dispatcher
from opsmeter_runtime.projections import WorkspacePricesProjection

SERVICE = "ingest-gateway"


@dataclass
class GatewayDeps:
    resources: Resources
    settings: GatewaySettings
    sink: TelemetrySink
    prices: PriceBook
    workspace_prices: WorkspacePricesProjection
    credentials: CachedCredentials
    store: CredentialStore
    ingestor: Ingestor
    otel_attributes: OtelAttributeStore
    demo_allowance: DemoAllowance


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.asynccontextmanager
async def bootstrap(settings: GatewaySettings) -> AsyncIterator[GatewayDeps]:
    async with open_resources(SERVICE, settings.runtime) as resources:
        credentials = CredentialStore(resources.redis)
        otel_attributes = OtelAttributeStore(resources.redis)
        workspace_prices = WorkspacePricesProjection(resources.redis)
        await resources.consume(
            "credentials",
            [Topics.WORKSPACES],
            build_dispatcher(
                event_handlers=EVENT_HANDLERS,
                deps={
                    "credentials": credentials,
                    "otel_attributes": otel_attributes,
                    "workspace_prices": workspace_prices,
                },
            ),
        )
        spool_dir, spool_lock = claim_spool_directory(settings.runtime.resolved_data_dir / "spool", settings.instance)
        resources.stack.callback(spool_lock.close)
        spool = Spool(spool_dir, max_bytes=settings.spool_max_bytes)
        sink = DurableTelemetrySink(resources.publisher, spool, timeout_s=settings.publish_timeout_s)
        drainer = asyncio.create_task(sink.drain_forever(), name="spool-drainer")
        resources.stack.push_async_callback(_stop, drainer)
        prices = CatalogPriceBook(PriceCatalog.load_default())
        refreshing = asyncio.create_task(prices.refresh_forever(workspace_prices), name="workspace-prices")
        resources.stack.push_async_callback(_stop, refreshing)
        scripts = admission_scripts(
            settings.runtime.redis_url, timeout_s=settings.admission_timeout_s, cluster=settings.runtime.redis_cluster
        )
        resources.stack.push_async_callback(scripts.close)
        redis_admission = RedisAdmission(
            resources.redis,
            scripts,
            default_rate_limit=settings.default_rate_limit_per_minute,
            default_quota=settings.default_monthly_quota,
        )
        settler = Settler(redis_admission)
        settling = asyncio.create_task(settler.run(), name="settler")
        resources.stack.push_async_callback(_stop, settling)
        resources.stack.push_async_callback(settler.flush)
        degraded = DegradedAdmission(
            settings.default_rate_limit_per_minute, probe_interval_s=settings.admission_probe_interval_s
        )
        admission = FailOpenAdmission(redis_admission, degraded, PlanLimitNotices(resources.redis, resources.publisher))
        reconciling = asyncio.create_task(admission.reconcile_forever(), name="reconciler")
        resources.stack.push_async_callback(_stop, reconciling)
        rejections = BufferedRejectionLog(resources.redis)
        counting = asyncio.create_task(rejections.run(), name="rejection-counts")
        resources.stack.push_async_callback(rejections.flush)
        resources.stack.push_async_callback(_stop, counting)
        ingestor = Ingestor(
            admission=admission,
            sink=sink,
            prices=prices,
            settlement=Settlements(settler, degraded),
            rejections=rejections,
            max_timestamp_age=timedelta(seconds=settings.max_timestamp_age_s),
            max_timestamp_skew=timedelta(seconds=settings.max_timestamp_skew_s),
        )
        yield GatewayDeps(
            resources=resources,
            settings=settings,
            sink=sink,
            prices=prices,
            workspace_prices=workspace_prices,
            credentials=CachedCredentials(credentials),
            store=credentials,
            ingestor=ingestor,
            otel_attributes=otel_attributes,
            demo_allowance=DemoAllowance(resources.redis, events_per_day=settings.demo_events_per_day),
        )
