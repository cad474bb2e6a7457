-- 0006 budgets_tickets: the wrong-pairing-code budgets, counted inside the transaction that evaluates a code, per user and per channel (each budget is one instant, when it is whole again: a generic cell rate); and single-use stream tickets.

CREATE TABLE pairing_failures (
    scope         TEXT    NOT NULL CHECK (scope IN ('user', 'channel')),
    key           TEXT    NOT NULL,
    spent_until   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;

-- Stream tickets: single-use, short-lived stand-ins for a token in the event stream's URL (only their digest is kept).
CREATE TABLE stream_tickets (
    digest        BLOB    NOT NULL PRIMARY KEY,
    owner_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest  BLOB    NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX stream_tickets_expires_at ON stream_tickets (expires_at);
