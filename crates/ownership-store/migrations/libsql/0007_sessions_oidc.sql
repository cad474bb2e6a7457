-- 0007 sessions_oidc: console sessions kept in the store (keyed by the SHA-256 of their secret) and OpenID Connect subjects linked to users.

CREATE TABLE console_sessions (
    session_key   BLOB    NOT NULL PRIMARY KEY,
    owner_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method        TEXT    NOT NULL CHECK (method IN ('token', 'oidc', 'passkey')),
    token_id      TEXT,
    token_digest  BLOB,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX console_sessions_owner ON console_sessions (owner_id, created_at);

CREATE TABLE oidc_links (
    issuer      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    owner_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT;

CREATE INDEX oidc_links_owner ON oidc_links (owner_id);
