-- The cost the client reported beside the computed one (ADR 57). cost_micro_usd is the cost by the
-- workspace's cost basis when the sink stored the event (computed, reported, or reported when present);
-- computed_cost_micro_usd and reported_cost_micro_usd keep both, so reports show them and the difference
-- (the rollups sum the reported one as reported_cost_sum_micro_usd: an alias may not shadow a column read
-- inside another aggregate of the same SELECT).
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS computed_cost_micro_usd UInt64 DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS reported_cost_micro_usd Nullable(UInt64);
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS cost_basis LowCardinality(String) DEFAULT 'computed';
ALTER TABLE llm_requests_hourly ADD COLUMN IF NOT EXISTS computed_cost_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_hourly ADD COLUMN IF NOT EXISTS reported_cost_sum_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_hourly ADD COLUMN IF NOT EXISTS reported_requests SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_daily ADD COLUMN IF NOT EXISTS computed_cost_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT cost_micro_usd;
ALTER TABLE llm_requests_daily ADD COLUMN IF NOT EXISTS reported_cost_sum_micro_usd SimpleAggregateFunction(sum, UInt64) DEFAULT 0;
ALTER TABLE llm_requests_daily ADD COLUMN IF NOT EXISTS reported_requests SimpleAggregateFunction(sum, UInt64) DEFAULT 0;

DROP VIEW IF EXISTS llm_requests_hourly_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_hourly_mv TO llm_requests_hourly AS
SELECT
    workspace_id, data_mode, toStartOfHour(occurred_at) AS hour, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(raw_retention_days) AS retention_days, sum(computed_cost_micro_usd) AS computed_cost_micro_usd,
    sum(ifNull(reported_cost_micro_usd, 0)) AS reported_cost_sum_micro_usd,
    countIf(reported_cost_micro_usd IS NOT NULL) AS reported_requests
FROM llm_requests_raw
GROUP BY workspace_id, data_mode, hour, model, provider, endpoint_tag, user_id, prompt_version;

DROP VIEW IF EXISTS llm_requests_daily_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS llm_requests_daily_mv TO llm_requests_daily AS
SELECT
    workspace_id, data_mode, toDate(occurred_at) AS day, model_normalized AS model, provider,
    endpoint_tag, user_id, prompt_version,
    count() AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
    sum(total_tokens) AS total_tokens, sum(cost_micro_usd) AS cost_micro_usd,
    max(summary_retention_days) AS retention_days, sum(computed_cost_micro_usd) AS computed_cost_micro_usd,
    sum(ifNull(reported_cost_micro_usd, 0)) AS reported_cost_sum_micro_usd,
    countIf(reported_cost_micro_usd IS NOT NULL) AS reported_requests
FROM llm_requests_raw
GROUP BY workspace_id, data_mode, day, model, provider, endpoint_tag, user_id, prompt_version;
