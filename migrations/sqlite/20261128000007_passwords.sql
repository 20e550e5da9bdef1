-- Optional passwords (password.enabled): at most one per user, beside the magic link.
--
-- hash is the argon2id PHC string ($argon2id$v=19$m=...,t=...,p=...$salt$hash): it names its own
-- parameters, so hashes made before a configuration change still verify, and are replaced at
-- the next successful sign-in. The password itself is never stored. A separate table rather
-- than a column of users, so reading a session (the hot path) never loads a hash, and rather
-- than a row of accounts, which is kept for OAuth providers and their tokens.
CREATE TABLE passwords (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
