-- The price model as providers bill it (ADR 57): cache writes, and the price each event was charged at.
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS cache_write_input_tokens UInt32 DEFAULT 0;
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS price_row String DEFAULT '';
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS price_tier_start_tokens Nullable(UInt32);
