"""Evaluate a workspace's policy against its spend: decisions once per crossing, then the gateway's projection.

Used by the spend and settings consumers, the settings API and the period ticker. Every step is
idempotent, so any of them may run again after a crash: decisions carry deterministic event ids
(published first, marked after), and the projection refuses an evaluation older than its settings.
"""

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from opsmeter_contracts import Topics
from opsmeter_contracts.envelope import EventEnvelope
from opsmeter_contracts.policy import (
    BudgetExceeded,
    BudgetThresholdPayload,
    BudgetWarningReached,
    EnforcementChanged,
    KillSwitchChanged,
    PolicySettingsChanged,
    PolicySettingsPayload,
    PolicySwitchPayload,
    UnitCostBreached,
    UnitCostBreachedPayload,
)
from opsmeter_policy.adapters import DecisionMarks, SettingsStore, SpendLedger
from opsmeter_policy.domain import (
    Crossing,
    Evaluation,
    default_settings,
    evaluate_budgets,
    observe_unit_cost,
    settings_counters,
    switches_changed,
    unit_cost_window,
    with_model_scopes,
)
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.projections import PolicyStatusProjection

log = get_logger(__name__)

DECISION_NAMESPACE = uuid.UUID("6f1d3c52-8a5e-4c0b-9a37-0e3f4b6c2d10")
STALE_RETRIES = 3


class Publisher(Protocol):
    async def publish(self, topic: str, event: EventEnvelope[Any]) -> None: ...


def decision_id(workspace_id: str, *parts: object) -> uuid.UUID:
    """The same decision always gets the same id, so a republished one is deduplicated downstream."""
    return uuid.uuid5(DECISION_NAMESPACE, "|".join([workspace_id, *map(str, parts)]))


