"""The policy engine's reactions to events: one literal dict per consumer kind."""

from collections.abc import Awaitable, Callable, Sequence

from opsmeter_contracts import LlmRequestIngested
from opsmeter_contracts.policy import PolicySettingsChanged
from opsmeter_contracts.pricing import CostCorrected
from opsmeter_policy.adapters import SpendLedger
from opsmeter_policy.domain import EventFacts, correction_increments, counts_toward_budget, increments_for
from opsmeter_policy.evaluator import PolicyEvaluator
from opsmeter_runtime.logs import get_logger
from opsmeter_runtime.money import CostBasis, cost_by_basis

log = get_logger(__name__)


def facts_of(event: LlmRequestIngested, basis: CostBasis = "computed") -> EventFacts:
    p = event.payload
    return EventFacts(
        occurred_at=event.occurred_at,
        cost_micro_usd=cost_by_basis(p.cost_micro_usd, p.reported_cost_micro_usd, basis),
        total_tokens=p.total_tokens,
        model=p.model_normalized,
        endpoint_tag=p.endpoint_tag,
        user_id=p.user_id,
    )


async def account_spend(
    events: Sequence[LlmRequestIngested], *, ledger: SpendLedger, evaluator: PolicyEvaluator
) -> None:
    """Count each real event once (the whole batch in one round trip), then evaluate each workspace once."""
    real = [e for e in events if counts_toward_budget(e.payload.data_mode)]
    if not real:
        return
    by_workspace: dict[str, list[str]] = {}
    for event in real:
        by_workspace.setdefault(event.workspace_id, []).append(str(event.event_id))
    settings = await evaluator.settings_of_many(list(by_workspace))
    entries = []
    for e in real:
        policy = settings[e.workspace_id]
        entries.append((e.workspace_id, e.event_id, increments_for(facts_of(e, policy.cost_basis), policy)))
    added = await ledger.add_many(entries)
    if not all(added):
        log.info("spend_duplicates_ignored", duplicates=added.count(False))
    await evaluator.evaluate_many(list(by_workspace), settled=by_workspace)


async def account_corrections(
    events: Sequence[CostCorrected], *, ledger: SpendLedger, evaluator: PolicyEvaluator
) -> None:
    """Re-priced calls (ADR 57): each delta once, on the windows of the call's own time; then evaluate."""
    real = [e for e in events if counts_toward_budget(e.payload.data_mode) and e.payload.delta_micro_usd]
    if not real:
        return
    workspaces = sorted({e.workspace_id for e in real})
    settings = await evaluator.settings_of_many(workspaces)
    entries = []
    for e in real:
        p = e.payload
        facts = EventFacts(
            occurred_at=e.occurred_at,
            cost_micro_usd=p.delta_micro_usd,
            total_tokens=0,
            model=p.model_normalized,
            endpoint_tag=p.endpoint_tag,
            user_id=p.user_id,
        )
        entries.append((e.workspace_id, e.event_id, correction_increments(facts, settings[e.workspace_id])))
    await ledger.add_many(entries)
    await evaluator.evaluate_many(workspaces)


async def apply_settings(event: PolicySettingsChanged, *, evaluator: PolicyEvaluator) -> None:
    await evaluator.apply_settings(event)


BATCH_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    LlmRequestIngested: [account_spend],
    CostCorrected: [account_corrections],
}

EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    PolicySettingsChanged: [apply_settings],
}
