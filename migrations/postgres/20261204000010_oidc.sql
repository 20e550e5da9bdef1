-- The OpenID Provider; the same as migrations/sqlite/20261204000010_oidc.sql, which says what each
-- table and column is for.
CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY NOT NULL,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL,
    secret_hash               TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    first_party               BIGINT NOT NULL,
    id_token_alg              TEXT NOT NULL,
    from_config               BIGINT NOT NULL DEFAULT 0,
    created_at                BIGINT NOT NULL
);

CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    scope          TEXT NOT NULL,
    auth_time      BIGINT NOT NULL,
    method         TEXT NOT NULL,
    expires        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    used_at        BIGINT,
    grant_id       TEXT
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires);
CREATE INDEX oidc_codes_client_id ON oidc_codes (client_id);
CREATE INDEX oidc_codes_user_id ON oidc_codes (user_id);

CREATE TABLE oidc_grants (
    id         TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    scope      TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    method     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX oidc_grants_user_client ON oidc_grants (user_id, client_id);
CREATE INDEX oidc_grants_client_id ON oidc_grants (client_id);

CREATE TABLE oidc_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    expires    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX oidc_tokens_grant_id ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_expires ON oidc_tokens (expires);

CREATE TABLE oidc_consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX oidc_consents_client_id ON oidc_consents (client_id);

CREATE TABLE oidc_signing_keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    algorithm          TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    public_jwk         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT,
    current_alg        TEXT UNIQUE
);
