-- 0007 sessions_oidc: console sessions kept in the store (keyed by the SHA-256 of their secret) and OpenID Connect subjects linked to users.

CREATE TABLE console_sessions (
    session_key   BYTEA PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method        TEXT NOT NULL CHECK (method IN ('token', 'oidc', 'passkey')),
    token_id      TEXT NULL,
    token_digest  BYTEA NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL
);

CREATE INDEX console_sessions_owner ON console_sessions (owner_id, created_at);

CREATE TABLE oidc_links (
    issuer      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    owner_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX oidc_links_owner ON oidc_links (owner_id);
