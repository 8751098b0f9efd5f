-- The single-node migrations 0004-0006 (ADR 57: price model, reported cost, cost corrections) for the cluster
-- topology (ADR 59): columns added to each <table>_local and to its Distributed table, the local views
-- recreated, the two new tables as Replicated local tables under Distributed ones.

ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS cache_write_input_tokens UInt32 DEFAULT 0;
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS cache_write_input_tokens UInt32 DEFAULT 0;
ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS price_row String DEFAULT '';
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS price_row String DEFAULT '';
ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS price_tier_start_tokens Nullable(UInt32);
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS price_tier_start_tokens Nullable(UInt32);
ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS computed_cost_micro_usd UInt64 DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS computed_cost_micro_usd UInt64 DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_cost_micro_usd Nullable(UInt64);
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_cost_micro_usd Nullable(UInt64);
ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS cost_basis LowCardinality(String) DEFAULT 'computed';
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS cost_basis LowCardinality(String) DEFAULT 'computed';
ALTER TABLE llm_requests_hourly_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS computed_cost_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_hourly ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS computed_cost_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_hourly_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_cost_sum_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_hourly ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_cost_sum_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_hourly_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_requests SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_hourly ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_requests SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_daily_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS computed_cost_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_daily ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS computed_cost_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_daily_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_cost_sum_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_daily ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_cost_sum_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_daily_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_requests SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_daily ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS reported_requests SimpleAggregateFunction(sum, UInt64) DEFAULT 0;

DROP VIEW IF EXISTS llm_requests_hourly_local_mv ON CLUSTER '{cluster}';
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_hourly_local_mv ON CLUSTER '{cluster}'
TO llm_requests_hourly_local AS
SELECT
    workspace_id, data_mode, toStartOfHour(occurred_at) AS hour, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(raw_retention_days) AS retention_days, sum(computed_cost_micro_usd) AS computed_cost_micro_usd,
    sum(ifNull(reported_cost_micro_usd, 0)) AS reported_cost_sum_micro_usd,
    countIf(reported_cost_micro_usd IS NOT NULL) AS reported_requests
FROM llm_requests_raw_local
GROUP BY workspace_id, data_mode, hour, model, provider, endpoint_tag, user_id, prompt_version;

DROP VIEW IF EXISTS llm_requests_daily_local_mv ON CLUSTER '{cluster}';
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_daily_local_mv ON CLUSTER '{cluster}'
TO llm_requests_daily_local AS
SELECT
    workspace_id, data_mode, toDate(occurred_at) AS day, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(summary_retention_days) AS retention_days, sum(computed_cost_micro_usd) AS computed_cost_micro_usd,
    sum(ifNull(reported_cost_micro_usd, 0)) AS reported_cost_sum_micro_usd,
    countIf(reported_cost_micro_usd IS NOT NULL) AS reported_requests
FROM llm_requests_raw_local
GROUP BY workspace_id, data_mode, day, model, provider, endpoint_tag, user_id, prompt_version;

-- Re-pricing (ADR 57): a correction moves a stored call's cost by a signed delta. Raw rows and rollups keep
-- the cost the call was stored with; every cost read adds the corrections of its window (FINAL dedupes a
-- correction stored twice: by the re-pricing itself and again from the topic).
CREATE TABLE IF NOT EXISTS llm_cost_corrections_local ON CLUSTER '{cluster}'
(
    event_id                  UUID,
    corrected_event_id        UUID,
    repricing_id              String,
    workspace_id              LowCardinality(String),
    occurred_at               DateTime64(3, 'UTC'),
    corrected_at              DateTime64(3, 'UTC'),
    data_mode                 LowCardinality(String),
    provider                  LowCardinality(String),
    model_normalized          LowCardinality(String),
    endpoint_tag              String,
    user_id                   String,
    prompt_version            String,
    had_reported_cost         Bool,
    cost_delta_micro_usd      Int64,
    computed_delta_micro_usd  Int64,
    new_cost_micro_usd        UInt64,
    price_catalog_version     LowCardinality(String),
    price_row                 String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', corrected_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, occurred_at, event_id);

CREATE TABLE IF NOT EXISTS llm_cost_corrections ON CLUSTER '{cluster}' AS llm_cost_corrections_local
ENGINE = Distributed('{cluster}', currentDatabase(), llm_cost_corrections_local, cityHash64(workspace_id));

-- Who re-priced what and why (the audit record; also published as pricing.repricing_applied).
CREATE TABLE IF NOT EXISTS pricing_repricings_local ON CLUSTER '{cluster}'
(
    repricing_id              String,
    workspace_id              LowCardinality(String),
    applied_at                DateTime64(3, 'UTC'),
    range_from                DateTime64(3, 'UTC'),
    range_to                  DateTime64(3, 'UTC'),
    data_mode                 LowCardinality(String),
    models                    Array(String),
    corrected_events          UInt64,
    delta_micro_usd           Int64,
    price_catalog_version     String,
    workspace_prices_version  UInt64,
    requested_by              String,
    requested_by_role         LowCardinality(String),
    reason                    String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')
ORDER BY (workspace_id, applied_at, repricing_id);

CREATE TABLE IF NOT EXISTS pricing_repricings ON CLUSTER '{cluster}' AS pricing_repricings_local
ENGINE = Distributed('{cluster}', currentDatabase(), pricing_repricings_local, cityHash64(workspace_id));
