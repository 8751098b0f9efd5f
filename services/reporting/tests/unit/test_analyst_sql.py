"""The analyst SQL parser, rewriter and plan check as pure logic (the engine's half runs in integration)."""

import re

import pytest

from opsmeter_reporting.analyst_sql import (
    WORKSPACE_PARAMETER,
    AnalystSqlRefused,
    allowed_function,
    check_ast,
    prepare,
)

WS = "ws_a"


def refusal(sql: str, workspace_id: str | None = WS) -> str:
    with pytest.raises(AnalystSqlRefused) as caught:
        prepare(sql, workspace_id)
    return str(caught.value)


class TestWhatIsRefused:
    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT * FROM system.tables",
            "SELECT * FROM `system`.tables",
            'SELECT * FROM "system".tables',
            "SELECT * FROM system/**/.tables",
            "SELECT * FROM SYSTEM.TABLES",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM default.llm_requests_raw",
            "SELECT * FROM llm_requests_hourly_mv",
            "SELECT * FROM llm_requests_daily_mv",
            "SELECT * FROM schema_migrations",
            "SELECT * FROM LLM_REQUESTS_RAW",
            "SELECT 1 FROM llm_requests_raw UNION ALL SELECT 1 FROM llm_requests_daily_mv",
            "SELECT * FROM (SELECT * FROM llm_requests_hourly_mv)",
            "SELECT count() FROM llm_requests_raw WHERE event_id IN (SELECT event_id FROM llm_requests_hourly_mv)",
            "SELECT * FROM llm_requests_raw AS r JOIN llm_requests_hourly_mv AS h ON r.model = h.model",
        ],
    )
    def test_tables_other_than_the_documented_ones(self, sql: str) -> None:
        assert "table" in refusal(sql)

    @pytest.mark.parametrize(
        "sql",
        [
            "SELECT * FROM file('/etc/passwd', 'LineAsString')",
            "SELECT * FROM FILE('/etc/passwd', 'LineAsString')",
            "SELECT * FROM url('http://example.com', 'CSV')",
            "SELECT * FROM s3('http://bucket/x', 'CSV')",
            "SELECT * FROM remote('127.0.0.1', 'default', 'llm_requests_raw')",
            "SELECT * FROM merge(currentDatabase(), '^llm_requests_raw$')",
            "SELECT * FROM Merge(currentDatabase(), '^llm_requests_raw$')",
            "SELECT * FROM mergeTreeIndex('default', 'llm_requests_raw')",
            "SELECT * FROM numbers(10)",
            "SELECT * FROM input('x String')",
            "SELECT * FROM llm_requests_raw, file('/etc/passwd', 'LineAsString')",
        ],
    )
    def test_table_functions_in_any_case(self, sql: str) -> None:
        assert "table functions" in refusal(sql)

    @pytest.mark.parametrize(
        ("sql", "why"),
        [
            ("DROP TABLE llm_requests_raw", "only SELECT"),
            ("INSERT INTO llm_requests_raw VALUES (1)", "only SELECT"),
            ("SELECT 1; DROP TABLE llm_requests_raw", "one statement"),
            ("SELECT 1; SELECT 2", "one statement"),
            ("DESCRIBE llm_requests_raw", "only SELECT"),
            ("SHOW TABLES", "only SELECT"),
            ("SELECT 1 SETTINGS readonly = 0", "SETTINGS"),
            ("SELECT count() FROM llm_requests_raw FORMAT JSON", "FORMAT"),
            ("SELECT {x:String}", "parameters"),
            ("SELECT * FROM llm_requests_raw SAMPLE 0.1", "SAMPLE"),
            ("SELECT FROM WHERE", "not valid"),
            ("SELECT * FROM (llm_requests_raw AS a JOIN llm_requests_daily AS b ON a.model = b.model)", "parentheses"),
            ("SELECT 1 AS `x\n      TableIdentifier llm_requests_raw`", "control characters"),
            ("SELECT " + "(" * 3000 + "1" + ")" * 3000, "nested too deeply"),
        ],
    )
    def test_statements_and_clauses(self, sql: str, why: str) -> None:
        assert why in refusal(sql)

    def test_a_refusal_does_not_repeat_the_query(self) -> None:
        secret = "SELECT 'a-long-marker-9f3c' AS m FROM llm_requests_hourly_mv"
        message = refusal(secret)
        assert "a-long-marker-9f3c" not in message
        assert "workspace_id" not in refusal("SELECT * FROM `system`.tables WHERE 'workspace_id' = ''")

    def test_the_operator_gets_the_same_allow_list(self) -> None:
        for sql in ["SELECT * FROM system.tables", "SELECT * FROM file('/etc/shadow', 'LineAsString')"]:
            refusal(sql, workspace_id=None)


