-- Optional passwords; the same as migrations/sqlite/20261128000007_passwords.sql, which says
-- what each column is for.
CREATE TABLE passwords (
    user_id    VARCHAR(36) NOT NULL PRIMARY KEY,
    hash       VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
