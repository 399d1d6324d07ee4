-- #20 field attendance: the auto check-out sweep finds assignments still checked in after their shift by shift_end.
CREATE INDEX assignments_checked_in_idx ON assignments (shift_end) WHERE status = 'checked_in';

-- #20 hours approval: hours of a check-out are pending until a station admin approves them (flagged attendance), or
-- approved at once by rule (nothing flagged); declined hours stay with the reason. Only approved hours are published.
ALTER TABLE assignments ADD COLUMN hours_status TEXT CHECK (hours_status IN ('pending', 'approved', 'declined'));
ALTER TABLE assignments ADD COLUMN hours_decided_by TEXT;
ALTER TABLE assignments ADD COLUMN hours_decided_at TIMESTAMPTZ;
ALTER TABLE assignments ADD COLUMN hours_decline_reason TEXT;
-- Hours checked out before approval existed were published then: they count as approved by rule.
UPDATE assignments SET hours_status = 'approved', hours_decided_by = 'rule', hours_decided_at = checked_out_at
WHERE status = 'checked_out';
CREATE INDEX assignments_hours_pending_idx ON assignments (shift_end) WHERE hours_status = 'pending';
