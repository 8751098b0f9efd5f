"""Composition root of billing."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx

from opsmeter_billing.adapters.lemonsqueezy import HttpLemonSqueezy
from opsmeter_billing.adapters.redis import RedisAccountStore, RedisIdempotencyStore
from opsmeter_billing.commands import Billing, Pacer
from opsmeter_billing.config import BillingSettings
from opsmeter_billing.errors import ReconciliationRunning
from opsmeter_billing.handlers import EVENT_HANDLERS
from opsmeter_contracts import Topics
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.consumer import build_dispatcher
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PlanProjection

SERVICE = "billing"

log = get_logger(__name__)


@dataclass
class BillingDeps:
    resources: Resources
    settings: BillingSettings
    plans: PlanProjection
    billing: Billing


async def reconcile_periodically(billing: Billing, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await billing.reconcile()
        except ReconciliationRunning:
            log.info("reconciliation_skipped", reason="another replica is running one")
        except Exception as exc:
            log.error("reconciliation_crashed", error=repr(exc))


@contextlib.asynccontextmanager
async def bootstrap(settings: BillingSettings) -> AsyncIterator[BillingDeps]:
    ls = settings.lemonsqueezy
    async with open_resources(SERVICE, settings.runtime) as resources:
        http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        resources.stack.push_async_callback(http.aclose)
        api = (
            HttpLemonSqueezy(
                http,
                ls.api_url,
                ls.api_key.get_secret_value(),
                attempts=settings.lemonsqueezy_attempts,
                backoff_s=settings.lemonsqueezy_backoff_s,
            )
            if ls.api_key is not None and ls.api_key.get_secret_value()
            else None
        )
        plans = PlanProjection(resources.redis)
        accounts = RedisAccountStore(resources.redis)
        indexed = await accounts.index_linked_accounts()
        if indexed:
            log.info("subscriptions_indexed_for_verification", count=indexed)
        billing = Billing(
            accounts=accounts,
            idempotency=RedisIdempotencyStore(resources.redis),
            plans=plans,
            publisher=resources.publisher,
            variants=ls.variant_map,
            lemonsqueezy=api,
            webhook_secret=ls.webhook_secret.get_secret_value() if ls.webhook_secret is not None else None,
            previous_webhook_secret=(
                ls.previous_webhook_secret.get_secret_value() if ls.previous_webhook_secret is not None else None
            ),
            store_id=ls.store_id,
            pending_timeout=timedelta(seconds=settings.pending_timeout_s),
            stale_renewal=timedelta(seconds=settings.reconcile_stale_renewal_s),
            verify_every=timedelta(seconds=settings.verify_every_s),
            reconcile_batch=settings.reconcile_batch,
            pacer=Pacer(settings.reconcile_calls_per_minute, settings.reconcile_burst),
            lease_ttl=timedelta(seconds=max(600.0, 2 * settings.reconcile_interval_s)),
        )
        if ls.missing():
            log.warning("lemonsqueezy_not_configured", missing=ls.missing())
        dispatch = build_dispatcher(event_handlers=EVENT_HANDLERS, deps={"billing": billing})
        await resources.consume("plans", [Topics.WORKSPACES], dispatch)
        await resources.consume("webhooks", [Topics.BILLING_WEBHOOKS], dispatch)
        reconciler = asyncio.create_task(reconcile_periodically(billing, settings.reconcile_interval_s))

        async def stop_reconciler() -> None:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler

        resources.stack.push_async_callback(stop_reconciler)
        yield BillingDeps(resources=resources, settings=settings, plans=plans, billing=billing)
