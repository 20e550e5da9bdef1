-- Optional passwords; the same as migrations/sqlite/20261128000007_passwords.sql, which says
-- what each column is for.
CREATE TABLE passwords (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
