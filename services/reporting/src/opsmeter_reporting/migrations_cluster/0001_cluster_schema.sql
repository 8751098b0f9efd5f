-- The schema of migrations/0001..0003 for a sharded, replicated ClickHouse (OPSMETER_REPORTING_CLICKHOUSE_TOPOLOGY=
-- cluster, ADR 0059). Each table is a Replicated*MergeTree named <table>_local on every node, under a Distributed
-- table of the single-node name, so the service's SQL is the same on both topologies. Rows shard by workspace: one
-- workspace's rows, and so every copy of one event id, live on one shard, where ReplacingMergeTree and FINAL
-- dedupe them. The materialized views run on each shard's local raw table. The macros {cluster}, {shard} and
-- {replica} come from the servers' config (the Altinity operator defines them). A new single-node migration needs
-- its twin here; tests/deploy/test_clickhouse_cluster_ddl.py compares the two schemas column by column.
-- Give the service's user distributed_foreground_insert = 1 (ADR 0059): the sink reads which ids raw holds before
-- inserting (ADR 0030), which needs an insert to have reached its shard when it returns.

CREATE TABLE IF NOT EXISTS llm_requests_raw_local ON CLUSTER '{cluster}'
(
    event_id              UUID,
    workspace_id          LowCardinality(String),
    occurred_at           DateTime64(3, 'UTC'),
    ingested_at           DateTime64(3, 'UTC'),
    external_request_id   String,
    provider              LowCardinality(String),
    model                 String,
    model_normalized      LowCardinality(String),
    endpoint_tag          String,
    user_id               String,
    prompt_version        String,
    input_tokens          UInt32,
    output_tokens         UInt32,
    total_tokens          UInt64,
    cached_input_tokens   UInt32,
    reasoning_tokens      UInt32,
    latency_ms            Nullable(UInt32),
    status                LowCardinality(String),
    error_code            String,
    data_mode             LowCardinality(String),
    environment           LowCardinality(String),
    cost_micro_usd        UInt64,
    priced                Bool,
    price_catalog_version LowCardinality(String),
    metadata              String,
    raw_retention_days    UInt16 DEFAULT 3650,
    summary_retention_days UInt16 DEFAULT 3650,
    api_key_id            LowCardinality(String) DEFAULT ''
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, toStartOfHour(occurred_at), event_id)
TTL toDateTime(occurred_at) + toIntervalDay(raw_retention_days);

CREATE TABLE IF NOT EXISTS llm_requests_raw ON CLUSTER '{cluster}' AS llm_requests_raw_local
ENGINE = Distributed('{cluster}', currentDatabase(), llm_requests_raw_local, cityHash64(workspace_id));

CREATE TABLE IF NOT EXISTS llm_requests_hourly_local ON CLUSTER '{cluster}'
(
    workspace_id    LowCardinality(String),
    data_mode       LowCardinality(String),
    hour            DateTime('UTC'),
    model           LowCardinality(String),
    provider        LowCardinality(String),
    endpoint_tag    String,
    user_id         String,
    prompt_version  String,
    requests        SimpleAggregateFunction(sum, UInt64),
    input_tokens    SimpleAggregateFunction(sum, UInt64),
    output_tokens   SimpleAggregateFunction(sum, UInt64),
    total_tokens    SimpleAggregateFunction(sum, UInt64),
    cost_micro_usd  SimpleAggregateFunction(sum, UInt64),
    retention_days  SimpleAggregateFunction(max, UInt16)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(hour)
ORDER BY (workspace_id, data_mode, hour, model, provider, endpoint_tag, user_id, prompt_version)
TTL hour + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS llm_requests_hourly ON CLUSTER '{cluster}' AS llm_requests_hourly_local
ENGINE = Distributed('{cluster}', currentDatabase(), llm_requests_hourly_local, cityHash64(workspace_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_hourly_local_mv ON CLUSTER '{cluster}'
TO llm_requests_hourly_local AS
SELECT
    workspace_id, data_mode, toStartOfHour(occurred_at) AS hour, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(raw_retention_days) AS retention_days
FROM llm_requests_raw_local
GROUP BY workspace_id, data_mode, hour, model, provider, endpoint_tag, user_id, prompt_version;

CREATE TABLE IF NOT EXISTS llm_requests_daily_local ON CLUSTER '{cluster}'
(
    workspace_id    LowCardinality(String),
    data_mode       LowCardinality(String),
    day             Date,
    model           LowCardinality(String),
    provider        LowCardinality(String),
    endpoint_tag    String,
    user_id         String,
    prompt_version  String,
    requests        SimpleAggregateFunction(sum, UInt64),
    input_tokens    SimpleAggregateFunction(sum, UInt64),
    output_tokens   SimpleAggregateFunction(sum, UInt64),
    total_tokens    SimpleAggregateFunction(sum, UInt64),
    cost_micro_usd  SimpleAggregateFunction(sum, UInt64),
    retention_days  SimpleAggregateFunction(max, UInt16)
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, data_mode, day, model, provider, endpoint_tag, user_id, prompt_version)
TTL day + toIntervalDay(retention_days);

CREATE TABLE IF NOT EXISTS llm_requests_daily ON CLUSTER '{cluster}' AS llm_requests_daily_local
ENGINE = Distributed('{cluster}', currentDatabase(), llm_requests_daily_local, cityHash64(workspace_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_daily_local_mv ON CLUSTER '{cluster}'
TO llm_requests_daily_local AS
SELECT
    workspace_id, data_mode, toDate(occurred_at) AS day, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(summary_retention_days) AS retention_days
FROM llm_requests_raw_local
GROUP BY workspace_id, data_mode, day, model, provider, endpoint_tag, user_id, prompt_version;

CREATE TABLE IF NOT EXISTS llm_requests_duplicates_local ON CLUSTER '{cluster}'
(
    workspace_id  LowCardinality(String),
    day           Date,
    duplicates    UInt64
)
ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (workspace_id, day)
TTL day + toIntervalDay(400);

CREATE TABLE IF NOT EXISTS llm_requests_duplicates ON CLUSTER '{cluster}' AS llm_requests_duplicates_local
ENGINE = Distributed('{cluster}', currentDatabase(), llm_requests_duplicates_local, cityHash64(workspace_id));

CREATE TABLE IF NOT EXISTS reporting_decisions_local ON CLUSTER '{cluster}'
(
    event_id      UUID,
    workspace_id  LowCardinality(String),
    type          LowCardinality(String),
    occurred_at   DateTime64(3, 'UTC'),
    summary       String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (workspace_id, occurred_at, event_id)
TTL toDateTime(occurred_at) + toIntervalDay(1095);

CREATE TABLE IF NOT EXISTS reporting_decisions ON CLUSTER '{cluster}' AS reporting_decisions_local
ENGINE = Distributed('{cluster}', currentDatabase(), reporting_decisions_local, cityHash64(workspace_id));
