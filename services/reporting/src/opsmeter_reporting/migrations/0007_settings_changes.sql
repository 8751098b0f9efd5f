-- Every change of a workspace's policy settings (SPEC §6: "every change is an event, so there is an audit trail"),
-- kept from policy.settings as it is produced: that topic is compacted, so only the newest snapshot stays there.
CREATE TABLE IF NOT EXISTS settings_changes
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
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, version, event_id)
TTL toDateTime(occurred_at) + toIntervalDay(2555);
