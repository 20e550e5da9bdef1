//! The OpenID Provider's stores ([`ClientStore`], [`GrantStore`], [`SigningKeyStore`]):
//! clients, codes spent by one conditional `UPDATE`, grants revoked as a family, tokens by
//! their SHA-256, consents, and sealed signing keys with one current key per algorithm.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::id::Id;
use domain::oidc::{
    AccessTokenHash, AuthorizationCodeHash, Client, ClientId, ClientKind, ClientSecretHash, CodeChallenge, CodeGrant,
    RefreshTokenHash, Scopes, SigningAlgorithm,
};
use domain::UserId;
use ports::{
    ClientAdded, ClientStore, CodeRedeemed, Consent, GrantId, GrantStore, LiveGrant, NewCode, NewTokens,
    RefreshRotated, SigningKeyAdded, SigningKeyStore, StoredSigningKey,
};
use sqlx::any::AnyRow;
use sqlx::{Any, Row as _};

use super::writer::WriteTx;

use super::store::*;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

/// The columns [`client_from_row`] reads.
const CLIENT_COLUMNS: &str = "c.id AS client_id, c.name AS client_name, c.kind, c.secret_hash, c.redirect_uris, \
     c.post_logout_redirect_uris, c.first_party, c.id_token_alg, c.from_config, c.backchannel_logout_uri, \
     c.created_at AS client_created_at";

/// URLs stored one per line.
fn stored_urls(row: &AnyRow, column: &str) -> anyhow::Result<Vec<url::Url>> {
    text_column(row, column)?
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| url::Url::parse(line).with_context(|| format!("stored {column} holds a malformed URL")))
        .collect()
}

/// A client's row, stored: [`bind_client`]'s values, then `created_at`.
const INSERT_CLIENT: &str = "INSERT INTO oidc_clients (name, kind, secret_hash, redirect_uris, \
     post_logout_redirect_uris, first_party, id_token_alg, from_config, backchannel_logout_uri, id, created_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A client's row, replaced in place (its grants and consents kept, its `created_at` too):
/// [`bind_client`]'s values.
const UPDATE_CLIENT: &str = "UPDATE oidc_clients SET name = ?, kind = ?, secret_hash = ?, redirect_uris = ?, \
     post_logout_redirect_uris = ?, first_party = ?, id_token_alg = ?, from_config = ?, backchannel_logout_uri = ? \
     WHERE id = ?";

/// Binds a client's values, `id` last, for [`INSERT_CLIENT`] or [`UPDATE_CLIENT`].
fn bind_client<'q>(
    query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    client: &'q Client,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(client.name.as_str())
        .bind(kind_text(client.kind))
        .bind(client.secret_hash.as_ref().map(ClientSecretHash::to_hex))
        .bind(url_lines(&client.redirect_uris))
        .bind(url_lines(&client.post_logout_redirect_uris))
        .bind(i64::from(client.first_party))
        .bind(client.id_token_algorithm.as_str())
        .bind(i64::from(client.from_config))
        .bind(client.backchannel_logout_uri.as_ref().map(|uri| uri.as_str().to_owned()))
        .bind(client.id.as_str())
}

fn kind_text(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Public => "public",
        ClientKind::Confidential => "confidential",
    }
}

fn url_lines(urls: &[url::Url]) -> String {
    urls.iter().map(url::Url::as_str).collect::<Vec<_>>().join("\n")
}

fn stored_client_id(text: &str) -> anyhow::Result<ClientId> {
    ClientId::parse(text).map_err(|_| anyhow::anyhow!("stored client id is malformed"))
}

fn stored_scopes(text: &str) -> anyhow::Result<Scopes> {
    Scopes::parse(text).map_err(|_| anyhow::anyhow!("stored scope lacks openid"))
}

fn stored_id<K>(text: &str, what: &str) -> anyhow::Result<Id<K>> {
    Id::parse(text).map_err(|_| anyhow::anyhow!("stored {what} is not an id"))
}

