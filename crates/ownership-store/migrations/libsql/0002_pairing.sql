-- 0002 pairing: chat accounts bound to owners, and pending pairing requests (keyed code hashes only, never codes).

CREATE TABLE channel_identities (
    channel      TEXT    NOT NULL,
    external_id  TEXT    NOT NULL,
    owner_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (channel, external_id)
) STRICT;

CREATE INDEX channel_identities_owner_id ON channel_identities (owner_id);

CREATE TABLE pairing_requests (
    id           TEXT    NOT NULL PRIMARY KEY,
    channel      TEXT    NOT NULL,
    external_id  TEXT    NOT NULL,
    seed         BLOB    NOT NULL,
    code_hash    BLOB    NOT NULL,
    meta         TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    UNIQUE (channel, external_id),
    UNIQUE (code_hash)
) STRICT;

CREATE INDEX pairing_requests_channel_expires ON pairing_requests (channel, expires_at);
