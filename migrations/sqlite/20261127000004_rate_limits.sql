-- Rate-limit counters (GCRA): one row per key, holding its theoretical arrival time in
-- milliseconds since the epoch. Keys are keyed hashes (`link-client:<hmac>`): no address or IP
-- address is stored. A row whose instant has passed admits as if absent and is purged hourly.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY NOT NULL,
    tat INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rate_limits_tat ON rate_limits (tat);
