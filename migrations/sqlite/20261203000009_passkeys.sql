-- Passkeys (passkey.enabled), and how each session began.
--
-- sessions.method: how the person proved who they are ("link", "code", "password",
-- "passkey"), for the account page and an ID token's `amr`. Sessions opened before this
-- migration were opened by link or code; "link" is the nearer truth.
ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'link';

-- users.passkey_handle: 16 random bytes in hex that the person's authenticators store and give
-- back when signing in. Not the address (an authenticator may show it), not the id (OpenID
-- Connect hands that to apps). Set when the first passkey ceremony begins.
ALTER TABLE users ADD COLUMN passkey_handle TEXT;
CREATE UNIQUE INDEX users_passkey_handle ON users (passkey_handle);

-- One row per passkey. credential_id is the authenticator's id in base64url; credential_key
-- its SHA-256 in hex, the unique key: ids run to 1023 bytes, and a fixed-width unique key works
-- the same on every database. credential is the WebAuthn
-- adapter's serialised credential (public key, flags): public, opaque to the rest. sign_count
-- is the authenticator's counter (0 when it keeps none), guarded on every use; backed_up says
-- the key is synced (iCloud Keychain, Google Password Manager, ...). Deleted with its user.
CREATE TABLE passkeys (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_key TEXT NOT NULL UNIQUE,
    credential_id  TEXT NOT NULL,
    credential     TEXT NOT NULL,
    name           TEXT NOT NULL,
    backed_up      INTEGER NOT NULL,
    sign_count     INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);
CREATE INDEX passkeys_user_id ON passkeys (user_id);

-- Ceremonies in progress, for a few minutes: the adapter's state (the challenge) stored under
-- SHA-256 of a token only the browser that began it holds, taken (deleted) by the answer, so
-- every instance can finish it, and only once. purpose is "registration" or "sign-in";
-- user_id whose account a registration is for.
CREATE TABLE passkey_ceremonies (
    ceremony_hash TEXT PRIMARY KEY NOT NULL,
    purpose       TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    state         TEXT NOT NULL,
    expires       INTEGER NOT NULL
);
CREATE INDEX passkey_ceremonies_expires ON passkey_ceremonies (expires);
CREATE INDEX passkey_ceremonies_user_id ON passkey_ceremonies (user_id);
