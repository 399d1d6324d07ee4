-- Issue #23, item 2: the stored mask showed the first 3 and last 4 characters of the identity number, which with a
-- birth date left 1-2 candidates. Masks are now the first and the last character only (`3****************5`); the
-- old ones are cut down in place (both kept characters are in the old mask, nothing needs decrypting).
UPDATE volunteers
SET national_id_masked = left(national_id_masked, 1) || repeat('*', 16) || right(national_id_masked, 1)
WHERE national_id_masked ~ '^[0-9]{3}\*{11}[0-9]{3}[0-9X]$';
