-- The security audit log (issue 24): one row per security-relevant event, written in the
-- transaction of the change it records.
--
-- id: a UUIDv7 (ordered by time). at: milliseconds since the epoch. kind: `link.requested`,
-- `session.signed_out`, ... (domain::audit::AuditKind). outcome: "succeeded" or "refused", with
-- reason (a short word: "rate_limited", "expired", ...) for a refusal. user_id and session_id
-- have no foreign keys: a deleted person's events stay, with their id and without their
-- address. method: how the person signed in. client_address: as audit.client_address keeps it
-- (full, a /24 or /48 network, or nothing). user_agent: a summary ("Chrome on Linux"), never the
-- whole header. request_id: the request's X-Request-Id. detail: a few words more (a masked
-- address, an operator's command); never a token, code, password, secret or cookie.
CREATE TABLE audit_events (
    id             TEXT PRIMARY KEY NOT NULL,
    at             INTEGER NOT NULL,
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
-- A person's events, newest first (the account page, `audit --user`).
CREATE INDEX audit_events_user_at ON audit_events (user_id, at);
-- Everyone's, by time (`audit --since`, the retention purge).
CREATE INDEX audit_events_at ON audit_events (at);
