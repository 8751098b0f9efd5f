-- Which ingest key sent each event, so "delete my demo/test data" (scope=mine) can find it.
ALTER TABLE llm_requests_raw ADD COLUMN IF NOT EXISTS api_key_id LowCardinality(String) DEFAULT '';
