-- The OpenID Provider (issue 23): registered clients, what is issued to them, the person's
-- consents, and the signing keys every instance shares.
--
-- oidc_clients: redirect_uris and post_logout_redirect_uris one URL per line (matched exactly);
-- kind "confidential" (secret_hash set: SHA-256 of the secret, hex) or "public" (none);
-- id_token_alg RS256, ES256 or EdDSA; from_config 1 for a client listed in oidc.clients (kept in
-- step with the configuration at start-up, not changed by command).
CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY NOT NULL,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL,
    secret_hash               TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    first_party               INTEGER NOT NULL,
    id_token_alg              TEXT NOT NULL,
    from_config               INTEGER NOT NULL DEFAULT 0,
    created_at                INTEGER NOT NULL
);

-- Authorization codes, under SHA-256 of the code: single use (used_at, set by one conditional
-- UPDATE), 60 seconds, bound to client, redirect URI, PKCE challenge and nonce. grant_id is the
-- grant its first use opened, revoked if the code is presented again.
CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY NOT NULL,
    client_id      TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    scope          TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    method         TEXT NOT NULL,
    expires        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    used_at        INTEGER,
    grant_id       TEXT
);
CREATE INDEX oidc_codes_expires ON oidc_codes (expires);
CREATE INDEX oidc_codes_client_id ON oidc_codes (client_id);
CREATE INDEX oidc_codes_user_id ON oidc_codes (user_id);

-- A grant: one code exchange and the tokens descended from it (a refresh-token family),
-- revoked together (revoked_at). session_id is the magiclink session it began in (the ID
-- token's sid); the grant outlives it, as refresh tokens do.
CREATE TABLE oidc_grants (
    id         TEXT PRIMARY KEY NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT NOT NULL,
    scope      TEXT NOT NULL,
    auth_time  INTEGER NOT NULL,
    method     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX oidc_grants_user_client ON oidc_grants (user_id, client_id);
CREATE INDEX oidc_grants_client_id ON oidc_grants (client_id);

-- Access and refresh tokens (kind), under SHA-256 of the token. A refresh token is spent
-- (used_at) when it is rotated; presenting it again revokes its grant.
CREATE TABLE oidc_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    grant_id   TEXT NOT NULL REFERENCES oidc_grants (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    expires    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX oidc_tokens_grant_id ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_expires ON oidc_tokens (expires);

-- What a person let an app have, remembered so they are asked once.
CREATE TABLE oidc_consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX oidc_consents_client_id ON oidc_consents (client_id);

-- Signing keys: the private key sealed (XChaCha20-Poly1305 under a key derived from the server
-- secret, bound to the kid; hex), the public key as a JWK. current_alg is the algorithm while
-- the key signs and NULL once retired: its unique index allows one current key per algorithm,
-- so instances racing to make the first key store one.
CREATE TABLE oidc_signing_keys (
    kid                TEXT PRIMARY KEY NOT NULL,
    algorithm          TEXT NOT NULL,
    sealed_private_key TEXT NOT NULL,
    public_jwk         TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    retired_at         INTEGER,
    current_alg        TEXT UNIQUE
);
