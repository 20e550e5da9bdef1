-- Back-channel logout; the same as migrations/sqlite/20261204000011_backchannel_logout.sql,
-- which says what each column is for.
ALTER TABLE oidc_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE outbox ADD COLUMN payload TEXT;
CREATE INDEX oidc_grants_session_id ON oidc_grants (session_id);
