-- Clustering moves out of intake: a worker picks tips without a case in accepted order.
ALTER TABLE tips ADD COLUMN IF NOT EXISTS clustered_at TIMESTAMPTZ;
UPDATE tips SET clustered_at = submitted_at WHERE case_id IS NOT NULL AND clustered_at IS NULL;
CREATE INDEX IF NOT EXISTS tips_unclustered_idx ON tips (submitted_at, id) WHERE case_id IS NULL;
