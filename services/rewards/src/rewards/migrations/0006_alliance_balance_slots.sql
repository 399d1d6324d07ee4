-- Issue #22 (scale-out). The alliance's own accounts (`alliance:points_issued`, `alliance:hours_issued`,
-- `alliance:points_redeemed`) are debited or credited by nearly every posting, so with one balance row each,
-- two consumer replicas queued on those rows from their posting statement to commit. Each alliance account now
-- keeps its balance in 8 slot rows (`slot` 0-7); a posting statement locks the first slot no other transaction
-- holds (FOR UPDATE SKIP LOCKED) and moves that one. An account's balance is the sum of its slots; every other
-- account has only slot 0. Ledger entries are unchanged (they name the account, not the slot).
ALTER TABLE balances ADD COLUMN slot SMALLINT NOT NULL DEFAULT 0 CHECK (slot >= 0);
ALTER TABLE balances DROP CONSTRAINT balances_pkey;
ALTER TABLE balances ADD PRIMARY KEY (account, unit, slot);
INSERT INTO balances (account, unit, slot, balance)
SELECT a.account, a.unit, s.slot, 0
FROM (VALUES ('alliance:points_issued', 'points'), ('alliance:hours_issued', 'hours'), ('alliance:points_redeemed', 'points')) AS a(account, unit)
CROSS JOIN generate_series(0, 7) AS s(slot)
ON CONFLICT DO NOTHING;
