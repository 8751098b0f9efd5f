"""Analyst SQL on the real engine with two workspaces' rows: nothing of B ever reaches A (ADR 0051)."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from services.reporting.tests.conftest import build_telemetry

from opsmeter_contracts import SpikeDetected
from opsmeter_contracts.reporting import SpikeDetectedPayload
from opsmeter_reporting.adapters import AnalystResult
from opsmeter_reporting.adapters.clickhouse import AnalystLanes, ClickHouseTelemetryStore
from opsmeter_reporting.analyst_sql import AnalystBusy, AnalystLimits, AnalystSqlRefused, prepare
from opsmeter_reporting.domain import UsageWindow
from opsmeter_runtime.clickhouse import ClickHouse

NOW = datetime.now(UTC).replace(microsecond=0)
LIMITS = AnalystLimits(max_execution_s=4, max_memory_bytes=256 * 1024**2, max_threads=1)
B_MODEL = "model-only-b-uses"


@pytest.fixture
async def analyst(clickhouse: ClickHouse, store: ClickHouseTelemetryStore) -> AsyncIterator[ClickHouseTelemetryStore]:
    """The store as reporting wires it: analyst SQL on a lane of its own."""
    lane = clickhouse.lane("clickhouse-analyst-test", workers=2)
    operator = clickhouse.lane("clickhouse-operator-test", workers=1)
    await lane.connect()
    await operator.connect()
    yield ClickHouseTelemetryStore(clickhouse, AnalystLanes(lane, operator))
    await lane.close()
    await operator.close()


@pytest.fixture
async def two_workspaces(store: ClickHouseTelemetryStore, unique: str) -> tuple[str, str]:
    a, b = f"ws_{unique}a", f"ws_{unique}b"
    at = NOW - timedelta(hours=2)
    await store.append([build_telemetry(a, cost=10 + i, at=at, model="model-of-a") for i in range(3)])
    await store.append([build_telemetry(b, cost=1000, at=at, model=B_MODEL, user_id="user-of-b") for _ in range(2)])
    await store.rebuild(UsageWindow(NOW - timedelta(days=1), NOW), now=NOW)
    spike = SpikeDetected(
        event_id=uuid.uuid4(),
        workspace_id=b,
        occurred_at=at,
        ingested_at=at,
        payload=SpikeDetectedPayload(
            window="1h", current_from=at, current_to=NOW, current_cost_micro_usd=2000, previous_cost_micro_usd=0,
            cost_delta_micro_usd=2000, min_increase_ratio="0.5", top_drivers=[],
        ),
    )  # fmt: skip
    await store.record_decision(spike, "b spiked")
    return a, b


async def run(store: ClickHouseTelemetryStore, sql: str, workspace_id: str | None) -> AnalystResult:
    return await store.run_sql(prepare(sql, workspace_id), 1000, LIMITS)


def vectors(data_dir: Path) -> list[str]:
    return [
        f"SELECT file('{data_dir}/operator-token')",
        "SELECT file('/proc/self/environ')",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM FiLe('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV')",
        "SELECT * FROM remote('127.0.0.1', default, llm_requests_raw)",
        "SELECT * FROM s3('http://127.0.0.1:1/b/x.csv', 'CSV')",
        "SELECT workspace_id, model FROM llm_requests_hourly_mv",
        "SELECT workspace_id, model FROM llm_requests_daily_mv",
        "SELECT workspace_id, model FROM merge(currentDatabase(), '^llm_requests_raw$')",
        "SELECT * FROM mergeTreeIndex('default', 'llm_requests_raw')",
        "SELECT workspace_id FROM llm_requests_raw UNION ALL SELECT workspace_id FROM llm_requests_hourly_mv",
        "SELECT name FROM `system`.tables",
        'SELECT name FROM "system".tables',
        "SELECT name FROM system/**/.tables",
        "SELECT name FROM system . tables",
        "SELECT name FROM information_schema.tables",
        "SELECT workspace_id, model FROM default.llm_requests_raw",
        "SELECT model FROM llm_requests_raw WHERE workspace_id IN llm_requests_hourly_mv",
        "SELECT dictGet('x', 'y', 1)",
        "SELECT joinGet('llm_requests_raw', 'model', 1)",
        "SELECT getSetting('additional_table_filters')",
        "SELECT workspace_id FROM llm_requests_raw SETTINGS additional_table_filters = {}",
        "SELECT 1; SELECT workspace_id FROM llm_requests_hourly_mv",
        "WITH x AS (SELECT workspace_id, model FROM llm_requests_hourly_mv) SELECT * FROM x",
        "SELECT * FROM (WITH llm_requests_daily_mv AS (SELECT 1) SELECT 1), llm_requests_daily_mv",
    ]


OWN_ROWS_ONLY = [
    "SELECT /*/ */ workspace_id, model FROM llm_requests_raw -- */ UNION ALL SELECT 1 FROM llm_requests_daily_mv",
    "SELECT workspace_id, model, user_id FROM llm_requests_raw",
    "SELECT workspace_id, model, user_id FROM llm_requests_raw FINAL",
    "SELECT workspace_id, model FROM llm_requests_hourly UNION ALL SELECT workspace_id, model FROM llm_requests_daily",
    "SELECT * FROM (SELECT workspace_id, model FROM llm_requests_raw)",
    "WITH x AS (SELECT workspace_id, model FROM llm_requests_raw) SELECT * FROM x",
    "WITH (SELECT groupArray(model) FROM llm_requests_raw) AS models SELECT models",
    "SELECT (SELECT groupArray(workspace_id) FROM llm_requests_daily) AS everyone",
    "SELECT workspace_id, model FROM llm_requests_raw AS llm_requests_hourly_mv",
    "SELECT r.workspace_id, d.model FROM llm_requests_raw AS r LEFT JOIN llm_requests_daily AS d USING (workspace_id)",
    "SELECT workspace_id, model FROM llm_requests_raw WHERE workspace_id != '' OR 1 = 1",
    "SELECT * FROM reporting_decisions",
    "SELECT * FROM llm_requests_duplicates",
    "SELECT model FROM llm_requests_raw WHERE event_id IN (SELECT event_id FROM llm_requests_raw)",
    "SELECT workspace_id, model FROM llm_requests_raw ARRAY JOIN [1, 2] AS n",
    "SELECT groupUniqArray(workspace_id), sumIf(cost_micro_usd, model != 'x') FROM llm_requests_raw",
]


class TestNothingOfAnotherWorkspace:
    async def test_every_escape_is_refused(
        self, analyst: ClickHouseTelemetryStore, two_workspaces: tuple[str, str], tmp_path: Path
    ) -> None:
        a, _ = two_workspaces
        (tmp_path / "operator-token").write_text("om_op_secret")
        ran, refusals = [], []
        for sql in vectors(tmp_path):
            try:
                ran.append((sql, await run(analyst, sql, a)))
            except AnalystSqlRefused as refused:
                refusals.append(str(refused))
        assert ran == []
        assert not [r for r in refusals if "om_op_secret" in r or "operator-token" in r]

    @pytest.mark.parametrize("sql", OWN_ROWS_ONLY)
    async def test_queries_that_run_see_only_the_callers_rows(
        self, analyst: ClickHouseTelemetryStore, two_workspaces: tuple[str, str], sql: str
    ) -> None:
        a, b = two_workspaces
        result = await run(analyst, sql, a)
        text = repr(result.rows)
        assert b not in text
        assert B_MODEL not in text
        assert "user-of-b" not in text
        assert "b spiked" not in text

    async def test_the_caller_still_sees_its_own_rows(
        self, analyst: ClickHouseTelemetryStore, two_workspaces: tuple[str, str]
    ) -> None:
        a, b = two_workspaces
        mine = await run(analyst, "SELECT workspace_id, count() AS n FROM llm_requests_raw GROUP BY workspace_id", a)
        assert (mine.columns, mine.rows) == (["workspace_id", "n"], [[a, 3]])
        theirs = await run(analyst, "SELECT count() FROM reporting_decisions", b)
        assert theirs.rows == [[1]]

    async def test_the_operator_reads_every_workspace_but_no_file(
        self, analyst: ClickHouseTelemetryStore, two_workspaces: tuple[str, str]
    ) -> None:
        a, b = two_workspaces
        sql = f"SELECT workspace_id, count() FROM llm_requests_raw WHERE workspace_id IN ('{a}', '{b}') GROUP BY 1"
        result = await run(analyst, sql, None)
        assert sorted(result.rows) == [[a, 3], [b, 2]]
        with pytest.raises(AnalystSqlRefused):
            await run(analyst, "SELECT file('/etc/passwd')", None)


CARTESIAN = (
    "SELECT count() FROM llm_requests_raw AS a, llm_requests_raw AS b, llm_requests_raw AS c, llm_requests_raw AS d"
)


class TestOneTenantCannotStallTheOthers:
    @pytest.fixture
    async def heavy(self, store: ClickHouseTelemetryStore, unique: str) -> str:
        ws = f"ws_{unique}heavy"
        at = NOW - timedelta(hours=3)
        await store.append([build_telemetry(ws, cost=1, at=at) for _ in range(400)])
        return ws

    async def test_a_cartesian_query_does_not_delay_another_workspaces_usage_or_the_sink(
        self, analyst: ClickHouseTelemetryStore, heavy: str, unique: str
    ) -> None:
        other = f"ws_{unique}other"
        slow = asyncio.create_task(run(analyst, CARTESIAN, heavy))
        await asyncio.sleep(0.5)
        waits = []
        for i in range(5):
            started = time.monotonic()
            await analyst.append([build_telemetry(other, cost=1 + i, at=NOW - timedelta(minutes=5))])
            rows = await analyst.usage(other, UsageWindow(NOW - timedelta(hours=1), NOW), "day", "real")
            waits.append(time.monotonic() - started)
            assert rows[0].requests == i + 1
        assert not slow.done()
        assert max(waits) < 1.0, waits
        with pytest.raises(DatabaseError) as stopped:
            await slow
        assert stopped.value.name == "TIMEOUT_EXCEEDED"

    async def test_one_running_query_per_workspace(self, analyst: ClickHouseTelemetryStore, heavy: str) -> None:
        slow = asyncio.create_task(run(analyst, CARTESIAN, heavy))
        await asyncio.sleep(0.3)
        with pytest.raises(AnalystBusy):
            await run(analyst, "SELECT 1", heavy)
        assert (await run(analyst, "SELECT 1", "ws_someone_else")).rows == [[1]]
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert (await run(analyst, "SELECT 1", heavy)).rows == [[1]]

    async def test_an_abandoned_query_is_killed_in_the_engine(
        self, analyst: ClickHouseTelemetryStore, clickhouse: ClickHouse, heavy: str
    ) -> None:
        slow = asyncio.create_task(run(analyst, CARTESIAN, heavy))
        await asyncio.sleep(0.5)
        cancelled_at = time.monotonic()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        running = "SELECT count() AS n FROM system.processes WHERE Settings['log_comment'] LIKE 'opsmeter-analyst-%'"
        while (await clickhouse.query(running))[0]["n"] and time.monotonic() - cancelled_at < LIMITS.max_execution_s:
            await asyncio.sleep(0.05)
        assert time.monotonic() - cancelled_at < 1.5
        assert (await clickhouse.query(running))[0]["n"] == 0

    async def test_a_query_over_its_memory_limit_stops(self, analyst: ClickHouseTelemetryStore, heavy: str) -> None:
        greedy = "SELECT length(groupArray(range(100000))) FROM llm_requests_raw ARRAY JOIN range(100) AS n"
        with pytest.raises(DatabaseError) as stopped:
            await run(analyst, greedy, heavy)
        assert stopped.value.name == "MEMORY_LIMIT_EXCEEDED"


EVERYDAY_QUERIES = [
    "SELECT endpoint_tag, sum(cost_micro_usd) AS cost FROM llm_requests_daily WHERE day >= today() - 7 "
    "GROUP BY endpoint_tag ORDER BY cost DESC LIMIT 10",
    "SELECT model, sum(cost_micro_usd) OVER (PARTITION BY model ORDER BY occurred_at) AS running FROM llm_requests_raw",
    "SELECT toStartOfHour(occurred_at) AS h, formatDateTime(h, '%Y-%m-%d %H'), count() FROM llm_requests_raw "
    "GROUP BY h",
    "SELECT quantile(0.95)(latency_ms), quantileIf(0.5)(latency_ms, status = 'success'), uniqExact(user_id), "
    "argMax(model, cost_micro_usd) FROM llm_requests_raw",
    "SELECT * FROM llm_requests_raw AS r FINAL WHERE r.model LIKE '%of-a%' AND r.occurred_at > now() - INTERVAL 1 DAY",
    "SELECT model, p FROM llm_requests_raw ARRAY JOIN splitByChar('-', model) AS p",
    "SELECT JSONExtractString(metadata, 'tenantId') AS tenant, count() FROM llm_requests_raw GROUP BY tenant",
    "SELECT a.model, b.n FROM llm_requests_raw AS a "
    "JOIN (SELECT model, count() AS n FROM llm_requests_raw GROUP BY model) AS b ON a.model = b.model",
    "SELECT model FROM llm_requests_raw EXCEPT SELECT model FROM llm_requests_daily",
    "SELECT CAST(cost_micro_usd AS Float64) / 1000000, toString(event_id), ifNull(latency_ms, 0) FROM llm_requests_raw",
]


class TestAnalystsStillGetTheirAnswers:
    @pytest.mark.parametrize("sql", EVERYDAY_QUERIES)
    async def test_everyday_queries_run(
        self, analyst: ClickHouseTelemetryStore, two_workspaces: tuple[str, str], sql: str
    ) -> None:
        a, _ = two_workspaces
        result = await run(analyst, sql, a)
        assert result.columns
        assert B_MODEL not in repr(result.rows)
