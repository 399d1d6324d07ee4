-- Local read model of volunteers (from registry.volunteers.v1) plus this service's own record of their reliability.
CREATE TABLE volunteers (
    volunteer_id          TEXT PRIMARY KEY,
    version               BIGINT NOT NULL,
    display_name          TEXT NOT NULL,
    status                TEXT NOT NULL,
    org_unit_id           TEXT NOT NULL,
    org_path              TEXT NOT NULL,
    core                  BOOLEAN NOT NULL DEFAULT false,
    recruitment_mode      TEXT NOT NULL DEFAULT 'long_term',
    teams                 TEXT[] NOT NULL DEFAULT '{}',
    skills                TEXT[] NOT NULL DEFAULT '{}',
    certificates          JSONB NOT NULL DEFAULT '[]'::jsonb,
    lat                   DOUBLE PRECISION,
    lon                   DOUBLE PRECISION,
    availability          JSONB NOT NULL DEFAULT '[]'::jsonb,
    training_compliant    BOOLEAN NOT NULL DEFAULT true,
    specialised_eligible  BOOLEAN NOT NULL DEFAULT true,
    star                  SMALLINT NOT NULL DEFAULT 1,
    updated_at            TIMESTAMPTZ NOT NULL,
    accepted              INTEGER NOT NULL DEFAULT 0,
    declined              INTEGER NOT NULL DEFAULT 0,
    expired               INTEGER NOT NULL DEFAULT 0,
    shows                 INTEGER NOT NULL DEFAULT 0,
    no_shows              INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX volunteers_active_idx ON volunteers (status) WHERE status = 'active';

CREATE TABLE operations (
    id                UUID PRIMARY KEY,
    kind              TEXT NOT NULL CHECK (kind IN ('planned', 'emergency')),
    name              TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'activated', 'running', 'closed')),
    org_unit_id       TEXT,
    org_path          TEXT NOT NULL,
    respond_within_s  INTEGER NOT NULL,
    escalation_id     TEXT UNIQUE,
    created_by        TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    activated_at      TIMESTAMPTZ,
    activated_by      TEXT,
    planned_at        TIMESTAMPTZ,
    plan_summary      JSONB,
    closed_at         TIMESTAMPTZ,
    closed_by         TEXT
);

CREATE TABLE posts (
    id                     UUID PRIMARY KEY,
    operation_id           UUID NOT NULL REFERENCES operations (id),
    name                   TEXT NOT NULL,
    zone                   TEXT,
    lat                    DOUBLE PRECISION NOT NULL,
    lon                    DOUBLE PRECISION NOT NULL,
    org_unit_id            TEXT,
    org_path               TEXT NOT NULL,
    shift_start            TIMESTAMPTZ NOT NULL,
    shift_end              TIMESTAMPTZ NOT NULL CHECK (shift_end > shift_start),
    headcount              INTEGER NOT NULL CHECK (headcount > 0),
    required_skills        TEXT[] NOT NULL DEFAULT '{}',
    required_teams         TEXT[] NOT NULL DEFAULT '{}',
    required_certificates  TEXT[] NOT NULL DEFAULT '{}',
    min_star               SMALLINT NOT NULL DEFAULT 1,
    core_only              BOOLEAN NOT NULL DEFAULT false,
    priority               SMALLINT NOT NULL DEFAULT 3,
    difficulty             SMALLINT NOT NULL DEFAULT 1,
    risk                   SMALLINT NOT NULL DEFAULT 1,
    geofence_m             INTEGER NOT NULL DEFAULT 300,
    checkin_code           TEXT NOT NULL
);
CREATE INDEX posts_operation_idx ON posts (operation_id);

CREATE TABLE assignments (
    id              UUID PRIMARY KEY,
    operation_id    UUID NOT NULL REFERENCES operations (id),
    post_id         UUID NOT NULL REFERENCES posts (id),
    volunteer_id    TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('offered', 'accepted', 'declined', 'expired', 'cancelled', 'checked_in', 'checked_out', 'no_show')),
    wave            INTEGER NOT NULL DEFAULT 0,
    distance_km     REAL NOT NULL,
    shift_start     TIMESTAMPTZ NOT NULL,
    shift_end       TIMESTAMPTZ NOT NULL,
    offered_at      TIMESTAMPTZ NOT NULL,
    respond_by      TIMESTAMPTZ NOT NULL,
    answered_at     TIMESTAMPTZ,
    decline_reason  TEXT,
    checked_in_at   TIMESTAMPTZ,
    checked_out_at  TIMESTAMPTZ,
    hours           REAL,
    UNIQUE (operation_id, volunteer_id)
);
CREATE INDEX assignments_volunteer_idx ON assignments (volunteer_id, shift_start);
CREATE INDEX assignments_post_idx ON assignments (post_id, status);
CREATE INDEX assignments_offered_idx ON assignments (respond_by) WHERE status = 'offered';
CREATE INDEX assignments_accepted_idx ON assignments (shift_start) WHERE status = 'accepted';
