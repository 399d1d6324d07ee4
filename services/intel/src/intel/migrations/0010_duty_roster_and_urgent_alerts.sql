-- Who is on duty for which org scope and when: an urgent case pushes to the on-duty analysts of its scope.
CREATE TABLE IF NOT EXISTS duty_roster (
    id          UUID PRIMARY KEY,
    staff_sub   TEXT NOT NULL,
    org_path    TEXT NOT NULL,
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS duty_roster_path_idx ON duty_roster (org_path, ends_at);

-- One alert per urgent case: the scope alerted now (the case's own, or a level above after an unclaimed SLA), to whom,
-- until when it must be claimed, and when it was claimed. The sweep escalates the unclaimed ones.
CREATE TABLE IF NOT EXISTS urgent_alerts (
    case_id        UUID PRIMARY KEY REFERENCES cases(id),
    case_org_path  TEXT NOT NULL,
    alerted_path   TEXT NOT NULL,
    recipients     JSONB NOT NULL DEFAULT '[]'::jsonb,
    level          INT NOT NULL DEFAULT 0,
    raised_at      TIMESTAMPTZ NOT NULL,
    due_at         TIMESTAMPTZ NOT NULL,
    claimed_at     TIMESTAMPTZ,
    claimed_by     TEXT
);
CREATE INDEX IF NOT EXISTS urgent_alerts_unclaimed_idx ON urgent_alerts (due_at) WHERE claimed_at IS NULL;
