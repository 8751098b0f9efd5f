-- The cluster twin of migrations/0007_settings_changes.sql.
CREATE TABLE IF NOT EXISTS settings_changes_local ON CLUSTER '{cluster}'
(
    event_id      UUID,
    workspace_id  LowCardinality(String),
    occurred_at   DateTime64(3, 'UTC'),
    version       UInt64,
    sections      Array(LowCardinality(String)),
    changed_by    String,
    role          LowCardinality(String),
    summary       String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (workspace_id, version, event_id)
TTL toDateTime(occurred_at) + toIntervalDay(2555);

CREATE TABLE IF NOT EXISTS settings_changes ON CLUSTER '{cluster}' AS settings_changes_local
ENGINE = Distributed('{cluster}', currentDatabase(), settings_changes_local, cityHash64(workspace_id));
