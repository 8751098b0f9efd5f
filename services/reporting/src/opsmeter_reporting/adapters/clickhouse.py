"""The ClickHouse telemetry store (server or embedded chDB; the same SQL).

Exactness under redelivery (ADR 0030): the hourly and daily materialized views add every row that
reaches ``llm_requests_raw``, so the sink inserts only events whose id raw does not hold yet, under a
lock it shares with ``rebuild``. Reads split a window into raw edges, whole hours and whole days.
"""

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

import orjson
from clickhouse_connect.driver.exceptions import OperationalError

from opsmeter_contracts import AnyEvent, LlmRequestIngested
from opsmeter_contracts.policy import PolicySettingsChanged
from opsmeter_contracts.pricing import CostCorrected, RepricingAppliedPayload
from opsmeter_reporting.adapters import AnalystResult, SettingsChange, SinkResult, StoredDecision
from opsmeter_reporting.analyst_sql import AnalystBusy, AnalystLimits, AnalystQuery, check_ast
from opsmeter_reporting.domain import (
    DAY,
    GROUP_COLUMNS,
    HOUR,
    BreakdownRow,
    GroupBy,
    Retention,
    Segment,
    StoredCall,
    Totals,
    TrackingFacts,
    UnpricedModel,
    UsageRow,
    UsageWindow,
    ceil_to,
    floor_to,
    read_plan,
)
from opsmeter_reporting.explore import (
    EVENT_FILTER_COLUMNS,
    STACK_COLUMNS,
    EventsQuery,
    SeriesBucket,
    SeriesPoint,
    StackBy,
    aware,
)
from opsmeter_reporting.reconcile import StoredDay
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.errors import TransientError
from opsmeter_runtime.money import CostBasis, cost_by_basis, parse_cost_basis

PerCall = Literal["toUnixTimestamp64Milli(min(ingested_at))", "max(summary_retention_days)"]

RAW_COLUMNS = (
    "event_id", "workspace_id", "occurred_at", "ingested_at", "external_request_id", "provider", "model",
    "model_normalized", "endpoint_tag", "user_id", "prompt_version", "input_tokens", "output_tokens",
    "total_tokens", "cached_input_tokens", "reasoning_tokens", "latency_ms", "status", "error_code",
    "data_mode", "environment", "cost_micro_usd", "priced", "price_catalog_version", "metadata",
    "raw_retention_days", "summary_retention_days", "api_key_id", "cache_write_input_tokens", "price_row",
    "price_tier_start_tokens", "computed_cost_micro_usd", "reported_cost_micro_usd", "cost_basis",
    "cache_write_1h_input_tokens",
)  # fmt: skip

CORRECTION_COLUMNS = (
    "event_id", "corrected_event_id", "repricing_id", "workspace_id", "occurred_at", "corrected_at", "data_mode",
    "provider", "model_normalized", "endpoint_tag", "user_id", "prompt_version", "had_reported_cost",
    "cost_delta_micro_usd", "computed_delta_micro_usd", "new_cost_micro_usd", "price_catalog_version", "price_row",
    "retention_days",
)  # fmt: skip
REPRICING_COLUMNS = (
    "repricing_id", "workspace_id", "applied_at", "range_from", "range_to", "data_mode", "models",
    "corrected_events", "delta_micro_usd", "price_catalog_version", "workspace_prices_version", "requested_by",
    "requested_by_role", "reason",
)  # fmt: skip

UNKNOWN_RETENTION = Retention(3650, 3650)
"""Rows of a workspace whose plan the caller did not say are kept (the columns' defaults)."""

_DIMENSION_TUPLES = (
    "[('total', ''), ('model', toString(model)), ('provider', toString(provider)), "
    "('endpointTag', endpoint_tag), ('userId', user_id), ('promptVersion', prompt_version)]"
)
_SUMS = (
    "sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, "
    "sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd"
)
_ROLLUP_SELECT = """
    SELECT workspace_id, data_mode, {bucket} AS {bucket_name}, model_normalized AS model, provider, endpoint_tag,
           user_id, prompt_version, count() AS requests, sum(input_tokens) AS input_tokens,
           sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens,
           sum(cost_micro_usd) AS cost_micro_usd, max({retention}) AS retention_days,
           sum(computed_cost_micro_usd) AS computed_cost_micro_usd,
           sum(ifNull(reported_cost_micro_usd, 0)) AS reported_cost_sum_micro_usd,
           countIf(reported_cost_micro_usd IS NOT NULL) AS reported_requests
    FROM llm_requests_raw FINAL
    WHERE occurred_at >= {{start:DateTime64(3, 'UTC')}} AND occurred_at < {{end:DateTime64(3, 'UTC')}} {scope}
    GROUP BY workspace_id, data_mode, {bucket_name}, model, provider, endpoint_tag, user_id, prompt_version
"""
_ROLLUPS = (
    ("llm_requests_hourly", "hour", "toStartOfHour(occurred_at)", "raw_retention_days"),
    ("llm_requests_daily", "day", "toDate(occurred_at)", "summary_retention_days"),
)