fn client_from_row(row: &AnyRow) -> anyhow::Result<Client> {
    let kind = match text_column(row, "kind")?.as_str() {
        "public" => ClientKind::Public,
        "confidential" => ClientKind::Confidential,
        other => anyhow::bail!("stored client kind {other:?} is unknown"),
    };
    let secret_hash = optional_text_column(row, "secret_hash")?;
    let algorithm = text_column(row, "id_token_alg")?;
    Ok(Client {
        id: stored_client_id(&text_column(row, "client_id")?)?,
        name: text_column(row, "client_name")?,
        kind,
        secret_hash: secret_hash.map(|hex| ClientSecretHash::from_hex(&hex)).transpose()?,
        redirect_uris: stored_urls(row, "redirect_uris")?,
        post_logout_redirect_uris: stored_urls(row, "post_logout_redirect_uris")?,
        first_party: row.try_get::<i64, _>("first_party")? != 0,
        from_config: row.try_get::<i64, _>("from_config")? != 0,
        backchannel_logout_uri: optional_text_column(row, "backchannel_logout_uri")?
            .map(|uri| url::Url::parse(&uri))
            .transpose()
            .context("stored backchannel_logout_uri is not a URL")?,
        id_token_algorithm: SigningAlgorithm::parse(&algorithm)
            .with_context(|| format!("stored id_token_alg {algorithm:?} is unknown"))?,
        created_at: stored_instant(row, "client_created_at")?,
    })
}

/// The columns [`live_grant_from_row`] reads, from `oidc_grants` aliased `g` joined to `users`
/// aliased `u`.
const GRANT_COLUMNS: &str =
    "g.id AS grant_id, g.client_id AS grant_client_id, g.scope, g.session_id, g.auth_time, g.method, g.revoked_at";

fn live_grant_from_row(row: &AnyRow) -> anyhow::Result<LiveGrant> {
    Ok(LiveGrant {
        id: stored_id(&text_column(row, "grant_id")?, "grant id")?,
        client_id: stored_client_id(&text_column(row, "grant_client_id")?)?,
        user: user_from_row(row)?,
        scopes: stored_scopes(&text_column(row, "scope")?)?,
        session_id: stored_id(&text_column(row, "session_id")?, "session id")?,
        auth_time: stored_instant(row, "auth_time")?,
        method: stored_method(&text_column(row, "method")?)?,
    })
}

#[async_trait::async_trait]
impl ClientStore for SqlStore {
    async fn add_client(&self, client: &Client) -> anyhow::Result<ClientAdded> {
        let inserted = self
            .writer
            .execute(bind_client(sqlx::query(&self.sql(INSERT_CLIENT)), client).bind(to_millis(client.created_at)))
            .await;
        match inserted {
            Ok(_) => Ok(ClientAdded::Added),
            Err(error) if is_unique_violation(&error) => Ok(ClientAdded::IdTaken),
            Err(error) => Err::<ClientAdded, _>(error).doing("cannot register the client"),
        }
    }

