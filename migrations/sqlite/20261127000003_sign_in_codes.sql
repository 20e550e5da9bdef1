-- The short code sent with each link, for signing in on another device: its keyed hash, bound
-- to the link (NULL for links issued before codes existed), and the wrong tries counted
-- against it. Using the link or the code uses the row, so both stop working together.
ALTER TABLE verification_tokens ADD COLUMN code_hash TEXT;
ALTER TABLE verification_tokens ADD COLUMN code_attempts INTEGER NOT NULL DEFAULT 0;
