-- Fewer index updates per ledger entry on the hot path: `seq` comes from its own sequence (no unique
-- index needed), and only entries debiting a person or claim (reversals, redemptions, claims) need the
-- debit-side index; credits from the alliance's issuing accounts are the bulk and skip it.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_seq_key;
DROP INDEX ledger_entries_debit_idx;
CREATE INDEX ledger_entries_debit_idx ON ledger_entries (debit_account, seq) WHERE debit_account NOT LIKE 'alliance:%';
