-- Changing an account's sign-in address, and emails in the recipient's language; the same as
-- migrations/sqlite/20261128000006_address_changes.sql, which says what each column is for.
CREATE TABLE address_changes (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email  TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX address_changes_user_id ON address_changes (user_id);
CREATE INDEX address_changes_expires ON address_changes (expires);
ALTER TABLE outbox ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';
