-- Back-channel logout (OpenID Connect Back-Channel Logout 1.0).
--
-- oidc_clients.backchannel_logout_uri: where magiclink POSTs a logout token when a session the
-- app got an ID token in ends; NULL for an app that did not register one.
--
-- outbox.payload: the content of a row that is not an email, in the clear: for kind
-- "backchannel_logout", JSON {"client_id", "user_id", "session_id"} (identifiers the grants
-- table holds in the clear too). Erased, like sealed_body, once the row is no longer pending.
-- Its recipient is the client id.
--
-- oidc_grants_session_id: ending a session finds the apps to tell by it.
ALTER TABLE oidc_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE outbox ADD COLUMN payload TEXT;
CREATE INDEX oidc_grants_session_id ON oidc_grants (session_id);
