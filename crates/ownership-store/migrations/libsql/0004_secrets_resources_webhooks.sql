-- 0004 secrets_resources_webhooks: per-owner wrapped data keys and sealed secrets, resources with their grants, webhook endpoints and deliveries.

CREATE TABLE owner_keys (
    owner_id     TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    nonce        BLOB    NOT NULL,
    wrapped      BLOB    NOT NULL,
    key_version  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE secrets (
    owner_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    nonce        BLOB    NOT NULL,
    ciphertext   BLOB    NOT NULL,
    key_version  INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (owner_id, name)
) STRICT;

CREATE TABLE resources (
    id            TEXT    NOT NULL PRIMARY KEY,
    owner_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,
    external_ref  TEXT,
    token_digest  BLOB    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;

CREATE INDEX resources_owner_id ON resources (owner_id);

CREATE TABLE resource_grants (
    resource_id  TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    secret_name  TEXT NOT NULL,
    PRIMARY KEY (resource_id, secret_name)
) STRICT;

CREATE TABLE webhook_endpoints (
    owner_id        TEXT    NOT NULL PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    url             TEXT    NOT NULL,
    secret_nonce    BLOB    NOT NULL,
    secret_ct       BLOB    NOT NULL,
    secret_version  INTEGER NOT NULL,
    prev_nonce      BLOB,
    prev_ct         BLOB,
    prev_version    INTEGER,
    prev_until      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE webhook_deliveries (
    id               TEXT    NOT NULL PRIMARY KEY,
    owner_id         TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_type       TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_result      TEXT,
    created_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_owner_created ON webhook_deliveries (owner_id, created_at);
