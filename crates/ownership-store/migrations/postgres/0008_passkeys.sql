-- 0008 passkeys: WebAuthn credentials users registered to sign in to the console.

CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    credential    TEXT NOT NULL,
    sign_count    BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ NULL
);

CREATE INDEX passkeys_owner_id ON passkeys (owner_id);