class TestTheRewrite:
    def test_every_documented_table_becomes_a_subquery_filtered_on_the_bound_workspace(self) -> None:
        query = prepare("SELECT count() FROM llm_requests_raw FINAL", WS)
        assert query.parameters == {WORKSPACE_PARAMETER: WS}
        assert f"WHERE workspace_id = {{{WORKSPACE_PARAMETER}: String}}" in query.sql
        assert "FROM llm_requests_raw FINAL WHERE" in query.sql
        assert WS not in query.sql

    def test_joins_unions_subqueries_and_ctes_are_each_filtered(self) -> None:
        sql = """
            WITH spend AS (SELECT model, sum(cost_micro_usd) AS c FROM llm_requests_daily GROUP BY model)
            SELECT s.model, s.c, (SELECT count() FROM reporting_decisions) AS d
            FROM spend AS s JOIN llm_requests_hourly AS h ON s.model = h.model
            UNION ALL SELECT model, 0, 0 FROM llm_requests_raw WHERE event_id IN (SELECT event_id FROM llm_requests_raw)
        """
        query = prepare(sql, WS)
        tables = re.findall(r"FROM (\w+)", query.sql)
        documented = [t for t in tables if t.startswith(("llm_", "reporting_"))]
        assert len(documented) == 5
        assert query.sql.count(f"workspace_id = {{{WORKSPACE_PARAMETER}: String}}") == 5

    def test_aliases_keep_working(self) -> None:
        query = prepare("SELECT r.model FROM llm_requests_raw AS r", WS)
        assert query.sql.endswith(") AS r")
        bare = prepare("SELECT llm_requests_raw.model FROM llm_requests_raw", WS)
        assert bare.sql.endswith(") AS llm_requests_raw")

    def test_a_cte_named_like_a_table_cannot_reach_that_table(self) -> None:
        # The CTE is renamed; the outer reference, out of its scope, must be a documented table.
        sql = "SELECT * FROM (WITH llm_requests_hourly_mv AS (SELECT 1) SELECT 1), llm_requests_hourly_mv"
        assert "table" in refusal(sql)
        inside = prepare("WITH llm_requests_hourly_mv AS (SELECT 1 AS x) SELECT x FROM llm_requests_hourly_mv", WS)
        assert "FROM opsmeter_cte_0 AS llm_requests_hourly_mv" in inside.sql

    def test_a_cte_sees_only_the_ctes_before_it(self) -> None:
        sql = "WITH a AS (SELECT * FROM llm_requests_hourly_mv), llm_requests_hourly_mv AS (SELECT 1) SELECT * FROM a"
        assert "table" in refusal(sql)

    def test_comments_cannot_hide_tokens_from_what_runs(self) -> None:
        query = prepare("SELECT /* FROM system.tables */ count() -- , file('x')\nFROM llm_requests_raw", WS)
        assert "system" not in query.sql
        assert "file" not in query.sql

    def test_the_operator_reads_every_workspace(self) -> None:
        query = prepare("SELECT count() FROM llm_requests_raw", None)
        assert query.parameters == {}
        assert "workspace_id" not in query.sql


