-- An attendance step a phone synced late or with a clock ahead of the server: kept, and flagged for staff to confirm.
ALTER TABLE assignments ADD COLUMN review_reason TEXT;
