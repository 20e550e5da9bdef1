-- The Auth.js schema (users, accounts, sessions, verification tokens) in PostgreSQL.
--
-- The same tables, columns and indexes as migrations/sqlite, in PostgreSQL's types. Instants are
-- BIGINT milliseconds since the Unix epoch on every backend (docs/architecture.md says why):
-- one encoding, compared as integers, never reinterpreted by a session's time zone.
-- Ids are UUIDv7 text. Addresses are compared byte for byte: the service lowercases them before
-- they reach the database, so no collation decides who is who.

CREATE TABLE users (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT,
    email          TEXT NOT NULL UNIQUE,
    email_verified BIGINT,
    image          TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
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
    expires_at          BIGINT,
    token_type          TEXT,
    scope               TEXT,
    id_token            TEXT,
    session_state       TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (provider, provider_account_id)
);
CREATE INDEX accounts_user_id ON accounts (user_id);

-- session_token holds SHA-256(cookie token) in hex, never the cookie value itself.
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY NOT NULL,
    session_token TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires       BIGINT NOT NULL,
    user_agent    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires);

-- token holds HMAC-SHA256(secret, link token) in hex; code_hash the keyed hash of the short
-- code sent with it. Redeemed rows stay, with used_at set, until they expire.
CREATE TABLE verification_tokens (
    identifier    TEXT NOT NULL,
    token         TEXT NOT NULL UNIQUE,
    expires       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    used_at       BIGINT,
    code_hash     TEXT,
    code_attempts BIGINT NOT NULL DEFAULT 0,
    UNIQUE (identifier, token)
);
CREATE INDEX verification_tokens_unused_by_identifier ON verification_tokens (identifier) WHERE used_at IS NULL;
CREATE INDEX verification_tokens_expires ON verification_tokens (expires);

-- The outbox: sign-in emails waiting to be delivered (the link sealed), and their delivery
-- state. The database refuses to keep a body once a row is no longer pending.
CREATE TABLE outbox (
    id                  TEXT PRIMARY KEY NOT NULL,
    kind                TEXT NOT NULL DEFAULT 'sign_in',
    recipient           TEXT NOT NULL,
    link_token_hash     TEXT NOT NULL,
    sealed_body         BYTEA,
    link_expires        BIGINT NOT NULL,
    status              TEXT NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
    attempts            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT NOT NULL,
    last_error          TEXT,
    provider_message_id TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    CHECK (status = 'pending' OR sealed_body IS NULL)
);
CREATE INDEX outbox_pending_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_created ON outbox (created_at);
CREATE INDEX outbox_status_created ON outbox (status, created_at);

-- Rate-limit counters (GCRA): one row per keyed-hash bucket, its theoretical arrival time in ms.
CREATE TABLE rate_limits (
    bucket TEXT PRIMARY KEY NOT NULL,
    tat    BIGINT NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);
