-- Every statement that stores notifications tells all gateway processes whose feeds changed (NOTIFY is delivered at
-- commit, and not at all on rollback): each process wakes those people's open streams, so a phone connected to one
-- replica hears at once of what another replica's consumer stored. Payloads stay under PostgreSQL's 8000-byte limit:
-- the feed keys go out one per line in chunks of 150 (a summit batch of 1,000 offers is 7 notices).
CREATE OR REPLACE FUNCTION notify_feed_changes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk text;
BEGIN
    FOR chunk IN
        SELECT string_agg(volunteer_id, E'\n') FROM (
            SELECT volunteer_id, (row_number() OVER (ORDER BY volunteer_id) - 1) / 150 AS part
            FROM (SELECT DISTINCT volunteer_id FROM stored_notifications) people
        ) numbered GROUP BY part
    LOOP
        PERFORM pg_notify('gateway_feeds', chunk);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER notifications_wake_feeds AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS stored_notifications
    FOR EACH STATEMENT EXECUTE FUNCTION notify_feed_changes();
