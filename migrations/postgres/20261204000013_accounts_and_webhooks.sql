-- Disabled accounts and webhooks; the same as
-- migrations/sqlite/20261204000013_accounts_and_webhooks.sql, which says what each column is for.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
ALTER TABLE outbox ADD COLUMN ordering_key TEXT;
CREATE INDEX outbox_ordering ON outbox (ordering_key, recipient);
