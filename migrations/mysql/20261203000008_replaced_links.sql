-- When a newer link to the same address replaced this unused one; the same as
-- migrations/sqlite/20261203000008_replaced_links.sql, which says why it is kept.
ALTER TABLE verification_tokens ADD COLUMN replaced_at BIGINT;
