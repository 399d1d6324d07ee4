-- Issue #18 (console, rewards screen). A redemption is a request until a station hands the benefit over
-- (`handed_over`) or staff decline it with a reason (`declined`): a decline refunds the points through the
-- ledger once (`refund_entry_id`, effect key `redemption:<id>|redemption.refund`) and puts the stock back.
ALTER TABLE redemptions
    ADD COLUMN status          TEXT NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'handed_over', 'declined')),
    ADD COLUMN decided_by      TEXT,
    ADD COLUMN decided_at      TIMESTAMPTZ,
    ADD COLUMN decline_reason  TEXT,
    ADD COLUMN refund_entry_id UUID REFERENCES ledger_entries (entry_id);
CREATE INDEX redemptions_status_idx ON redemptions (status, created_at DESC);
