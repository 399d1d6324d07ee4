-- Wrong login-code guesses per phone live in the shared rate buckets (`code_guesses`, per day) since the rate limiter
-- became one; the per-code counters migration 0002 added have been written by nothing since.
ALTER TABLE login_codes DROP COLUMN IF EXISTS failures, DROP COLUMN IF EXISTS failures_since;
