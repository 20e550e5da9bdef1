-- Changing an account's sign-in address, and emails in the recipient's language; the same as
-- migrations/sqlite/20261128000006_address_changes.sql, which says what each column is for.
CREATE TABLE address_changes (
    token_hash CHAR(64) NOT NULL PRIMARY KEY,
    user_id    VARCHAR(36) NOT NULL,
    new_email  VARCHAR(254) NOT NULL,
    expires    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    INDEX address_changes_user_id (user_id),
    INDEX address_changes_expires (expires),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
ALTER TABLE outbox ADD COLUMN lang VARCHAR(35) NOT NULL DEFAULT 'en';
