-- Reports: the journal of facts taken from events, and the projections the figures are read from.
-- Every projection is derived from `facts` alone: wiping them and replaying the journal gives the same figures.

-- Each fact this service took in, reduced to what a figure needs (no names, phones, texts or reporters), in
-- consumption order. Keyed by the event id, so a replayed event adds nothing.
CREATE TABLE facts (
    seq       BIGSERIAL PRIMARY KEY,
    event_id  TEXT NOT NULL UNIQUE,
    kind      TEXT NOT NULL,
    data      JSONB NOT NULL
);

CREATE TABLE org_units (
    org_unit_id  TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    path         TEXT NOT NULL
);

-- The current standing of each volunteer (the registry topic is compacted: only the latest state is kept).
CREATE TABLE volunteers (
    volunteer_id      TEXT PRIMARY KEY,
    version           BIGINT NOT NULL,
    status            TEXT NOT NULL,
    core              BOOLEAN NOT NULL,
    star              INT NOT NULL,
    recruitment_mode  TEXT NOT NULL,
    teams             TEXT[] NOT NULL DEFAULT '{}',
    org_path          TEXT NOT NULL,
    display_name      TEXT NOT NULL DEFAULT ''  -- masked, as registry publishes it (张**)
);

CREATE TABLE trainings (
    attendance_id  TEXT PRIMARY KEY,
    session_id     TEXT NOT NULL,
    volunteer_id   TEXT NOT NULL,
    level          TEXT NOT NULL,
    topic          TEXT NOT NULL,
    attended_on    DATE NOT NULL,
    org_path       TEXT NOT NULL
);
CREATE INDEX trainings_on_idx ON trainings (attended_on);

CREATE TABLE tips (
    tip_id        TEXT PRIMARY KEY,
    category      TEXT,
    channel       TEXT,
    org_unit_id   TEXT,
    submitted_at  TIMESTAMPTZ,
    verdict       TEXT,
    case_id       TEXT
);
CREATE INDEX tips_submitted_idx ON tips (submitted_at);
CREATE INDEX tips_case_idx ON tips (case_id) WHERE case_id IS NOT NULL;

CREATE TABLE cases (
    case_id          TEXT PRIMARY KEY,
    category         TEXT,
    priority         TEXT,
    forwarded_at     TIMESTAMPTZ,
    first_tip_id     TEXT,
    outcome          TEXT,
    outcome_at       TIMESTAMPTZ,
    merged_into      TEXT,
    suspects_caught  INT,
    fugitives_caught INT,
    dens_closed      INT,
    seizures         INT
);
CREATE INDEX cases_forwarded_idx ON cases (forwarded_at);

CREATE TABLE needs (
    need_id     TEXT PRIMARY KEY,
    category    TEXT NOT NULL,
    status      TEXT NOT NULL,
    org_path    TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX needs_created_idx ON needs (created_at);

CREATE TABLE disputes (
    dispute_id  TEXT PRIMARY KEY,
    category    TEXT NOT NULL,
    status      TEXT NOT NULL,
    outcome     TEXT,
    org_path    TEXT NOT NULL,
    sessions    INT NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    closed_at   TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX disputes_created_idx ON disputes (created_at);

-- Entries of volunteers' accounts (anonymous reporters' accounts are never published, so never counted here). One
-- posting moves points between two accounts (pending → spendable when a tip is reviewed): one row per account.
CREATE TABLE ledger (
    entry_id      TEXT NOT NULL,
    account       TEXT NOT NULL,
    volunteer_id  TEXT,
    pending       BOOLEAN NOT NULL,
    unit          TEXT NOT NULL,
    amount        NUMERIC NOT NULL,
    rule_line     TEXT,
    posted_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (entry_id, account)
);
CREATE INDEX ledger_posted_idx ON ledger (posted_at);

CREATE TABLE bulletins (
    bulletin_id         TEXT PRIMARY KEY,
    case_type           TEXT NOT NULL,
    serial              INT,
    audience_org_paths  TEXT[] NOT NULL,
    published_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE operations (
    operation_id  TEXT PRIMARY KEY,
    name          TEXT,
    kind          TEXT,
    org_path      TEXT,
    headcount     INT,
    activated_at  TIMESTAMPTZ,
    closed_at     TIMESTAMPTZ
);

CREATE TABLE assignments (
    assignment_id  TEXT PRIMARY KEY,
    operation_id   TEXT,
    post_id        TEXT,
    volunteer_id   TEXT,
    answer         TEXT,
    attendance     TEXT,
    place_name     TEXT
);
CREATE INDEX assignments_operation_idx ON assignments (operation_id);

CREATE TABLE hours (
    record_id     TEXT PRIMARY KEY,
    assignment_id TEXT,
    operation_id  TEXT NOT NULL,
    volunteer_id  TEXT NOT NULL,
    hours         NUMERIC NOT NULL,
    org_path      TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX hours_operation_idx ON hours (operation_id);
CREATE INDEX hours_started_idx ON hours (started_at);

-- Service records pushed to the provincial / national volunteer system: one row per record, so a push resumes where
-- it stopped and never sends a record twice.
CREATE TABLE national_pushes (
    record_id   TEXT PRIMARY KEY,
    pushed_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
