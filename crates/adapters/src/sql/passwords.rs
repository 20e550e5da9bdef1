//! The optional passwords ([`PasswordStore`]): at most one argon2id PHC string per user.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::audit::AuditEvent;
use domain::{EmailAddress, PasswordHash, User, UserId};
use ports::PasswordStore;
use sqlx::Row as _;

use super::store::*;
use super::Doing as _;
use crate::time::to_millis;

#[async_trait::async_trait]
impl PasswordStore for SqlStore {
    async fn find_with_password(&self, email: &EmailAddress) -> anyhow::Result<Option<(User, Option<PasswordHash>)>> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {USER_COLUMNS}, p.hash FROM users u LEFT JOIN passwords p ON p.user_id = u.id WHERE u.email = ? \
             AND u.disabled_at IS NULL"
        )))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .doing("cannot read the user and their password")?;
        let Some(row) = row else { return Ok(None) };
        let hash: Option<String> = row.try_get("hash").context("cannot read the stored password hash")?;
        Ok(Some((user_from_row(&row)?, hash.map(PasswordHash::from_phc))))
    }

    async fn password_of(&self, user_id: &UserId) -> anyhow::Result<Option<PasswordHash>> {
        let hash: Option<String> = sqlx::query_scalar(&self.sql("SELECT hash FROM passwords WHERE user_id = ?"))
            .bind(user_id.as_str())
            .fetch_optional(&self.pool)
            .await
            .doing("cannot read the password hash")?;
        Ok(hash.map(PasswordHash::from_phc))
    }

    async fn set_password(
        &self,
        user_id: &UserId,
        hash: &PasswordHash,
        audit: &AuditEvent,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        // Insert-or-nothing, then update, in one transaction: an upsert in the SQL every backend
        // speaks, with no unique-key failure when two requests set a first password at once.
        let mut tx = self.begin_write().await?;
        let insert = format!(
            "INSERT INTO passwords (user_id, hash, created_at, updated_at) VALUES (?, ?, ?, ?){}",
            self.dialect.on_duplicate_do_nothing("user_id")
        );
        sqlx::query(&self.sql(&insert))
            .bind(user_id.as_str())
            .bind(hash.as_phc())
            .bind(to_millis(now))
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .doing("cannot store the password hash")?;
        sqlx::query(&self.sql("UPDATE passwords SET hash = ?, updated_at = ? WHERE user_id = ?"))
            .bind(hash.as_phc())
            .bind(to_millis(now))
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot store the password hash")?;
        self.insert_audit(&mut tx, audit, None).await?;
        tx.commit().await.doing("cannot store the password hash")?;
        self.log_committed([audit]);
        Ok(())
    }

    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let done = self
            .writer
            .execute(
                sqlx::query(&self.sql("UPDATE passwords SET hash = ?, updated_at = ? WHERE user_id = ? AND hash = ?"))
                    .bind(new.as_phc())
                    .bind(to_millis(now))
                    .bind(user_id.as_str())
                    .bind(old.as_phc()),
            )
            .await
            .doing("cannot replace the password hash")?;
        Ok(done.rows_affected() > 0)
    }
}
