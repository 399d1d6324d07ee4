-- #20 attendance at project shifts: a confirmed sign-up is checked in and out like an operation's assignment (same
-- proofs: the QR of the shift's place or its geofence), and its hours go through the same approval queue.
-- Each project has one check-in secret; a place's tokens are derived from it and the place's id (uuid5 of the
-- project and the place number), so a place's printed sheet or screen serves every shift held there.
ALTER TABLE projects ADD COLUMN checkin_code TEXT NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '');
ALTER TABLE projects ADD COLUMN geofence_m INTEGER NOT NULL DEFAULT 300 CHECK (geofence_m BETWEEN 20 AND 5000);

-- The sign-up stays 'confirmed' (it remains the volunteer's commitment); attendance is its times, hours and review.
ALTER TABLE shift_signups ADD COLUMN checked_in_at TIMESTAMPTZ;
ALTER TABLE shift_signups ADD COLUMN checked_out_at TIMESTAMPTZ;
ALTER TABLE shift_signups ADD COLUMN hours DOUBLE PRECISION;
ALTER TABLE shift_signups ADD COLUMN review_reason TEXT;
ALTER TABLE shift_signups ADD COLUMN hours_status TEXT CHECK (hours_status IN ('pending', 'approved', 'declined'));
ALTER TABLE shift_signups ADD COLUMN hours_decided_by TEXT;
ALTER TABLE shift_signups ADD COLUMN hours_decided_at TIMESTAMPTZ;
ALTER TABLE shift_signups ADD COLUMN hours_decline_reason TEXT;
CREATE INDEX shift_signups_checked_in_idx ON shift_signups (ends_at) WHERE checked_in_at IS NOT NULL AND checked_out_at IS NULL;
CREATE INDEX shift_signups_hours_pending_idx ON shift_signups (ends_at) WHERE hours_status = 'pending';
