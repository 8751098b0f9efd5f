-- The cluster twin of migrations/0008_correction_retention.sql: a correction lives as long as the daily summaries
-- of its call's day.
ALTER TABLE llm_cost_corrections_local ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS retention_days UInt16 DEFAULT 3650;
ALTER TABLE llm_cost_corrections ON CLUSTER '{cluster}' ADD COLUMN IF NOT EXISTS retention_days UInt16 DEFAULT 3650;
ALTER TABLE llm_cost_corrections_local ON CLUSTER '{cluster}' MODIFY TTL toDate(occurred_at) + toIntervalDay(retention_days);
