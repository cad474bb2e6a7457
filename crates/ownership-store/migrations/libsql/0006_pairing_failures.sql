-- 0006 pairing_failures: the wrong-pairing-code budgets, counted inside the transaction that evaluates a code, per user and per channel: each budget is one instant, when it is whole again (a generic cell rate).

CREATE TABLE pairing_failures (
    scope         TEXT    NOT NULL CHECK (scope IN ('user', 'channel')),
    key           TEXT    NOT NULL,
    spent_until   INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
) STRICT;
