-- 0002 pairing: chat accounts bound to owners, and pending pairing requests (codes kept only as keyed hashes).

CREATE TABLE channel_identities (
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, external_id)
);

CREATE INDEX channel_identities_owner_id_idx ON channel_identities (owner_id);

CREATE TABLE pairing_requests (
    id          TEXT PRIMARY KEY,
    channel     TEXT NOT NULL,
    external_id TEXT NOT NULL,
    seed        BYTEA NOT NULL,
    code_hash   BYTEA NOT NULL,
    meta        TEXT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (channel, external_id),
    UNIQUE (code_hash)
);
