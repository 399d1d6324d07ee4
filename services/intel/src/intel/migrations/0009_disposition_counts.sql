-- A v2 police answer reports what it achieved (suspects and fugitives caught, dens closed, seizures); a v1 answer leaves
-- `counts` NULL. The counts are the case's totals as of the answer; the confirmed latest one travels on CaseOutcomeRecorded.
ALTER TABLE dispositions ADD COLUMN IF NOT EXISTS counts JSONB;
