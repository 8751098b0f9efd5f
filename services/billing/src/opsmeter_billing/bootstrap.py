"""Composition root of billing."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from opsmeter_billing.config import BillingSettings
from opsmeter_billing.handlers import EVENT_HANDLERS
from opsmeter_contracts import Topics
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.consumer import build_dispatcher
from opsmeter_runtime.projections import PlanProjection

SERVICE = "billing"


@dataclass
class BillingDeps:
    resources: Resources
    plans: PlanProjection


@contextlib.asynccontextmanager
async def bootstrap(settings: BillingSettings) -> AsyncIterator[BillingDeps]:
    async with open_resources(SERVICE, settings.runtime) as resources:
        plans = PlanProjection(resources.redis)
        await resources.consume(
            "plans",
            [Topics.WORKSPACES],
            build_dispatcher(event_handlers=EVENT_HANDLERS, deps={"plans": plans}),
        )
        yield BillingDeps(resources=resources, plans=plans)
