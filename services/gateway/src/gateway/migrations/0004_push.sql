-- Issue #19. Web Push to phones whose app is closed: each volunteer's registered devices, and the pushes still to send
-- (a row written in the same transaction as its notification, deleted once the push services took it).
CREATE TABLE IF NOT EXISTS push_devices (
    volunteer_id   TEXT NOT NULL,
    device_id      TEXT NOT NULL,          -- the phone's own id for itself
    endpoint       TEXT NOT NULL,          -- the push service's URL for this subscription
    p256dh         TEXT NOT NULL,          -- the subscription's public key (base64url)
    auth           TEXT NOT NULL,          -- the subscription's auth secret (base64url)
    registered_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (volunteer_id, device_id)
);

CREATE TABLE IF NOT EXISTS push_queue (
    notification_id  BIGINT PRIMARY KEY,
    volunteer_id     TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS push_queue_due_idx ON push_queue (not_before);
