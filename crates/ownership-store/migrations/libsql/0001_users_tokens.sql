-- 0001 users_tokens: user accounts, their bearer tokens (SHA-256 digests only, never values) and store settings.
-- Times are INTEGER unix microseconds (UTC); bytes are BLOBs; ids are validated TEXT.

CREATE TABLE users (
    id          TEXT    NOT NULL PRIMARY KEY,
    role        TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    status      TEXT    NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    id              TEXT    NOT NULL PRIMARY KEY,
    owner_id        TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest          BLOB    NOT NULL UNIQUE,
    kinds           TEXT    NOT NULL,
    label           TEXT,
    display_prefix  TEXT    NOT NULL,
    origin          TEXT    NOT NULL CHECK (origin IN ('issued', 'provisioned', 'legacy')),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER,
    last_used_at    INTEGER,
    replaced_by     TEXT
) STRICT;

CREATE INDEX tokens_owner_id ON tokens (owner_id);

CREATE TABLE settings (
    key    TEXT NOT NULL PRIMARY KEY,
    value  BLOB NOT NULL
) STRICT;
