-- Issue #20: the digital volunteer card. A volunteer gets a human number (printed on the card and carried in its QR
-- instead of the identity number; existing volunteers are numbered in the order they are stored). Every card issued
-- is kept (serial, validity, the signed QR text) so the same card is handed out again until it nears its end, and
-- every card of a volunteer still in its validity is revoked in the transaction that suspends or retires them.
-- A plain sequence default, not an identity column: the roster import stages rows in a table made LIKE volunteers,
-- which copies defaults but would leave an identity column NULL. Numbers may have gaps (a rolled-back import).
CREATE SEQUENCE volunteer_number_seq;
ALTER TABLE volunteers ADD COLUMN volunteer_number BIGINT;
UPDATE volunteers AS v SET volunteer_number = n.number
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS number FROM volunteers) AS n
WHERE v.id = n.id;
SELECT setval('volunteer_number_seq', coalesce((SELECT max(volunteer_number) FROM volunteers), 0) + 1, false);
ALTER TABLE volunteers ALTER COLUMN volunteer_number SET DEFAULT nextval('volunteer_number_seq'),
                       ALTER COLUMN volunteer_number SET NOT NULL;
ALTER SEQUENCE volunteer_number_seq OWNED BY volunteers.volunteer_number;
CREATE UNIQUE INDEX volunteers_number_idx ON volunteers (volunteer_number);

CREATE TABLE volunteer_cards (
    serial             UUID PRIMARY KEY,
    volunteer_id       UUID NOT NULL REFERENCES volunteers (id),
    volunteer_version  BIGINT NOT NULL,   -- the volunteer row's version the card shows; a newer version gets a new card
    kid                TEXT NOT NULL,     -- the signing key's id
    issued_at          TIMESTAMPTZ NOT NULL,
    expires_at         TIMESTAMPTZ NOT NULL,
    qr_text            TEXT NOT NULL
);
CREATE INDEX volunteer_cards_holder_idx ON volunteer_cards (volunteer_id, expires_at DESC);

CREATE TABLE card_revocations (
    serial        UUID PRIMARY KEY REFERENCES volunteer_cards (serial),
    volunteer_id  UUID NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,  -- the card's own end: past it the card is refused anyway and leaves the list
    reason        TEXT NOT NULL,
    revoked_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX card_revocations_live_idx ON card_revocations (expires_at);
