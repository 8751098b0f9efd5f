-- The raw table again, ordered by hour rather than day so that reading a window's ragged edges (and the
-- sink's check for ids already stored) touches one hour of rows, not a whole day; existing rows move over.
-- Retention by plan (SPEC §8): the sink stamps each row with its workspace's raw and summary windows,
-- and ClickHouse TTL drops rows past them. Hourly rollups keep the raw window, daily summaries theirs.
CREATE TABLE IF NOT EXISTS llm_requests_raw_by_hour
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
    summary_retention_days UInt16 DEFAULT 3650
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, toStartOfHour(occurred_at), event_id)
TTL toDateTime(occurred_at) + toIntervalDay(raw_retention_days)
SETTINGS non_replicated_deduplication_window = 1000;

INSERT INTO llm_requests_raw_by_hour SELECT *, 3650, 3650 FROM llm_requests_raw;
RENAME TABLE llm_requests_raw TO llm_requests_raw_0001, llm_requests_raw_by_hour TO llm_requests_raw;
DROP TABLE llm_requests_raw_0001;

-- Hourly rollups. The materialized view adds every row inserted into raw, so the sink inserts only
-- events whose id raw does not hold yet (ADR 0030); `rebuild` recomputes hours from raw FINAL.
CREATE TABLE IF NOT EXISTS llm_requests_hourly
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
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (workspace_id, data_mode, hour, model, provider, endpoint_tag, user_id, prompt_version)
TTL hour + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_hourly_mv TO llm_requests_hourly AS
SELECT
    workspace_id, data_mode, toStartOfHour(occurred_at) AS hour, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(raw_retention_days) AS retention_days
FROM llm_requests_raw
GROUP BY workspace_id, data_mode, hour, model, provider, endpoint_tag, user_id, prompt_version;

CREATE TABLE IF NOT EXISTS llm_requests_daily
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
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (workspace_id, data_mode, day, model, provider, endpoint_tag, user_id, prompt_version)
TTL day + toIntervalDay(retention_days);

CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_daily_mv TO llm_requests_daily AS
SELECT
    workspace_id, data_mode, toDate(occurred_at) AS day, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(summary_retention_days) AS retention_days
FROM llm_requests_raw
GROUP BY workspace_id, data_mode, day, model, provider, endpoint_tag, user_id, prompt_version;

-- Client re-sends of an event already stored (same event id, a later ingested_at): the quality score's
-- "duplicates seen". Redeliveries of the same record (same ingested_at) are not the client's doing.
CREATE TABLE IF NOT EXISTS llm_requests_duplicates
(
    workspace_id  LowCardinality(String),
    day           Date,
    duplicates    UInt64
)
ENGINE = SummingMergeTree
ORDER BY (workspace_id, day)
TTL day + toIntervalDay(400);

-- Decisions reporting emitted (spikes), for the weekly report's alert counts and the board pack.
CREATE TABLE IF NOT EXISTS reporting_decisions
(
    event_id      UUID,
    workspace_id  LowCardinality(String),
    type          LowCardinality(String),
    occurred_at   DateTime64(3, 'UTC'),
    summary       String
)
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, occurred_at, event_id)
TTL toDateTime(occurred_at) + toIntervalDay(1095);
