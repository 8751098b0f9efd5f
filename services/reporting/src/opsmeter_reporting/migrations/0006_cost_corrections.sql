-- Re-pricing (ADR 57): a correction moves a stored call's cost by a signed delta. Raw rows and rollups keep
-- the cost the call was stored with; every cost read adds the corrections of its window (FINAL dedupes a
-- correction stored twice: by the re-pricing itself and again from the topic).
CREATE TABLE IF NOT EXISTS llm_cost_corrections
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
ENGINE = ReplacingMergeTree(corrected_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (workspace_id, occurred_at, event_id);

-- Who re-priced what and why (the audit record; also published as pricing.repricing_applied).
CREATE TABLE IF NOT EXISTS pricing_repricings
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
ENGINE = ReplacingMergeTree
ORDER BY (workspace_id, applied_at, repricing_id);
