//! The users ([`UserStore`]): one per address (the unique index decides), renamed, listed, and
//! moved to a new address only through a confirmed change, whose race with a first sign-in of
//! that address the unique index also decides.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::audit::AuditEvent;
use domain::{DisplayName, EmailAddress, LinkTokenHash, OutboxId, SessionId, User, UserId};
use ports::{
    AccountStatusChange, AddressChangeOutcome, NewAddressChange, NewOutboxMessage, PendingAddressChange, UserAdded,
    UserStore,
};
use sqlx::any::AnyRow;
use sqlx::Any;

use super::writer::WriteTx;

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
        tx: &mut WriteTx,
        token_hash: &LinkTokenHash,
        old_email: &EmailAddress,
        keep_session: &SessionId,
        notice: Option<&NewOutboxMessage>,
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
        let (_, notices) = self.end_sessions_within(tx, &ending, now).await?;
        self.delete_unused_links(tx, old_email).await?;
        let notice = match notice {
            Some(notice) => Some(self.insert_outbox_within(tx, notice).await?),
            None => None,
        };
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
        self.writer
            .execute(
                sqlx::query(&self.sql("UPDATE users SET name = ? WHERE id = ?"))
                    .bind(name.as_ref().map(DisplayName::as_str))
                    .bind(id.as_str()),
            )
            .await
            .doing("cannot rename the user")?;
        Ok(())
    }

    async fn request_address_change(
        &self,
        change: &NewAddressChange,
        email: &NewOutboxMessage,
        audit: &AuditEvent,
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
        self.insert_audit(&mut tx, audit, None).await?;
        tx.commit().await.doing("cannot commit the address change and its email")?;
        self.log_committed([audit]);
        Ok(outbox_id)
    }

    async fn find_address_change(&self, token_hash: &LinkTokenHash) -> anyhow::Result<Option<PendingAddressChange>> {
        self.address_change_in(&self.pool, token_hash).await
    }

    async fn confirm_address_change<'a>(
        &self,
        token_hash: &LinkTokenHash,
        old_email: &EmailAddress,
        keep_session: &SessionId,
        notice: Option<&'a NewOutboxMessage>,
        audit: &AuditEvent,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AddressChangeOutcome> {
        retrying(|| async {
            let mut tx = self.begin_write().await?;
            let (outcome, notices) =
                self.confirm_address_change_within(&mut tx, token_hash, old_email, keep_session, notice, now).await?;
            if matches!(outcome, AddressChangeOutcome::Changed { .. }) {
                self.insert_audit(&mut tx, audit, None).await?;
                tx.commit().await.doing("cannot commit the address change")?;
                self.notices_queued(notices);
                self.log_committed([audit]);
            } else {
                tx.rollback().await.doing("cannot roll back the address change")?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn remove<'a>(
        &self,
        email: &EmailAddress,
        farewell: Option<&'a NewOutboxMessage>,
        audit: &AuditEvent,
    ) -> anyhow::Result<Option<UserId>> {
        let now = Utc::now();
        let removed = retrying(|| async {
            let mut tx = self.begin_write().await?;
            let Some((user_id, _)) = self.account_for_update(&mut tx, email).await? else {
                tx.rollback().await.doing("cannot roll back the removal of no one")?;
                return Ok(None);
            };
            // The person's sessions go with them (foreign keys), so the apps they were signed
            // in to are told first, in the same transaction.
            let ending = EndingSessions { condition: "user_id = ?", values: vec![user_id.as_str()] };
            let notices = self.queue_logout_notices_within(&mut tx, &ending, now).await?;
            // Sessions, password, passkeys, address changes and grants cascade from the user;
            // links and emails are keyed by address, so they are deleted by it.
            self.forget_address_within(&mut tx, email, Forget::Everything).await?;
            sqlx::query(&self.sql("DELETE FROM users WHERE id = ?"))
                .bind(user_id.as_str())
                .execute(&mut *tx)
                .await
                .doing("cannot remove the user")?;
            let farewell = match farewell {
                Some(message) => Some(self.insert_outbox_within(&mut tx, message).await?),
                None => None,
            };
            let event = audit.clone().of_user(&user_id);
            self.insert_audit(&mut tx, &event, None).await?;
            tx.commit().await.doing("cannot commit the removal of the user")?;
            Ok(Some((user_id, notices + usize::from(farewell.is_some()), event)))
        })
        .await?;
        Ok(removed.map(|(user_id, queued, event)| {
            self.notices_queued(queued);
            self.log_committed([&event]);
            user_id
        }))
    }

    async fn set_disabled(
        &self,
        email: &EmailAddress,
        disabled: bool,
        audit: &AuditEvent,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AccountStatusChange> {
        let changed = retrying(|| async {
            let mut tx = self.begin_write().await?;
            let Some((user_id, _)) = self.account_for_update(&mut tx, email).await? else {
                tx.rollback().await.doing("cannot roll back")?;
                return Ok(None);
            };
            let statement = if disabled {
                "UPDATE users SET disabled_at = ?, updated_at = ? WHERE id = ? AND disabled_at IS NULL"
            } else {
                "UPDATE users SET disabled_at = NULL, updated_at = ? WHERE id = ? AND disabled_at IS NOT NULL"
            };
            let statement = self.sql(statement);
            let mut update = sqlx::query(&statement);
            if disabled {
                update = update.bind(to_millis(now));
            }
            let done = update
                .bind(to_millis(now))
                .bind(user_id.as_str())
                .execute(&mut *tx)
                .await
                .doing("cannot change whether the account is disabled")?;
            if done.rows_affected() == 0 {
                tx.rollback().await.doing("cannot roll back")?;
                return Ok(Some((AccountStatusChange::Unchanged, 0, None)));
            }
            let (mut ended, mut notices) = (0, 0);
            if disabled {
                let ending = EndingSessions { condition: "user_id = ?", values: vec![user_id.as_str()] };
                (ended, notices) = self.end_sessions_within(&mut tx, &ending, now).await?;
                // The apps' tokens die with the sessions: an app must sign the person in again
                // once they are enabled.
                sqlx::query(
                    &self.sql("UPDATE oidc_grants SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL"),
                )
                .bind(to_millis(now))
                .bind(user_id.as_str())
                .execute(&mut *tx)
                .await
                .doing("cannot revoke the disabled account's app grants")?;
                sqlx::query(&self.sql("DELETE FROM oidc_codes WHERE user_id = ?"))
                    .bind(user_id.as_str())
                    .execute(&mut *tx)
                    .await
                    .doing("cannot delete the disabled account's unused app codes")?;
                self.forget_address_within(&mut tx, email, Forget::PendingEmails).await?;
            }
            let event = audit.clone().of_user(&user_id);
            self.insert_audit(&mut tx, &event, None).await?;
            tx.commit().await.doing("cannot commit the account's status")?;
            Ok(Some((AccountStatusChange::Changed { user_id, sessions_ended: ended }, notices, Some(event))))
        })
        .await?;
        let Some((change, notices, event)) = changed else { return Ok(AccountStatusChange::NoSuchUser) };
        self.notices_queued(notices);
        self.log_committed(event.as_ref());
        Ok(change)
    }
}

impl SqlStore {
    /// The user with this address (their id, and whether they are disabled), their row locked
    /// until the transaction ends: a disable, a deletion or a new link for the address racing
    /// this transaction waits for it, or commits first and is seen. On SQLite the write
    /// transaction already excludes every other writer.
    pub(super) async fn account_for_update(
        &self,
        tx: &mut WriteTx,
        email: &EmailAddress,
    ) -> anyhow::Result<Option<(UserId, bool)>> {
        let statement = format!("SELECT id, disabled_at FROM users WHERE email = ?{}", self.dialect.for_update());
        let row: Option<(String, Option<i64>)> = sqlx::query_as(&self.sql(&statement))
            .bind(email.as_str())
            .fetch_optional(&mut **tx)
            .await
            .doing("cannot find the user")?;
        row.map(|(id, disabled_at)| {
            let id = UserId::parse(&id).map_err(|_| anyhow::anyhow!("stored user id is not an id"))?;
            Ok((id, disabled_at.is_some()))
        })
        .transpose()
    }

    /// Deletes what is keyed by an address rather than by its user: its sign-in links, used or
    /// not, and the emails still waiting to be sent to it (their sealed links with them); with
    /// `Forget::Everything`, also the delivery records of the emails sent to it, which keep
    /// the address.
    async fn forget_address_within(
        &self,
        tx: &mut WriteTx,
        email: &EmailAddress,
        forget: Forget,
    ) -> anyhow::Result<()> {
        sqlx::query(&self.sql("DELETE FROM verification_tokens WHERE identifier = ?"))
            .bind(email.as_str())
            .execute(&mut **tx)
            .await
            .doing("cannot delete the address's links")?;
        let statement = match forget {
            Forget::PendingEmails => "DELETE FROM outbox WHERE recipient = ? AND status = 'pending'",
            Forget::Everything => "DELETE FROM outbox WHERE recipient = ?",
        };
        sqlx::query(&self.sql(statement))
            .bind(email.as_str())
            .execute(&mut **tx)
            .await
            .doing("cannot drop the emails waiting for the address")?;
        Ok(())
    }
}

/// How much of an address's email [`SqlStore::forget_address_within`] forgets.
#[derive(Clone, Copy)]
enum Forget {
    /// What is still to be sent (disabling: the links in them must not arrive).
    PendingEmails,
    /// Every record of it (deleting the person).
    Everything,
}

/// A requested change of sign-in address.
#[derive(sqlx::FromRow)]
struct AddressChangeRow {
    user_id: String,
    new_email: String,
    expires: i64,
    used_at: Option<i64>,
}
