"""Composition root of the policy engine."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from opsmeter_contracts import Topics
from opsmeter_policy.adapters import SpendLedger
from opsmeter_policy.adapters.redis import RedisSpendLedger
from opsmeter_policy.config import PolicySettings
from opsmeter_policy.handlers import EVENT_HANDLERS
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.consumer import build_dispatcher

SERVICE = "policy-engine"


@dataclass
class PolicyDeps:
    resources: Resources
    ledger: SpendLedger


@contextlib.asynccontextmanager
async def bootstrap(settings: PolicySettings) -> AsyncIterator[PolicyDeps]:
    async with open_resources(SERVICE, settings.runtime) as resources:
        ledger = RedisSpendLedger(resources.redis)
        await resources.consume(
            "spend",
            [Topics.TELEMETRY],
            build_dispatcher(event_handlers=EVENT_HANDLERS, deps={"ledger": ledger}),
        )
        yield PolicyDeps(resources=resources, ledger=ledger)