def raw_row(event: LlmRequestIngested, retention: Retention, basis: CostBasis = "computed") -> list[Any]:
    """The event's row; ``cost_micro_usd`` is its cost by the workspace's cost basis, both costs kept beside."""
    p = event.payload
    cost = cost_by_basis(p.cost_micro_usd, p.reported_cost_micro_usd, basis)
    return [
        event.event_id, event.workspace_id, event.occurred_at, event.ingested_at, p.external_request_id,
        p.provider, p.model, p.model_normalized, p.endpoint_tag, p.user_id, p.prompt_version or "",
        p.input_tokens, p.output_tokens, p.total_tokens, p.cached_input_tokens, p.reasoning_tokens,
        p.latency_ms, p.status, p.error_code or "", p.data_mode, p.environment, cost, p.priced,
        p.price_catalog_version, orjson.dumps(p.metadata).decode(), retention.raw_days, retention.summary_days,
        p.api_key_id, p.cache_write_input_tokens, p.price_row or "", p.price_tier_start_tokens, p.cost_micro_usd,
        p.reported_cost_micro_usd, basis, p.cache_write_1h_input_tokens,
    ]  # fmt: skip


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _segment_sql(segment: Segment, i: int) -> str:
    """Row-level columns of one tier over one segment, and the cost corrections of it (ADR 57); the caller sums
    them."""
    period = f"{{period_{i}:String}} AS period"
    scope = "workspace_id = {workspace_id:String} AND data_mode = {data_mode:String}"
    if segment.grain == "raw":
        return f"""
            SELECT {period}, toDateTime(toStartOfHour(occurred_at), 'UTC') AS ts, model_normalized AS model,
                   provider, endpoint_tag, user_id, prompt_version, toUInt64(1) AS requests,
                   toUInt64(input_tokens) AS input_tokens, toUInt64(output_tokens) AS output_tokens,
                   total_tokens, toInt64(cost_micro_usd) AS cost_micro_usd
            FROM llm_requests_raw FINAL
            WHERE {scope} AND occurred_at >= {{start_{i}:DateTime64(3, 'UTC')}}
              AND occurred_at < {{end_{i}:DateTime64(3, 'UTC')}}
            UNION ALL {
            _corrections_sql(
                period, "toDateTime(toStartOfHour(occurred_at), 'UTC')", "occurred_at", "DateTime64(3, 'UTC')", i
            )
        }"""  # noqa: S608 - fixed fragments, bound values
    table, column, kind, ts, corrected = (
        ("llm_requests_hourly", "hour", "DateTime('UTC')", "hour", "toStartOfHour(occurred_at)")
        if segment.grain == "hour"
        else ("llm_requests_daily", "day", "Date", "toDateTime(day, 'UTC')", "toDate(occurred_at)")
    )
    return f"""
        SELECT {period}, {ts} AS ts, model, provider, endpoint_tag, user_id, prompt_version, requests,
               input_tokens, output_tokens, total_tokens, toInt64(cost_micro_usd) AS cost_micro_usd
        FROM {table}
        WHERE {scope} AND {column} >= {{start_{i}:{kind}}} AND {column} < {{end_{i}:{kind}}}
        UNION ALL {
        _corrections_sql(
            period, f"toDateTime({corrected}, 'UTC')", corrected, kind, i, of_raw_rows=segment.grain == "hour"
        )
    }"""  # noqa: S608 - fixed fragments, bound values


def _corrections_sql(period: str, ts: str, column: str, kind: str, i: int, *, of_raw_rows: bool = True) -> str:
    """The cost corrections of segment ``i`` as rows of no requests and no tokens: only the cost moves.

    Raw rows and hourly rollups expire together, so their segments count only corrections of calls raw still
    holds; daily summaries outlive raw rows, and so do their corrections (the TTL of migration 0008)."""
    scope = f"""workspace_id = {{workspace_id:String}} AND data_mode = {{data_mode:String}}
          AND {column} >= {{start_{i}:{kind}}} AND {column} < {{end_{i}:{kind}}}"""
    return f"""
        SELECT {period}, {ts} AS ts, model_normalized AS model, provider, endpoint_tag, user_id, prompt_version,
               toUInt64(0) AS requests, toUInt64(0) AS input_tokens, toUInt64(0) AS output_tokens,
               toUInt64(0) AS total_tokens, cost_delta_micro_usd AS cost_micro_usd
        FROM llm_cost_corrections FINAL
        WHERE {scope} {f"AND {_of_stored_calls(scope)}" if of_raw_rows else ""}"""  # noqa: S608


def _of_stored_calls(scope: str) -> str:
    """Corrections whose call is among the raw rows of ``scope``: a correction of a call that expired or was
    deleted must not move a sum that no longer holds the call."""
    return f"""corrected_event_id IN (
            SELECT event_id FROM llm_requests_raw
            WHERE {scope} AND event_id IN (SELECT corrected_event_id FROM llm_cost_corrections WHERE {scope}))"""  # noqa: S608


def _tiered(
    workspace_id: str,
    periods: Mapping[str, UsageWindow],
    data_mode: str,
    planner: Callable[[UsageWindow], list[Segment]] = read_plan,
) -> tuple[str, dict[str, Any]]:
    """A UNION ALL of every period's segments, and its parameters."""
    parts: list[str] = []
    params: dict[str, Any] = {"workspace_id": workspace_id, "data_mode": data_mode}
    i = 0
    for label, window in periods.items():
        for segment in planner(window):
            parts.append(_segment_sql(segment, i))
            day_grain = segment.grain == "day"
            params.update(
                {
                    f"period_{i}": label,
                    f"start_{i}": segment.start.date() if day_grain else segment.start,
                    f"end_{i}": segment.end.date() if day_grain else segment.end,
                }
            )
            i += 1
    return " UNION ALL ".join(parts), params


