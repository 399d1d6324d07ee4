-- Issue #23. Whether each person may hold a session (from registry's volunteer and staff state events),
-- wrong login-code guesses per phone over a day (a new code no longer resets them), and the rate-limit
-- buckets every gateway replica shares.
CREATE TABLE subject_status (
    subject     TEXT PRIMARY KEY,          -- volunteer id or staff id: a session's `subject`
    kind        TEXT NOT NULL,             -- volunteer | staff
    status      TEXT NOT NULL,             -- volunteer status, or staff active / inactive
    allowed     BOOLEAN NOT NULL,          -- may hold a session
    version     BIGINT,                    -- the volunteer state's version; NULL for staff (applied in topic order)
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE login_codes
    ADD COLUMN failures        INTEGER NOT NULL DEFAULT 0,   -- wrong guesses since failures_since, across codes
    ADD COLUMN failures_since  TIMESTAMPTZ;

-- A token bucket per (limit, key). A row past full_at is full again, the same as no row: it is deleted.
-- UNLOGGED: no WAL, so a hit's commit does not wait for a disk flush; a crash or failover empties it (all full).
CREATE UNLOGGED TABLE rate_buckets (
    name        TEXT NOT NULL,
    key         TEXT NOT NULL,
    tokens      DOUBLE PRECISION NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    full_at     TIMESTAMPTZ NOT NULL,
    granted     BOOLEAN NOT NULL,
    PRIMARY KEY (name, key)
);
CREATE INDEX rate_buckets_full_at_idx ON rate_buckets (full_at);
