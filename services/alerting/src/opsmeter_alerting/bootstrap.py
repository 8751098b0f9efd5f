"""Composition root of alerting."""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from opsmeter_alerting.config import AlertingSettings
from opsmeter_alerting.handlers import EVENT_HANDLERS
from opsmeter_contracts import Topics
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.consumer import build_dispatcher

SERVICE = "alerting"


@dataclass
class AlertingDeps:
    resources: Resources


@contextlib.asynccontextmanager
async def bootstrap(settings: AlertingSettings) -> AsyncIterator[AlertingDeps]:
    async with open_resources(SERVICE, settings.runtime) as resources:
        await resources.consume(
            "decisions", [Topics.POLICY_DECISIONS], build_dispatcher(event_handlers=EVENT_HANDLERS, deps={})
        )
        yield AlertingDeps(resources=resources)
