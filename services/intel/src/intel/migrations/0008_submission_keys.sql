-- A phone's retry of a need or a dispute report (Idempotency-Key) answers the first submission instead of making a second.
ALTER TABLE needs ADD COLUMN idempotency_hash TEXT, ADD COLUMN request_hash TEXT;
CREATE UNIQUE INDEX needs_idempotency_idx ON needs (idempotency_hash) WHERE idempotency_hash IS NOT NULL;
ALTER TABLE disputes ADD COLUMN idempotency_hash TEXT, ADD COLUMN request_hash TEXT;
CREATE UNIQUE INDEX disputes_idempotency_idx ON disputes (idempotency_hash) WHERE idempotency_hash IS NOT NULL;
