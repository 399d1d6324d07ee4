-- How many tokens the last hit took: a busy process takes a few at once and spends them itself (gateway/ratelimit.py).
ALTER TABLE rate_buckets ADD COLUMN IF NOT EXISTS taken DOUBLE PRECISION NOT NULL DEFAULT 1;
