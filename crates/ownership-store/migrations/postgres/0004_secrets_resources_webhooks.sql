-- 0004 secrets_resources_webhooks: per-owner wrapped data keys and sealed secrets, resource credentials and their grants, webhook endpoints and deliveries.

CREATE TABLE owner_keys (
    owner_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    nonce       BYTEA NOT NULL,
    wrapped     BYTEA NOT NULL,
    key_version INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE secrets (
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    nonce       BYTEA NOT NULL,
    ciphertext  BYTEA NOT NULL,
    key_version INTEGER NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner_id, name)
);

CREATE TABLE resources (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    external_ref TEXT NULL,
    token_digest BYTEA NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ NULL
);

CREATE INDEX resources_owner_id_idx ON resources (owner_id);

CREATE TABLE resource_grants (
    resource_id TEXT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    secret_name TEXT NOT NULL,
    PRIMARY KEY (resource_id, secret_name)
);

CREATE TABLE webhook_endpoints (
    owner_id       TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    url            TEXT NOT NULL,
    secret_nonce   BYTEA NOT NULL,
    secret_ct      BYTEA NOT NULL,
    secret_version INTEGER NOT NULL,
    prev_nonce     BYTEA NULL,
    prev_ct        BYTEA NULL,
    prev_version   INTEGER NULL,
    prev_until     TIMESTAMPTZ NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_result     TEXT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX webhook_deliveries_state_next_idx ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_owner_created_idx ON webhook_deliveries (owner_id, created_at);
