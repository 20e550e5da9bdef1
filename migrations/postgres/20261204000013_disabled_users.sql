-- Disabled accounts; the same as migrations/sqlite/20261204000013_disabled_users.sql, which says
-- what the column is for.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
