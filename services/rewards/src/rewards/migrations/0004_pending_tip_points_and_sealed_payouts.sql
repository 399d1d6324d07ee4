-- Issue #23. Unreviewed tip points wait on `pending:<account>` (no schema change: accounts are text);
-- the daily tip cap needs to know which tips were counted and how many a reporter sent that day;
-- an anonymous payout target is kept only encrypted, on a claim whose account is `payout:<claim_id>`.

-- Every tip counted once, in consumption order: the n-th tip of its reporter on its (China time) day.
CREATE TABLE tip_submissions (
    tip_id       TEXT PRIMARY KEY,
    reporter     TEXT NOT NULL,   -- the reporter's account (volunteer:<id> | claim:<claim_ref>)
    day          DATE NOT NULL,
    nth_today    INTEGER NOT NULL,
    scored       BOOLEAN NOT NULL, -- FALSE: beyond the daily cap, no pending points
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Tips per reporter and day; its row lock orders concurrent consumers counting the same reporter.
CREATE TABLE tip_days (
    reporter  TEXT NOT NULL,
    day       DATE NOT NULL,
    tips      INTEGER NOT NULL,
    PRIMARY KEY (reporter, day)
);

-- AES-GCM (PiiCipher, context = the claim's account) of an outside payout target; `target` no longer holds it.
ALTER TABLE claims ADD COLUMN target_sealed BYTEA;

-- Who decrypted a payout target, when and why (an operator paying it out), written with the reveal.
CREATE TABLE payout_reveals (
    id           BIGSERIAL PRIMARY KEY,
    claim_id     UUID NOT NULL REFERENCES claims (claim_id),
    reason       TEXT NOT NULL,
    revealed_by  TEXT NOT NULL,
    revealed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
