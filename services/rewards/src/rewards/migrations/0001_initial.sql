-- Rewards: rule sets, the double-entry ledger of the alliance bank, balances, case rewards, stars,
-- leaderboards' read model, benefits and redemptions, commendations.

CREATE TABLE rule_sets (
    version         TEXT PRIMARY KEY,
    effective_from  TIMESTAMPTZ NOT NULL,
    body            JSONB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('draft', 'adopted')),
    created_by      TEXT NOT NULL DEFAULT 'system',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    adopted_at      TIMESTAMPTZ
);

-- The journal of scored facts (what a re-score replays), in consumption order.
CREATE TABLE scored_facts (
    seq          BIGSERIAL PRIMARY KEY,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    occurred_at  TIMESTAMPTZ NOT NULL,
    data         JSONB NOT NULL
);

-- One row per posting: `amount` moves from `debit_account` to `credit_account` (double entry).
-- Append-only: a correction is a new entry in the other direction that names the entry it corrects.
CREATE TABLE ledger_entries (
    entry_id          UUID PRIMARY KEY,
    seq               BIGSERIAL UNIQUE,
    effect_key        TEXT NOT NULL UNIQUE,
    debit_account     TEXT NOT NULL,
    credit_account    TEXT NOT NULL,
    volunteer_id      TEXT,
    unit              TEXT NOT NULL CHECK (unit IN ('points', 'hours')),
    amount            NUMERIC(16, 2) NOT NULL CHECK (amount > 0),
    reason            TEXT NOT NULL,
    rule_version      TEXT NOT NULL,
    rule_line         TEXT NOT NULL,
    source_event_id   TEXT NOT NULL,
    corrects_entry_id UUID REFERENCES ledger_entries (entry_id),
    posted_at         TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CHECK (debit_account <> credit_account)
);
CREATE INDEX ledger_entries_credit_idx ON ledger_entries (credit_account, seq);
CREATE INDEX ledger_entries_debit_idx ON ledger_entries (debit_account, seq);
CREATE INDEX ledger_entries_volunteer_time_idx ON ledger_entries (posted_at, volunteer_id) WHERE volunteer_id IS NOT NULL;

CREATE TABLE balances (
    account      TEXT NOT NULL,
    unit         TEXT NOT NULL,
    balance      NUMERIC(18, 2) NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (account, unit)
);

-- Ledger entries are append-only: an update or delete is refused.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'ledger entries are append-only; post a compensating entry'; END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

-- Case merges: every known case points at the case it now belongs to (itself when not merged).
CREATE TABLE case_links (
    case_id  TEXT PRIMARY KEY,
    root_id  TEXT NOT NULL
);
CREATE INDEX case_links_root_idx ON case_links (root_id);

-- One per-case reward per case, ever.
CREATE TABLE case_rewards (
    case_id          TEXT PRIMARY KEY,
    outcome          TEXT NOT NULL,
    rule_version     TEXT NOT NULL,
    source_event_id  TEXT NOT NULL,
    paid_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Anonymous reporters' held rewards, claimed later into a volunteer account or a payout target.
CREATE TABLE claims (
    claim_id     UUID PRIMARY KEY,
    claim_ref    TEXT NOT NULL,
    target       TEXT NOT NULL,
    points       NUMERIC(18, 2) NOT NULL,
    hours        NUMERIC(18, 2) NOT NULL,
    claimed_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX claims_ref_idx ON claims (claim_ref);

-- Local read model of volunteers (from registry.volunteers.v1 and the facts), and their star.
CREATE TABLE volunteer_standing (
    volunteer_id        TEXT PRIMARY KEY,
    state_version       BIGINT NOT NULL DEFAULT -1,
    display_name        TEXT,
    status              TEXT,
    org_path            TEXT,
    training_compliant  BOOLEAN NOT NULL DEFAULT TRUE,
    shifts_completed    INTEGER NOT NULL DEFAULT 0,
    no_shows            INTEGER NOT NULL DEFAULT 0,
    star                SMALLINT NOT NULL DEFAULT 1,
    pending_star        SMALLINT,
    pending_effective_at TIMESTAMPTZ,
    pending_reason      TEXT,
    needs_review        BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX volunteer_standing_review_idx ON volunteer_standing (volunteer_id) WHERE needs_review;
CREATE INDEX volunteer_standing_pending_idx ON volunteer_standing (pending_effective_at) WHERE pending_star IS NOT NULL;
CREATE INDEX volunteer_standing_path_idx ON volunteer_standing (org_path text_pattern_ops);

-- No-shows counted once per assignment (reliability = completed shifts / (completed + no-shows)).
CREATE TABLE no_shows (
    assignment_id  TEXT PRIMARY KEY,
    volunteer_id   TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL
);

CREATE TABLE star_history (
    id            BIGSERIAL PRIMARY KEY,
    volunteer_id  TEXT NOT NULL,
    old_star      SMALLINT NOT NULL,
    new_star      SMALLINT NOT NULL,
    announced_at  TIMESTAMPTZ NOT NULL,
    effective_at  TIMESTAMPTZ NOT NULL,
    applied_at    TIMESTAMPTZ,
    reason        TEXT NOT NULL,
    rule_version  TEXT NOT NULL
);
CREATE INDEX star_history_volunteer_idx ON star_history (volunteer_id, id);

CREATE TABLE benefits (
    benefit_id   UUID PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    cost_points  NUMERIC(16, 2) NOT NULL CHECK (cost_points > 0),
    stock        INTEGER NOT NULL CHECK (stock >= 0),
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE redemptions (
    redemption_id    UUID PRIMARY KEY,
    volunteer_id     TEXT NOT NULL,
    benefit_id       UUID NOT NULL REFERENCES benefits (benefit_id),
    quantity         INTEGER NOT NULL CHECK (quantity > 0),
    points           NUMERIC(16, 2) NOT NULL,
    entry_id         UUID NOT NULL REFERENCES ledger_entries (entry_id),
    idempotency_key  TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (volunteer_id, idempotency_key)
);

CREATE TABLE commendations (
    commendation_id  UUID PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('model_volunteer', 'service_brand', 'organisation', 'individual')),
    period           TEXT NOT NULL,
    org_path         TEXT NOT NULL DEFAULT '',
    subject_id       TEXT NOT NULL,
    subject_name     TEXT NOT NULL,
    citation         TEXT NOT NULL DEFAULT '',
    rank             INTEGER,
    points           NUMERIC(18, 2),
    awarded_by       TEXT NOT NULL,
    awarded_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (kind, period, org_path, subject_id)
);
