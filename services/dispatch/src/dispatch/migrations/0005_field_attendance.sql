-- #20 field attendance: the auto check-out sweep finds assignments still checked in after their shift by shift_end.
CREATE INDEX assignments_checked_in_idx ON assignments (shift_end) WHERE status = 'checked_in';
