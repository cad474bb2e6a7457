-- 0001 users_tokens: user accounts, their bearer tokens (stored as SHA-256 digests only) and store settings.

CREATE TABLE users (
    id         TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    status     TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- Listings page through users by id in byte order (as libSQL compares text), whatever
-- the database's default collation.
CREATE INDEX users_id_bytewise_idx ON users (id COLLATE "C");

CREATE TABLE tokens (
    id             TEXT PRIMARY KEY,
    owner_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digest         BYTEA NOT NULL UNIQUE,
    kinds          TEXT NOT NULL,
    label          TEXT NULL,
    display_prefix TEXT NOT NULL,
    origin         TEXT NOT NULL CHECK (origin IN ('issued', 'provisioned', 'legacy')),
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NULL,
    revoked_at     TIMESTAMPTZ NULL,
    last_used_at   TIMESTAMPTZ NULL,
    replaced_by    TEXT NULL
);

CREATE INDEX tokens_owner_id_idx ON tokens (owner_id);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
