-- The OpenID Provider; the same as migrations/sqlite/20261204000010_oidc.sql, which says what each
-- table and column is for.
CREATE TABLE oidc_clients (
    id                        VARCHAR(128) NOT NULL PRIMARY KEY,
    name                      VARCHAR(255) NOT NULL,
    kind                      VARCHAR(16) NOT NULL,
    secret_hash               VARCHAR(64),
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    first_party               BIGINT NOT NULL,
    id_token_alg              VARCHAR(16) NOT NULL,
    from_config               BIGINT NOT NULL DEFAULT 0,
    created_at                BIGINT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE oidc_codes (
    code_hash      VARCHAR(64) NOT NULL PRIMARY KEY,
    client_id      VARCHAR(128) NOT NULL,
    user_id        VARCHAR(36) NOT NULL,
    session_id     VARCHAR(36) NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge VARCHAR(64),
    nonce          TEXT,
    scope          VARCHAR(255) NOT NULL,
    auth_time      BIGINT NOT NULL,
    method         VARCHAR(16) NOT NULL,
    expires        BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    used_at        BIGINT,
    grant_id       VARCHAR(36),
    INDEX oidc_codes_expires (expires),
    INDEX oidc_codes_client_id (client_id),
    INDEX oidc_codes_user_id (user_id),
    FOREIGN KEY (client_id) REFERENCES oidc_clients (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE oidc_grants (
    id         VARCHAR(36) NOT NULL PRIMARY KEY,
    client_id  VARCHAR(128) NOT NULL,
    user_id    VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    scope      VARCHAR(255) NOT NULL,
    auth_time  BIGINT NOT NULL,
    method     VARCHAR(16) NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    INDEX oidc_grants_user_client (user_id, client_id),
    INDEX oidc_grants_client_id (client_id),
    FOREIGN KEY (client_id) REFERENCES oidc_clients (id) ON DELETE CASCADE,
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE oidc_tokens (
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY,
    grant_id   VARCHAR(36) NOT NULL,
    kind       VARCHAR(16) NOT NULL,
    expires    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    INDEX oidc_tokens_grant_id (grant_id),
    INDEX oidc_tokens_expires (expires),
    FOREIGN KEY (grant_id) REFERENCES oidc_grants (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE oidc_consents (
    user_id    VARCHAR(36) NOT NULL,
    client_id  VARCHAR(128) NOT NULL,
    scope      VARCHAR(255) NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id),
    INDEX oidc_consents_client_id (client_id),
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    FOREIGN KEY (client_id) REFERENCES oidc_clients (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE oidc_signing_keys (
    kid                VARCHAR(64) NOT NULL PRIMARY KEY,
    algorithm          VARCHAR(16) NOT NULL,
    sealed_private_key TEXT NOT NULL,
    public_jwk         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    retired_at         BIGINT,
    current_alg        VARCHAR(16) UNIQUE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
