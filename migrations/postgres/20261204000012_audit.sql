-- The security audit log; the same as migrations/sqlite/20261204000012_audit.sql, which says
-- what each column is for.
CREATE TABLE audit_events (
    id             TEXT PRIMARY KEY NOT NULL,
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    reason         TEXT,
    user_id        TEXT,
    session_id     TEXT,
    method         TEXT,
    client_address TEXT,
    user_agent     TEXT,
    request_id     TEXT,
    detail         TEXT
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
CREATE INDEX audit_events_at ON audit_events (at);
