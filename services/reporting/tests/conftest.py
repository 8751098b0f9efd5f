import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

import pytest

from opsmeter_contracts import LlmRequestIngested, LlmRequestIngestedPayload
from opsmeter_reporting.adapters.clickhouse import ClickHouseTelemetryStore
from opsmeter_runtime.clickhouse import ClickHouse

TelemetryFactory = Callable[..., LlmRequestIngested]


def build_telemetry(
    workspace_id: str,
    *,
    cost: int,
    at: datetime | None = None,
    model: str = "gpt-4o-mini",
    provider: str = "openai",
    endpoint_tag: str = "checkout.ai_summary",
    user_id: str = "u_1",
    prompt_version: str | None = "v1",
    data_mode: str = "real",
    input_tokens: int = 100,
    output_tokens: int = 10,
    delay: timedelta = timedelta(seconds=1),
    priced: bool = True,
    event_id: uuid.UUID | None = None,
) -> LlmRequestIngested:
    """One accepted LLM call as the gateway publishes it."""
    at = at or datetime.now(UTC) - timedelta(hours=1)
    payload: dict[str, Any] = {
        "external_request_id": uuid.uuid4().hex,
        "provider": provider,
        "model": model,
        "model_normalized": model,
        "endpoint_tag": endpoint_tag,
        "user_id": user_id,
        "prompt_version": prompt_version,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_micro_usd": cost,
        "priced": priced,
        "price_catalog_version": "test",
        "api_key_id": "k1",
        "data_mode": data_mode,
    }
    return LlmRequestIngested(
        event_id=event_id or uuid.uuid4(),
        occurred_at=at,
        ingested_at=at + delay,
        workspace_id=workspace_id,
        payload=LlmRequestIngestedPayload.model_validate(payload),
    )


@pytest.fixture
def telemetry() -> TelemetryFactory:
    return build_telemetry


@pytest.fixture
async def store(clickhouse: ClickHouse) -> ClickHouseTelemetryStore:
    await clickhouse.migrate(files("opsmeter_reporting") / "migrations")
    return ClickHouseTelemetryStore(clickhouse)
