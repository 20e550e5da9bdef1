-- Two changes so that one set of SQL statements serves SQLite, PostgreSQL and MySQL/MariaDB:
--
-- * `rate_limits.key` becomes `bucket`: KEY is a reserved word in MySQL.
-- * The outbox's "what is due?" index leads with the status instead of filtering on it: MySQL
--   has no partial indexes, and (status, next_attempt_at) answers the question from the index on
--   every backend without walking the delivered rows.
ALTER TABLE rate_limits RENAME COLUMN key TO bucket;
DROP INDEX outbox_pending_due;
CREATE INDEX outbox_pending_due ON outbox (status, next_attempt_at);
