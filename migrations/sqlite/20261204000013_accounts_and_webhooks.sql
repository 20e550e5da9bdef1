-- Disabled accounts and webhooks (issue 24).
--
-- users.disabled_at: set (milliseconds since the epoch) by an operator's `users disable`,
-- cleared by `users enable`. A disabled person's sessions are ended when it is set and no
-- session of theirs is honoured while it is set; a link asked for their address is answered as
-- any other and never sent. NULL: the account works.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- outbox.ordering_key: a webhook row's person (their user id). The worker claims a row only
-- when no older pending row has the same key and recipient (endpoint), so one person's
-- webhooks reach an endpoint one at a time, in order. NULL (every email and logout notice):
-- no order is kept.
ALTER TABLE outbox ADD COLUMN ordering_key TEXT;
CREATE INDEX outbox_ordering ON outbox (ordering_key, recipient);
