-- The security audit log; the same as migrations/sqlite/20261204000012_audit.sql, which says
-- what each column is for.
CREATE TABLE audit_events (
    id             VARCHAR(36) NOT NULL PRIMARY KEY,
    at             BIGINT NOT NULL,
    kind           VARCHAR(64) NOT NULL,
    outcome        VARCHAR(16) NOT NULL,
    reason         VARCHAR(64),
    user_id        VARCHAR(36),
    session_id     VARCHAR(36),
    method         VARCHAR(16),
    client_address VARCHAR(64),
    user_agent     VARCHAR(200),
    request_id     VARCHAR(200),
    detail         VARCHAR(200)
);
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
CREATE INDEX audit_events_at ON audit_events (at);
