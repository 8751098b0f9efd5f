"""Reporting's reactions to events: one literal dict, batch handlers for the ClickHouse sink."""

from collections.abc import Awaitable, Callable, Sequence

from opsmeter_contracts import LlmRequestIngested
from opsmeter_reporting.adapters import TelemetryStore


async def store_llm_requests(events: Sequence[LlmRequestIngested], *, store: TelemetryStore) -> None:
    await store.append(events)


BATCH_HANDLERS: dict[type, list[Callable[..., Awaitable[None]]]] = {
    LlmRequestIngested: [store_llm_requests],
}
