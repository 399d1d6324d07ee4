-- Roster imports as jobs: the upload is stored (sealed with the PII key, dropped when the job ends) and a worker in
-- the registry process, or `python -m registry.import_worker`, takes queued jobs with FOR UPDATE SKIP LOCKED.
CREATE TABLE IF NOT EXISTS roster_imports (
    id uuid PRIMARY KEY,
    created_by text NOT NULL,
    created_role text NOT NULL,
    scope_path text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    file_enc bytea,
    total_lines integer NOT NULL,
    rows integer NOT NULL DEFAULT 0,
    imported integer NOT NULL DEFAULT 0,
    already_registered integer NOT NULL DEFAULT 0,
    error_count integer NOT NULL DEFAULT 0,
    errors jsonb NOT NULL DEFAULT '[]',
    failure text,
    attempts integer NOT NULL DEFAULT 0,
    started_at timestamptz,
    heartbeat_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS roster_imports_waiting ON roster_imports (created_at) WHERE status IN ('queued', 'running');
