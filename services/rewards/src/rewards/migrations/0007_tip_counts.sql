-- Issue #22 (scale-out). A fetch counts its tips (the daily cap) in a short transaction of its own, committed before
-- the fetch's business transaction, so two consumer replicas sharing a reporter wait on the reporter's `tip_days` row
-- only for that short transaction, not for the other's whole fetch. Each counted tip keeps its place here: a fetch
-- retried after its count committed (its business transaction failed or was rolled back) reads the place back
-- instead of counting the tip again, so the cap stays exact. `tip_submissions` still records a tip once it is scored.
CREATE TABLE tip_counts (
    tip_id     TEXT PRIMARY KEY,
    reporter   TEXT NOT NULL,     -- the reporter's account (volunteer:<id> | claim:<claim_ref>)
    day        DATE NOT NULL,
    nth_today  INTEGER NOT NULL
);

-- Tips counted before this migration keep their place.
INSERT INTO tip_counts (tip_id, reporter, day, nth_today) SELECT tip_id, reporter, day, nth_today FROM tip_submissions;
