//! The magic links ([`LinkStore`]): stored with their email in one transaction that marks the
//! address's older unused links replaced, used once by one conditional `UPDATE` (by the token or
//! by the code), and on use storing the user and the session in the same transaction.

use chrono::{DateTime, Utc};
use domain::audit::AuditEvent;
use domain::{EmailAddress, LinkTokenHash, SignInCodeHash};
use ports::{
    CodeRedemption, LinkIssued, LinkState, LinkStore, NewLink, NewOutboxMessage, NewSession, Redemption, SessionDraft,
    SignedInRecord, UserAdded,
};
use sqlx::{Any, Row as _};

use super::writer::{Deferred, WriteTx};

use super::store::*;
use super::Doing as _;
use crate::time::to_millis;

impl SqlStore {
    /// A link's state at `now`, by token hash (and address, when given).
    pub(super) async fn link_state_in(
        &self,
        executor: impl sqlx::Executor<'_, Database = Any>,
        token_hash: &LinkTokenHash,
        identifier: Option<&EmailAddress>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(LinkState, u32)> {
        let statement = match identifier {
            Some(_) => {
                "SELECT used_at, replaced_at, expires, code_attempts FROM verification_tokens \
                 WHERE token = ? AND identifier = ?"
            }
            None => "SELECT used_at, replaced_at, expires, code_attempts FROM verification_tokens WHERE token = ?",
        };
        let statement = self.sql(statement);
        let mut query = sqlx::query(&statement).bind(token_hash.to_hex());
        if let Some(identifier) = identifier {
            query = query.bind(identifier.as_str());
        }
        let row = query.fetch_optional(executor).await.doing("cannot look the link up")?;
        let Some(row) = row else { return Ok((LinkState::Unknown, 0)) };
        let used_at: Option<i64> = row.try_get("used_at")?;
        let replaced_at: Option<i64> = row.try_get("replaced_at")?;
        let expires: i64 = row.try_get("expires")?;
        // Only a live link is ever marked replaced, so "replaced" is what ended it even once
        // its time is up too.
        let state = match (used_at, replaced_at) {
            (Some(_), _) => LinkState::Used,
            (None, Some(_)) => LinkState::Replaced,
            (None, None) if expires <= to_millis(now) => LinkState::Expired,
            (None, None) => LinkState::Unused,
        };
        Ok((state, stored_count(&row, "code_attempts")?))
    }

    pub(super) async fn try_redeem(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Redemption> {
        let mut tx = self.begin_write().await?;
        // One conditional statement decides who wins: of racing redemptions, only one matches
        // `used_at IS NULL`; the others wait for its row lock, then no longer match. Where the
        // dialect can, the same statement hands back the stored token; MySQL reads it back.
        let update = format!(
            "UPDATE verification_tokens SET used_at = ? \
             WHERE token = ? AND identifier = ? AND used_at IS NULL AND replaced_at IS NULL AND expires > ?{}",
            if self.dialect.update_returning() { " RETURNING token" } else { "" }
        );
        let update = self.sql(&update);
        let query = sqlx::query(&update)
            .bind(to_millis(now))
            .bind(token_hash.to_hex())
            .bind(identifier.as_str())
            .bind(to_millis(now));
        let stored: Option<String> = if self.dialect.update_returning() {
            let row = query.fetch_optional(&mut *tx).await.doing("cannot redeem the link")?;
            row.map(|row| text_column(&row, "token")).transpose()?
        } else if query.execute(&mut *tx).await.doing("cannot redeem the link")?.rows_affected() == 1 {
            let stored =
                sqlx::query(&self.sql("SELECT token FROM verification_tokens WHERE token = ? AND identifier = ?"))
                    .bind(token_hash.to_hex())
                    .bind(identifier.as_str())
                    .fetch_one(&mut *tx)
                    .await
                    .doing("cannot read the redeemed link")?;
            Some(text_column(&stored, "token")?)
        } else {
            None
        };
        if let Some(stored) = stored {
            // The final decision is a constant-time comparison, whatever the index did.
            anyhow::ensure!(LinkTokenHash::from_hex(&stored)?.matches(token_hash), "index returned another token");
            let (record, events) = self.sign_in_within(&mut tx, identifier, session, now).await?;
            tx.commit().await.doing("cannot commit the redemption")?;
            self.log_committed(&events);
            return Ok(Redemption::Redeemed(record));
        }
        let (state, _) = self.link_state_in(&mut *tx, token_hash, Some(identifier), now).await?;
        tx.rollback().await?;
        Ok(match state {
            LinkState::Unknown => Redemption::Unknown,
            LinkState::Used => Redemption::AlreadyUsed,
            LinkState::Replaced => Redemption::Replaced,
            LinkState::Expired => Redemption::Expired,
            // Unused and unexpired, yet the update did not match: it cannot happen inside one
            // transaction, and "already used" is the answer that signs nobody in.
            LinkState::Unused => Redemption::AlreadyUsed,
        })
    }

    pub(super) async fn try_redeem_code(
        &self,
        token_hash: &LinkTokenHash,
        code_hash: &SignInCodeHash,
        max_attempts: u32,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<CodeRedemption> {
        let mut tx = self.begin_write().await?;
        // As in `redeem`, one conditional write decides; a wrong code matches nothing here.
        let won = sqlx::query(&self.sql(
            "UPDATE verification_tokens SET used_at = ? \
             WHERE token = ? AND used_at IS NULL AND replaced_at IS NULL AND expires > ? AND code_attempts < ? \
             AND code_hash = ?",
        ))
        .bind(to_millis(now))
        .bind(token_hash.to_hex())
        .bind(to_millis(now))
        .bind(i64::from(max_attempts))
        .bind(code_hash.to_hex())
        .execute(&mut *tx)
        .await
        .doing("cannot redeem the code")?
        .rows_affected()
            == 1;
        if won {
            let row = sqlx::query(&self.sql("SELECT identifier, code_hash FROM verification_tokens WHERE token = ?"))
                .bind(token_hash.to_hex())
                .fetch_one(&mut *tx)
                .await
                .doing("cannot read the redeemed code")?;
            let stored: String = row.try_get("code_hash")?;
            anyhow::ensure!(SignInCodeHash::from_hex(&stored)?.matches(code_hash), "index returned another code");
            let identifier = stored_address(&row, "identifier")?;
            let (record, events) = self.sign_in_within(&mut tx, &identifier, session, now).await?;
            tx.commit().await.doing("cannot commit the redemption")?;
            self.log_committed(&events);
            return Ok(CodeRedemption::Redeemed(record));
        }
        let counted = sqlx::query(&self.sql(
            "UPDATE verification_tokens SET code_attempts = code_attempts + 1 \
             WHERE token = ? AND used_at IS NULL AND replaced_at IS NULL AND expires > ? AND code_attempts < ?",
        ))
        .bind(token_hash.to_hex())
        .bind(to_millis(now))
        .bind(i64::from(max_attempts))
        .execute(&mut *tx)
        .await
        .doing("cannot count a wrong code")?
        .rows_affected()
            == 1;
        let (state, attempts) = self.link_state_in(&mut *tx, token_hash, None, now).await?;
        if counted {
            tx.commit().await.doing("cannot commit a wrong code")?;
            return Ok(CodeRedemption::Wrong { attempts_left: max_attempts.saturating_sub(attempts) });
        }
        tx.rollback().await?;
        Ok(match state {
            LinkState::Unknown => CodeRedemption::Unknown,
            LinkState::Used => CodeRedemption::AlreadyUsed,
            LinkState::Replaced => CodeRedemption::Replaced,
            LinkState::Expired => CodeRedemption::Expired,
            // Unused and unexpired, yet no attempt could be counted: they were all used up.
            LinkState::Unused => CodeRedemption::Exhausted,
        })
    }

    /// After a link was used, inside its transaction: the other live links of the address
    /// marked replaced, its user found or created (verified now), and the new session stored,
    /// with their audit events (`user.created` when it made the user), which it returns for
    /// [`SqlStore::log_committed`] once the caller commits.
    pub(super) async fn sign_in_within(
        &self,
        tx: &mut WriteTx,
        identifier: &EmailAddress,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(SignedInRecord, Vec<AuditEvent>)> {
        // A new link already replaced the older ones; this catches links requested at the same
        // moment on a database that let both requests commit (PostgreSQL and MariaDB's read
        // committed): one sign-in per batch of emails.
        let retire = self.retire_live_links(identifier, now);
        let added = self.insert_user_within(tx, identifier, Some(now), now).await?;
        let created = matches!(added, UserAdded::Created(_));
        let (UserAdded::Created(user) | UserAdded::Existed(user)) = added;
        let session = NewSession {
            token_hash: session.token_hash.clone(),
            user_id: user.id.clone(),
            expires: session.expires,
            user_agent: session.user_agent.clone(),
            created_at: now,
            method: session.method,
            audit: session.audit.clone().of_user(&user.id),
        };
        let user_created = created.then(|| {
            let mut event = session.audit.clone();
            event.kind = domain::audit::AuditKind::UserCreated;
            event
        });
        let (session, signed_in) = self.insert_session(tx, &session, user_created.as_ref(), vec![retire]).await?;
        let events: Vec<AuditEvent> = user_created.into_iter().chain([signed_in]).collect();
        Ok((SignedInRecord { user, session }, events))
    }

    /// Deletes `identifier`'s unused links: once the address left its account, a link mailed
    /// to it must not sign anyone in as a new user of it, nor say more than "not valid".
    pub(super) async fn delete_unused_links(&self, tx: &mut WriteTx, identifier: &EmailAddress) -> anyhow::Result<()> {
        sqlx::query(&self.sql("DELETE FROM verification_tokens WHERE identifier = ? AND used_at IS NULL"))
            .bind(identifier.as_str())
            .execute(&mut **tx)
            .await
            .doing("cannot delete the address's unused links")?;
        Ok(())
    }

    /// The statement that marks `identifier`'s links that are still unused and unexpired as
    /// replaced at `now`: a newer link (or a sign-in) has made them pointless, and a person
    /// holding two emails should find exactly one that works.
    fn retire_live_links(&self, identifier: &EmailAddress, now: DateTime<Utc>) -> Deferred {
        let (identifier, now) = (identifier.as_str().to_owned(), to_millis(now));
        Deferred::new(
            self.sql(
                "UPDATE verification_tokens SET replaced_at = ? \
                 WHERE identifier = ? AND used_at IS NULL AND replaced_at IS NULL AND expires > ?",
            ),
            move |query| query.bind(now).bind(identifier).bind(now),
        )
    }
}

#[async_trait::async_trait]
impl LinkStore for SqlStore {
    async fn insert_with_email(
        &self,
        link: &NewLink,
        email: &NewOutboxMessage,
        audit: &AuditEvent,
    ) -> anyhow::Result<LinkIssued> {
        let mut tx = self.begin_write().await?;
        // The address's account, if any, is locked: a `users disable` racing this either
        // commits first (and is seen here) or waits, then retires whatever link this stored.
        if matches!(self.account_for_update(&mut tx, &link.identifier).await?, Some((_, true))) {
            tx.rollback().await.doing("cannot roll back the refused link")?;
            return Ok(LinkIssued::AccountDisabled);
        }
        // What remains is one round trip on SQLite: retire the older links, store this one,
        // queue its email, record the event.
        let values = (
            link.identifier.as_str().to_owned(),
            link.token_hash.to_hex(),
            link.code_hash.to_hex(),
            to_millis(link.expires),
            to_millis(link.created_at),
        );
        let store_link = Deferred::new(
            self.sql(
                "INSERT INTO verification_tokens (identifier, token, code_hash, expires, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
            ),
            move |query| {
                let (identifier, token, code, expires, created) = values;
                query.bind(identifier).bind(token).bind(code).bind(expires).bind(created)
            },
        );
        let (outbox_id, queue_email) = self.outbox_statement(email)?;
        let statements = vec![self.retire_live_links(&link.identifier, link.created_at), store_link, queue_email];
        self.run_with_events(
            &mut tx,
            statements,
            &[audit],
            Some(&link.identifier),
            "cannot store the link and its email",
        )
        .await?;
        tx.commit().await.doing("cannot commit the link and its email")?;
        self.log_committed([audit]);
        Ok(LinkIssued::Queued(outbox_id))
    }

    async fn redeem(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Redemption> {
        retrying(|| self.try_redeem(token_hash, identifier, session, now)).await
    }

    async fn redeem_code(
        &self,
        token_hash: &LinkTokenHash,
        code_hash: &SignInCodeHash,
        max_attempts: u32,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<CodeRedemption> {
        retrying(|| self.try_redeem_code(token_hash, code_hash, max_attempts, session, now)).await
    }

    async fn state(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        now: DateTime<Utc>,
    ) -> anyhow::Result<LinkState> {
        Ok(self.link_state_in(&self.pool, token_hash, Some(identifier), now).await?.0)
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        let links = self.delete_before("DELETE FROM verification_tokens WHERE expires < ?", cutoff, "expired links");
        // Address-change links are links too, and go with them.
        let changes = self.delete_before("DELETE FROM address_changes WHERE expires < ?", cutoff, "address changes");
        Ok(links.await? + changes.await?)
    }
}