def _totals(row: Mapping[str, Any]) -> Totals:
    return Totals(
        requests=int(row["requests"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        total_tokens=int(row["total_tokens"]),
        cost_micro_usd=int(row["cost_micro_usd"]),
    )


@dataclass(frozen=True)
class AnalystLanes:
    """Where analyst SQL runs, so it never queues ahead of the sink and the APIs (ADR 0051)."""

    workspace: ClickHouse
    """Workspace queries; on a server, as the analyst user of deploy/clickhouse/analyst-user.sql."""
    operator: ClickHouse
    row_policy: bool = False
    """The workspace lane's user has the row policy: send it the caller's workspace as a setting."""


ROW_POLICY_SETTING = "SQL_opsmeter_workspace_id"


def mutable_table(table: str, *, cluster: bool) -> str:
    """The table a mutation addresses: on a cluster the Distributed table refuses ``ALTER … DELETE``, so it goes
    to the local tables on every node (migrations_cluster/, ADR 0059)."""
    return f"{table}_local ON CLUSTER '{{cluster}}'" if cluster else table


class ClickHouseTelemetryStore:
    def __init__(
        self,
        clickhouse: ClickHouse,
        analyst: AnalystLanes | None = None,
        *,
        cluster: bool = False,
        fault_insert_failure_file: Path | None = None,
    ) -> None:
        self._ch = clickhouse
        self._fault_file = fault_insert_failure_file
        self._cluster = cluster
        self._lanes = analyst or AnalystLanes(clickhouse, clickhouse)
        self._writes = asyncio.Lock()
        self._running_sql: set[str] = set()
        self._slots: dict[int, asyncio.Semaphore] = {}

    def _lane_slots(self, lane: ClickHouse) -> asyncio.Semaphore:
        return self._slots.setdefault(id(lane), asyncio.Semaphore(lane.workers))

    async def _guard(self, call: Any) -> Any:
        try:
            return await call
        except OperationalError as exc:
            raise TransientError(f"ClickHouse unreachable: {exc}") from exc

    async def append(
        self,
        events: Sequence[LlmRequestIngested],
        retention: Mapping[str, Retention] | None = None,
        bases: Mapping[str, CostBasis] | None = None,
    ) -> SinkResult:
        unique = list({e.event_id: e for e in events}.values())
        if not unique:
            return SinkResult(0, 0, 0)
        async with self._writes:
            stored = await self._guard(self._stored(unique))
            fresh = [e for e in unique if e.event_id not in stored]
            resent = Counter(
                (e.workspace_id, e.occurred_at.date())
                for e in unique
                if e.event_id in stored and stored[e.event_id] != _millis(e.ingested_at)
            )
            if self._fault_file is not None and self._fault_file.exists():
                raise TransientError(f"fault injected: inserts fail while {self._fault_file} exists")
            if fresh:
                rows = [
                    raw_row(
                        e,
                        (retention or {}).get(e.workspace_id, UNKNOWN_RETENTION),
                        (bases or {}).get(e.workspace_id, "computed"),
                    )
                    for e in fresh
                ]
                await self._guard(self._ch.insert("llm_requests_raw", rows, RAW_COLUMNS))
            if resent:
                await self._guard(
                    self._ch.insert(
                        "llm_requests_duplicates",
                        [[ws, day, n] for (ws, day), n in resent.items()],
                        ("workspace_id", "day", "duplicates"),
                    )
                )
            repaired = 0
            if len(fresh) < len(unique):
                days = {(e.workspace_id, e.occurred_at.date()) for e in unique if e.event_id in stored}
                repaired = await self._guard(self._repair_rollups(days, datetime.now(UTC)))
        redelivered = len(unique) - len(fresh) - sum(resent.values())
        return SinkResult(len(fresh), redelivered, sum(resent.values()), repaired)

    async def _repair_rollups(self, days: set[tuple[str, date]], now: datetime) -> int:
        """Raw already held some of a batch: an earlier attempt stored them. ClickHouse inserts raw and then each
        view, one after another, so an attempt killed in between left rows in raw that the rollups never counted
        (and a batch two replicas inserted at once during a rebalance counted twice). Every (workspace, day) of
        those rows whose rollups disagree with raw is rebuilt from raw; the number rebuilt is returned."""
        params: dict[str, Any] = {"days": sorted(days)}
        pairs = "{days:Array(Tuple(String, Date))}"
        rows = await self._ch.query(
            f"""
            SELECT 'raw' AS tier, workspace_id, toDate(occurred_at) AS day, count() AS n FROM llm_requests_raw FINAL
            WHERE (workspace_id, toDate(occurred_at)) IN {pairs} GROUP BY workspace_id, day
            UNION ALL
            SELECT 'hourly' AS tier, workspace_id, toDate(hour) AS day, sum(requests) AS n FROM llm_requests_hourly
            WHERE (workspace_id, toDate(hour)) IN {pairs} GROUP BY workspace_id, day
            UNION ALL
            SELECT 'daily' AS tier, workspace_id, day, sum(requests) AS n FROM llm_requests_daily
            WHERE (workspace_id, day) IN {pairs} GROUP BY workspace_id, day
            """,  # noqa: S608 - fixed SQL; the days are bound
            params,
        )
        counts: dict[tuple[str, date], dict[str, int]] = {}
        for r in rows:
            counts.setdefault((str(r["workspace_id"]), r["day"]), {})[str(r["tier"])] = int(r["n"])
        differ = [key for key, n in counts.items() if not n.get("raw", 0) == n.get("hourly", 0) == n.get("daily", 0)]
        if not differ:
            return 0
        return len(await self._rebuild_days(differ, now))

    async def _stored(self, events: Sequence[LlmRequestIngested]) -> dict[UUID, int]:
        """Event id → first stored ``ingested_at`` (ms) of the events raw already holds."""
        calls = [(e.workspace_id, e.occurred_at, e.event_id) for e in events]
        return await self._per_call("toUnixTimestamp64Milli(min(ingested_at))", calls)

    async def _per_call(self, aggregate: PerCall, calls: Sequence[tuple[str, datetime, UUID]]) -> dict[UUID, int]:
        """Event id → ``aggregate`` over the raw rows of these calls (workspace, call time, event id) raw still
        holds; the calls' hours narrow the scan to their parts."""
        rows = await self._ch.query(
            f"""
            SELECT event_id, {aggregate} AS value
            FROM llm_requests_raw
            WHERE workspace_id IN {{workspaces:Array(String)}}
              AND toStartOfHour(occurred_at) IN {{hours:Array(DateTime('UTC'))}}
              AND event_id IN {{ids:Array(UUID)}}
            GROUP BY event_id
            """,  # noqa: S608 - the two callers' fixed aggregates, bound values
            {
                "workspaces": sorted({ws for ws, _, _ in calls}),
                "hours": sorted({floor_to(at, HOUR) for _, at, _ in calls}),
                "ids": [event_id for _, _, event_id in calls],
            },
        )
        return {UUID(str(r["event_id"])): int(r["value"]) for r in rows}

    async def append_corrections(self, events: Sequence[CostCorrected]) -> None:
        """Store cost corrections (a correction stored twice counts once: reads use FINAL), each kept as long as the
        daily summaries of the call it corrects."""
        if not events:
            return
        kept = await self._guard(self._summary_retention(events))
        rows = [
            [
                e.event_id, e.payload.corrected_event_id, e.payload.repricing_id, e.workspace_id, e.occurred_at,
                e.ingested_at, e.payload.data_mode, e.payload.provider, e.payload.model_normalized,
                e.payload.endpoint_tag, e.payload.user_id, e.payload.prompt_version or "", e.payload.had_reported_cost,
                e.payload.delta_micro_usd, e.payload.computed_delta_micro_usd, e.payload.new_cost_micro_usd,
                e.payload.price_catalog_version, e.payload.price_row or "",
                kept.get(e.payload.corrected_event_id, UNKNOWN_RETENTION.summary_days),
            ]
            for e in events
        ]  # fmt: skip
        async with self._writes:
            await self._guard(self._ch.insert("llm_cost_corrections", rows, CORRECTION_COLUMNS))

    async def _summary_retention(self, events: Sequence[CostCorrected]) -> dict[UUID, int]:
        """Corrected call id → the summary window its raw row was stored with (calls raw no longer holds: none)."""
        calls = [(e.workspace_id, e.occurred_at, e.payload.corrected_event_id) for e in events]
        return await self._per_call("max(summary_retention_days)", calls)

    async def stored_calls(
        self, workspace_id: str, window: UsageWindow, data_mode: str, models: Sequence[str]
    ) -> list[StoredCall]:
        """The calls of ``window`` as a re-pricing needs them: tokens, and the computed cost with corrections."""
        model_filter = "AND model_normalized IN {models:Array(String)}" if models else ""
        rows = await self._ch.query(
            f"""
            SELECT r.event_id AS event_id, r.occurred_at AS occurred_at, r.provider AS provider, r.model AS model,
                   r.model_normalized AS model_normalized, r.endpoint_tag AS endpoint_tag, r.user_id AS user_id,
                   r.prompt_version AS prompt_version, r.input_tokens AS input_tokens,
                   r.output_tokens AS output_tokens, r.cached_input_tokens AS cached_input_tokens,
                   r.cache_write_input_tokens AS cache_write_input_tokens, r.reasoning_tokens AS reasoning_tokens,
                   r.cache_write_1h_input_tokens AS cache_write_1h_input_tokens,
                   toInt64(r.computed_cost_micro_usd) + c.computed_delta AS computed_cost,
                   r.reported_cost_micro_usd IS NOT NULL AS had_reported_cost, r.cost_basis AS cost_basis
            FROM (
                SELECT * FROM llm_requests_raw FINAL
                WHERE workspace_id = {{workspace_id:String}} AND data_mode = {{data_mode:String}}
                  AND occurred_at >= {{start:DateTime64(3, 'UTC')}} AND occurred_at < {{end:DateTime64(3, 'UTC')}}
                  {model_filter}
            ) AS r
            LEFT JOIN (
                SELECT corrected_event_id, sum(computed_delta_micro_usd) AS computed_delta
                FROM llm_cost_corrections FINAL
                WHERE workspace_id = {{workspace_id:String}} AND data_mode = {{data_mode:String}}
                  AND occurred_at >= {{start:DateTime64(3, 'UTC')}} AND occurred_at < {{end:DateTime64(3, 'UTC')}}
                GROUP BY corrected_event_id
            ) AS c ON c.corrected_event_id = r.event_id
            ORDER BY occurred_at, event_id
            """,  # noqa: S608 - a fixed fragment; every value is bound
            {
                "workspace_id": workspace_id,
                "data_mode": data_mode,
                "start": window.start,
                "end": window.end,
                "models": list(models),
            },
        )
        return [
            StoredCall(
                event_id=r["event_id"],
                occurred_at=aware(r["occurred_at"]),
                provider=str(r["provider"]),
                model=str(r["model"]),
                model_normalized=str(r["model_normalized"]),
                endpoint_tag=str(r["endpoint_tag"]),
                user_id=str(r["user_id"]),
                prompt_version=str(r["prompt_version"]) or None,
                input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]),
                cached_input_tokens=int(r["cached_input_tokens"]),
                cache_write_input_tokens=int(r["cache_write_input_tokens"]),
                cache_write_1h_input_tokens=int(r["cache_write_1h_input_tokens"]),
                reasoning_tokens=int(r["reasoning_tokens"]),
                computed_cost_micro_usd=int(r["computed_cost"]),
                had_reported_cost=bool(r["had_reported_cost"]),
                cost_basis=parse_cost_basis(str(r["cost_basis"])),
            )
            for r in rows
        ]

    async def save_repricing(self, workspace_id: str, applied_at: datetime, record: RepricingAppliedPayload) -> None:
        row = [
            record.repricing_id, workspace_id, applied_at, record.range_from, record.range_to, record.data_mode,
            list(record.models), record.corrected_events, record.delta_micro_usd, record.price_catalog_version,
            record.workspace_prices_version, record.requested_by, record.requested_by_role, record.reason,
        ]  # fmt: skip
        async with self._writes:
            await self._guard(self._ch.insert("pricing_repricings", [row], REPRICING_COLUMNS))

    async def repricings(self, workspace_id: str) -> list[dict[str, Any]]:
        return await self._ch.query(
            f"SELECT {', '.join(REPRICING_COLUMNS)} FROM pricing_repricings FINAL "  # noqa: S608 - fixed columns
            "WHERE workspace_id = {workspace_id:String} ORDER BY applied_at DESC LIMIT 200",
            {"workspace_id": workspace_id},
        )

    async def stored_days(self, workspace_id: str, provider: str, window: UsageWindow) -> list[StoredDay]:
        """Per UTC day and model of ``provider``: real calls, computed cost (with corrections), reported cost, and
        what a reconciliation explains gaps by (unpriced calls, cache tokens, long-context tiers)."""
        scope = """workspace_id = {workspace_id:String} AND data_mode = 'real' AND provider = {provider:String}
              AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}"""
        rows = await self._ch.query(
            f"""
            SELECT day, model, sum(calls) AS requests, sum(computed) AS computed_sum, sum(reported) AS reported_sum,
                   sum(unpriced) AS unpriced_sum, sum(cache) AS cache_sum, sum(tiered) AS tiered_sum
            FROM (
                SELECT toDate(occurred_at) AS day, model_normalized AS model, toUInt64(1) AS calls,
                       toInt64(computed_cost_micro_usd) AS computed,
                       toInt64(ifNull(reported_cost_micro_usd, 0)) AS reported, toUInt64(NOT priced) AS unpriced,
                       toUInt64(cached_input_tokens) + toUInt64(cache_write_input_tokens) AS cache,
                       toUInt64(price_tier_start_tokens IS NOT NULL) AS tiered
                FROM llm_requests_raw FINAL
                WHERE {scope}
                UNION ALL
                SELECT toDate(occurred_at), model_normalized, toUInt64(0), computed_delta_micro_usd, toInt64(0),
                       toUInt64(0), toUInt64(0), toUInt64(0)
                FROM llm_cost_corrections FINAL
                WHERE {scope} AND {_of_stored_calls(scope)}
            )
            GROUP BY day, model
            ORDER BY day, model
            """,  # noqa: S608 - a fixed fragment; every value is bound
            {"workspace_id": workspace_id, "provider": provider, "start": window.start, "end": window.end},
        )
        return [
            StoredDay(
                day=r["day"],
                model=str(r["model"]),
                requests=int(r["requests"]),
                computed_micro_usd=int(r["computed_sum"]),
                reported_micro_usd=int(r["reported_sum"]),
                unpriced_requests=int(r["unpriced_sum"]),
                cache_tokens=int(r["cache_sum"]),
                tiered_requests=int(r["tiered_sum"]),
            )
            for r in rows
        ]

    async def unpriced(self, workspace_id: str, data_mode: str) -> list[UnpricedModel]:
        rows = await self._ch.query(
            """
            SELECT model_normalized AS model, provider, min(occurred_at) AS first_seen,
                   max(occurred_at) AS last_seen, count() AS requests,
                   sum(input_tokens) AS input_sum, sum(output_tokens) AS output_sum
            FROM llm_requests_raw FINAL
            WHERE workspace_id = {workspace_id:String} AND data_mode = {data_mode:String} AND NOT priced
              AND event_id NOT IN (
                  SELECT corrected_event_id FROM llm_cost_corrections
                  WHERE workspace_id = {workspace_id:String} AND price_row != '')
            GROUP BY model, provider
            ORDER BY requests DESC, model ASC
            LIMIT 500
            """,
            {"workspace_id": workspace_id, "data_mode": data_mode},
        )
        return [
            UnpricedModel(
                model=str(r["model"]),
                provider=str(r["provider"]),
                first_seen=aware(r["first_seen"]),
                last_seen=aware(r["last_seen"]),
                requests=int(r["requests"]),
                input_tokens=int(r["input_sum"]),
                output_tokens=int(r["output_sum"]),
            )
            for r in rows
        ]

    async def usage(self, workspace_id: str, window: UsageWindow, group_by: GroupBy, data_mode: str) -> list[UsageRow]:
        key = GROUP_COLUMNS[group_by]
        scope = """workspace_id = {workspace_id:String} AND data_mode = {data_mode:String}
              AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}"""
        rows = await self._ch.query(
            f"""
            SELECT key, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
                   sum(output_tokens) AS output_tokens, sum(total_tokens) AS total_tokens,
                   sum(cost) AS cost_micro_usd, sum(computed) AS computed_sum, sum(reported) AS reported_sum,
                   sum(reporting) AS reported_requests, sum(computed_if_reported) AS computed_where_reported,
                   sum(unpriced) AS unpriced_requests
            FROM (
                SELECT {key} AS key, toUInt64(1) AS requests, toUInt64(input_tokens) AS input_tokens,
                       toUInt64(output_tokens) AS output_tokens, total_tokens, toInt64(cost_micro_usd) AS cost,
                       toInt64(computed_cost_micro_usd) AS computed,
                       toInt64(ifNull(reported_cost_micro_usd, 0)) AS reported,
                       toUInt64(reported_cost_micro_usd IS NOT NULL) AS reporting,
                       if(reported_cost_micro_usd IS NULL, toInt64(0), toInt64(computed_cost_micro_usd))
                           AS computed_if_reported,
                       toUInt64(NOT priced AND event_id NOT IN (
                           SELECT corrected_event_id FROM llm_cost_corrections WHERE {scope} AND price_row != ''
                       )) AS unpriced
                FROM llm_requests_raw FINAL
                WHERE {scope}
                UNION ALL
                SELECT {key} AS key, toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), cost_delta_micro_usd,
                       computed_delta_micro_usd, toInt64(0), toUInt64(0),
                       if(had_reported_cost, computed_delta_micro_usd, toInt64(0)), toUInt64(0)
                FROM llm_cost_corrections FINAL
                WHERE {scope} AND {_of_stored_calls(scope)}
            )
            GROUP BY key
            ORDER BY {"key ASC" if group_by == "day" else "cost_micro_usd DESC, key ASC"}
            """,  # noqa: S608 - the only interpolation is a column expression from a fixed map
            {"workspace_id": workspace_id, "start": window.start, "end": window.end, "data_mode": data_mode},
        )
        return [
            UsageRow(
                key=str(r["key"]),
                **_totals(r).__dict__,
                computed_cost_micro_usd=int(r["computed_sum"]),
                reported_cost_micro_usd=int(r["reported_sum"]),
                reported_requests=int(r["reported_requests"]),
                computed_where_reported_micro_usd=int(r["computed_where_reported"]),
                unpriced_requests=int(r["unpriced_requests"]),
            )
            for r in rows
        ]

    async def series(
        self, workspace_id: str, window: UsageWindow, bucket: SeriesBucket, stack_by: StackBy, data_mode: str
    ) -> list[SeriesPoint]:
        """Cost and requests per time bucket and per model or provider, with the errors among them."""
        column = STACK_COLUMNS[stack_by]
        start = "toStartOfHour(occurred_at)" if bucket == "hour" else "toStartOfDay(occurred_at)"
        scope = """workspace_id = {workspace_id:String} AND data_mode = {data_mode:String}
              AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}"""
        rows = await self._ch.query(
            f"""
            SELECT bucket, key, sum(calls) AS requests, sum(failed) AS errors, sum(tokens) AS total_tokens,
                   sum(cost) AS cost_micro_usd
            FROM (
                SELECT {start} AS bucket, {column} AS key, toUInt64(1) AS calls,
                       toUInt64(status = 'error') AS failed, total_tokens AS tokens, toInt64(cost_micro_usd) AS cost
                FROM llm_requests_raw FINAL
                WHERE {scope}
                UNION ALL
                SELECT {start}, {column}, toUInt64(0), toUInt64(0), toUInt64(0), cost_delta_micro_usd
                FROM llm_cost_corrections FINAL
                WHERE {scope} AND {_of_stored_calls(scope)}
            )
            GROUP BY bucket, key
            ORDER BY bucket, key
            """,  # noqa: S608 - the only interpolations are expressions from fixed maps
            {"workspace_id": workspace_id, "start": window.start, "end": window.end, "data_mode": data_mode},
        )
        return [
            SeriesPoint(
                bucket=aware(r["bucket"]),
                key=str(r["key"]),
                requests=int(r["requests"]),
                errors=int(r["errors"]),
                total_tokens=int(r["total_tokens"]),
                cost_micro_usd=int(r["cost_micro_usd"]),
            )
            for r in rows
        ]

    async def events(self, workspace_id: str, query: EventsQuery) -> list[dict[str, Any]]:
        """Raw events of a window, newest first, optionally of one driver (dimension = key), before a cursor; each
        at its cost after corrections, so the events of a driver add up to the driver's cost."""
        params: dict[str, Any] = {
            "workspace_id": workspace_id,
            "start": query.window.start,
            "end": query.window.end,
            "data_mode": query.data_mode,
            "limit": query.limit,
        }
        filters = ""
        if query.dimension is not None:
            filters += f" AND toString({EVENT_FILTER_COLUMNS[query.dimension]}) = {{key:String}}"
            params["key"] = query.key
        if query.before is not None:
            filters += " AND (occurred_at, toString(event_id)) < ({before:DateTime64(3, 'UTC')}, {before_id:String})"
            params["before"], params["before_id"] = query.before
        scope = """workspace_id = {workspace_id:String} AND data_mode = {data_mode:String}
              AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}"""
        rows = await self._ch.query(
            f"""
            SELECT r.event_id AS event_id, r.occurred_at AS occurred_at, r.provider AS provider, r.model AS model,
                   r.endpoint_tag AS endpoint_tag, r.user_id AS user_id, r.prompt_version AS prompt_version,
                   r.status AS status, r.error_code AS error_code, r.input_tokens AS input_tokens,
                   r.output_tokens AS output_tokens, r.latency_ms AS latency_ms,
                   toInt64(r.cost) + c.delta AS cost_micro_usd
            FROM (
                SELECT toString(event_id) AS event_id, occurred_at, toString(provider) AS provider,
                       model_normalized AS model, endpoint_tag, user_id, prompt_version, toString(status) AS status,
                       error_code, input_tokens, output_tokens, latency_ms, cost_micro_usd AS cost
                FROM llm_requests_raw FINAL
                WHERE {scope}{filters}
                ORDER BY occurred_at DESC, event_id DESC
                LIMIT {{limit:UInt32}}
            ) AS r
            LEFT JOIN (
                SELECT toString(corrected_event_id) AS corrected, sum(cost_delta_micro_usd) AS delta
                FROM llm_cost_corrections FINAL
                WHERE {scope}
                GROUP BY corrected
            ) AS c ON c.corrected = r.event_id
            ORDER BY occurred_at DESC, event_id DESC
            """,  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            params,
        )
        return [{**r, "occurred_at": aware(r["occurred_at"])} for r in rows]

    async def breakdown(
        self,
        workspace_id: str,
        periods: Mapping[str, UsageWindow],
        data_mode: str,
        planner: Callable[[UsageWindow], list[Segment]] = read_plan,
    ) -> list[BreakdownRow]:
        """``planner`` splits a window over the tiers; the benchmark's baseline reads raw rows only."""
        union, params = _tiered(workspace_id, periods, data_mode, planner)
        rows = await self._ch.query(
            f"""
            SELECT period, d.1 AS dimension, d.2 AS key, {_SUMS}
            FROM ({union})
            ARRAY JOIN {_DIMENSION_TUPLES} AS d
            GROUP BY period, dimension, key
            """,  # noqa: S608 - fixed SQL fragments; every value is a bound parameter
            params,
        )
        return [BreakdownRow(str(r["period"]), str(r["dimension"]), str(r["key"]), _totals(r)) for r in rows]

    async def daily_series(self, workspace_id: str, window: UsageWindow, data_mode: str) -> list[tuple[date, Totals]]:
        union, params = _tiered(workspace_id, {"range": window}, data_mode)
        rows = await self._ch.query(
            f"SELECT toDate(ts) AS day, {_SUMS} FROM ({union}) GROUP BY day ORDER BY day",  # noqa: S608
            params,
        )
        return [(r["day"], _totals(r)) for r in rows]

    async def rebuild(self, window: UsageWindow, workspace_id: str | None = None, *, now: datetime) -> int:
        """Only days raw still holds whole are rebuilt: a day whose first rows expired keeps its summaries."""
        start, end = floor_to(window.start, DAY), ceil_to(window.end, DAY)
        params: dict[str, Any] = {"start": start, "end": end, "workspace_id": workspace_id or ""}
        scope = "AND workspace_id = {workspace_id:String}" if workspace_id else ""
        async with self._writes:
            rows = await self._ch.query(
                f"""
                SELECT DISTINCT workspace_id, toDate(occurred_at) AS day FROM llm_requests_raw FINAL
                WHERE occurred_at >= {{start:DateTime64(3, 'UTC')}} AND occurred_at < {{end:DateTime64(3, 'UTC')}}
                  {scope}
                """,  # noqa: S608 - a fixed fragment; every value is bound
                params,
            )
            rebuilt = await self._rebuild_days([(str(r["workspace_id"]), r["day"]) for r in rows], now)
        return sum(rebuilt.values())

    async def _rebuild_days(self, days: Sequence[tuple[str, date]], now: datetime) -> dict[tuple[str, date], int]:
        """Replace the hourly and daily rollups of these (workspace, UTC day)s with sums of ``raw FINAL``, for the
        days raw still holds whole; returns those days and their raw row counts. The caller holds ``_writes``."""
        if not days:
            return {}
        params: dict[str, Any] = {"days": sorted(set(days)), "now": now}
        held = await self._ch.query(
            """
            SELECT workspace_id, toDate(occurred_at) AS day, count() AS n FROM llm_requests_raw FINAL
            WHERE (workspace_id, toDate(occurred_at)) IN {days:Array(Tuple(String, Date))}
            GROUP BY workspace_id, day
            HAVING toDateTime(day, 'UTC') + toIntervalDay(min(raw_retention_days)) > {now:DateTime64(3, 'UTC')}
            """,
            params,
        )
        whole = {(str(r["workspace_id"]), r["day"]): int(r["n"]) for r in held}
        if not whole:
            return {}
        params["days"] = sorted(whole)
        params["start"] = datetime.combine(min(day for _, day in whole), time(), UTC)
        params["end"] = datetime.combine(max(day for _, day in whole), time(), UTC) + DAY
        whole_days = "AND (workspace_id, toDate(occurred_at)) IN {days:Array(Tuple(String, Date))}"
        for table, bucket_name, bucket, retention in _ROLLUPS:
            await self._ch.command(
                f"ALTER TABLE {mutable_table(table, cluster=self._cluster)} DELETE "
                f"WHERE (workspace_id, toDate({bucket_name})) IN {{days:Array(Tuple(String, Date))}} "
                "SETTINGS mutations_sync = 2",
                params,
            )
            select = _ROLLUP_SELECT.format(
                bucket=bucket, bucket_name=bucket_name, retention=retention, scope=whole_days
            )
            await self._ch.command(f"INSERT INTO {table} {select}", params)
        return whole

    async def delete_telemetry(self, workspace_id: str, data_mode: str, api_key_ids: Sequence[str] | None) -> None:
        """Drop a workspace's demo or test rows (all, or those sent with the given keys), their rollups and the cost
        corrections of the dropped calls."""
        params: dict[str, Any] = {
            "workspace_id": workspace_id,
            "data_mode": data_mode,
            "keys": list(api_key_ids or []),
            "start": datetime(1970, 1, 1, tzinfo=UTC),
            "end": datetime(2200, 1, 1, tzinfo=UTC),
        }
        keys = "AND api_key_id IN {keys:Array(String)}" if api_key_ids is not None else ""
        scope = "AND workspace_id = {workspace_id:String} AND data_mode = {data_mode:String}"
        async with self._writes:
            # A mutation rewrites parts and holds the sink meanwhile (about a second each on chDB): none when
            # nothing matches, as for a repeated deletion. Rollups only hold what raw rows held.
            [found] = await self._ch.query(
                f"SELECT count() AS n FROM llm_requests_raw WHERE 1 {scope} {keys}",  # noqa: S608 - fixed fragments
                params,
            )
            if int(found["n"]) == 0:
                return
            corrected = await self._ch.query(
                f"""
                SELECT DISTINCT corrected_event_id AS id FROM llm_cost_corrections
                WHERE 1 {scope} AND corrected_event_id IN (SELECT event_id FROM llm_requests_raw WHERE 1 {scope} {keys})
                """,  # noqa: S608 - fixed fragments
                params,
            )
            if corrected:
                await self._ch.command(
                    f"ALTER TABLE {mutable_table('llm_cost_corrections', cluster=self._cluster)} DELETE "
                    f"WHERE 1 {scope} AND corrected_event_id IN {{ids:Array(UUID)}} SETTINGS mutations_sync = 2",
                    {**params, "ids": [r["id"] for r in corrected]},
                )
            await self._ch.command(
                f"ALTER TABLE {mutable_table('llm_requests_raw', cluster=self._cluster)} DELETE WHERE 1 {scope} {keys} "
                "SETTINGS mutations_sync = 2",
                params,
            )
            for table, bucket_name, bucket, retention in _ROLLUPS:
                await self._ch.command(
                    f"ALTER TABLE {mutable_table(table, cluster=self._cluster)} DELETE WHERE 1 {scope} "
                    "SETTINGS mutations_sync = 2",
                    params,
                )
                if api_key_ids is not None:
                    select = _ROLLUP_SELECT.format(
                        bucket=bucket, bucket_name=bucket_name, retention=retention, scope=scope
                    )
                    await self._ch.command(f"INSERT INTO {table} {select}", params)

    async def tracking_facts(self, workspace_id: str, since: datetime) -> TrackingFacts:
        params = {"workspace_id": workspace_id, "since": since}
        [row] = await self._ch.query(
            """
            SELECT countIf(data_mode = 'real') AS events,
                   count() AS any_mode_events,
                   countIf(data_mode = 'real' AND endpoint_tag NOT IN ('', 'unknown')) AS with_endpoint_tag,
                   countIf(data_mode = 'real' AND user_id NOT IN ('', 'unknown')) AS with_user_id,
                   countIf(data_mode = 'real' AND prompt_version != '') AS with_prompt_version,
                   countIf(data_mode = 'real' AND priced) AS priced,
                   countIf(data_mode = 'real' AND cached_input_tokens <= input_tokens
                           AND reasoning_tokens <= output_tokens
                           AND total_tokens = input_tokens + output_tokens) AS consistent_tokens,
                   quantileIf(0.95)(dateDiff('millisecond', occurred_at, ingested_at), data_mode = 'real')
                       AS freshness_p95_ms,
                   uniqExactIf(model_normalized, data_mode = 'real') AS models
            FROM llm_requests_raw FINAL
            WHERE workspace_id = {workspace_id:String} AND occurred_at >= {since:DateTime64(3, 'UTC')}
            """,
            params,
        )
        # Since the first retained row, not the window: the checklist's first steps stay done after a quiet week.
        # (No FINAL: a row kept twice changes neither the first time nor whether there is one.)
        [ever] = await self._ch.query(
            "SELECT min(occurred_at) AS first_event_at, count() > 0 AS any_event, countIf(data_mode = 'real') > 0 "
            "AS any_real FROM llm_requests_raw WHERE workspace_id = {workspace_id:String}",
            params,
        )
        [dups] = await self._ch.query(
            "SELECT sum(duplicates) AS n FROM llm_requests_duplicates "
            "WHERE workspace_id = {workspace_id:String} AND day >= toDate({since:DateTime64(3, 'UTC')})",
            params,
        )
        p95 = row["freshness_p95_ms"]
        return TrackingFacts(
            events=int(row["events"]),
            any_mode_events=int(row["any_mode_events"]),
            with_endpoint_tag=int(row["with_endpoint_tag"]),
            with_user_id=int(row["with_user_id"]),
            with_prompt_version=int(row["with_prompt_version"]),
            priced=int(row["priced"]),
            consistent_tokens=int(row["consistent_tokens"]),
            duplicates=int(dups["n"] or 0),
            freshness_p95_s=None if p95 is None or p95 != p95 else max(0.0, float(p95) / 1000),
            models=int(row["models"]),
            first_event_at=aware(ever["first_event_at"]) if ever["any_event"] else None,
            received_any=bool(ever["any_event"]),
            received_real=bool(ever["any_real"]),
        )

    async def record_decision(self, event: AnyEvent, summary: str) -> None:
        await self._guard(
            self._ch.insert(
                "reporting_decisions",
                [[event.event_id, event.workspace_id, event.type, event.occurred_at, summary]],
                ("event_id", "workspace_id", "type", "occurred_at", "summary"),
            )
        )

    async def decisions(self, workspace_id: str, window: UsageWindow) -> list[StoredDecision]:
        rows = await self._ch.query(
            """
            SELECT occurred_at, type, summary FROM reporting_decisions FINAL
            WHERE workspace_id = {workspace_id:String}
              AND occurred_at >= {start:DateTime64(3, 'UTC')} AND occurred_at < {end:DateTime64(3, 'UTC')}
            ORDER BY occurred_at
            """,
            {"workspace_id": workspace_id, "start": window.start, "end": window.end},
        )
        return [StoredDecision(aware(r["occurred_at"]), str(r["type"]), str(r["summary"])) for r in rows]

    async def record_settings_change(self, event: PolicySettingsChanged, summary: str) -> None:
        p = event.payload
        row = [event.event_id, event.workspace_id, event.occurred_at, p.version, list(p.changed_sections)]
        await self._guard(
            self._ch.insert(
                "settings_changes",
                [[*row, p.changed_by_credential_id, p.changed_by_role, summary]],
                ("event_id", "workspace_id", "occurred_at", "version", "sections", "changed_by", "role", "summary"),
            )
        )

    async def settings_changes(self, workspace_id: str, limit: int) -> list[SettingsChange]:
        rows = await self._ch.query(
            """
            SELECT occurred_at, version, sections, changed_by, role, summary FROM settings_changes FINAL
            WHERE workspace_id = {workspace_id:String}
            ORDER BY version DESC, occurred_at DESC
            LIMIT {limit:UInt32}
            """,
            {"workspace_id": workspace_id, "limit": limit},
        )
        return [
            SettingsChange(
                aware(r["occurred_at"]),
                int(r["version"]),
                tuple(r["sections"]),
                str(r["changed_by"]),
                str(r["role"]),
                str(r["summary"]),
            )
            for r in rows
        ]

    async def active_workspaces(self, since: datetime) -> list[str]:
        rows = await self._ch.query(
            "SELECT DISTINCT workspace_id FROM llm_requests_hourly "
            "WHERE data_mode = 'real' AND hour >= {since:DateTime('UTC')} ORDER BY workspace_id",
            {"since": floor_to(since, DAY)},
        )
        return [str(r["workspace_id"]) for r in rows]

    async def run_sql(self, query: AnalystQuery, max_rows: int, limits: AnalystLimits) -> AnalystResult:
        """A prepared analyst query on the analyst lane: at most one at a time per workspace, checked by
        ClickHouse's own parser first, under memory, row and time limits, killed if abandoned."""
        caller = query.workspace_id or "operator"
        if caller in self._running_sql:
            raise AnalystBusy("a query of this workspace is still running; send the next one when it has answered")
        self._running_sql.add(caller)
        lane = self._lanes.operator if query.workspace_id is None else self._lanes.workspace
        tag = f"opsmeter-analyst-{uuid4()}"
        settings: dict[str, Any] = {"log_comment": tag}
        if query.workspace_id is not None and self._lanes.row_policy:
            settings[ROW_POLICY_SETTING] = query.workspace_id
        settings.update(limits.settings(max_rows))
        try:
            async with self._lane_slots(lane):  # wait here, not queued in the lane: a cancelled wait costs nothing
                plan = await lane.query(f"EXPLAIN AST {query.sql}", query.parameters)
                check_ast([str(next(iter(r.values()))) for r in plan], query.workspace_id)
                try:
                    rows = await asyncio.wait_for(
                        lane.query(query.sql, query.parameters, settings=settings), limits.max_execution_s + 5
                    )
                except (asyncio.CancelledError, TimeoutError):
                    await asyncio.shield(self._ch.kill(tag))  # the service's own user may kill any query
                    raise
        finally:
            self._running_sql.discard(caller)
        columns = list(rows[0]) if rows else []
        return AnalystResult(columns, [list(r.values()) for r in rows[:max_rows]], truncated=len(rows) > max_rows)