    async fn find_client(&self, id: &ClientId) -> anyhow::Result<Option<Client>> {
        let row = sqlx::query(&self.sql(&format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients c WHERE c.id = ?")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .doing("cannot read the client")?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn list_clients(&self) -> anyhow::Result<Vec<Client>> {
        let rows = sqlx::query(&self.sql(&format!("SELECT {CLIENT_COLUMNS} FROM oidc_clients c ORDER BY c.id")))
            .fetch_all(&self.pool)
            .await
            .doing("cannot list the clients")?;
        rows.iter().map(client_from_row).collect()
    }

    async fn remove_client(&self, id: &ClientId) -> anyhow::Result<bool> {
        // The foreign keys take its codes, grants, tokens and consents with it.
        let done = self
            .writer
            .execute(sqlx::query(&self.sql("DELETE FROM oidc_clients WHERE id = ?")).bind(id.as_str()))
            .await
            .doing("cannot remove the client")?;
        Ok(done.rows_affected() > 0)
    }

    async fn sync_configured_clients(&self, clients: &[Client]) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        for client in clients {
            let exists: Option<String> = sqlx::query_scalar(&self.sql("SELECT id FROM oidc_clients WHERE id = ?"))
                .bind(client.id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .doing("cannot read a configured client")?;
            let sql = self.sql(if exists.is_some() { UPDATE_CLIENT } else { INSERT_CLIENT });
            let mut query = bind_client(sqlx::query(&sql), client);
            if exists.is_none() {
                query = query.bind(to_millis(client.created_at));
            }
            query.execute(&mut *tx).await.doing("cannot store a configured client")?;
        }
        let listed: Vec<&str> = clients.iter().map(|client| client.id.as_str()).collect();
        let statement = if listed.is_empty() {
            "DELETE FROM oidc_clients WHERE from_config = 1".to_owned()
        } else {
            format!("DELETE FROM oidc_clients WHERE from_config = 1 AND id NOT IN ({})", placeholders(listed.len()))
        };
        let sql = self.sql(&statement);
        let mut delete = sqlx::query(&sql);
        for id in &listed {
            delete = delete.bind(*id);
        }
        delete.execute(&mut *tx).await.doing("cannot remove clients no longer configured")?;
        tx.commit().await.doing("cannot commit the configured clients")?;
        Ok(())
    }

    async fn set_client_secret(&self, id: &ClientId, secret_hash: &ClientSecretHash) -> anyhow::Result<bool> {
        let done = self
            .writer
            .execute(
                sqlx::query(
                    &self.sql("UPDATE oidc_clients SET secret_hash = ? WHERE id = ? AND kind = 'confidential'"),
                )
                .bind(secret_hash.to_hex())
                .bind(id.as_str()),
            )
            .await
            .doing("cannot replace the client secret")?;
        Ok(done.rows_affected() > 0)
    }
}

impl SqlStore {
    /// Revokes the grant `grant_id` inside `tx` (a no-op when it is revoked already).
    async fn revoke_grant_within(&self, tx: &mut WriteTx, grant_id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        sqlx::query(&self.sql("UPDATE oidc_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"))
            .bind(to_millis(now))
            .bind(grant_id)
            .execute(&mut **tx)
            .await
            .doing("cannot revoke the grant")?;
        Ok(())
    }

    async fn insert_tokens_within(&self, tx: &mut WriteTx, grant_id: &str, tokens: &NewTokens) -> anyhow::Result<()> {
        let (access, access_expires) = &tokens.access;
        let mut rows = vec![(access.to_hex(), "access", *access_expires)];
        if let Some((refresh, refresh_expires)) = &tokens.refresh {
            rows.push((refresh.to_hex(), "refresh", *refresh_expires));
        }
        for (hash, kind, expires) in rows {
            sqlx::query(&self.sql(
                "INSERT INTO oidc_tokens (token_hash, grant_id, kind, expires, created_at) VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(hash)
            .bind(grant_id)
            .bind(kind)
            .bind(to_millis(expires))
            .bind(to_millis(tokens.created_at))
            .execute(&mut **tx)
            .await
            .doing("cannot store the tokens")?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl GrantStore for SqlStore {
    async fn save_code(&self, code: &NewCode) -> anyhow::Result<()> {
        let grant = &code.grant;
        self.writer.execute(sqlx::query(&self.sql(
            "INSERT INTO oidc_codes (code_hash, client_id, user_id, session_id, redirect_uri, code_challenge, nonce, \
             scope, auth_time, method, expires, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(code.hash.to_hex())
        .bind(grant.client_id.as_str())
        .bind(grant.user_id.as_str())
        .bind(grant.session_id.as_str())
        .bind(grant.redirect_uri.as_str())
        .bind(grant.challenge.as_ref().map(CodeChallenge::encode))
        .bind(grant.nonce.as_deref())
        .bind(grant.scopes.to_parameter())
        .bind(to_millis(grant.auth_time))
        .bind(grant.method.as_str())
        .bind(to_millis(grant.expires))
        .bind(to_millis(code.created_at))
        )
        .await
        .doing("cannot store the authorization code")?;
        Ok(())
    }

    async fn redeem_code(&self, hash: &AuthorizationCodeHash, now: DateTime<Utc>) -> anyhow::Result<CodeRedeemed> {
        let grant_id = new_id::<ports::oidc::store::GrantKind>()?;
        let mut tx = self.begin_write().await?;
        // One conditional statement decides: of racing exchanges only one matches `used_at IS
        // NULL`; the others wait for its row lock, then no longer match.
        let won = sqlx::query(
            &self.sql("UPDATE oidc_codes SET used_at = ?, grant_id = ? WHERE code_hash = ? AND used_at IS NULL"),
        )
        .bind(to_millis(now))
        .bind(grant_id.as_str())
        .bind(hash.to_hex())
        .execute(&mut *tx)
        .await
        .doing("cannot redeem the authorization code")?
        .rows_affected()
            == 1;
        let row = sqlx::query(&self.sql(
            "SELECT client_id, user_id, session_id, redirect_uri, code_challenge, nonce, scope, auth_time, method, \
             expires, grant_id FROM oidc_codes WHERE code_hash = ?",
        ))
        .bind(hash.to_hex())
        .fetch_optional(&mut *tx)
        .await
        .doing("cannot read the authorization code")?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(CodeRedeemed::Unknown);
        };
        if !won {
            if let Some(first) = optional_text_column(&row, "grant_id")? {
                self.revoke_grant_within(&mut tx, &first, now).await?;
            }
            tx.commit().await.doing("cannot revoke a reused code's grant")?;
            return Ok(CodeRedeemed::Reused);
        }
        let challenge = optional_text_column(&row, "code_challenge")?;
        let grant = CodeGrant {
            client_id: stored_client_id(&text_column(&row, "client_id")?)?,
            redirect_uri: text_column(&row, "redirect_uri")?,
            challenge: challenge
                .map(|text| CodeChallenge::parse(&text, Some("S256")))
                .transpose()
                .map_err(|_| anyhow::anyhow!("stored code_challenge is malformed"))?,
            nonce: optional_text_column(&row, "nonce")?,
            scopes: stored_scopes(&text_column(&row, "scope")?)?,
            user_id: stored_id(&text_column(&row, "user_id")?, "user id")?,
            session_id: stored_id(&text_column(&row, "session_id")?, "session id")?,
            auth_time: stored_instant(&row, "auth_time")?,
            method: stored_method(&text_column(&row, "method")?)?,
            expires: stored_instant(&row, "expires")?,
        };
        sqlx::query(&self.sql(
            "INSERT INTO oidc_grants (id, client_id, user_id, session_id, scope, auth_time, method, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(grant_id.as_str())
        .bind(grant.client_id.as_str())
        .bind(grant.user_id.as_str())
        .bind(grant.session_id.as_str())
        .bind(grant.scopes.to_parameter())
        .bind(to_millis(grant.auth_time))
        .bind(grant.method.as_str())
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await
        .doing("cannot store the grant")?;
        tx.commit().await.doing("cannot commit the code's redemption")?;
        Ok(CodeRedeemed::Redeemed(Box::new(grant), grant_id))
    }

    async fn save_tokens(&self, grant_id: &GrantId, tokens: &NewTokens) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        self.insert_tokens_within(&mut tx, grant_id.as_str(), tokens).await?;
        tx.commit().await.doing("cannot commit the tokens")?;
        Ok(())
    }

    async fn find_access_token(&self, hash: &AccessTokenHash, now: DateTime<Utc>) -> anyhow::Result<Option<LiveGrant>> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {GRANT_COLUMNS}, {USER_COLUMNS} FROM oidc_tokens t \
             JOIN oidc_grants g ON g.id = t.grant_id JOIN users u ON u.id = g.user_id \
             WHERE t.token_hash = ? AND t.kind = 'access' AND t.expires > ? AND g.revoked_at IS NULL \
             AND u.disabled_at IS NULL"
        )))
        .bind(hash.to_hex())
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await
        .doing("cannot read the access token")?;
        row.as_ref().map(live_grant_from_row).transpose()
    }

    async fn rotate_refresh_token(
        &self,
        client_id: &ClientId,
        hash: &RefreshTokenHash,
        replacement: &NewTokens,
        now: DateTime<Utc>,
    ) -> anyhow::Result<RefreshRotated> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {GRANT_COLUMNS}, {USER_COLUMNS}, t.expires AS token_expires, t.used_at AS token_used_at \
             FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id JOIN users u ON u.id = g.user_id \
             WHERE t.token_hash = ? AND t.kind = 'refresh' AND u.disabled_at IS NULL{}",
            self.dialect().for_update()
        )))
        .bind(hash.to_hex())
        .fetch_optional(&mut *tx)
        .await
        .doing("cannot read the refresh token")?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(RefreshRotated::Invalid);
        };
        let grant_id = text_column(&row, "grant_id")?;
        if text_column(&row, "grant_client_id")? != client_id.as_str() {
            tx.rollback().await?;
            return Ok(RefreshRotated::Invalid);
        }
        if row.try_get::<Option<i64>, _>("token_used_at")?.is_some() {
            self.revoke_grant_within(&mut tx, &grant_id, now).await?;
            tx.commit().await.doing("cannot revoke a reused refresh token's family")?;
            return Ok(RefreshRotated::Reused);
        }
        let revoked = row.try_get::<Option<i64>, _>("revoked_at")?.is_some();
        if revoked || stored_instant(&row, "token_expires")? <= now {
            tx.rollback().await?;
            return Ok(RefreshRotated::Invalid);
        }
        // Spent only if still unspent: the row lock (or SQLite's write lock) makes this the one
        // rotation of the token.
        let spent =
            sqlx::query(&self.sql("UPDATE oidc_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL"))
                .bind(to_millis(now))
                .bind(hash.to_hex())
                .execute(&mut *tx)
                .await
                .doing("cannot spend the refresh token")?
                .rows_affected()
                == 1;
        if !spent {
            tx.rollback().await?;
            return Ok(RefreshRotated::Invalid);
        }
        self.insert_tokens_within(&mut tx, &grant_id, replacement).await?;
        let live = live_grant_from_row(&row)?;
        tx.commit().await.doing("cannot commit the refresh")?;
        Ok(RefreshRotated::Rotated(Box::new(live)))
    }

