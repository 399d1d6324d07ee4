-- Blind indexes are 32-byte HMAC digests: stored as bytea rather than 64 characters of hex, each value and each entry
-- of their two unique indexes is about half the size. The roster import writes both indexes for every person, and
-- their keys are random, so every leaf page is dirtied (and after each checkpoint written whole into the WAL once
-- more); fewer, smaller pages are that much less work (docs/performance.md, "Province import"). bytea compares byte
-- by byte, as the "C" collation of 0003 did.
ALTER TABLE volunteers
    ALTER COLUMN national_id_index TYPE BYTEA USING decode(national_id_index, 'hex'),
    ALTER COLUMN phone_index TYPE BYTEA USING decode(phone_index, 'hex');
