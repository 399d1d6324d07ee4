-- Wrong receipt secrets counted per receipt code in the database, so every intel replica sees the same count:
-- N replicas no longer allow N times the guesses. A window starts at a code's first failure; a missing or
-- expired row is a clean slate. Nothing here names a person: the key is the receipt code's HMAC.
CREATE TABLE IF NOT EXISTS receipt_failures (
    code_hash          TEXT PRIMARY KEY,
    failures           INTEGER NOT NULL,
    window_started_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS receipt_failures_window ON receipt_failures (window_started_at);
