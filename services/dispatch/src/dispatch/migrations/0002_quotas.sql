-- Hierarchical fan-out: an operation's headcount split county → towns/branches → stations → grids, each share accepted by its level.
CREATE TABLE quotas (
    id            UUID PRIMARY KEY,
    operation_id  UUID NOT NULL REFERENCES operations (id),
    parent_id     UUID REFERENCES quotas (id),
    org_path      TEXT NOT NULL,
    headcount     INTEGER NOT NULL CHECK (headcount >= 0),
    status        TEXT NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'accepted')),
    set_by        TEXT NOT NULL,
    accepted_by   TEXT,
    accepted_at   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (operation_id, org_path)
);
CREATE INDEX quotas_parent_idx ON quotas (parent_id);
