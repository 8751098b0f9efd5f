-- The ClickHouse user analyst SQL runs as on a server (ADR 0051). Apply as an admin, replacing the
-- password placeholder (compose does it through initdb/10-analyst-user.sh). Reporting connects with
-- OPSMETER_REPORTING_ANALYST_CLICKHOUSE_URL=http(s)://opsmeter_analyst:<password>@<host>:<port>/default
-- and sends the caller's workspace as the setting SQL_opsmeter_workspace_id with every workspace query.
--
-- What the user can do: SELECT on the five documented tables, rows of one workspace only. No FILE,
-- URL, REMOTE, S3, HDFS or other source grant (so no file(), url(), remote(), s3() or table functions),
-- no dictionaries, no system or information_schema tables (config.d/opsmeter-access.xml), no writes.
-- Grants and policies name tables that reporting's migrations may create later; that is allowed.

CREATE SETTINGS PROFILE IF NOT EXISTS opsmeter_analyst_profile SETTINGS
    readonly = 2,
    allow_ddl = 0,
    allow_introspection_functions = 0,
    max_execution_time = 10 MAX 30,
    max_memory_usage = 536870912 MAX 2147483648,
    max_threads = 2 MAX 4,
    max_result_rows = 100001 MAX 100001,
    SQL_opsmeter_workspace_id = '' CHANGEABLE_IN_READONLY;

CREATE USER IF NOT EXISTS opsmeter_analyst
    IDENTIFIED WITH sha256_password BY '__ANALYST_PASSWORD__'
    SETTINGS PROFILE 'opsmeter_analyst_profile';

REVOKE ALL ON *.* FROM opsmeter_analyst;
GRANT SELECT ON default.llm_requests_raw TO opsmeter_analyst;
GRANT SELECT ON default.llm_requests_hourly TO opsmeter_analyst;
GRANT SELECT ON default.llm_requests_daily TO opsmeter_analyst;
GRANT SELECT ON default.llm_requests_duplicates TO opsmeter_analyst;
GRANT SELECT ON default.reporting_decisions TO opsmeter_analyst;

-- An empty or missing workspace setting matches no row.
CREATE ROW POLICY IF NOT EXISTS opsmeter_workspace
    ON default.llm_requests_raw, default.llm_requests_hourly, default.llm_requests_daily,
       default.llm_requests_duplicates, default.reporting_decisions
    AS RESTRICTIVE FOR SELECT
    USING workspace_id = getSetting('SQL_opsmeter_workspace_id') AND workspace_id != ''
    TO opsmeter_analyst;
