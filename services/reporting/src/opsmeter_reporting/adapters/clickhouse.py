"""The ClickHouse telemetry store (server or embedded chDB; the same SQL)."""

from collections.abc import Sequence
from typing import Any

import orjson
from clickhouse_connect.driver.exceptions import OperationalError

from opsmeter_contracts import LlmRequestIngested
from opsmeter_reporting.domain import GROUP_COLUMNS, GroupBy, UsageRow, UsageWindow
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.errors import TransientError

RAW_COLUMNS = (
    "event_id", "workspace_id", "occurred_at", "ingested_at", "external_request_id", "provider", "model",
    "model_normalized", "endpoint_tag", "user_id", "prompt_version", "input_tokens", "output_tokens",
    "total_tokens", "cached_input_tokens", "reasoning_tokens", "latency_ms", "status", "error_code",
    "data_mode", "environment", "cost_micro_usd", "priced", "price_catalog_version", "metadata",
)  # fmt: skip


def raw_row(event: LlmRequestIngested) -> list[Any]:
    p = event.payload
    return [
        event.event_id, event.workspace_id, event.occurred_at, event.ingested_at, p.external_request_id,
        p.provider, p.model, p.model_normalized, p.endpoint_tag, p.user_id, p.prompt_version or "",
        p.input_tokens, p.output_tokens, p.total_tokens, p.cached_input_tokens, p.reasoning_tokens,
        p.latency_ms, p.status, p.error_code or "", p.data_mode, p.environment, p.cost_micro_usd, p.priced,
        p.price_catalog_version, orjson.dumps(p.metadata).decode(),
    ]  # fmt: skip


class ClickHouseTelemetryStore:
    def __init__(self, clickhouse: ClickHouse) -> None:
        self._ch = clickhouse

    async def append(self, events: Sequence[LlmRequestIngested]) -> None:
        if not events:
            return
        try:
            await self._ch.insert("llm_requests_raw", [raw_row(e) for e in events], RAW_COLUMNS)
        except OperationalError as exc:
            raise TransientError(f"ClickHouse unreachable: {exc}") from exc

    async def usage(self, workspace_id: str, window: UsageWindow, group_by: GroupBy, data_mode: str) -> list[UsageRow]:
        key = GROUP_COLUMNS[group_by]
        rows = await self._ch.query(
            f"""
            SELECT {key} AS key,
                   count() AS requests,
                   sum(input_tokens) AS input_tokens,
                   sum(output_tokens) AS output_tokens,
                   sum(total_tokens) AS total_tokens,
                   sum(cost_micro_usd) AS cost_micro_usd
            FROM llm_requests_raw FINAL
            WHERE workspace_id = {{workspace_id:String}}
              AND occurred_at >= {{start:DateTime64(3, 'UTC')}}
              AND occurred_at < {{end:DateTime64(3, 'UTC')}}
              AND data_mode = {{data_mode:String}}
            GROUP BY key
            ORDER BY {"key ASC" if group_by == "day" else "cost_micro_usd DESC, key ASC"}
            """,  # noqa: S608 - the only interpolation is a column expression from a fixed map
            {"workspace_id": workspace_id, "start": window.start, "end": window.end, "data_mode": data_mode},
        )
        return [
            UsageRow(
                key=str(r["key"]),
                requests=int(r["requests"]),
                input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                total_tokens=int(r["total_tokens"]),
                cost_micro_usd=int(r["cost_micro_usd"]),
            )
            for r in rows
        ]
