//! Every storage port, written once for SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! The store talks through sqlx's `Any` driver, which carries integers, text and bytes to any of
//! the three, and the schema is built from exactly those: ids and hashes as text, instants as
//! integer milliseconds, the sealed email body as bytes. So the rules live here once (a link
//! is used by one conditional `UPDATE`; using it retires the address's other links; an outbox
//! row is leased by bumping its next attempt; purges delete by cutoff), and [`Dialect`] supplies
//! the handful of words that differ. Statements are portable SQL with `?` placeholders, each
//! bound once, in order.
//!
//! Concurrency is the database's job, not this process's: many instances share one database.
//! Every decision that two requests could race for is one conditional write, or a row lock
//! taken before reading ([`Dialect::for_update`]); on SQLite a write transaction holds the
//! whole database ([`Dialect::begin_write`]). Servers may still pick one of two deadlocked
//! transactions to abort; those are retried ([`retrying`]).

use std::collections::HashMap;
use std::future::Future;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::id::{Id, OutboxKind, SessionKind, UserKind};
use domain::rate_limit::Gcra;
use domain::{
    DisplayName, EmailAddress, LinkTokenHash, OutboxId, PasswordHash, Session, SessionId, SessionSummary,
    SessionTokenHash, SignInCodeHash, User, UserId,
};
use ports::{
    AddressChangeOutcome, Admission, Bucket, CodeRedemption, DeliveryState, EmailKind, LinkState, LinkStore,
    NewAddressChange, NewLink, NewOutboxMessage, NewSession, Outbox, OutboxCounts, OutboxEntry, OutboxMessage,
    PasswordStore, PendingAddressChange, RateLimiter, Redemption, SentMessage, SessionDraft, SessionStore,
    SignedInRecord, StoreHealth, UserAdded, UserStore,
};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row as _, Transaction};
use uuid::Uuid;

use super::dialect::Dialect;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

/// The longest `User-Agent` kept with a session, in characters (the web layer keeps as many).
pub const MAX_USER_AGENT: usize = 512;
/// The longest delivery error kept on an outbox row, in characters.
pub const MAX_DELIVERY_ERROR: usize = 1000;
/// The longest provider message id kept, in characters (as long as any provider's ids).
pub const MAX_PROVIDER_MESSAGE_ID: usize = 255;
/// How many times a transaction the server aborted to break a deadlock is tried in all.
const ATTEMPTS_AFTER_DEADLOCK: u32 = 5;

/// All the storage ports on one database. Cloning shares the pools.
///
/// Reads go to `pool`; writes to `writer`. On the servers the two are the same pool. On SQLite
/// the writer is a pool of one connection: SQLite lets one connection write at a time, and
/// several pooled connections competing for that lock wait in SQLite's busy handler, which
/// sleeps and retries (idle CPU, long tails). Queued in the pool instead, writes wait in FIFO
/// order and start the moment the writer is free.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    writer: AnyPool,
    dialect: Dialect,
}

/// How many database connections a store holds, for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Connections open.
    pub open: u32,
    /// Of those, idle.
    pub idle: u32,
    /// The most the pools may open.
    pub max: u32,
}