    async fn revoke_refresh_token(
        &self,
        client_id: &ClientId,
        hash: &RefreshTokenHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.writer
            .execute(
                sqlx::query(&self.sql(
                    "UPDATE oidc_grants SET revoked_at = ? WHERE revoked_at IS NULL AND client_id = ? AND id = \
             (SELECT grant_id FROM oidc_tokens WHERE token_hash = ? AND kind = 'refresh')",
                ))
                .bind(to_millis(now))
                .bind(client_id.as_str())
                .bind(hash.to_hex()),
            )
            .await
            .doing("cannot revoke the refresh token")?;
        Ok(())
    }

    async fn revoke_access_token(&self, client_id: &ClientId, hash: &AccessTokenHash) -> anyhow::Result<()> {
        let grant = self
            .writer
            .fetch_optional(
                sqlx::query(&self.sql(
                    "SELECT t.grant_id FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id \
             WHERE t.token_hash = ? AND t.kind = 'access' AND g.client_id = ?",
                ))
                .bind(hash.to_hex())
                .bind(client_id.as_str()),
            )
            .await
            .doing("cannot read the access token")?;
        if grant.is_some() {
            self.writer
                .execute(
                    sqlx::query(&self.sql("DELETE FROM oidc_tokens WHERE token_hash = ? AND kind = 'access'"))
                        .bind(hash.to_hex()),
                )
                .await
                .doing("cannot revoke the access token")?;
        }
        Ok(())
    }

