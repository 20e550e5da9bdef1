//! The sessions ([`SessionStore`]): stored by the hash of their token, read with their user,
//! extended, listed and revoked by their owner, purged once expired.

use chrono::{DateTime, Utc};
use domain::audit::AuditEvent;
use domain::{Session, SessionId, SessionSummary, SessionTokenHash, User, UserId};
use ports::{NewSession, SessionStore};
use sqlx::any::AnyRow;

use super::logout::EndingSessions;
use super::store::*;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn create(&self, session: &NewSession) -> anyhow::Result<Session> {
        let mut tx = self.begin_write().await?;
        let (stored, event) = self.insert_session(&mut tx, session, None, Vec::new()).await?;
        tx.commit().await.doing("cannot commit the session")?;
        self.log_committed([&event]);
        Ok(stored)
    }

    async fn find(&self, token_hash: &SessionTokenHash) -> anyhow::Result<Option<(Session, User)>> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT s.id AS session_id, s.expires, s.created_at AS session_created_at, s.method, {USER_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.session_token = ? AND u.disabled_at IS NULL"
        )))
        .bind(token_hash.to_hex())
        .fetch_optional(&self.pool)
        .await
        .doing("cannot read the session")?;
        let Some(row) = row else { return Ok(None) };
        let row = <SessionWithUserRow as sqlx::FromRow<'_, AnyRow>>::from_row(&row)?;
        let user = row.user.into_user()?;
        let session = Session {
            id: SessionId::parse(&row.session_id).map_err(|_| anyhow::anyhow!("stored session_id is not an id"))?,
            user_id: user.id.clone(),
            expires: from_millis(row.expires)?,
            created_at: from_millis(row.session_created_at)?,
            method: stored_method(&row.method)?,
        };
        Ok(Some((session, user)))
    }

    async fn extend(&self, session_id: &SessionId, expires: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<()> {
        self.writer
            .execute(
                sqlx::query(&self.sql("UPDATE sessions SET expires = ?, updated_at = ? WHERE id = ?"))
                    .bind(to_millis(expires))
                    .bind(to_millis(now))
                    .bind(session_id.as_str()),
            )
            .await
            .doing("cannot extend the session")?;
        Ok(())
    }

    async fn list_for_user(&self, user_id: &UserId, now: DateTime<Utc>) -> anyhow::Result<Vec<SessionSummary>> {
        let rows = sqlx::query(&self.sql(
            "SELECT id, created_at, updated_at, expires, user_agent, method FROM sessions \
             WHERE user_id = ? AND expires > ? ORDER BY updated_at DESC, created_at DESC, id",
        ))
        .bind(user_id.as_str())
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await
        .doing("cannot list the sessions")?;
        rows.iter()
            .map(|row| {
                let row = <SessionSummaryRow as sqlx::FromRow<'_, AnyRow>>::from_row(row)?;
                Ok(SessionSummary {
                    id: SessionId::parse(&row.id).map_err(|_| anyhow::anyhow!("stored id is not an id"))?,
                    created_at: from_millis(row.created_at)?,
                    last_used: from_millis(row.updated_at)?,
                    expires: from_millis(row.expires)?,
                    user_agent: row.user_agent,
                    method: stored_method(&row.method)?,
                })
            })
            .collect()
    }

    async fn delete_for_user(
        &self,
        user_id: &UserId,
        session_id: &SessionId,
        audit: &AuditEvent,
    ) -> anyhow::Result<bool> {
        let ending =
            EndingSessions { condition: "id = ? AND user_id = ?", values: vec![session_id.as_str(), user_id.as_str()] };
        Ok(self.end_sessions(&ending, audit, "revoke the session").await? > 0)
    }

    async fn delete_others(&self, user_id: &UserId, keep: &SessionId, audit: &AuditEvent) -> anyhow::Result<u64> {
        let ending =
            EndingSessions { condition: "user_id = ? AND id <> ?", values: vec![user_id.as_str(), keep.as_str()] };
        self.end_sessions(&ending, audit, "revoke the other sessions").await
    }

    async fn delete(&self, token_hash: &SessionTokenHash, audit: &AuditEvent) -> anyhow::Result<()> {
        let token = token_hash.to_hex();
        let ending = EndingSessions { condition: "session_token = ?", values: vec![token.as_str()] };
        self.end_sessions(&ending, audit, "delete the session").await?;
        Ok(())
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM sessions WHERE expires < ?", cutoff, "expired sessions").await
    }
}

/// A session as the owner's list reads it.
#[derive(sqlx::FromRow)]
struct SessionSummaryRow {
    id: String,
    created_at: i64,
    updated_at: i64,
    expires: i64,
    user_agent: Option<String>,
    method: String,
}

/// A session read with its user.
#[derive(sqlx::FromRow)]
struct SessionWithUserRow {
    session_id: String,
    expires: i64,
    session_created_at: i64,
    method: String,
    #[sqlx(flatten)]
    user: UserRow,
}
