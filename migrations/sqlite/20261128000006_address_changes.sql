-- Changing an account's sign-in address, and emails in the recipient's language.
--
-- address_changes holds one row per requested change: the keyed hash of the token in the link
-- emailed to the new address (never the token), the account, the new address and when the link
-- expires. Confirming marks the row used in the same transaction that changes users.email, so
-- a link changes the address at most once; asking again replaces the account's unused rows.
-- outbox.lang is the language of the request that queued an email (`en`, `de`, ...), in which
-- the delivery worker renders it.
CREATE TABLE address_changes (
    token_hash TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    new_email  TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX address_changes_user_id ON address_changes (user_id);
CREATE INDEX address_changes_expires ON address_changes (expires);
ALTER TABLE outbox ADD COLUMN lang TEXT NOT NULL DEFAULT 'en';