    async fn find_consent(&self, user_id: &UserId, client_id: &ClientId) -> anyhow::Result<Option<Scopes>> {
        let row = sqlx::query(&self.sql("SELECT scope FROM oidc_consents WHERE user_id = ? AND client_id = ?"))
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .doing("cannot read the consent")?;
        row.map(|row| stored_scopes(&text_column(&row, "scope")?)).transpose()
    }

    async fn save_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        scopes: &Scopes,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&self.sql("DELETE FROM oidc_consents WHERE user_id = ? AND client_id = ?"))
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot replace the consent")?;
        sqlx::query(&self.sql("INSERT INTO oidc_consents (user_id, client_id, scope, granted_at) VALUES (?, ?, ?, ?)"))
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .bind(scopes.to_parameter())
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .doing("cannot store the consent")?;
        tx.commit().await.doing("cannot commit the consent")?;
        Ok(())
    }

    async fn list_consents(&self, user_id: &UserId) -> anyhow::Result<Vec<Consent>> {
        let rows = sqlx::query(&self.sql(
            "SELECT k.client_id, c.name AS client_name, k.scope, k.granted_at FROM oidc_consents k \
             JOIN oidc_clients c ON c.id = k.client_id WHERE k.user_id = ? ORDER BY k.granted_at DESC, k.client_id",
        ))
        .bind(user_id.as_str())
        .fetch_all(&self.pool)
        .await
        .doing("cannot list the consents")?;
        rows.iter()
            .map(|row| {
                Ok(Consent {
                    client_id: stored_client_id(&text_column(row, "client_id")?)?,
                    client_name: text_column(row, "client_name")?,
                    scopes: stored_scopes(&text_column(row, "scope")?)?,
                    granted_at: stored_instant(row, "granted_at")?,
                })
            })
            .collect()
    }

    async fn revoke_consent(&self, user_id: &UserId, client_id: &ClientId, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let forgotten = sqlx::query(&self.sql("DELETE FROM oidc_consents WHERE user_id = ? AND client_id = ?"))
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot forget the consent")?
            .rows_affected();
        let revoked =
            sqlx::query(&self.sql(
                "UPDATE oidc_grants SET revoked_at = ? WHERE user_id = ? AND client_id = ? AND revoked_at IS NULL",
            ))
            .bind(to_millis(now))
            .bind(user_id.as_str())
            .bind(client_id.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot revoke the app's grants")?
            .rows_affected();
        tx.commit().await.doing("cannot commit the withdrawal")?;
        Ok(forgotten + revoked > 0)
    }

    async fn purge_expired_grants(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        let codes = self.delete_before("DELETE FROM oidc_codes WHERE expires < ?", cutoff, "expired codes").await?;
        let tokens = self.delete_before("DELETE FROM oidc_tokens WHERE expires < ?", cutoff, "expired tokens").await?;
        // A revoked grant's tokens go with it (ON DELETE CASCADE).
        let grants =
            self.delete_before("DELETE FROM oidc_grants WHERE revoked_at < ?", cutoff, "revoked grants").await?;
        Ok(codes + tokens + grants)
    }
}

