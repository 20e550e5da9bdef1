-- Back-channel logout; the same as migrations/sqlite/20261204000011_backchannel_logout.sql,
-- which says what each column is for. The outbox's kind column grows to hold kinds of message
-- that are not emails ("backchannel_logout").
ALTER TABLE oidc_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE outbox ADD COLUMN payload TEXT;
ALTER TABLE outbox MODIFY kind VARCHAR(64) NOT NULL DEFAULT 'sign_in';
CREATE INDEX oidc_grants_session_id ON oidc_grants (session_id);
