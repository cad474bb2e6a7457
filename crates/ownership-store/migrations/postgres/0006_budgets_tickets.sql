-- 0006 budgets_tickets: the wrong-pairing-code budgets, counted inside the transaction that evaluates a code, per user and per channel (each budget is one instant, when it is whole again: a generic cell rate); and single-use stream tickets.

CREATE TABLE pairing_failures (
    scope         TEXT        NOT NULL CHECK (scope IN ('user', 'channel')),
    key           TEXT        NOT NULL,
    spent_until   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, key)
);

-- Stream tickets: single-use, short-lived stand-ins for a token in the event stream's URL (only their digest is kept).
CREATE TABLE stream_tickets (
    digest        BYTEA       PRIMARY KEY,
    owner_id      TEXT        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_digest  BYTEA       NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX stream_tickets_expires_at_idx ON stream_tickets (expires_at);
