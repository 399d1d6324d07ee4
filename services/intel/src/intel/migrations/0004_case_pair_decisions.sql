-- Issue #17: analysts' decisions on suggested similar cases, kept as labelled pairs to calibrate clustering.
-- One row per unordered pair of cases (the latest decision wins): 'accepted' when the pair was merged,
-- 'rejected' when an analyst said the suggestion is another incident (it is then no longer suggested).
CREATE TABLE IF NOT EXISTS case_pair_decisions (
    case_low UUID NOT NULL REFERENCES cases (id),
    case_high UUID NOT NULL REFERENCES cases (id),
    decision TEXT NOT NULL CHECK (decision IN ('accepted', 'rejected')),
    score DOUBLE PRECISION,
    reasons JSONB NOT NULL DEFAULT '[]'::jsonb,
    category TEXT NOT NULL,
    decided_by TEXT NOT NULL,
    decided_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (case_low, case_high),
    CHECK (case_low < case_high)
);
CREATE INDEX IF NOT EXISTS case_pair_decisions_high_idx ON case_pair_decisions (case_high);
