"""A model scope saved as typed before ADR 68 (``GPT-4o``) counts the calls of its model once read back."""

from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_contracts.policy import PolicySettingsPayload, ScopedBudget, UnitCostRule
from opsmeter_policy.adapters.redis import RedisDecisionMarks, RedisSettingsStore, RedisSpendLedger
from opsmeter_policy.domain import day_window, spend_counter
from opsmeter_policy.evaluator import PolicyEvaluator
from opsmeter_policy.handlers import account_spend
from opsmeter_runtime.projections import PolicyStatusProjection
from opsmeter_runtime.testing import build_telemetry


class RecordingPublisher:
    """Stands in for the decisions topic."""

    def __init__(self) -> None:
        self.published: list[EventEnvelope[Any]] = []

    async def publish(self, topic: str, event: EventEnvelope[Any]) -> None:
        self.published.append(event)


class TestStoredRawModelScopes:
    async def test_a_raw_model_budget_stored_earlier_counts_and_warns(self, redis_client: Redis, unique: str) -> None:
        ws = f"ws_{unique}"
        store, ledger = RedisSettingsStore(redis_client), RedisSpendLedger(redis_client)
        publisher = RecordingPublisher()
        evaluator = PolicyEvaluator(
            ledger, store, RedisDecisionMarks(redis_client), PolicyStatusProjection(redis_client), publisher
        )
        raw = PolicySettingsPayload(
            version=1,
            warning_threshold_ratio=0.5,
            scoped=(ScopedBudget(dimension="model", value="GPT-4o", daily_limit_micro_usd=1_000_000),),
            unit_cost_rules=(
                UnitCostRule(rule_id="dated", metric="cost_per_request", max_micro_usd=1, model="gpt-4o-2024-08-06"),
            ),
            changed_by_credential_id="c",
            changed_by_role="owner",
        )
        assert await store.apply(ws, raw)

        await account_spend([build_telemetry(ws, 600_000, model="gpt-4o")], ledger=ledger, evaluator=evaluator)

        scoped = spend_counter(day_window(datetime.now(UTC)), "model", "gpt-4o")
        assert await ledger.totals(ws, [scoped]) == {scoped: 600_000}
        evaluation = await evaluator.evaluate(ws)
        assert evaluation.status.budget_warning
        assert {e.type for e in publisher.published} == {"policy.budget_warning_reached", "policy.unit_cost_breached"}
        shown = await evaluator.settings_of(ws)
        assert (shown.scoped[0].value, shown.unit_cost_rules[0].model) == ("gpt-4o", "gpt-4o")
