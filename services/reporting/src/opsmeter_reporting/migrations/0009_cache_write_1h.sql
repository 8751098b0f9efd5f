-- Anthropic's 1-hour cache writes (part of cache_write_input_tokens, priced higher): kept so that re-pricing a
-- stored call prices them as ingest did.
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS cache_write_1h_input_tokens UInt32 DEFAULT 0;
