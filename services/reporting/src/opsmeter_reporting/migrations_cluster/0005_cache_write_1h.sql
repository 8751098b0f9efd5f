-- The cluster twin of migrations/0009_cache_write_1h.sql.
ALTER TABLE llm_requests_raw_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS cache_write_1h_input_tokens UInt32 DEFAULT 0;
ALTER TABLE llm_requests_raw ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS cache_write_1h_input_tokens UInt32 DEFAULT 0;