def ast(*lines: str) -> list[str]:
    return list(lines)


FILTERED_RAW = (
    "SelectWithUnionQuery (children 1)",
    " ExpressionList (children 1)",
    "  SelectQuery (children 2)",
    "   ExpressionList (children 1)",
    "    Function count (children 1)",
    "     ExpressionList",
    "   TablesInSelectQuery (children 1)",
    "    TablesInSelectQueryElement (children 1)",
    "     TableExpression (children 1)",
    "      Subquery (alias llm_requests_raw) (children 1)",
    "       SelectWithUnionQuery (children 1)",
    "        ExpressionList (children 1)",
    "         SelectQuery (children 3)",
    "          ExpressionList (children 1)",
    "           Asterisk",
    "          TablesInSelectQuery (children 1)",
    "           TablesInSelectQueryElement (children 1)",
    "            TableExpression (children 1)",
    "             TableIdentifier llm_requests_raw",
    "          Function equals (children 1)",
    "           ExpressionList (children 2)",
    "            Identifier workspace_id",
    "            Literal 'ws_a'",
)


class TestTheEnginesParse:
    def test_a_filtered_documented_table_passes(self) -> None:
        check_ast(FILTERED_RAW, WS)

    def test_a_table_read_for_another_workspace_is_refused(self) -> None:
        with pytest.raises(AnalystSqlRefused, match="without the workspace filter"):
            check_ast(FILTERED_RAW, "ws_b")

    def test_an_unfiltered_table_is_refused(self) -> None:
        lines = [*FILTERED_RAW[:-4]]
        with pytest.raises(AnalystSqlRefused, match="without the workspace filter"):
            check_ast(lines, WS)
        check_ast(lines, None)

    def test_a_function_off_the_list_is_refused(self) -> None:
        lines = [line.replace("Function count", "Function file") for line in FILTERED_RAW]
        with pytest.raises(AnalystSqlRefused, match="function file"):
            check_ast(lines, WS)

    def test_a_table_function_is_refused_even_when_its_name_is_an_allowed_function(self) -> None:
        lines = [
            "SelectWithUnionQuery (children 1)",
            " ExpressionList (children 1)",
            "  SelectQuery (children 2)",
            "   TablesInSelectQuery (children 1)",
            "    TablesInSelectQueryElement (children 1)",
            "     TableExpression (children 1)",
            "      Function format (children 1)",
        ]
        with pytest.raises(AnalystSqlRefused, match="table functions"):
            check_ast(lines, None)

    def test_other_tables_settings_and_in_a_table_are_refused(self) -> None:
        with pytest.raises(AnalystSqlRefused, match="unknown table"):
            check_ast(
                [
                    line.replace("TableIdentifier llm_requests_raw", "TableIdentifier system.tables")
                    for line in FILTERED_RAW
                ],
                None,
            )
        with pytest.raises(AnalystSqlRefused, match="Set"):
            check_ast([*FILTERED_RAW, "  Set"], WS)
        in_table = [
            "SelectWithUnionQuery (children 1)",
            " Function in (children 1)",
            "  ExpressionList (children 2)",
            "   Identifier x",
            "   Identifier llm_requests_hourly_mv",
        ]
        with pytest.raises(AnalystSqlRefused, match="IN takes"):
            check_ast(in_table, None)

    @pytest.mark.parametrize(
        "name", ["sum", "sumIf", "countIf", "uniqExactIf", "quantileIf", "argMaxIf", "toStartOfHour"]
    )
    def test_allowed_functions(self, name: str) -> None:
        assert allowed_function(name)

    @pytest.mark.parametrize(
        "name",
        ["file", "url", "s3", "remote", "merge", "mergeTreeIndex", "dictGet", "joinGet", "getSetting", "currentUser",
         "input", "hasColumnInTable", "filesystemAvailable", "sumfile", "fileIf"],
    )  # fmt: skip
    def test_refused_functions(self, name: str) -> None:
        assert not allowed_function(name)
