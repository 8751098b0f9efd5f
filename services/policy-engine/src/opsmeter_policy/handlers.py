"""The policy engine's reactions to events: one literal dict."""

from collections.abc import Awaitable, Callable

from opsmeter_contracts import LlmRequestIngested
from opsmeter_policy.adapters import SpendLedger
from opsmeter_policy.domain import counts_toward_budget, day_window, month_window
from opsmeter_runtime.logs import get_logger

log = get_logger(__name__)


async def account_spend(event: LlmRequestIngested, *, ledger: SpendLedger) -> None:
    if not counts_toward_budget(event.payload.data_mode):
        return
    windows = [day_window(event.occurred_at), month_window(event.occurred_at)]
    added = await ledger.add(event.workspace_id, event.event_id, event.payload.cost_micro_usd, windows)
    if not added:
        log.info("spend_duplicate_ignored")


EVENT_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    LlmRequestIngested: [account_spend],
}