@dataclass
class PolicyEvaluator:
    ledger: SpendLedger
    settings: SettingsStore
    marks: DecisionMarks
    projection: PolicyStatusProjection
    publisher: Publisher
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    async def settings_of(self, workspace_id: str) -> PolicySettingsPayload:
        """The policy as evaluated: a snapshot saved before model scopes were normalised reads normalised (ADR 68)."""
        return with_model_scopes(await self.settings.get(workspace_id) or default_settings())

    async def settings_of_many(self, workspace_ids: Sequence[str]) -> dict[str, PolicySettingsPayload]:
        stored = await self.settings.get_many(workspace_ids)
        return {ws: with_model_scopes(stored[ws] or default_settings()) for ws in workspace_ids}

    async def evaluate(self, workspace_id: str) -> Evaluation:
        return (await self.evaluate_many([workspace_id]))[workspace_id]

    async def evaluate_many(
        self, workspace_ids: Sequence[str], settled: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, Evaluation]:
        """Decide and project several workspaces in a few round trips; one that raced a newer settings
        version is evaluated again."""
        settled = settled or {}
        pending = list(workspace_ids)
        results: dict[str, Evaluation] = {}
        for _ in range(STALE_RETRIES):
            settings = await self.settings_of_many(pending)
            now = self.clock()
            totals = await self.ledger.totals_many({ws: settings_counters(settings[ws], now) for ws in pending})
            evaluations = {ws: evaluate_budgets(settings[ws], totals[ws], now) for ws in pending}
            await self._decide_budgets(evaluations)
            for ws in pending:
                if settings[ws].unit_cost_rules:
                    await self._decide_unit_costs(ws, settings[ws], totals[ws], now)
            configured = [ws for ws in pending if settings[ws].version > 0]
            saved = dict.fromkeys(pending, True)  # a never-configured workspace keeps the default (no hash)
            written = await self.projection.save_many(
                [(ws, evaluations[ws].status, settled.get(ws, ())) for ws in configured]
            )
            saved |= dict(zip(configured, written, strict=True))
            results |= evaluations
            await self.settings.track(
                [
                    ws
                    for ws in pending
                    if evaluations[ws].status.budget_warning or evaluations[ws].status.budget_exceeded
                ]
            )
            pending = [ws for ws in pending if not saved[ws]]
            if not pending:
                return results
        log.warning("policy_evaluation_stale", workspace_ids=pending)
        return results

    async def apply_settings(self, event: PolicySettingsChanged) -> bool:
        """Apply a settings snapshot once: switch decisions first (deterministic ids), then store, then evaluate."""
        workspace_id, new = event.workspace_id, event.payload
        stored = await self.settings.get(workspace_id)
        if stored is not None and stored.version >= new.version:
            return False
        previous = stored or default_settings()
        for switch in switches_changed(previous, new):
            await self._publish(self._switch_decision(event, previous, switch))
        applied = await self.settings.apply(workspace_id, new)
        await self.evaluate(workspace_id)
        return applied

    def _switch_decision(
        self, event: PolicySettingsChanged, previous: PolicySettingsPayload, switch: str
    ) -> KillSwitchChanged | EnforcementChanged:
        new = event.payload
        payload = PolicySwitchPayload(
            settings_version=new.version,
            enforcement=new.enforcement,
            kill_switch=new.kill_switch,
            policy_mode="observe" if new.kill_switch else "enforce",
            previous_enforcement=previous.enforcement,
            previous_kill_switch=previous.kill_switch,
            changed_by_credential_id=new.changed_by_credential_id,
            changed_by_role=new.changed_by_role,
        )
        cls = KillSwitchChanged if switch == "kill_switch" else EnforcementChanged
        return cls(
            event_id=decision_id(event.workspace_id, switch, new.version),
            occurred_at=event.occurred_at,
            ingested_at=self.clock(),
            workspace_id=event.workspace_id,
            payload=payload,
        )

    async def _decide_budgets(self, evaluations: Mapping[str, Evaluation]) -> None:
        crossings = [(ws, c) for ws, evaluation in evaluations.items() for c in evaluation.crossings]
        new = await self.marks.unmarked(crossings)
        for ws, crossing in new:
            await self._publish(self._budget_decision(ws, crossing, evaluations[ws]))
        await self.marks.mark(new)

    def _budget_decision(
        self, workspace_id: str, crossing: Crossing, evaluation: Evaluation
    ) -> BudgetWarningReached | BudgetExceeded:
        status = evaluation.status
        monthly = crossing.budget.window == "monthly" and crossing.budget.scope == "workspace"
        forecast = evaluation.forecast if monthly else None
        payload = BudgetThresholdPayload(
            scope=crossing.budget.scope,
            scope_value=crossing.budget.scope_value,
            window=crossing.budget.window,
            period_start=crossing.period.start,
            period_end=crossing.period.end,
            limit_micro_usd=crossing.budget.limit_micro_usd,
            threshold_ratio=crossing.ratio,
            threshold_micro_usd=crossing.threshold_micro_usd,
            spend_micro_usd=crossing.spend_micro_usd,
            enforcement=status.enforcement,
            policy_mode=status.policy_mode,
            blocks_ingest=crossing.exceeded and status.enforcement == "hard_stop" and not status.kill_switch,
            projected_end_of_period_micro_usd=forecast.projected_end_of_period_micro_usd if forecast else None,
            projected_exhaust_at=forecast.projected_exhaust_at if forecast else None,
        )
        cls = BudgetExceeded if crossing.exceeded else BudgetWarningReached
        now = self.clock()
        return cls(
            event_id=decision_id(workspace_id, crossing.mark),
            occurred_at=now,
            ingested_at=now,
            workspace_id=workspace_id,
            payload=payload,
        )

    async def _decide_unit_costs(
        self, workspace_id: str, settings: PolicySettingsPayload, totals: dict[str, int], now: datetime
    ) -> None:
        for rule in settings.unit_cost_rules:
            if not rule.enabled:
                continue
            window = unit_cost_window(rule, now)
            seen = observe_unit_cost(rule, window, totals)
            breached, episodes = await self.marks.unit_cost_state(workspace_id, rule.rule_id)
            if seen.breached == breached:
                continue
            if seen.breached:
                await self._publish(
                    UnitCostBreached(
                        event_id=decision_id(workspace_id, "unit_cost", rule.rule_id, episodes + 1),
                        occurred_at=now,
                        ingested_at=now,
                        workspace_id=workspace_id,
                        payload=UnitCostBreachedPayload(
                            rule_id=rule.rule_id,
                            metric=rule.metric,
                            max_micro_usd=rule.max_micro_usd,
                            observed_micro_usd=seen.observed_micro_usd,
                            requests=seen.requests,
                            model=rule.model,
                            endpoint_tag=rule.endpoint_tag,
                            window_start=window.start,
                            window_end=window.end,
                            policy_mode="observe" if settings.kill_switch else "enforce",
                        ),
                    )
                )
                episodes += 1
            await self.marks.set_unit_cost_state(workspace_id, rule.rule_id, seen.breached, episodes)

    async def _publish(self, decision: EventEnvelope[Any]) -> None:
        await self.publisher.publish(Topics.POLICY_DECISIONS, decision)
        log.info("policy_decision", decision=decision.type, decision_id=str(decision.event_id))
