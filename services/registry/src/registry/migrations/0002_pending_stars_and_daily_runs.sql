-- Star changes wait for their effective time; the daily jobs record the day they ran (once per day across replicas).
ALTER TABLE volunteers
    ADD COLUMN star_effective_at          TIMESTAMPTZ,
    ADD COLUMN pending_star               SMALLINT,
    ADD COLUMN pending_star_effective_at  TIMESTAMPTZ,
    ADD COLUMN pending_star_event_id      TEXT,
    ADD COLUMN pending_star_correlation   TEXT;
CREATE INDEX volunteers_pending_star_idx ON volunteers (pending_star_effective_at) WHERE pending_star IS NOT NULL;

CREATE TABLE daily_runs (
    job         TEXT NOT NULL,
    run_on      DATE NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    outcome     JSONB NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (job, run_on)
);
