-- 0003 audit: the hash-chained audit log and its recorded head (seeded with seq 0 and the genesis hash).
-- owner_id has no foreign key: events outlive the users they mention.

CREATE TABLE audit_events (
    seq        INTEGER NOT NULL PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT    NOT NULL,
    owner_id   TEXT,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL,
    details    TEXT    NOT NULL,
    prev_hash  BLOB    NOT NULL,
    hash       BLOB    NOT NULL
) STRICT;

CREATE INDEX audit_events_owner_seq ON audit_events (owner_id, seq);

CREATE TABLE audit_head (
    id    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  BLOB    NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, X'0000000000000000000000000000000000000000000000000000000000000000');
