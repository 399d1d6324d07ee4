-- Recurring service projects (护学, 关爱, 普法/调解, custom): schedule segments, generated shifts, sign-ups, and every
-- volunteer's commitments in one table whose exclusion constraint refuses two overlapping ones (no double-booking).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE projects (
    id               UUID PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('school_patrol', 'care', 'legal_outreach', 'custom')),
    label            TEXT,
    name             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    org_unit_id      TEXT,
    org_path         TEXT NOT NULL,
    places           JSONB NOT NULL,
    required_skills  TEXT[] NOT NULL DEFAULT '{}',
    required_teams   TEXT[] NOT NULL DEFAULT '{}',
    capacity         INTEGER NOT NULL CHECK (capacity > 0),
    shift_minutes    INTEGER NOT NULL CHECK (shift_minutes > 0),
    needs_approval   BOOLEAN NOT NULL DEFAULT false,
    timezone         TEXT NOT NULL DEFAULT 'Asia/Shanghai',
    exdates          DATE[] NOT NULL DEFAULT '{}',
    horizon_days     INTEGER NOT NULL DEFAULT 28,
    status           TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    generated_until  TIMESTAMPTZ,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX projects_org_path_idx ON projects (org_path text_pattern_ops);

-- One RRULE per segment; a "this and future" edit ends a segment (ends_before) and starts a new one.
CREATE TABLE project_schedules (
    project_id   UUID NOT NULL REFERENCES projects (id),
    starts_on    DATE NOT NULL,
    ends_before  DATE,
    rrule        TEXT NOT NULL,
    start_time   TIME NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, starts_on)
);

-- Generated a horizon ahead; the unique key makes regeneration (and two replicas generating at once) idempotent, and
-- serves every read (a project's shifts in a window; open shifts near a volunteer go through the projects within reach).
CREATE TABLE project_shifts (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects (id),
    place_no    SMALLINT NOT NULL,
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ NOT NULL CHECK (ends_at > starts_at),
    capacity    INTEGER NOT NULL CHECK (capacity > 0),
    status      TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'cancelled')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (project_id, place_no, starts_at)
);

CREATE TABLE shift_signups (
    id             UUID PRIMARY KEY,
    shift_id       UUID NOT NULL REFERENCES project_shifts (id),
    project_id     UUID NOT NULL REFERENCES projects (id),
    volunteer_id   TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('applied', 'confirmed', 'waitlisted', 'cancelled')),
    series         BOOLEAN NOT NULL DEFAULT false,
    starts_at      TIMESTAMPTZ NOT NULL,
    ends_at        TIMESTAMPTZ NOT NULL,
    applied_at     TIMESTAMPTZ NOT NULL,
    confirmed_at   TIMESTAMPTZ,
    waitlisted_at  TIMESTAMPTZ,
    promoted_at    TIMESTAMPTZ,
    cancelled_at   TIMESTAMPTZ,
    cancel_reason  TEXT,
    UNIQUE (shift_id, volunteer_id)
);
CREATE INDEX shift_signups_volunteer_idx ON shift_signups (volunteer_id, starts_at);
CREATE INDEX shift_signups_waitlist_idx ON shift_signups (shift_id, waitlisted_at) WHERE status = 'waitlisted';

-- A volunteer's standing sign-up for a project's series: shifts generated later are signed up for them too.
CREATE TABLE project_series_signups (
    project_id    UUID NOT NULL REFERENCES projects (id),
    volunteer_id  TEXT NOT NULL,
    since         TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    cancelled_at  TIMESTAMPTZ,
    PRIMARY KEY (project_id, volunteer_id)
);

-- Every time window a volunteer has promised: confirmed shift sign-ups and accepted operation assignments.
CREATE TABLE volunteer_commitments (
    kind          TEXT NOT NULL CHECK (kind IN ('shift', 'assignment')),
    source_id     UUID NOT NULL,
    volunteer_id  TEXT NOT NULL,
    during        TSTZRANGE NOT NULL,
    PRIMARY KEY (kind, source_id),
    CONSTRAINT volunteer_commitments_no_overlap EXCLUDE USING gist (volunteer_id WITH =, during WITH &&)
);

-- The commitments follow the rows they stand for, whatever code path changes them.
CREATE FUNCTION commit_shift_signup() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.status = 'confirmed' THEN INSERT INTO volunteer_commitments (kind, source_id, volunteer_id, during) VALUES ('shift', NEW.id, NEW.volunteer_id, tstzrange(NEW.starts_at, NEW.ends_at)) ON CONFLICT (kind, source_id) DO NOTHING; ELSE DELETE FROM volunteer_commitments WHERE kind = 'shift' AND source_id = NEW.id; END IF; RETURN NEW; END $$;
CREATE TRIGGER shift_signups_commitment AFTER INSERT OR UPDATE OF status ON shift_signups FOR EACH ROW EXECUTE FUNCTION commit_shift_signup();

CREATE FUNCTION commit_assignment() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.status IN ('accepted', 'checked_in') THEN INSERT INTO volunteer_commitments (kind, source_id, volunteer_id, during) VALUES ('assignment', NEW.id, NEW.volunteer_id, tstzrange(NEW.shift_start, NEW.shift_end)) ON CONFLICT (kind, source_id) DO NOTHING; ELSE DELETE FROM volunteer_commitments WHERE kind = 'assignment' AND source_id = NEW.id; END IF; RETURN NEW; END $$;
CREATE TRIGGER assignments_commitment_inserted AFTER INSERT ON assignments FOR EACH ROW WHEN (NEW.status IN ('accepted', 'checked_in')) EXECUTE FUNCTION commit_assignment();
CREATE TRIGGER assignments_commitment_changed AFTER UPDATE OF status ON assignments FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION commit_assignment();

-- Assignments accepted before this migration (skipping any that already overlap an earlier one).
INSERT INTO volunteer_commitments (kind, source_id, volunteer_id, during)
SELECT 'assignment', a.id, a.volunteer_id, tstzrange(a.shift_start, a.shift_end) FROM assignments a
WHERE a.status IN ('accepted', 'checked_in') AND NOT EXISTS (
    SELECT 1 FROM assignments b WHERE b.volunteer_id = a.volunteer_id AND b.status IN ('accepted', 'checked_in')
    AND b.id < a.id AND b.shift_start < a.shift_end AND b.shift_end > a.shift_start);

-- Beneficiaries of a project (children in a care project): sealed under dispatch's PII_KEY, shown masked to its staff.
CREATE TABLE project_beneficiaries (
    id                     UUID PRIMARY KEY,
    project_id             UUID NOT NULL REFERENCES projects (id),
    name_sealed            BYTEA NOT NULL,
    guardian_phone_sealed  BYTEA NOT NULL,
    note_sealed            BYTEA,
    created_by             TEXT NOT NULL,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX project_beneficiaries_project_idx ON project_beneficiaries (project_id);