impl PoolUsage {
    fn of(pool: &AnyPool) -> Self {
        Self {
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// `?, ?, ?`: the placeholders of `n` values bound in turn (an `IN` list, a row of values).
pub(super) fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// `CASE column WHEN ? THEN ? ... END` for `n` pairs: one statement that sets each row's own
/// value, bound as (row key, value) pairs in turn.
fn case_by(column: &str, n: usize) -> String {
    format!("CASE {column} {} END", vec!["WHEN ? THEN ?"; n].join(" "))
}

/// The first `max` characters of `text`.
fn truncated(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A fresh UUIDv7 id: unique without coordination and ordered by creation time.
fn new_id<K>() -> anyhow::Result<Id<K>> {
    Id::parse(&Uuid::now_v7().to_string()).map_err(|_| anyhow::anyhow!("uuid made a malformed id"))
}

/// An id read back from a row, checked.
fn stored_id<K>(row: &AnyRow, column: &str) -> anyhow::Result<Id<K>> {
    let text: String = row.try_get(column)?;
    Id::parse(&text).map_err(|_| anyhow::anyhow!("stored {column} `{text}` is not an id"))
}

/// An address read back from a row, checked.
fn stored_address(row: &AnyRow, column: &str) -> anyhow::Result<EmailAddress> {
    let text: String = row.try_get(column)?;
    // The text stays out of the message: a 500's cause chain is logged, and addresses are not.
    EmailAddress::parse(&text).with_context(|| format!("stored {column} is not a valid address"))
}

/// An instant read back from a row.
fn stored_instant(row: &AnyRow, column: &str) -> anyhow::Result<DateTime<Utc>> {
    from_millis(row.try_get(column)?)
}

/// A count read back from a row.
fn stored_count(row: &AnyRow, column: &str) -> anyhow::Result<u32> {
    Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(u32::MAX))
}

/// The columns [`user_from_row`] reads, from `users` aliased `u`.
const USER_COLUMNS: &str = "u.id AS user_id, u.name, u.email, u.email_verified, u.image";

fn user_from_row(row: &AnyRow) -> anyhow::Result<User> {
    let id = stored_id(row, "user_id")?;
    let name: Option<String> = row.try_get("name")?;
    // A name stored before a rule was added (a text-direction control, say) is not shown: it
    // is the person's to set again, and a page must never show what the rules refuse.
    let name = name.and_then(|text| match DisplayName::parse(&text) {
        Ok(name) => name,
        Err(refusal) => {
            tracing::warn!(user.id = %id.as_str(), reason = %refusal, "a stored display name is no longer accepted; not shown");
            None
        }
    });
    Ok(User {
        id,
        email: stored_address(row, "email")?,
        name,
        image: row.try_get("image")?,
        email_verified: row.try_get::<Option<i64>, _>("email_verified")?.map(from_millis).transpose()?,
    })
}

/// Whether a write was refused by a unique index (SQLite 2067 and 1555, PostgreSQL 23505,
/// MySQL and MariaDB 1062): an outcome the caller acts on ("that address is taken"), never a
/// failure of the store.
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// Whether the server aborted the transaction to break a deadlock or a serialization conflict
/// (SQLSTATE 40001 or PostgreSQL's 40P01), so that running it again is the right answer.
fn is_deadlock(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| match cause.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Database(database)) => {
            matches!(database.code().as_deref(), Some("40001" | "40P01"))
        }
        _ => false,
    })
}

/// Runs `transaction` until it is not aborted by a deadlock, at most
/// [`ATTEMPTS_AFTER_DEADLOCK`] times. Row-locking servers abort one of two transactions that
/// wait on each other (two redemptions for one address, each retiring the other's link); the
/// aborted one rolled back completely, so running it again decides afresh.
async fn retrying<T, F, Fut>(mut transaction: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match transaction().await {
            Err(error) if attempt < ATTEMPTS_AFTER_DEADLOCK && is_deadlock(&error) => attempt += 1,
            outcome => return outcome,
        }
    }
}

impl SqlStore {
    /// A store reading through `pool` and writing through `writer` (the same pool, or on
    /// SQLite a pool of one connection), speaking `dialect`.
    pub(crate) fn new(pool: AnyPool, writer: AnyPool, dialect: Dialect) -> Self {
        Self { pool, writer, dialect }
    }

    /// The reading pool, for migrations and bookkeeping in this crate.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The writing pool (see [`SqlStore`]).
    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// The dialect it speaks.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The pools' connections now: open, idle, and the most allowed (SQLite's one writer
    /// counted beside the readers; on the servers reads and writes share one pool).
    pub fn pool_usage(&self) -> PoolUsage {
        let mut usage = PoolUsage::of(&self.pool);
        if self.dialect == Dialect::Sqlite {
            let writer = PoolUsage::of(&self.writer);
            usage.open += writer.open;
            usage.idle += writer.idle;
            usage.max += writer.max;
        }
        usage
    }

