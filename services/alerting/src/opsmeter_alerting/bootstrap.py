"""Composition root of alerting: Redis stores, channels, the decisions consumer and the delivery loops."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpcore
import httpx
import structlog

from opsmeter_alerting.adapters.channels import Channels
from opsmeter_alerting.adapters.destinations import Destinations, checked_pool
from opsmeter_alerting.adapters.redis import RedisAlertSettingsStore, RedisAlertStore, Sealer
from opsmeter_alerting.adapters.reports import WeeklyReports
from opsmeter_alerting.alerts import AlertService, Clock
from opsmeter_alerting.config import AlertingSettings
from opsmeter_alerting.domain import RetryPolicy
from opsmeter_alerting.handlers import EVENT_HANDLERS
from opsmeter_contracts import Topics
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.consumer import build_dispatcher
from opsmeter_runtime.projections import PlanProjection

SERVICE = "alerting"

log = structlog.get_logger(__name__)


@dataclass
class AlertingDeps:
    resources: Resources
    settings: AlertingSettings
    alerts: AlertService
    plans: PlanProjection


def build_service(
    settings: AlertingSettings,
    resources: Resources,
    http: httpx.AsyncClient,
    channel_http: httpcore.AsyncConnectionPool,
    destinations: Destinations,
    clock: Clock,
) -> AlertService:
    return AlertService(
        alerts=RedisAlertStore(resources.redis),
        settings=RedisAlertSettingsStore(resources.redis, Sealer(settings.sealing_keys())),
        channels=Channels(
            channel_http, smtp_url=settings.smtp_url, smtp_from=settings.smtp_from, timeout_s=settings.send_timeout_s
        ),
        plans=PlanProjection(resources.redis),
        publisher=resources.publisher,
        clock=clock,
        destinations=destinations,
        retry=RetryPolicy(
            max_attempts=settings.max_attempts,
            base=timedelta(seconds=settings.retry_base_s),
            cap=timedelta(seconds=settings.retry_cap_s),
        ),
        lease_s=settings.lease_s,
        disable_after_failures=settings.disable_after_failures,
        report_url=settings.reporting_url,
        reports=WeeklyReports(
            http,
            base_url=settings.reporting_url,
            service_token=settings.runtime.service_token.get_secret_value() if settings.runtime.service_token else None,
        ),
    )


async def _every(interval_s: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await job()
        except Exception as exc:  # a store that is down: try again next tick
            log.warning("alerting_loop_failed", loop=name, error=repr(exc))
        await asyncio.sleep(interval_s)


@contextlib.asynccontextmanager
async def bootstrap(
    settings: AlertingSettings, clock: Clock = lambda: datetime.now(UTC)
) -> AsyncIterator[AlertingDeps]:
    destinations = Destinations(allow_private=settings.allow_private_destinations)
    async with (
        open_resources(SERVICE, settings.runtime) as resources,
        httpx.AsyncClient() as http,
        checked_pool(destinations) as channel_http,
    ):
        alerts = build_service(settings, resources, http, channel_http, destinations, clock)
        await resources.consume(
            "decisions",
            [Topics.POLICY_DECISIONS, Topics.BILLING_SUBSCRIPTIONS],
            build_dispatcher(event_handlers=EVENT_HANDLERS, deps={"alerts": alerts}),
        )

        async def schedules() -> None:
            await alerts.run_schedules()
            await alerts.send_recoveries()

        loops = [
            asyncio.create_task(_every(settings.delivery_poll_s, "deliveries", alerts.deliver_due)),
            asyncio.create_task(_every(settings.schedule_poll_s, "schedules", schedules)),
        ]
        try:
            yield AlertingDeps(
                resources=resources, settings=settings, alerts=alerts, plans=PlanProjection(resources.redis)
            )
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
