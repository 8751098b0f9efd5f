-- One row per accepted LLM call. ReplacingMergeTree on the event id keeps totals exact when a batch
-- is delivered twice: queries read it with FINAL (or aggregate per event id).
CREATE TABLE IF NOT EXISTS llm_requests_raw
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
    metadata              String
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, toDate(occurred_at), event_id)
SETTINGS non_replicated_deduplication_window = 1000;
