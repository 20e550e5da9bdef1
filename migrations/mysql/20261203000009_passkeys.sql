-- Passkeys, and how each session began; the same as migrations/sqlite/20261203000009_passkeys.sql,
-- which says what each column is for.
ALTER TABLE sessions ADD COLUMN method VARCHAR(16) NOT NULL DEFAULT 'link';

ALTER TABLE users ADD COLUMN passkey_handle VARCHAR(32);
CREATE UNIQUE INDEX users_passkey_handle ON users (passkey_handle);

CREATE TABLE passkeys (
    id             VARCHAR(36) NOT NULL PRIMARY KEY,
    user_id        VARCHAR(36) NOT NULL,
    credential_key VARCHAR(64) NOT NULL UNIQUE,
    credential_id  TEXT NOT NULL,
    credential     TEXT NOT NULL,
    name           VARCHAR(255) NOT NULL,
    backed_up      BIGINT NOT NULL,
    sign_count     BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT,
    INDEX passkeys_user_id (user_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE passkey_ceremonies (
    ceremony_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    purpose       VARCHAR(16) NOT NULL,
    user_id       VARCHAR(36),
    state         TEXT NOT NULL,
    expires       BIGINT NOT NULL,
    INDEX passkey_ceremonies_expires (expires),
    INDEX passkey_ceremonies_user_id (user_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
