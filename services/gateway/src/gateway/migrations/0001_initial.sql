-- Sessions (refresh tokens stored hashed), pending one-time login codes, and per-volunteer notifications.
CREATE TABLE auth_sessions (
    id             UUID PRIMARY KEY,
    subject        TEXT NOT NULL,
    role           TEXT NOT NULL,
    scope_path     TEXT NOT NULL DEFAULT '',
    volunteer_id   TEXT,
    display_name   TEXT,
    refresh_hash   TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    refreshed_at   TIMESTAMPTZ,
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT
);
CREATE INDEX auth_sessions_subject_idx ON auth_sessions (subject);

CREATE TABLE login_codes (
    phone_index  TEXT PRIMARY KEY,
    code_hash    TEXT NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    id            BIGSERIAL PRIMARY KEY,
    volunteer_id  TEXT NOT NULL,
    event_id      TEXT NOT NULL UNIQUE,
    kind          TEXT NOT NULL,
    title         TEXT NOT NULL,
    data          JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notifications_volunteer_idx ON notifications (volunteer_id, id);
