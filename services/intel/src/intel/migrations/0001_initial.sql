-- Intel: tips, cases, triage, liaison, dispositions, needs, disputes, bulletins.
CREATE SEQUENCE IF NOT EXISTS case_reference_seq;

CREATE TABLE IF NOT EXISTS cases (
    id                 UUID PRIMARY KEY,
    reference          TEXT NOT NULL UNIQUE,
    category           TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'new',
    priority           TEXT NOT NULL DEFAULT 'normal',
    priority_score     INTEGER NOT NULL DEFAULT 0,
    priority_reasons   JSONB NOT NULL DEFAULT '[]'::jsonb,
    first_tip_id       UUID,
    first_submitted_at TIMESTAMPTZ,
    last_submitted_at  TIMESTAMPTZ,
    tip_count          INTEGER NOT NULL DEFAULT 0,
    lat                DOUBLE PRECISION,
    lon                DOUBLE PRECISION,
    place_text         TEXT,
    org_path           TEXT NOT NULL DEFAULT '',
    summary            TEXT NOT NULL DEFAULT '',
    rejection_reason   TEXT,
    locked_by          TEXT,
    locked_until       TIMESTAMPTZ,
    forwarded_at       TIMESTAMPTZ,
    sla_due_at         TIMESTAMPTZ,
    outcome            TEXT,
    outcome_at         TIMESTAMPTZ,
    merged_into        UUID,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cases_candidates_idx ON cases (category, last_submitted_at) WHERE merged_into IS NULL;
CREATE INDEX IF NOT EXISTS cases_queue_idx ON cases (status, priority_score DESC, created_at);

CREATE TABLE IF NOT EXISTS tips (
    id                 UUID PRIMARY KEY,
    idempotency_hash   TEXT UNIQUE,
    request_hash       TEXT NOT NULL,
    reporter_kind      TEXT NOT NULL,
    volunteer_id       TEXT,
    receipt_code_hash  TEXT UNIQUE,
    receipt_secret_hash TEXT,
    claim_ref          TEXT,
    category           TEXT NOT NULL,
    text               TEXT NOT NULL,
    lat                DOUBLE PRECISION,
    lon                DOUBLE PRECISION,
    place_text         TEXT,
    seen_at            TIMESTAMPTZ,
    channel            TEXT NOT NULL,
    org_path           TEXT NOT NULL DEFAULT '',
    status             TEXT NOT NULL DEFAULT 'submitted',
    case_id            UUID REFERENCES cases(id),
    cluster_reasons    JSONB NOT NULL DEFAULT '[]'::jsonb,
    cluster_score      DOUBLE PRECISION,
    submitted_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tips_volunteer_idx ON tips (volunteer_id, submitted_at DESC) WHERE volunteer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tips_case_idx ON tips (case_id, submitted_at);
CREATE INDEX IF NOT EXISTS tips_trend_idx ON tips (category, submitted_at);

CREATE TABLE IF NOT EXISTS tip_attachments (
    id            UUID PRIMARY KEY,
    tip_id        UUID NOT NULL REFERENCES tips(id),
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    content       BYTEA
);
CREATE INDEX IF NOT EXISTS tip_attachments_tip_idx ON tip_attachments (tip_id);
CREATE INDEX IF NOT EXISTS tip_attachments_sha_idx ON tip_attachments (sha256);

CREATE TABLE IF NOT EXISTS case_history (
    id        BIGSERIAL PRIMARY KEY,
    case_id   UUID NOT NULL REFERENCES cases(id),
    action    TEXT NOT NULL,
    actor     TEXT NOT NULL,
    detail    JSONB NOT NULL DEFAULT '{}'::jsonb,
    at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS case_history_case_idx ON case_history (case_id, id);

CREATE TABLE IF NOT EXISTS dispositions (
    id            UUID PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    case_id       UUID NOT NULL REFERENCES cases(id),
    disposition   TEXT NOT NULL,
    note          TEXT,
    officer_unit  TEXT,
    police_source TEXT NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS dispositions_case_idx ON dispositions (case_id, recorded_at);

CREATE TABLE IF NOT EXISTS escalations (
    id          UUID PRIMARY KEY,
    case_id     UUID NOT NULL UNIQUE REFERENCES cases(id),
    kind        TEXT NOT NULL,
    headcount   INTEGER NOT NULL,
    raised_by   TEXT NOT NULL,
    raised_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS org_units (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL,
    path      TEXT NOT NULL,
    lat       DOUBLE PRECISION,
    lon       DOUBLE PRECISION
);

CREATE TABLE IF NOT EXISTS needs (
    id            UUID PRIMARY KEY,
    category      TEXT NOT NULL,
    description   TEXT NOT NULL,
    lat           DOUBLE PRECISION,
    lon           DOUBLE PRECISION,
    place_text    TEXT,
    org_unit_id   TEXT,
    org_path      TEXT NOT NULL DEFAULT '',
    routed_by     TEXT NOT NULL,
    status        TEXT NOT NULL DEFAULT 'open',
    volunteer_id  TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS needs_org_idx ON needs (org_path, created_at);

CREATE TABLE IF NOT EXISTS disputes (
    id                  UUID PRIMARY KEY,
    summary             TEXT NOT NULL,
    category            TEXT NOT NULL DEFAULT 'other',
    org_path            TEXT NOT NULL,
    case_id             UUID REFERENCES cases(id),
    mediator_volunteer_id TEXT,
    status              TEXT NOT NULL DEFAULT 'open',
    outcome             TEXT,
    outcome_note        TEXT,
    created_by          TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at           TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS dispute_parties (
    id            UUID PRIMARY KEY,
    dispute_id    UUID NOT NULL REFERENCES disputes(id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    phone_cipher  BYTEA,
    phone_masked  TEXT
);
CREATE TABLE IF NOT EXISTS mediation_sessions (
    id          UUID PRIMARY KEY,
    dispute_id  UUID NOT NULL REFERENCES disputes(id),
    held_at     TIMESTAMPTZ NOT NULL,
    place       TEXT,
    notes       TEXT NOT NULL DEFAULT '',
    recorded_by TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS bulletins (
    id                  UUID PRIMARY KEY,
    title               TEXT NOT NULL,
    body                TEXT NOT NULL,
    case_type           TEXT NOT NULL,
    channels            JSONB NOT NULL DEFAULT '[]'::jsonb,
    audience_org_paths  JSONB NOT NULL DEFAULT '[]'::jsonb,
    status              TEXT NOT NULL DEFAULT 'draft',
    basis               JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_by          TEXT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at        TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS bulletins_published_idx ON bulletins (status, published_at DESC);