fn key_from_row(row: &AnyRow) -> anyhow::Result<StoredSigningKey> {
    let algorithm = text_column(row, "algorithm")?;
    let sealed = text_column(row, "sealed_private_key")?;
    Ok(StoredSigningKey {
        kid: text_column(row, "kid")?,
        algorithm: SigningAlgorithm::parse(&algorithm)
            .with_context(|| format!("stored signing key algorithm {algorithm:?} is unknown"))?,
        sealed_private_key: domain::hex::decode_vec(&sealed).context("stored sealed key is not hex")?,
        public_jwk: text_column(row, "public_jwk")?,
        created_at: stored_instant(row, "created_at")?,
        retired_at: row.try_get::<Option<i64>, _>("retired_at")?.map(from_millis).transpose()?,
    })
}

#[async_trait::async_trait]
impl SigningKeyStore for SqlStore {
    async fn signing_keys(&self) -> anyhow::Result<Vec<StoredSigningKey>> {
        let rows = self
            .writer
            .fetch_all(sqlx::query(&self.sql(
                "SELECT kid, algorithm, sealed_private_key, public_jwk, created_at, retired_at FROM oidc_signing_keys \
             ORDER BY created_at DESC, kid",
            )))
            .await
            .doing("cannot read the signing keys")?;
        rows.iter().map(key_from_row).collect()
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, retire_current: bool) -> anyhow::Result<SigningKeyAdded> {
        let mut tx = self.begin_write().await?;
        if retire_current {
            sqlx::query(
                &self.sql("UPDATE oidc_signing_keys SET retired_at = ?, current_alg = NULL WHERE current_alg = ?"),
            )
            .bind(to_millis(key.created_at))
            .bind(key.algorithm.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot retire the signing key")?;
        }
        let inserted = sqlx::query(&self.sql(
            "INSERT INTO oidc_signing_keys (kid, algorithm, sealed_private_key, public_jwk, created_at, current_alg) \
             VALUES (?, ?, ?, ?, ?, ?)",
        ))
        .bind(key.kid.as_str())
        .bind(key.algorithm.as_str())
        .bind(domain::hex::encode(&key.sealed_private_key))
        .bind(key.public_jwk.as_str())
        .bind(to_millis(key.created_at))
        .bind(key.algorithm.as_str())
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await.doing("cannot commit the signing key")?;
                Ok(SigningKeyAdded::Added)
            }
            Err(error) if is_unique_violation(&error) => {
                tx.rollback().await?;
                Ok(SigningKeyAdded::Raced)
            }
            Err(error) => Err::<SigningKeyAdded, _>(error).doing("cannot store the signing key"),
        }
    }

    async fn delete_retired_keys(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM oidc_signing_keys WHERE retired_at < ?", cutoff, "retired signing keys").await
    }
}
