-- Issue #19. What a phone did offline, replayed by POST /api/v1/sync: each action's outcome is kept under the
-- phone's own id for it, so the same batch sent again (a lost answer, a retry) changes nothing and answers alike.
CREATE TABLE IF NOT EXISTS sync_actions (
    volunteer_id  TEXT NOT NULL,
    action_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    device_at     TIMESTAMPTZ NOT NULL,    -- when the volunteer did it, by the phone's clock
    outcome       TEXT NOT NULL,           -- done | rejected (a retry is not kept)
    status_code   INTEGER NOT NULL,
    result        JSONB,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (volunteer_id, action_id)
);
