-- A v2 police answer reports what it achieved (suspects and fugitives caught, dens closed, seizures); a v1 answer leaves
-- `counts` NULL. The counts are the case's totals as of the answer; the confirmed latest one travels on CaseOutcomeRecorded.
ALTER TABLE dispositions ADD COLUMN IF NOT EXISTS counts JSONB;

-- Each published bulletin gets its county's serial number for the year (2026年第 N 期), taken from a counter row
-- updated in the publishing transaction: concurrent publishes queue on the row, a rolled-back publish gives its number back.
CREATE TABLE IF NOT EXISTS bulletin_serials (
    county_path  TEXT NOT NULL,
    year         INT  NOT NULL,
    last_serial  INT  NOT NULL,
    PRIMARY KEY (county_path, year)
);
ALTER TABLE bulletins ADD COLUMN IF NOT EXISTS county_path TEXT;
ALTER TABLE bulletins ADD COLUMN IF NOT EXISTS serial_year INT;
ALTER TABLE bulletins ADD COLUMN IF NOT EXISTS serial INT;
CREATE UNIQUE INDEX IF NOT EXISTS bulletins_serial_idx ON bulletins (county_path, serial_year, serial) WHERE serial IS NOT NULL;

-- One delivery per (bulletin, channel), queued in the publishing transaction; the sweep sends it through the channel's
-- adapter and marks it, so a retry or a second sweep never sends or counts it twice.
CREATE TABLE IF NOT EXISTS bulletin_deliveries (
    bulletin_id      UUID NOT NULL REFERENCES bulletins(id),
    channel          TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',   -- pending | delivered | failed
    attempts         INT  NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT,
    delivered_at     TIMESTAMPTZ,
    PRIMARY KEY (bulletin_id, channel)
);
CREATE INDEX IF NOT EXISTS bulletin_deliveries_due_idx ON bulletin_deliveries (next_attempt_at) WHERE status = 'pending';
