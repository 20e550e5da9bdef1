-- The Auth.js schema (users, accounts, sessions, verification tokens) in MySQL 8.0+ / MariaDB 10.6+.
--
-- The same tables, columns and indexes as migrations/sqlite and migrations/postgres. Choices that
-- are MySQL's own:
-- * Every table is utf8mb4 with the binary collation: addresses and hashes compare byte for byte,
--   as on the other backends. The default collations fold case AND accents, so `josé@x.org` and
--   `jose@x.org` would be one user. (The service lowercases addresses itself, before the database.)
-- * Columns the service reads are VARCHAR, not TEXT, with lengths the service enforces: MySQL
--   reports TEXT as a BLOB, and an index on it needs a prefix length.
-- * Instants are BIGINT milliseconds since the Unix epoch, as everywhere (docs/architecture.md).
-- * No partial indexes in MySQL: the one on unused links indexes every row of the address.

CREATE TABLE users (
    id             VARCHAR(36) NOT NULL PRIMARY KEY,
    name           VARCHAR(255),
    email          VARCHAR(254) NOT NULL UNIQUE,
    email_verified BIGINT,
    image          VARCHAR(2048),
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- OAuth accounts, kept for Auth.js compatibility; magic-link sign-in does not write them.
CREATE TABLE accounts (
    id                  VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id             VARCHAR(36) NOT NULL,
    type                VARCHAR(64) NOT NULL,
    provider            VARCHAR(191) NOT NULL,
    provider_account_id VARCHAR(191) NOT NULL,
    refresh_token       TEXT,
    access_token        TEXT,
    expires_at          BIGINT,
    token_type          VARCHAR(64),
    scope               TEXT,
    id_token            TEXT,
    session_state       TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (provider, provider_account_id),
    INDEX accounts_user_id (user_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- session_token holds SHA-256(cookie token) in hex, never the cookie value itself.
CREATE TABLE sessions (
    id            VARCHAR(36) NOT NULL PRIMARY KEY,
    session_token CHAR(64) NOT NULL UNIQUE,
    user_id       VARCHAR(36) NOT NULL,
    expires       BIGINT NOT NULL,
    user_agent    VARCHAR(512),
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    INDEX sessions_user_id (user_id),
    INDEX sessions_expires (expires),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- token holds HMAC-SHA256(secret, link token) in hex; code_hash the keyed hash of the short
-- code sent with it. Redeemed rows stay, with used_at set, until they expire.
CREATE TABLE verification_tokens (
    identifier    VARCHAR(254) NOT NULL,
    token         CHAR(64) NOT NULL UNIQUE,
    expires       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    used_at       BIGINT,
    code_hash     CHAR(64),
    code_attempts BIGINT NOT NULL DEFAULT 0,
    UNIQUE (identifier, token),
    INDEX verification_tokens_unused_by_identifier (identifier),
    INDEX verification_tokens_expires (expires)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The outbox: sign-in emails waiting to be delivered (the link sealed), and their delivery
-- state. The database refuses to keep a body once a row is no longer pending.
CREATE TABLE outbox (
    id                  VARCHAR(36) NOT NULL PRIMARY KEY,
    kind                VARCHAR(16) NOT NULL DEFAULT 'sign_in',
    recipient           VARCHAR(254) NOT NULL,
    link_token_hash     CHAR(64) NOT NULL,
    sealed_body         BLOB,
    link_expires        BIGINT NOT NULL,
    status              VARCHAR(16) NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
    attempts            BIGINT NOT NULL DEFAULT 0,
    next_attempt_at     BIGINT NOT NULL,
    last_error          VARCHAR(1000),
    provider_message_id VARCHAR(255),
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    CHECK (status = 'pending' OR sealed_body IS NULL),
    INDEX outbox_pending_due (status, next_attempt_at),
    INDEX outbox_created (created_at),
    INDEX outbox_status_created (status, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Rate-limit counters (GCRA): one row per keyed-hash bucket, its theoretical arrival time in ms.
CREATE TABLE rate_limits (
    bucket VARCHAR(191) NOT NULL PRIMARY KEY,
    tat    BIGINT NOT NULL,
    INDEX rate_limits_tat (tat)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
