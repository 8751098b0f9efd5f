"""The ClickHouse telemetry store (server or embedded chDB; the same SQL).

Exactness under redelivery (ADR 0030): the hourly and daily materialized views add every row that
reaches ``llm_requests_raw``, so the sink inserts only events whose id raw does not hold yet, under a
lock it shares with ``rebuild``. Reads split a window into raw edges, whole hours and whole days.
"""

import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson
from clickhouse_connect.driver.exceptions import OperationalError

from opsmeter_contracts import LlmRequestIngested, SpikeDetected
from opsmeter_reporting.adapters import AnalystResult, SinkResult, StoredDecision
from opsmeter_reporting.analyst_sql import AnalystBusy, AnalystLimits, AnalystQuery, check_ast
from opsmeter_reporting.domain import (
    DAY,
    GROUP_COLUMNS,
    HOUR,
    BreakdownRow,
    GroupBy,
    Retention,
    Segment,
    Totals,
    TrackingFacts,
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
from opsmeter_runtime.clickhouse import ClickHouse
from opsmeter_runtime.errors import TransientError

RAW_COLUMNS = (
    "event_id", "workspace_id", "occurred_at", "ingested_at", "external_request_id", "provider", "model",
    "model_normalized", "endpoint_tag", "user_id", "prompt_version", "input_tokens", "output_tokens",
    "total_tokens", "cached_input_tokens", "reasoning_tokens", "latency_ms", "status", "error_code",
    "data_mode", "environment", "cost_micro_usd", "priced", "price_catalog_version", "metadata",
    "raw_retention_days", "summary_retention_days", "api_key_id",
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
           sum(cost_micro_usd) AS cost_micro_usd, max({retention}) AS retention_days
    FROM llm_requests_raw FINAL
    WHERE occurred_at >= {{start:DateTime64(3, 'UTC')}} AND occurred_at < {{end:DateTime64(3, 'UTC')}} {scope}
    GROUP BY workspace_id, data_mode, {bucket_name}, model, provider, endpoint_tag, user_id, prompt_version
"""
_ROLLUPS = (
    ("llm_requests_hourly", "hour", "toStartOfHour(occurred_at)", "raw_retention_days"),
    ("llm_requests_daily", "day", "toDate(occurred_at)", "summary_retention_days"),
)


def raw_row(event: LlmRequestIngested, retention: Retention) -> list[Any]:
    p = event.payload
    return [
        event.event_id, event.workspace_id, event.occurred_at, event.ingested_at, p.external_request_id,
        p.provider, p.model, p.model_normalized, p.endpoint_tag, p.user_id, p.prompt_version or "",
        p.input_tokens, p.output_tokens, p.total_tokens, p.cached_input_tokens, p.reasoning_tokens,
        p.latency_ms, p.status, p.error_code or "", p.data_mode, p.environment, p.cost_micro_usd, p.priced,
        p.price_catalog_version, orjson.dumps(p.metadata).decode(), retention.raw_days, retention.summary_days,
        p.api_key_id,
    ]  # fmt: skip


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _segment_sql(segment: Segment, i: int) -> str:
    """Row-level columns of one tier over one segment; the caller sums them."""
    period = f"{{period_{i}:String}} AS period"
    scope = "workspace_id = {workspace_id:String} AND data_mode = {data_mode:String}"
    if segment.grain == "raw":
        return f"""
            SELECT {period}, toDateTime(toStartOfHour(occurred_at), 'UTC') AS ts, model_normalized AS model,
                   provider, endpoint_tag, user_id, prompt_version, toUInt64(1) AS requests,
                   toUInt64(input_tokens) AS input_tokens, toUInt64(output_tokens) AS output_tokens,
                   total_tokens, cost_micro_usd
            FROM llm_requests_raw FINAL
            WHERE {scope} AND occurred_at >= {{start_{i}:DateTime64(3, 'UTC')}}
              AND occurred_at < {{end_{i}:DateTime64(3, 'UTC')}}"""  # noqa: S608 - fixed fragments, bound values
    table, column, kind, ts = (
        ("llm_requests_hourly", "hour", "DateTime('UTC')", "hour")
        if segment.grain == "hour"
        else ("llm_requests_daily", "day", "Date", "toDateTime(day, 'UTC')")
    )
    return f"""
        SELECT {period}, {ts} AS ts, model, provider, endpoint_tag, user_id, prompt_version, requests,
               input_tokens, output_tokens, total_tokens, cost_micro_usd
        FROM {table}
        WHERE {scope} AND {column} >= {{start_{i}:{kind}}} AND {column} < {{end_{i}:{kind}}}"""  # noqa: S608


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
        self, events: Sequence[LlmRequestIngested], retention: Mapping[str, Retention] | None = None
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
                rows = [raw_row(e, (retention or {}).get(e.workspace_id, UNKNOWN_RETENTION)) for e in fresh]
                await self._guard(self._ch.insert("llm_requests_raw", rows, RAW_COLUMNS))
            if resent:
                await self._guard(
                    self._ch.insert(
                        "llm_requests_duplicates",
                        [[ws, day, n] for (ws, day), n in resent.items()],
                        ("workspace_id", "day", "duplicates"),
                    )
                )
        return SinkResult(len(fresh), len(unique) - len(fresh) - sum(resent.values()), sum(resent.values()))

    async def _stored(self, events: Sequence[LlmRequestIngested]) -> dict[UUID, int]:
        """Event id → first stored ``ingested_at`` (ms) of the events raw already holds."""
        rows = await self._ch.query(
            """
            SELECT event_id, toUnixTimestamp64Milli(min(ingested_at)) AS ingested_ms
            FROM llm_requests_raw
            WHERE workspace_id IN {workspaces:Array(String)}
              AND toStartOfHour(occurred_at) IN {hours:Array(DateTime('UTC'))}
              AND event_id IN {ids:Array(UUID)}
            GROUP BY event_id
            """,
            {
                "workspaces": sorted({e.workspace_id for e in events}),
                "hours": sorted({floor_to(e.occurred_at, HOUR) for e in events}),
                "ids": [e.event_id for e in events],
            },
        )
        return {UUID(str(r["event_id"])): int(r["ingested_ms"]) for r in rows}

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
        return [UsageRow(key=str(r["key"]), **_totals(r).__dict__) for r in rows]

    async def series(
        self, workspace_id: str, window: UsageWindow, bucket: SeriesBucket, stack_by: StackBy, data_mode: str
    ) -> list[SeriesPoint]:
        """Cost and requests per time bucket and per model or provider, with the errors among them."""
        column = STACK_COLUMNS[stack_by]
        start = "toStartOfHour(occurred_at)" if bucket == "hour" else "toStartOfDay(occurred_at)"
        rows = await self._ch.query(
            f"""
            SELECT {start} AS bucket, {column} AS key, count() AS requests, countIf(status = 'error') AS errors,
                   sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd
            FROM llm_requests_raw FINAL
            WHERE workspace_id = {{workspace_id:String}}
              AND occurred_at >= {{start:DateTime64(3, 'UTC')}}
              AND occurred_at < {{end:DateTime64(3, 'UTC')}}
              AND data_mode = {{data_mode:String}}
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
        """Raw events of a window, newest first, optionally of one driver (dimension = key), before a cursor."""
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
        rows = await self._ch.query(
            f"""
            SELECT toString(event_id) AS event_id, occurred_at, toString(provider) AS provider,
                   model_normalized AS model, endpoint_tag, user_id, prompt_version, toString(status) AS status,
                   error_code, input_tokens, output_tokens, latency_ms, cost_micro_usd
            FROM llm_requests_raw FINAL
            WHERE workspace_id = {{workspace_id:String}}
              AND occurred_at >= {{start:DateTime64(3, 'UTC')}}
              AND occurred_at < {{end:DateTime64(3, 'UTC')}}
              AND data_mode = {{data_mode:String}}{filters}
            ORDER BY occurred_at DESC, event_id DESC
            LIMIT {{limit:UInt32}}
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

    async def rebuild(self, window: UsageWindow, workspace_id: str | None = None) -> int:
        start, end = floor_to(window.start, DAY), ceil_to(window.end, DAY)
        params: dict[str, Any] = {"start": start, "end": end, "workspace_id": workspace_id or ""}
        scope = "AND workspace_id = {workspace_id:String}" if workspace_id else ""
        async with self._writes:
            for table, bucket_name, bucket, retention in _ROLLUPS:
                await self._ch.command(
                    f"""
                    ALTER TABLE {mutable_table(table, cluster=self._cluster)} DELETE
                    WHERE (workspace_id, {bucket_name}) IN (
                        SELECT DISTINCT workspace_id, {bucket} FROM llm_requests_raw
                        WHERE occurred_at >= {{start:DateTime64(3, 'UTC')}}
                          AND occurred_at < {{end:DateTime64(3, 'UTC')}} {scope})
                    SETTINGS mutations_sync = 2
                    """,  # noqa: S608 - table and column names come from a fixed tuple
                    params,
                )
                select = _ROLLUP_SELECT.format(bucket=bucket, bucket_name=bucket_name, retention=retention, scope=scope)
                await self._ch.command(f"INSERT INTO {table} {select}", params)
        count_sql = (
            "SELECT count() AS n FROM llm_requests_raw FINAL WHERE occurred_at >= {start:DateTime64(3, 'UTC')} "  # noqa: S608
            "AND occurred_at < {end:DateTime64(3, 'UTC')} " + scope
        )
        [row] = await self._ch.query(count_sql, params)
        return int(row["n"])

    async def delete_telemetry(self, workspace_id: str, data_mode: str, api_key_ids: Sequence[str] | None) -> None:
        """Drop a workspace's demo or test rows (all, or those sent with the given keys) and their rollups."""
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
                   uniqExactIf(model_normalized, data_mode = 'real') AS models,
                   min(occurred_at) AS first_event_at
            FROM llm_requests_raw FINAL
            WHERE workspace_id = {workspace_id:String} AND occurred_at >= {since:DateTime64(3, 'UTC')}
            """,
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
            first_event_at=row["first_event_at"] if row["any_mode_events"] else None,
        )

    async def record_decision(self, event: SpikeDetected, summary: str) -> None:
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
        return [StoredDecision(r["occurred_at"], str(r["type"]), str(r["summary"])) for r in rows]

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
