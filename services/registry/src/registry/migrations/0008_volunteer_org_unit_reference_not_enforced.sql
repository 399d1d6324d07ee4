-- A volunteer's org unit is checked by the code that writes the volunteer (the roster import against the org units it
-- loaded, registrations and the admin API by `org_unit_path`), and org units are never deleted (they move or are
-- renamed). The reference stays declared, for readers and tools, but is no longer checked row by row: the check ran a
-- `SELECT … FOR KEY SHARE` on the org unit for every imported volunteer (1,000,000 of them for a province roster,
-- ~4 µs of PostgreSQL time each, plus the trigger queue), and two import transactions locking the same station row
-- share it through a MultiXact. tests/registry check that every imported volunteer has its org unit. (As 0004.)
ALTER TABLE volunteers ALTER CONSTRAINT volunteers_org_unit_id_fkey NOT ENFORCED;
