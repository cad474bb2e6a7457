-- 0003 audit: the hash-chained audit log and its recorded head.

CREATE TABLE audit_events (
    seq       BIGINT PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT NOT NULL,
    owner_id  TEXT NULL, -- no foreign key: events outlive the users they name
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash      BYTEA NOT NULL
);

CREATE INDEX audit_events_owner_id_seq_idx ON audit_events (owner_id, seq);

-- The last event's number and hash. Every mutating transaction locks this row first
-- (SELECT ... FOR UPDATE), which serializes mutations so the chain never forks.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea);
