-- #18 staff work an operation's offers in bulk: list them by status, cancel some, offer a lost slot again.
-- `reoffered_at`: when staff had this declined/expired/cancelled slot offered again (through the backfill wave), so a
-- repeated re-offer of the same assignment answers as the first did and offers nobody twice.
ALTER TABLE assignments ADD COLUMN reoffered_at TIMESTAMPTZ;
ALTER TABLE assignments ADD COLUMN cancelled_by TEXT;
CREATE INDEX assignments_operation_status_idx ON assignments (operation_id, status, offered_at);
