-- Blind indexes are hex digests: compared byte by byte ("C"), not through the database locale's collation, which
-- only slows every look-up and every insert into their unique indexes (equality is the same either way).
ALTER TABLE volunteers
    ALTER COLUMN national_id_index TYPE TEXT COLLATE "C",
    ALTER COLUMN phone_index TYPE TEXT COLLATE "C";
-- Most volunteers of an imported roster have no grid and no recruiter: they stay out of those two indexes, which
-- only answer "who is in this grid" and "who did this grid worker recruit".
DROP INDEX volunteers_grid_idx;
CREATE INDEX volunteers_grid_idx ON volunteers (grid_id) WHERE grid_id IS NOT NULL;
DROP INDEX volunteers_recruiter_idx;
CREATE INDEX volunteers_recruiter_idx ON volunteers (recruited_by) WHERE recruited_by IS NOT NULL;
