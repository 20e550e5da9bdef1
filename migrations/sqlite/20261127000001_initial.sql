-- The Auth.js schema (users, accounts, sessions, verification tokens) in SQLite.
--
-- Columns follow the Auth.js Prisma schema in snake_case. Instants are INTEGER milliseconds
-- since the Unix epoch, which is how Prisma itself stores DateTime in SQLite, and which compares
-- correctly in SQL (RFC 3339 text does not, once fractional seconds vary in length).
-- Ids are UUIDv7 text: unique without coordination and ordered by creation time.

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT,
    email          TEXT NOT NULL UNIQUE,
    email_verified INTEGER,
    image          TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);

-- OAuth accounts, kept for Auth.js compatibility; magic-link sign-in does not write them.
CREATE TABLE accounts (
    id                  TEXT PRIMARY KEY NOT NULL,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type                TEXT NOT NULL,
    provider            TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    refresh_token       TEXT,
    access_token        TEXT,
    expires_at          INTEGER,
    token_type          TEXT,
    scope               TEXT,
    id_token            TEXT,
    session_state       TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (provider, provider_account_id)
);
CREATE INDEX accounts_user_id ON accounts (user_id);

-- session_token holds SHA-256(cookie token) in hex, never the cookie value itself.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    session_token TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires       INTEGER NOT NULL,
    user_agent    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires);

-- token holds HMAC-SHA256(secret, link token) in hex. Redeemed rows stay, with used_at set,
-- until they expire, so that a second click can be told "already used" rather than "not valid".
CREATE TABLE verification_tokens (
    identifier TEXT NOT NULL,
    token      TEXT NOT NULL UNIQUE,
    expires    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    UNIQUE (identifier, token)
);
CREATE INDEX verification_tokens_unused_by_identifier ON verification_tokens (identifier) WHERE used_at IS NULL;
CREATE INDEX verification_tokens_expires ON verification_tokens (expires);
