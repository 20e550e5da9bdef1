//! The users ([`UserStore`]): one per address (the unique index decides), renamed, listed, and
//! moved to a new address only through a confirmed change, whose race with a first sign-in of
//! that address the unique index also decides.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::{DisplayName, EmailAddress, LinkTokenHash, OutboxId, SessionId, User, UserId};
use ports::{AddressChangeOutcome, NewAddressChange, NewOutboxMessage, PendingAddressChange, UserAdded, UserStore};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::logout::EndingSessions;
use super::store::*;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

impl SqlStore {
    /// Confirms an address change inside its transaction; see
    /// [`UserStore::confirm_address_change`]. The caller commits only on `Changed`. With the
    /// outcome, how many logout notices were queued for the sessions it ended.
    pub(super) async fn confirm_address_change_within(
        &self,
        tx: &mut Transaction<'static, Any>,
        token_hash: &LinkTokenHash,
        old_email: &EmailAddress,
        keep_session: &SessionId,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(AddressChangeOutcome, usize)> {
        let used = sqlx::query(
            &self
                .sql("UPDATE address_changes SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires > ?"),
        )
        .bind(to_millis(now))
        .bind(token_hash.to_hex())
        .bind(to_millis(now))
        .execute(&mut **tx)
        .await
        .doing("cannot mark the address change used")?;
        if used.rows_affected() == 0 {
            let refused = match self.address_change_in(&mut **tx, token_hash).await? {
                Some(pending) if pending.used => AddressChangeOutcome::AlreadyUsed,
                Some(_) => AddressChangeOutcome::Expired,
                None => AddressChangeOutcome::Unknown,
            };
            return Ok((refused, 0));
        }
        let pending = self.address_change_in(&mut **tx, token_hash).await?.context("the address change vanished")?;
        // The unique address decides, not a look beforehand: a first sign-in of the new
        // address may commit between any check and this write. The caller rolls back.
        let changed = sqlx::query(
            &self.sql("UPDATE users SET email = ?, email_verified = ?, updated_at = ? WHERE id = ? AND email = ?"),
        )
        .bind(pending.new_email.as_str())
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(pending.user_id.as_str())
        .bind(old_email.as_str())
        .execute(&mut **tx)
        .await;
        let changed = match changed {
            Err(error) if is_unique_violation(&error) => return Ok((AddressChangeOutcome::AddressTaken, 0)),
            other => other.doing("cannot change the address")?,
        };
        if changed.rows_affected() == 0 {
            return Ok((AddressChangeOutcome::Unknown, 0));
        }
        // Whoever was signed in elsewhere signed in as the old address: only the confirming
        // browser keeps its session, and the apps they signed in to are told.
        let ending = EndingSessions {
            condition: "user_id = ? AND id <> ?",
            values: vec![pending.user_id.as_str(), keep_session.as_str()],
        };
        let notices = self.queue_logout_notices_within(tx, &ending, now).await?;
        sqlx::query(&self.sql("DELETE FROM sessions WHERE user_id = ? AND id <> ?"))
            .bind(pending.user_id.as_str())
            .bind(keep_session.as_str())
            .execute(&mut **tx)
            .await
            .doing("cannot end the account's other sessions")?;
        self.delete_unused_links(tx, old_email).await?;
        let notice = self.insert_outbox_within(tx, notice).await?;
        let user = self.user_by_email(&mut **tx, &pending.new_email).await?.context("the changed user vanished")?;
        Ok((AddressChangeOutcome::Changed { user, notice }, notices))
    }

    /// An address change by its token hash, through `executor`.
    pub(super) async fn address_change_in(
        &self,
        executor: impl sqlx::Executor<'_, Database = Any>,
        token_hash: &LinkTokenHash,
    ) -> anyhow::Result<Option<PendingAddressChange>> {
        let row = sqlx::query(
            &self.sql("SELECT user_id, new_email, expires, used_at FROM address_changes WHERE token_hash = ?"),
        )
        .bind(token_hash.to_hex())
        .fetch_optional(executor)
        .await
        .doing("cannot read the address change")?;
        row.map(|row| {
            let row = <AddressChangeRow as sqlx::FromRow<'_, AnyRow>>::from_row(&row)?;
            Ok(PendingAddressChange {
                user_id: UserId::parse(&row.user_id).map_err(|_| anyhow::anyhow!("stored user_id is not an id"))?,
                // The text stays out of the message, as every address does.
                new_email: EmailAddress::parse(&row.new_email).context("stored new_email is not a valid address")?,
                expires: from_millis(row.expires)?,
                used: row.used_at.is_some(),
            })
        })
        .transpose()
    }

    /// Inserts a user for `email` unless one exists, in a transaction of its own.
    pub(super) async fn try_insert_user(
        &self,
        email: &EmailAddress,
        verified_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<UserAdded> {
        let mut tx = self.begin_write().await?;
        let added = self.insert_user_within(&mut tx, email, verified_at, now).await?;
        tx.commit().await.doing("cannot commit the user")?;
        Ok(added)
    }
}

#[async_trait::async_trait]
impl UserStore for SqlStore {
    async fn find_or_create_verified(&self, email: &EmailAddress, now: DateTime<Utc>) -> anyhow::Result<User> {
        match retrying(|| self.try_insert_user(email, Some(now), now)).await? {
            UserAdded::Created(user) | UserAdded::Existed(user) => Ok(user),
        }
    }

    async fn find(&self, id: &UserId) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(&self.sql(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?")))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .doing("cannot read the user")?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_by_email(&self, email: &EmailAddress) -> anyhow::Result<Option<User>> {
        self.user_by_email(&self.pool, email).await
    }

    async fn add(&self, email: &EmailAddress, now: DateTime<Utc>) -> anyhow::Result<UserAdded> {
        retrying(|| self.try_insert_user(email, None, now)).await
    }

    async fn list(&self, limit: u32) -> anyhow::Result<Vec<User>> {
        let rows = sqlx::query(&self.sql(&format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.email LIMIT ?")))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .doing("cannot list the users")?;
        rows.iter().map(user_from_row).collect()
    }

    async fn rename(&self, id: &UserId, name: Option<DisplayName>) -> anyhow::Result<()> {
        sqlx::query(&self.sql("UPDATE users SET name = ? WHERE id = ?"))
            .bind(name.as_ref().map(DisplayName::as_str))
            .bind(id.as_str())
            .execute(&self.writer)
            .await
            .doing("cannot rename the user")?;
        Ok(())
    }

    async fn request_address_change(
        &self,
        change: &NewAddressChange,
        email: &NewOutboxMessage,
    ) -> anyhow::Result<OutboxId> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&self.sql("DELETE FROM address_changes WHERE user_id = ? AND used_at IS NULL"))
            .bind(change.user_id.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot retire the earlier address changes")?;
        sqlx::query(&self.sql(
            "INSERT INTO address_changes (token_hash, user_id, new_email, expires, created_at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(change.token_hash.to_hex())
        .bind(change.user_id.as_str())
        .bind(change.new_email.as_str())
        .bind(to_millis(change.expires))
        .bind(to_millis(change.created_at))
        .execute(&mut *tx)
        .await
        .doing("cannot store the address change")?;
        let outbox_id = self.insert_outbox_within(&mut tx, email).await?;
        tx.commit().await.doing("cannot commit the address change and its email")?;
        Ok(outbox_id)
    }

    async fn find_address_change(&self, token_hash: &LinkTokenHash) -> anyhow::Result<Option<PendingAddressChange>> {
        self.address_change_in(&self.pool, token_hash).await
    }

    async fn confirm_address_change(
        &self,
        token_hash: &LinkTokenHash,
        old_email: &EmailAddress,
        keep_session: &SessionId,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AddressChangeOutcome> {
        retrying(|| async {
            let mut tx = self.begin_write().await?;
            let (outcome, notices) =
                self.confirm_address_change_within(&mut tx, token_hash, old_email, keep_session, notice, now).await?;
            if matches!(outcome, AddressChangeOutcome::Changed { .. }) {
                tx.commit().await.doing("cannot commit the address change")?;
                self.notices_queued(notices);
            } else {
                tx.rollback().await.doing("cannot roll back the address change")?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn remove(&self, email: &EmailAddress) -> anyhow::Result<bool> {
        // The person's sessions go with them (foreign keys), so the apps they were signed in
        // to are told first, in the same transaction.
        let now = Utc::now();
        let (removed, notices) = retrying(|| async {
            let mut tx = self.begin_write().await?;
            let ending = EndingSessions {
                condition: "user_id IN (SELECT id FROM users WHERE email = ?)",
                values: vec![email.as_str()],
            };
            let notices = self.queue_logout_notices_within(&mut tx, &ending, now).await?;
            let done = sqlx::query(&self.sql("DELETE FROM users WHERE email = ?"))
                .bind(email.as_str())
                .execute(&mut *tx)
                .await
                .doing("cannot remove the user")?;
            tx.commit().await.doing("cannot commit the removal of the user")?;
            Ok((done.rows_affected() > 0, notices))
        })
        .await?;
        self.notices_queued(notices);
        Ok(removed)
    }
}

/// A requested change of sign-in address.
#[derive(sqlx::FromRow)]
struct AddressChangeRow {
    user_id: String,
    new_email: String,
    expires: i64,
    used_at: Option<i64>,
}
