-- A cost correction lives as long as what it corrects: the daily summary of its call's day, which outlives the raw
-- row (ADR 31), with the same TTL. The store stamps each correction with the corrected row's summary window; reads
-- over raw rows count only corrections whose call is still among them (ADR 57).
ALTER TABLE llm_cost_corrections ADD COLUMN IF NOT EXISTS retention_days UInt16 DEFAULT 3650;
ALTER TABLE llm_cost_corrections MODIFY TTL toDate(occurred_at) + toIntervalDay(retention_days);
