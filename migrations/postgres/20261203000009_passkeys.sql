-- Passkeys, and how each session began; the same as migrations/sqlite/20261203000009_passkeys.sql,
-- which says what each column is for.
ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'link';

ALTER TABLE users ADD COLUMN passkey_handle TEXT;
CREATE UNIQUE INDEX users_passkey_handle ON users (passkey_handle);

CREATE TABLE passkeys (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_key TEXT NOT NULL UNIQUE,
    credential_id  TEXT NOT NULL,
    credential     TEXT NOT NULL,
    name           TEXT NOT NULL,
    backed_up      BIGINT NOT NULL,
    sign_count     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

CREATE TABLE passkey_ceremonies (
    ceremony_hash TEXT PRIMARY KEY NOT NULL,
    purpose       TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    state         TEXT NOT NULL,
    expires       BIGINT NOT NULL
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires);
CREATE INDEX passkey_ceremonies_user_id ON passkey_ceremonies (user_id);
