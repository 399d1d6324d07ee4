-- A police answer is kept as received; it changes the case and is announced (CaseOutcomeRecorded, what rewards pays on)
-- only once an analyst confirms it. Answers received before this migration already took effect: they count as confirmed.
ALTER TABLE dispositions ADD COLUMN IF NOT EXISTS confirmed_by TEXT;
ALTER TABLE dispositions ADD COLUMN IF NOT EXISTS confirmed_at TIMESTAMPTZ;
UPDATE dispositions SET confirmed_by = 'before-confirmation', confirmed_at = received_at WHERE confirmed_at IS NULL;