    /// A statement in this store's dialect.
    pub(super) fn sql<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.dialect.sql(text)
    }

    /// Starts a transaction that will write (see [`Dialect::begin_write`]).
    async fn begin_write(&self) -> anyhow::Result<Transaction<'static, Any>> {
        self.writer.begin_with(self.dialect.begin_write()).await.doing("cannot start a transaction")
    }

    /// Runs one housekeeping `DELETE` whose only parameter is a cutoff instant. Safe on every
    /// instance at once: each deletes what is past the cutoff, and a row deleted by another is
    /// simply not counted twice.
    async fn delete_before(&self, statement: &str, cutoff: DateTime<Utc>, what: &str) -> anyhow::Result<u64> {
        let done = sqlx::query(&self.sql(statement))
            .bind(to_millis(cutoff))
            .execute(&self.writer)
            .await
            .doing_with(|| format!("cannot purge {what}"))?;
        Ok(done.rows_affected())
    }

    /// Queues an email inside a transaction that stores what it is about (a link, an address
    /// change), so both are stored or neither is.
    async fn insert_outbox_within(
        &self,
        tx: &mut Transaction<'static, Any>,
        email: &NewOutboxMessage,
    ) -> anyhow::Result<OutboxId> {
        let outbox_id = new_id::<OutboxKind>()?;
        // A row leased to this instance's worker starts as claimed: one attempt begun, due
        // again only when the lease runs out.
        let (attempts, next_attempt_at) = match email.leased_until {
            Some(until) => (1_i64, until),
            None => (0, email.created_at),
        };
        sqlx::query(&self.sql(
            "INSERT INTO outbox (id, kind, lang, recipient, link_token_hash, sealed_body, link_expires, attempts, \
             next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(outbox_id.as_str())
        .bind(email.kind.as_str())
        .bind(email.lang.as_str())
        .bind(email.recipient.as_str())
        .bind(email.link_token_hash.to_hex())
        .bind(email.sealed_body.as_slice())
        .bind(to_millis(email.expires))
        .bind(attempts)
        .bind(to_millis(next_attempt_at))
        .bind(to_millis(email.created_at))
        .bind(to_millis(email.created_at))
        .execute(&mut **tx)
        .await
        .doing_with(|| format!("cannot queue the {} email", email.kind.as_str()))?;
        Ok(outbox_id)
    }

    /// Confirms an address change inside its transaction; see
    /// [`UserStore::confirm_address_change`]. The caller commits only on `Changed`.
    async fn confirm_address_change_within(
        &self,
        tx: &mut Transaction<'static, Any>,
        token_hash: &LinkTokenHash,
        old_email: &EmailAddress,
        keep_session: &SessionId,
        notice: &NewOutboxMessage,
        now: DateTime<Utc>,
    ) -> anyhow::Result<AddressChangeOutcome> {
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
            return Ok(match self.address_change_in(&mut **tx, token_hash).await? {
                Some(pending) if pending.used => AddressChangeOutcome::AlreadyUsed,
                Some(_) => AddressChangeOutcome::Expired,
                None => AddressChangeOutcome::Unknown,
            });
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
            Err(error) if is_unique_violation(&error) => return Ok(AddressChangeOutcome::AddressTaken),
            other => other.doing("cannot change the address")?,
        };
        if changed.rows_affected() == 0 {
            return Ok(AddressChangeOutcome::Unknown);
        }
        // Whoever was signed in elsewhere signed in as the old address: only the confirming
        // browser keeps its session.
        sqlx::query(&self.sql("DELETE FROM sessions WHERE user_id = ? AND id <> ?"))
            .bind(pending.user_id.as_str())
            .bind(keep_session.as_str())
            .execute(&mut **tx)
            .await
            .doing("cannot end the account's other sessions")?;
        // A sign-in link mailed to the old address must not sign anyone in as a new user of it.
        self.retire_other_links(tx, old_email.as_str()).await?;
        let notice = self.insert_outbox_within(tx, notice).await?;
        let user = self.user_by_email(&mut **tx, &pending.new_email).await?.context("the changed user vanished")?;
        Ok(AddressChangeOutcome::Changed { user, notice })
    }

    /// An address change by its token hash, through `executor`.
    async fn address_change_in(
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
            Ok(PendingAddressChange {
                user_id: stored_id(&row, "user_id")?,
                new_email: stored_address(&row, "new_email")?,
                expires: stored_instant(&row, "expires")?,
                used: row.try_get::<Option<i64>, _>("used_at")?.is_some(),
            })
        })
        .transpose()
    }

    /// Retires the address's other unused links once one was used: one sign-in per batch of
    /// emails.
    async fn retire_other_links(&self, tx: &mut Transaction<'static, Any>, identifier: &str) -> anyhow::Result<()> {
        sqlx::query(&self.sql("DELETE FROM verification_tokens WHERE identifier = ? AND used_at IS NULL"))
            .bind(identifier)
            .execute(&mut **tx)
            .await
            .doing("cannot retire the other links")?;
        Ok(())
    }

    /// A link's state at `now`, by token hash (and address, when given).
    async fn link_state_in(
        &self,
        executor: impl sqlx::Executor<'_, Database = Any>,
        token_hash: &LinkTokenHash,
        identifier: Option<&EmailAddress>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(LinkState, u32)> {
        let statement = match identifier {
            Some(_) => {
                "SELECT used_at, expires, code_attempts FROM verification_tokens WHERE token = ? AND identifier = ?"
            }
            None => "SELECT used_at, expires, code_attempts FROM verification_tokens WHERE token = ?",
        };
        let statement = self.sql(statement);
        let mut query = sqlx::query(&statement).bind(token_hash.to_hex());
        if let Some(identifier) = identifier {
            query = query.bind(identifier.as_str());
        }
        let row = query.fetch_optional(executor).await.doing("cannot look the link up")?;
        let Some(row) = row else { return Ok((LinkState::Unknown, 0)) };
        let used_at: Option<i64> = row.try_get("used_at")?;
        let expires: i64 = row.try_get("expires")?;
        let state = match used_at {
            Some(_) => LinkState::Used,
            None if expires <= to_millis(now) => LinkState::Expired,
            None => LinkState::Unused,
        };
        Ok((state, stored_count(&row, "code_attempts")?))
    }

    async fn try_redeem(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Redemption> {
        let mut tx = self.begin_write().await?;
        // One conditional statement decides who wins: of racing redemptions, only one matches
        // `used_at IS NULL`; the others wait for its row lock, then no longer match.
        let won = sqlx::query(&self.sql(
            "UPDATE verification_tokens SET used_at = ? \
             WHERE token = ? AND identifier = ? AND used_at IS NULL AND expires > ?",
        ))
        .bind(to_millis(now))
        .bind(token_hash.to_hex())
        .bind(identifier.as_str())
        .bind(to_millis(now))
        .execute(&mut *tx)
        .await
        .doing("cannot redeem the link")?
        .rows_affected()
            == 1;
        if won {
            let stored: String = sqlx::query_scalar(
                &self.sql("SELECT token FROM verification_tokens WHERE token = ? AND identifier = ?"),
            )
            .bind(token_hash.to_hex())
            .bind(identifier.as_str())
            .fetch_one(&mut *tx)
            .await
            .doing("cannot read the redeemed link")?;
            // The final decision is a constant-time comparison, whatever the index did.
            anyhow::ensure!(LinkTokenHash::from_hex(&stored)?.matches(token_hash), "index returned another token");
            let record = self.sign_in_within(&mut tx, identifier, session, now).await?;
            tx.commit().await.doing("cannot commit the redemption")?;
            return Ok(Redemption::Redeemed(record));
        }
        let (state, _) = self.link_state_in(&mut *tx, token_hash, Some(identifier), now).await?;
        tx.rollback().await?;
        Ok(match state {
            LinkState::Unknown => Redemption::Unknown,
            LinkState::Used => Redemption::AlreadyUsed,
            LinkState::Expired => Redemption::Expired,
            // Unused and unexpired, yet the update did not match: it cannot happen inside one
            // transaction, and "already used" is the answer that signs nobody in.
            LinkState::Unused => Redemption::AlreadyUsed,
        })
    }

    async fn try_redeem_code(
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
             WHERE token = ? AND used_at IS NULL AND expires > ? AND code_attempts < ? AND code_hash = ?",
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
            let record = self.sign_in_within(&mut tx, &identifier, session, now).await?;
            tx.commit().await.doing("cannot commit the redemption")?;
            return Ok(CodeRedemption::Redeemed(record));
        }
        let counted = sqlx::query(&self.sql(
            "UPDATE verification_tokens SET code_attempts = code_attempts + 1 \
             WHERE token = ? AND used_at IS NULL AND expires > ? AND code_attempts < ?",
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
            LinkState::Expired => CodeRedemption::Expired,
            // Unused and unexpired, yet no attempt could be counted: they were all used up.
            LinkState::Unused => CodeRedemption::Exhausted,
        })
    }

    /// After a link was used, inside its transaction: the other unused links of the address
    /// retired, its user found or created (verified now), and the new session stored.
    async fn sign_in_within(
        &self,
        tx: &mut Transaction<'static, Any>,
        identifier: &EmailAddress,
        session: &SessionDraft,
        now: DateTime<Utc>,
    ) -> anyhow::Result<SignedInRecord> {
        self.retire_other_links(tx, identifier.as_str()).await?;
        let (UserAdded::Created(user) | UserAdded::Existed(user)) =
            self.insert_user_within(tx, identifier, Some(now), now).await?;
        let session = NewSession {
            token_hash: session.token_hash.clone(),
            user_id: user.id.clone(),
            expires: session.expires,
            user_agent: session.user_agent.clone(),
            created_at: now,
        };
        let session = self.insert_session(&mut **tx, &session).await?;
        Ok(SignedInRecord { user, session })
    }

    /// Inserts a user for `email` unless one exists, in a transaction of its own.
    async fn try_insert_user(
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

    /// Inserts a user for `email` unless one exists, then reads it back: `Created` when the row
    /// read back is the one just inserted. Racing first sign-ins insert one row between them
    /// (the unique address decides), and every racer reads that row.
    async fn insert_user_within(
        &self,
        tx: &mut Transaction<'static, Any>,
        email: &EmailAddress,
        verified_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<UserAdded> {
        let id = new_id::<UserKind>()?;
        let insert = format!(
            "INSERT INTO users (id, email, email_verified, created_at, updated_at) VALUES (?, ?, ?, ?, ?){}",
            self.dialect.on_duplicate_do_nothing("email")
        );
        sqlx::query(&self.sql(&insert))
            .bind(id.as_str())
            .bind(email.as_str())
            .bind(verified_at.map(to_millis))
            .bind(to_millis(now))
            .bind(to_millis(now))
            .execute(&mut **tx)
            .await
            .doing("cannot add the user")?;
        let mut user = self.user_by_email(&mut **tx, email).await?.context("the user vanished while being added")?;
        // Only an existing user signing in for the first time needs marking: a new one was
        // inserted verified, and an address verified once stays so.
        if let (Some(verified_at), None) = (verified_at, user.email_verified) {
            sqlx::query(
                &self.sql(
                    "UPDATE users SET email_verified = COALESCE(email_verified, ?), updated_at = ? WHERE email = ?",
                ),
            )
            .bind(to_millis(verified_at))
            .bind(to_millis(now))
            .bind(email.as_str())
            .execute(&mut **tx)
            .await
            .doing("cannot mark the address verified")?;
            user.email_verified = Some(verified_at);
        }
        Ok(if user.id == id { UserAdded::Created(user) } else { UserAdded::Existed(user) })
    }

    /// Stores a new session through `executor` (the writer, or a redemption's transaction).
    async fn insert_session(
        &self,
        executor: impl sqlx::Executor<'_, Database = Any>,
        session: &NewSession,
    ) -> anyhow::Result<Session> {
        let id = new_id::<SessionKind>()?;
        sqlx::query(&self.sql(
            "INSERT INTO sessions (id, session_token, user_id, expires, user_agent, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id.as_str())
        .bind(session.token_hash.to_hex())
        .bind(session.user_id.as_str())
        .bind(to_millis(session.expires))
        .bind(session.user_agent.as_deref().map(|agent| truncated(agent, MAX_USER_AGENT)))
        .bind(to_millis(session.created_at))
        .bind(to_millis(session.created_at))
        .execute(executor)
        .await
        .doing("cannot store the session")?;
        Ok(Session { id, user_id: session.user_id.clone(), expires: session.expires, created_at: session.created_at })
    }

    async fn user_by_email(
        &self,
        executor: impl sqlx::Executor<'_, Database = Any>,
        email: &EmailAddress,
    ) -> anyhow::Result<Option<User>> {
        let row = sqlx::query(&self.sql(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.email = ?")))
            .bind(email.as_str())
            .fetch_optional(executor)
            .await
            .doing("cannot read the user")?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn try_acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission> {
        // Three statements whatever the number of buckets: rows to lock, the locked counters,
        // the charged counters. Keys go in sorted order, so two acquisitions sharing buckets
        // lock them in the same order and cannot wait on each other in a circle.
        let mut keys: Vec<&str> = buckets.iter().map(|bucket| bucket.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let list = placeholders(keys.len());
        let mut tx = self.begin_write().await?;
        // A row to lock, even for a bucket never seen: locking a row that does not exist locks
        // nothing, and two first requests would both be admitted. A counter at the epoch admits
        // as if absent.
        let insert = format!(
            "INSERT INTO rate_limits (bucket, tat) VALUES {}{}",
            vec!["(?, 0)"; keys.len()].join(", "),
            self.dialect.on_duplicate_do_nothing("bucket")
        );
        let insert = self.sql(&insert);
        let mut query = sqlx::query(&insert);
        for key in &keys {
            query = query.bind(*key);
        }
        query.execute(&mut *tx).await.doing("cannot create a rate limit")?;
        let select = format!(
            "SELECT bucket, tat FROM rate_limits WHERE bucket IN ({list}) ORDER BY bucket{}",
            self.dialect.for_update()
        );
        let select = self.sql(&select);
        let mut query = sqlx::query_as::<_, (String, i64)>(&select);
        for key in &keys {
            query = query.bind(*key);
        }
        let mut counters: HashMap<String, DateTime<Utc>> = HashMap::new();
        for (key, tat) in query.fetch_all(&mut *tx).await.doing("cannot read a rate limit")? {
            counters.insert(key, from_millis(tat)?);
        }
        // Charged in the caller's order, so a refusal names the first bucket without room.
        for (index, bucket) in buckets.iter().enumerate() {
            let counter = counters.get_mut(&bucket.key).context("a rate limit row vanished inside its transaction")?;
            match bucket.quota.check(Some(*counter), now) {
                Gcra::Admitted { tat } => *counter = tat,
                Gcra::Refused { retry_after } => {
                    tx.rollback().await?;
                    return Ok(Admission::Refused { bucket: index, retry_after });
                }
            }
        }
        let update = format!("UPDATE rate_limits SET tat = {} WHERE bucket IN ({list})", case_by("bucket", keys.len()));
        let update = self.sql(&update);
        let mut query = sqlx::query(&update);
        for key in &keys {
            query = query.bind(*key).bind(to_millis(counters[*key]));
        }
        for key in &keys {
            query = query.bind(*key);
        }
        query.execute(&mut *tx).await.doing("cannot charge a rate limit")?;
        tx.commit().await.doing("cannot commit the rate limits")?;
        Ok(Admission::Admitted)
    }

    async fn try_claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        let mut tx = self.begin_write().await?;
        // Lock the due rows (skipping those another worker holds), then lease them by moving
        // their next attempt to the end of the lease: a worker that dies mid-send gives its
        // rows back when the lease runs out.
        let select = format!(
            "SELECT id, kind, lang, recipient, link_token_hash, sealed_body, link_expires, attempts FROM outbox \
             WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?{}",
            self.dialect.for_update_skip_locked()
        );
        let rows = sqlx::query(&self.sql(&select))
            .bind(to_millis(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .doing("cannot read due outbox rows")?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let lease = format!(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id IN ({})",
            placeholders(rows.len())
        );
        let lease = self.sql(&lease);
        let mut query = sqlx::query(&lease).bind(to_millis(lease_until)).bind(to_millis(now));
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let hash: String = row.try_get("link_token_hash")?;
            let message = OutboxMessage {
                id: stored_id(row, "id")?,
                kind: stored_kind(row)?,
                lang: row.try_get("lang")?,
                recipient: stored_address(row, "recipient")?,
                link_token_hash: LinkTokenHash::from_hex(&hash).context("stored token hash is not valid")?,
                sealed_body: row.try_get::<Option<Vec<u8>>, _>("sealed_body")?.context("a pending row has no body")?,
                expires: stored_instant(row, "link_expires")?,
                attempts: stored_count(row, "attempts")?.saturating_add(1),
                leased_until: lease_until,
            };
            query = query.bind(message.id.as_str().to_owned());
            claimed.push(message);
        }
        query.execute(&mut *tx).await.doing("cannot lease due outbox rows")?;
        tx.commit().await.doing("cannot commit the outbox claim")?;
        Ok(claimed)
    }
}

#[async_trait::async_trait]
impl LinkStore for SqlStore {
    async fn insert_with_email(&self, link: &NewLink, email: &NewOutboxMessage) -> anyhow::Result<OutboxId> {
        let mut tx = self.begin_write().await?;
        sqlx::query(&self.sql(
            "INSERT INTO verification_tokens (identifier, token, code_hash, expires, created_at) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(link.identifier.as_str())
        .bind(link.token_hash.to_hex())
        .bind(link.code_hash.to_hex())
        .bind(to_millis(link.expires))
        .bind(to_millis(link.created_at))
        .execute(&mut *tx)
        .await
        .doing("cannot store the link")?;
        let outbox_id = self.insert_outbox_within(&mut tx, email).await?;
        tx.commit().await.doing("cannot commit the link and its email")?;
        Ok(outbox_id)
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

#[async_trait::async_trait]
impl RateLimiter for SqlStore {
    async fn acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission> {
        retrying(|| self.try_acquire(buckets, now)).await
    }

    async fn wait(&self, bucket: &Bucket, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>> {
        let tat: Option<i64> = sqlx::query_scalar(&self.sql("SELECT tat FROM rate_limits WHERE bucket = ?"))
            .bind(&bucket.key)
            .fetch_optional(&self.pool)
            .await
            .doing("cannot read a rate limit")?;
        Ok(match bucket.quota.check(tat.map(from_millis).transpose()?, now) {
            Gcra::Admitted { .. } => None,
            Gcra::Refused { retry_after } => Some(retry_after),
        })
    }

    async fn purge(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM rate_limits WHERE tat < ?", now, "spent rate limits").await
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
            let outcome =
                self.confirm_address_change_within(&mut tx, token_hash, old_email, keep_session, notice, now).await?;
            if matches!(outcome, AddressChangeOutcome::Changed { .. }) {
                tx.commit().await.doing("cannot commit the address change")?;
            } else {
                tx.rollback().await.doing("cannot roll back the address change")?;
            }
            Ok(outcome)
        })
        .await
    }

    async fn remove(&self, email: &EmailAddress) -> anyhow::Result<bool> {
        let done = sqlx::query(&self.sql("DELETE FROM users WHERE email = ?"))
            .bind(email.as_str())
            .execute(&self.writer)
            .await
            .doing("cannot remove the user")?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait::async_trait]
impl PasswordStore for SqlStore {
    async fn find_with_password(&self, email: &EmailAddress) -> anyhow::Result<Option<(User, Option<PasswordHash>)>> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {USER_COLUMNS}, p.hash FROM users u LEFT JOIN passwords p ON p.user_id = u.id WHERE u.email = ?"
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

    async fn set_password(&self, user_id: &UserId, hash: &PasswordHash, now: DateTime<Utc>) -> anyhow::Result<()> {
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
        tx.commit().await.doing("cannot store the password hash")?;
        Ok(())
    }

    async fn replace_password_hash(
        &self,
        user_id: &UserId,
        old: &PasswordHash,
        new: &PasswordHash,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let done =
            sqlx::query(&self.sql("UPDATE passwords SET hash = ?, updated_at = ? WHERE user_id = ? AND hash = ?"))
                .bind(new.as_phc())
                .bind(to_millis(now))
                .bind(user_id.as_str())
                .bind(old.as_phc())
                .execute(&self.writer)
                .await
                .doing("cannot replace the password hash")?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait::async_trait]
impl SessionStore for SqlStore {
    async fn create(&self, session: &NewSession) -> anyhow::Result<Session> {
        self.insert_session(&self.writer, session).await
    }

    async fn find(&self, token_hash: &SessionTokenHash) -> anyhow::Result<Option<(Session, User)>> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT s.id AS session_id, s.expires, s.created_at AS session_created_at, {USER_COLUMNS} \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.session_token = ?"
        )))
        .bind(token_hash.to_hex())
        .fetch_optional(&self.pool)
        .await
        .doing("cannot read the session")?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        let session = Session {
            id: stored_id(&row, "session_id")?,
            user_id: user.id.clone(),
            expires: stored_instant(&row, "expires")?,
            created_at: stored_instant(&row, "session_created_at")?,
        };
        Ok(Some((session, user)))
    }

    async fn extend(&self, session_id: &SessionId, expires: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<()> {
        sqlx::query(&self.sql("UPDATE sessions SET expires = ?, updated_at = ? WHERE id = ?"))
            .bind(to_millis(expires))
            .bind(to_millis(now))
            .bind(session_id.as_str())
            .execute(&self.writer)
            .await
            .doing("cannot extend the session")?;
        Ok(())
    }

    async fn list_for_user(&self, user_id: &UserId, now: DateTime<Utc>) -> anyhow::Result<Vec<SessionSummary>> {
        let rows = sqlx::query(&self.sql(
            "SELECT id, created_at, updated_at, expires, user_agent FROM sessions \
             WHERE user_id = ? AND expires > ? ORDER BY updated_at DESC, created_at DESC, id",
        ))
        .bind(user_id.as_str())
        .bind(to_millis(now))
        .fetch_all(&self.pool)
        .await
        .doing("cannot list the sessions")?;
        rows.iter()
            .map(|row| {
                Ok(SessionSummary {
                    id: stored_id(row, "id")?,
                    created_at: stored_instant(row, "created_at")?,
                    last_used: stored_instant(row, "updated_at")?,
                    expires: stored_instant(row, "expires")?,
                    user_agent: row.try_get("user_agent")?,
                })
            })
            .collect()
    }

    async fn delete_for_user(&self, user_id: &UserId, session_id: &SessionId) -> anyhow::Result<bool> {
        let done = sqlx::query(&self.sql("DELETE FROM sessions WHERE id = ? AND user_id = ?"))
            .bind(session_id.as_str())
            .bind(user_id.as_str())
            .execute(&self.writer)
            .await
            .doing("cannot revoke the session")?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_others(&self, user_id: &UserId, keep: &SessionId) -> anyhow::Result<u64> {
        let done = sqlx::query(&self.sql("DELETE FROM sessions WHERE user_id = ? AND id <> ?"))
            .bind(user_id.as_str())
            .bind(keep.as_str())
            .execute(&self.writer)
            .await
            .doing("cannot revoke the other sessions")?;
        Ok(done.rows_affected())
    }

    async fn delete(&self, token_hash: &SessionTokenHash) -> anyhow::Result<()> {
        sqlx::query(&self.sql("DELETE FROM sessions WHERE session_token = ?"))
            .bind(token_hash.to_hex())
            .execute(&self.writer)
            .await
            .doing("cannot delete the session")?;
        Ok(())
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM sessions WHERE expires < ?", cutoff, "expired sessions").await
    }
}

#[async_trait::async_trait]
impl StoreHealth for SqlStore {
    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.doing("the database does not answer")?;
        Ok(())
    }
}

/// An outbox row's kind of email.
fn stored_kind(row: &AnyRow) -> anyhow::Result<EmailKind> {
    let kind: String = row.try_get("kind")?;
    EmailKind::parse(&kind).with_context(|| format!("unknown kind of email `{kind}`"))
}

fn outbox_entry_from_row(row: &AnyRow) -> anyhow::Result<OutboxEntry> {
    let status: String = row.try_get("status")?;
    Ok(OutboxEntry {
        id: stored_id(row, "id")?,
        kind: stored_kind(row)?,
        recipient: stored_address(row, "recipient")?,
        state: DeliveryState::parse(&status).with_context(|| format!("unknown outbox status `{status}`"))?,
        attempts: stored_count(row, "attempts")?,
        created_at: stored_instant(row, "created_at")?,
        next_attempt_at: stored_instant(row, "next_attempt_at")?,
        provider_message_id: row.try_get("provider_message_id")?,
        last_error: row.try_get("last_error")?,
    })
}

#[async_trait::async_trait]
impl Outbox for SqlStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        retrying(|| self.try_claim_due(now, lease_until, limit)).await
    }

    async fn mark_sent(&self, sent: &[SentMessage], now: DateTime<Utc>) -> anyhow::Result<()> {
        if sent.is_empty() {
            return Ok(());
        }
        // One statement for the batch; each row's provider id picked by its id.
        let statement = format!(
            "UPDATE outbox SET status = 'sent', sealed_body = NULL, provider_message_id = {}, \
             last_error = NULL, next_attempt_at = ?, updated_at = ? WHERE status <> 'sent' AND id IN ({})",
            case_by("id", sent.len()),
            placeholders(sent.len())
        );
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement);
        for message in sent {
            let provider_id = message.provider_message_id.as_deref().map(|id| truncated(id, MAX_PROVIDER_MESSAGE_ID));
            query = query.bind(message.id.as_str()).bind(provider_id);
        }
        query = query.bind(to_millis(now)).bind(to_millis(now));
        for message in sent {
            query = query.bind(message.id.as_str());
        }
        query.execute(&self.writer).await.doing("cannot record sent emails")?;
        Ok(())
    }

    async fn mark_retry(
        &self,
        id: &OutboxId,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(&self.sql(
            "UPDATE outbox SET next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
        ))
        .bind(to_millis(next_attempt_at))
        .bind(truncated(error, MAX_DELIVERY_ERROR))
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .doing("cannot schedule a retry")?;
        Ok(())
    }

    async fn mark_final(
        &self,
        id: &OutboxId,
        state: DeliveryState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(state, DeliveryState::Failed | DeliveryState::Dropped),
            "{state:?} is not a final failure"
        );
        sqlx::query(&self.sql(
            "UPDATE outbox SET status = ?, sealed_body = NULL, last_error = ?, next_attempt_at = ?, updated_at = ? \
             WHERE id = ? AND status = 'pending'",
        ))
        .bind(state.as_str())
        .bind(truncated(reason, MAX_DELIVERY_ERROR))
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.writer)
        .await
        .doing("cannot record a failed email")?;
        Ok(())
    }

    async fn release(&self, ids: &[OutboxId], now: DateTime<Utc>) -> anyhow::Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let statement = format!(
            "UPDATE outbox SET attempts = attempts - 1, next_attempt_at = ?, updated_at = ? \
             WHERE status = 'pending' AND attempts > 0 AND id IN ({})",
            placeholders(ids.len())
        );
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement).bind(to_millis(now)).bind(to_millis(now));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let done = query.execute(&self.writer).await.doing("cannot give back leased emails")?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .doing("cannot read the outbox")?;
        next.map(from_millis).transpose()
    }

    async fn list(&self, state: Option<DeliveryState>, limit: u32) -> anyhow::Result<Vec<OutboxEntry>> {
        let columns =
            "id, kind, recipient, status, attempts, created_at, next_attempt_at, provider_message_id, last_error";
        let filter = if state.is_some() { "WHERE status = ? " } else { "" };
        let statement = format!("SELECT {columns} FROM outbox {filter}ORDER BY created_at DESC LIMIT ?");
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement);
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await.doing("cannot list the outbox")?;
        rows.iter().map(outbox_entry_from_row).collect()
    }

    async fn counts(&self) -> anyhow::Result<OutboxCounts> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .doing("cannot count the outbox")?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let status: String = row.try_get("status")?;
            let count = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default();
            match DeliveryState::parse(&status) {
                Some(DeliveryState::Pending) => {
                    counts.pending = count;
                    counts.oldest_pending = Some(stored_instant(&row, "oldest")?);
                }
                Some(DeliveryState::Sent) => counts.sent = count,
                Some(DeliveryState::Failed) => counts.failed = count,
                Some(DeliveryState::Dropped) => counts.dropped = count,
                None => anyhow::bail!("unknown outbox status `{status}`"),
            }
        }
        Ok(counts)
    }

    async fn purge_finished(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before(
            "DELETE FROM outbox WHERE status <> 'pending' AND updated_at < ?",
            cutoff,
            "delivery records",
        )
        .await
    }
}
