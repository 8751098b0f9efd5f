"""Reporting's cluster DDL (ADR 0059) against the single-node DDL, on the embedded ClickHouse engine.

What this verifies, and what it does not: chDB parses every cluster statement as written (``formatQuery``); the
local tables and materialized views run on chDB with each ``Replicated*MergeTree`` swapped for its non-replicated
engine (chDB has no Keeper) and ``ON CLUSTER`` dropped; their columns then equal the single-node tables' after all
single-node migrations, and the views feed the local rollups. The Distributed tables are parsed only: chDB has no
``remote_servers``. Replication and sharding themselves need a ClickHouse cluster, which this machine has not.
"""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from opsmeter_reporting.adapters.clickhouse import mutable_table
from opsmeter_reporting.bootstrap import schema_migrations
from opsmeter_reporting.config import ReportingSettings
from opsmeter_runtime.settings import RuntimeSettings

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "reporting" / "src" / "opsmeter_reporting"
CLUSTER_SQL = sorted((PACKAGE / "migrations_cluster").glob("*.sql"))
"""Every cluster migration, in the order they are applied."""
TABLES = {
    "llm_requests_raw",
    "llm_requests_hourly",
    "llm_requests_daily",
    "llm_requests_duplicates",
    "reporting_decisions",
    "llm_cost_corrections",
    "pricing_repricings",
    "settings_changes",
}
"""Every table of the single-node schema after all its migrations."""
MUTATED = ("llm_requests_raw", "llm_requests_hourly", "llm_requests_daily")
"""The tables the demo/test-data deletion and the rollup rebuild mutate."""

# One subprocess: chDB opens one path per process, and the test session may hold another.
PROBE = textwrap.dedent(
    """
    import asyncio, json, re, sys
    from pathlib import Path
    import clickhouse_connect
    from opsmeter_runtime.clickhouse import ClickHouse

    data, single, cluster = sys.argv[1:4]
    statements = json.loads(Path(cluster).read_text())

    async def migrate():
        ch = ClickHouse("chdb://" + data, workers=1)
        await ch.connect()
        await ch.migrate(Path(single))
        await ch.close()

    asyncio.run(migrate())
    client = clickhouse_connect.get_client(dsn="chdb://" + data)
    unparsed = []
    for sql in statements["all"]:
        try:
            client.query("SELECT formatQuery({sql:String})", parameters={"sql": sql})
        except Exception as exc:
            unparsed.append([sql[:80], str(exc)[:300]])
    for sql in statements["runnable"]:
        client.command(sql)
    client.command(
        "INSERT INTO llm_requests_raw_local (event_id, workspace_id, occurred_at, ingested_at, model_normalized, "
        "data_mode, cost_micro_usd) VALUES (generateUUIDv4(), 'ws_a', now64(3), now64(3), 'gpt-4o', 'real', 7)"
    )
    rollups = {t: client.query(f"SELECT sum(cost_micro_usd) FROM {t}").result_rows[0][0]
               for t in ("llm_requests_hourly_local", "llm_requests_daily_local")}
    columns = {}
    for row in client.query(
        "SELECT table, name, type, default_expression FROM system.columns WHERE database = currentDatabase() "
        "ORDER BY table, position"
    ).result_rows:
        columns.setdefault(row[0], []).append(list(row[1:]))
    print(json.dumps({"unparsed": unparsed, "rollups": rollups, "columns": columns}))
    """
)


def _statements(files: list[Path]) -> list[str]:
    sql = "\n".join(f.read_text() for f in files)
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _as_single_node(statement: str) -> str:
    """The same statement with the Replicated engine's Keeper path and replica arguments dropped, ON CLUSTER gone."""
    statement = statement.replace(" ON CLUSTER '{cluster}'", "")
    return re.sub(r"Replicated(\w*MergeTree)\('[^']*', '\{replica\}'(?:, )?", r"\1(", statement)


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    statements = _statements(CLUSTER_SQL)
    runnable = [_as_single_node(s) for s in statements if "ENGINE = Distributed" not in s]
    work = tmp_path_factory.mktemp("cluster-ddl")
    mutations = [
        f"ALTER TABLE {mutable_table(t, cluster=True)} DELETE WHERE workspace_id = 'ws_x' SETTINGS mutations_sync = 2"
        for t in MUTATED
    ]
    (work / "statements.json").write_text(json.dumps({"all": statements + mutations, "runnable": runnable}))
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(work / "chdb"), str(PACKAGE / "migrations"), str(work / "statements.json")],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


class TestClusterDdl:
    def test_every_statement_parses_as_clickhouse_sql(self, probe: dict[str, object]) -> None:
        assert probe["unparsed"] == []

    def test_every_single_node_table_has_a_replicated_local_table_with_the_same_columns(
        self, probe: dict[str, object]
    ) -> None:
        columns = probe["columns"]
        assert isinstance(columns, dict)
        single = {t for t in columns if not t.endswith("_local") and not t.endswith("_mv") and t != "schema_migrations"}
        assert single == TABLES
        for table in single:
            assert columns[f"{table}_local"] == columns[table], table

    def test_every_single_node_table_is_served_by_a_distributed_table_of_its_name(self) -> None:
        statements = _statements(CLUSTER_SQL)
        shape = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER .* AS (\w+)\s+ENGINE = Distributed", re.S)
        distributed = {m.group(1): m.group(2) for s in statements if (m := shape.match(s))}
        assert distributed == {t: f"{t}_local" for t in distributed}
        assert set(distributed) == TABLES
        for s in statements:
            assert "ON CLUSTER '{cluster}'" in s
            if "MergeTree" in s:
                assert "ENGINE = Replicated" in s, s[:80]
            if "ENGINE = Distributed" in s:
                assert "cityHash64(workspace_id)" in s, "one workspace's rows on one shard keep FINAL exact"

    def test_mutations_on_a_cluster_address_the_local_tables_on_every_node(self, probe: dict[str, object]) -> None:
        columns = probe["columns"]
        assert isinstance(columns, dict)
        for table in MUTATED:
            target = mutable_table(table, cluster=True)
            assert target == f"{table}_local ON CLUSTER '{{cluster}}'"
            assert f"{table}_local" in columns  # created by the cluster DDL
            assert mutable_table(table, cluster=False) == table

    def test_the_local_views_feed_the_local_rollups(self, probe: dict[str, object]) -> None:
        assert probe["rollups"] == {"llm_requests_hourly_local": 7, "llm_requests_daily_local": 7}


class TestTopologySetting:
    def test_the_setting_chooses_the_migrations(self) -> None:
        served = RuntimeSettings(clickhouse_url="https://ch.internal:8443/opsmeter")
        assert schema_migrations(ReportingSettings(runtime=served)).name == "migrations"
        cluster = ReportingSettings(runtime=served, clickhouse_topology="cluster")
        assert schema_migrations(cluster).name == "migrations_cluster"

    def test_a_cluster_needs_a_clickhouse_server(self) -> None:
        from pydantic import ValidationError

        with pytest.raises(ValidationError, match="OPSMETER_CLICKHOUSE_URL"):
            ReportingSettings(runtime=RuntimeSettings(), clickhouse_topology="cluster")
