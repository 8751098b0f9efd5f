"""Composition root of the policy engine."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from opsmeter_contracts import Topics
from opsmeter_contracts.topics import COMPACTED_TOPICS, dead_letter_topic
from opsmeter_policy.adapters import SpendLedger
from opsmeter_policy.adapters.redis import RedisDecisionMarks, RedisSettingsStore, RedisSpendLedger
from opsmeter_policy.config import PolicySettings
from opsmeter_policy.domain import day_window
from opsmeter_policy.evaluator import PolicyEvaluator
from opsmeter_policy.handlers import BATCH_HANDLERS, EVENT_HANDLERS
from opsmeter_runtime.app import Resources, open_resources
from opsmeter_runtime.consumer import build_dispatcher
from opsmeter_runtime.kafka import ensure_topics
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PolicyStatusProjection

SERVICE = "policy-engine"
log = get_logger(__name__)


@dataclass
class PolicyDeps:
    resources: Resources
    ledger: SpendLedger
    evaluator: PolicyEvaluator


async def watch_periods(evaluator: PolicyEvaluator, tick_s: float) -> None:
    """Re-evaluate tracked workspaces at start and whenever a UTC day (hence maybe a month) begins."""
    current = None
    while True:
        day = day_window(evaluator.clock()).name
        if day != current:
            for workspace_id in await evaluator.settings.workspaces():
                try:
                    await evaluator.evaluate(workspace_id)
                except Exception as exc:  # one workspace must not stop the others' new period
                    log.error("period_reevaluation_failed", workspace_id=workspace_id, error=repr(exc))
            current = day
        await asyncio.sleep(tick_s)


@contextlib.asynccontextmanager
async def bootstrap(settings: PolicySettings) -> AsyncIterator[PolicyDeps]:
    async with open_resources(SERVICE, settings.runtime) as resources:
        await ensure_topics(
            settings.runtime.kafka_bootstrap,
            [Topics.POLICY_SETTINGS, dead_letter_topic(Topics.POLICY_SETTINGS)],
            compacted=COMPACTED_TOPICS,
        )
        ledger = RedisSpendLedger(resources.redis)
        evaluator = PolicyEvaluator(
            ledger=ledger,
            settings=RedisSettingsStore(resources.redis),
            marks=RedisDecisionMarks(resources.redis),
            projection=PolicyStatusProjection(resources.redis),
            publisher=resources.publisher,
        )
        deps = {"ledger": ledger, "evaluator": evaluator}
        await resources.consume(
            f"settings{settings.consumer_suffix}",
            [Topics.POLICY_SETTINGS],
            build_dispatcher(event_handlers=EVENT_HANDLERS, deps=deps),
        )
        await resources.consume(
            f"spend{settings.consumer_suffix}",
            [Topics.TELEMETRY],
            build_dispatcher(batch_handlers=BATCH_HANDLERS, deps=deps),
            max_batch=settings.spend_max_batch,
        )
        ticker = asyncio.create_task(watch_periods(evaluator, settings.tick_s), name="policy:periods")
        try:
            yield PolicyDeps(resources=resources, ledger=ledger, evaluator=evaluator)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
