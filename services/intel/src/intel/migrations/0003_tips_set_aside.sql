-- A tip the clustering worker cannot place (a bug in clustering, bad stored data) is set aside with the error,
-- so it no longer blocks every tip accepted after it; operators fix the cause and clear the mark to retry it.
ALTER TABLE tips ADD COLUMN IF NOT EXISTS clustering_failed_at TIMESTAMPTZ;
ALTER TABLE tips ADD COLUMN IF NOT EXISTS clustering_error TEXT;
DROP INDEX IF EXISTS tips_unclustered_idx;
CREATE INDEX IF NOT EXISTS tips_unclustered_idx ON tips (submitted_at, id) WHERE case_id IS NULL AND clustering_failed_at IS NULL;
