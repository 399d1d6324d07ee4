-- Issue #22 (scale-out). A fetch's tip count (the daily cap, migration 0007) in one call: claim the tips never counted,
-- add them to their reporters' `tip_days` and place each, then read back every tip's place and whether an earlier
-- fetch scored it. One statement runs as its own transaction (autocommit), so the count still commits apart from the
-- fetch and holds a reporter's `tip_days` row only for the call: one round trip after the pool's checkout where there
-- were five (BEGIN, SELECT 1, claim and count, place, COMMIT). Claims lock tips in `tip_id` order and counts lock `tip_days` rows in
-- (reporter, day) order, every claim before any count, as before: two fetches never wait on each other in a cycle.
CREATE FUNCTION count_tips(tip_ids TEXT[], reporters TEXT[], days DATE[])
RETURNS TABLE (tip_id TEXT, nth INTEGER, scored BOOLEAN) LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    fresh TEXT[];
BEGIN
    WITH claimed AS (
        INSERT INTO tip_counts AS c (tip_id, reporter, day, nth_today)
        SELECT b.tip_id, b.reporter, b.day, 0 FROM unnest(tip_ids, reporters, days) AS b(tip_id, reporter, day) ORDER BY b.tip_id
        ON CONFLICT ON CONSTRAINT tip_counts_pkey DO NOTHING
        RETURNING c.tip_id
    )
    SELECT array_agg(claimed.tip_id) INTO fresh FROM claimed;
    IF fresh IS NOT NULL THEN
        WITH batch AS (
            SELECT b.* FROM unnest(tip_ids, reporters, days) WITH ORDINALITY AS b(tip_id, reporter, day, ord) WHERE b.tip_id = ANY(fresh)
        ),
        per AS (SELECT b.reporter, b.day, count(*)::int AS n FROM batch b GROUP BY b.reporter, b.day),
        counted AS (
            INSERT INTO tip_days AS d (reporter, day, tips) SELECT per.reporter, per.day, per.n FROM per ORDER BY 1, 2
            ON CONFLICT ON CONSTRAINT tip_days_pkey DO UPDATE SET tips = d.tips + excluded.tips
            RETURNING d.reporter, d.day, d.tips
        ),
        placed AS (
            SELECT b.tip_id, k.tips - p.n + row_number() OVER (PARTITION BY b.reporter, b.day ORDER BY b.ord)::int AS nth
            FROM batch b JOIN per p ON p.reporter = b.reporter AND p.day = b.day JOIN counted k ON k.reporter = b.reporter AND k.day = b.day
        )
        UPDATE tip_counts c SET nth_today = placed.nth FROM placed WHERE c.tip_id = placed.tip_id;
    END IF;
    RETURN QUERY
        SELECT c.tip_id, c.nth_today, s.tip_id IS NOT NULL
        FROM tip_counts c LEFT JOIN tip_submissions s ON s.tip_id = c.tip_id
        WHERE c.tip_id = ANY(tip_ids);
END $$;
