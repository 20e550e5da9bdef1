//! The one store behind every storage port, written once for SQLite, PostgreSQL and
//! MySQL/MariaDB: the [`SqlStore`] itself, what several ports share (transactions that write,
//! the outbox row a change queues with it, users and sessions stored inside another port's
//! transaction, reading ids, addresses and instants back), and the health check. Each port's
//! own statements are in a file named for it beside this one (`links`, `users`, `passwords`,
//! `sessions`, `rate_limits`, `outbox`).
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

use std::future::Future;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::id::{Id, OutboxKind, SessionKind, UserKind};
use domain::{DisplayName, EmailAddress, OutboxId, Session, User};
use ports::{NewOutboxMessage, NewSession, StoreHealth, UserAdded};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row as _};
use uuid::Uuid;

use super::dialect::Dialect;
use super::writer::{Deferred, WriteTx, Writer};
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
    pub(super) pool: AnyPool,
    pub(super) writer: Writer,
    pub(super) dialect: Dialect,
    /// This instance's delivery worker, woken when the store queues rows on its own (logout
    /// notices); unset where no worker runs (commands, tests of the store alone).
    pub(super) worker: std::sync::Arc<std::sync::OnceLock<crate::handover::Wakes>>,
    /// What it does with audit events (`[audit]`); the defaults until configured.
    pub(super) audit_options: std::sync::Arc<std::sync::OnceLock<super::audit::AuditOptions>>,
    /// Which audit events become webhooks, for which endpoints (`[[webhooks]]`); none until
    /// configured.
    pub(super) webhooks: std::sync::Arc<std::sync::OnceLock<super::audit::WebhookRouting>>,
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
pub(super) fn case_by(column: &str, n: usize) -> String {
    format!("CASE {column} {} END", vec!["WHEN ? THEN ?"; n].join(" "))
}

/// The first `max` characters of `text`.
pub(super) fn truncated(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// A fresh UUIDv7 id: unique without coordination and ordered by creation time.
pub(super) fn new_id<K>() -> anyhow::Result<Id<K>> {
    Id::parse(&Uuid::now_v7().to_string()).map_err(|_| anyhow::anyhow!("uuid made a malformed id"))
}

/// An address read back from a row, checked.
pub(super) fn stored_address(row: &AnyRow, column: &str) -> anyhow::Result<EmailAddress> {
    let text: String = row.try_get(column)?;
    // The text stays out of the message: a 500's cause chain is logged, and addresses are not.
    EmailAddress::parse(&text).with_context(|| format!("stored {column} is not a valid address"))
}

/// An instant read back from a row.
pub(super) fn stored_instant(row: &AnyRow, column: &str) -> anyhow::Result<DateTime<Utc>> {
    from_millis(row.try_get(column)?)
}

/// A count read back from a row.
pub(super) fn stored_count(row: &AnyRow, column: &str) -> anyhow::Result<u32> {
    Ok(u32::try_from(row.try_get::<i64, _>(column)?).unwrap_or(u32::MAX))
}

/// The columns [`user_from_row`] reads, from `users` aliased `u`.
pub(super) const USER_COLUMNS: &str = "u.id AS user_id, u.name, u.email, u.email_verified, u.image";

/// A user as [`USER_COLUMNS`] reads it.
#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    user_id: String,
    name: Option<String>,
    email: String,
    email_verified: Option<i64>,
    image: Option<String>,
}

impl UserRow {
    /// The user, every value checked.
    pub(super) fn into_user(self) -> anyhow::Result<User> {
        let id: domain::UserId =
            Id::parse(&self.user_id).map_err(|_| anyhow::anyhow!("stored user_id is not an id"))?;
        // A name stored before a rule was added (a text-direction control, say) is not shown:
        // it is the person's to set again, and a page must never show what the rules refuse.
        let name = self.name.and_then(|text| match DisplayName::parse(&text) {
            Ok(name) => name,
            Err(refusal) => {
                tracing::warn!(user.id = %id.as_str(), reason = %refusal, "a stored display name is no longer accepted; not shown");
                None
            }
        });
        Ok(User {
            id,
            // The text stays out of the message: a 500's cause chain is logged, and addresses
            // are not.
            email: EmailAddress::parse(&self.email).context("stored email is not a valid address")?,
            name,
            image: self.image,
            email_verified: self.email_verified.map(from_millis).transpose()?,
        })
    }
}

/// The user in a row holding [`USER_COLUMNS`].
pub(super) fn user_from_row(row: &AnyRow) -> anyhow::Result<User> {
    <UserRow as sqlx::FromRow<'_, AnyRow>>::from_row(row)?.into_user()
}

/// A sign-in method read back from a row.
pub(super) fn stored_method(text: &str) -> anyhow::Result<domain::SignInMethod> {
    domain::SignInMethod::parse(text)
        .with_context(|| format!("stored sign-in method {text:?} is not one this version knows"))
}

/// A text column's value. MariaDB reports a `TEXT` column of a binary collation (every table
/// here is `utf8mb4_bin`) as a `BLOB`, which the `Any` driver will not decode as a string.
pub(super) fn text_column(row: &AnyRow, column: &str) -> anyhow::Result<String> {
    match row.try_get::<String, _>(column) {
        Ok(text) => Ok(text),
        Err(_) => String::from_utf8(row.try_get::<Vec<u8>, _>(column)?)
            .with_context(|| format!("stored {column} is not UTF-8")),
    }
}

/// A nullable text column's value (see [`text_column`]).
pub(super) fn optional_text_column(row: &AnyRow, column: &str) -> anyhow::Result<Option<String>> {
    match row.try_get::<Option<String>, _>(column) {
        Ok(text) => Ok(text),
        Err(_) => row
            .try_get::<Option<Vec<u8>>, _>(column)?
            .map(|bytes| String::from_utf8(bytes).with_context(|| format!("stored {column} is not UTF-8")))
            .transpose(),
    }
}

/// Whether a write was refused by a unique index (SQLite 2067 and 1555, PostgreSQL 23505,
/// MySQL and MariaDB 1062): an outcome the caller acts on ("that address is taken"), never a
/// failure of the store.
pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

/// Whether the server aborted the transaction to break a deadlock or a serialization conflict
/// (SQLSTATE 40001 or PostgreSQL's 40P01), so that running it again is the right answer.
pub(super) fn is_deadlock(error: &anyhow::Error) -> bool {
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
pub(super) async fn retrying<T, F, Fut>(mut transaction: F) -> anyhow::Result<T>
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
    pub(crate) fn new(pool: AnyPool, writer: Writer, dialect: Dialect) -> Self {
        Self {
            pool,
            writer,
            dialect,
            worker: std::sync::Arc::default(),
            audit_options: std::sync::Arc::default(),
            webhooks: std::sync::Arc::default(),
        }
    }

    /// Has the store wake `wakes` (this instance's delivery worker) whenever it queues rows on
    /// its own: the logout notices of an ended session. Set once; later calls are ignored.
    pub fn wake_worker_with(&self, wakes: crate::handover::Wakes) {
        let _already_set = self.worker.set(wakes);
    }

    /// The reading pool, for migrations and bookkeeping in this crate.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Where writes go (see [`SqlStore`]).
    pub(crate) fn writer(&self) -> &Writer {
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
            let writer = PoolUsage::of(self.writer.pool());
            usage.open += writer.open;
            usage.idle += writer.idle;
            usage.max += writer.max;
        }
        usage
    }

    /// On SQLite, the writes run and the group commits that made them durable (see
    /// `writer.rs`); `None` on the servers, which commit each write on its own.
    pub fn group_commits(&self) -> Option<super::GroupCommitCounts> {
        self.writer.group_commits()
    }

    /// A statement in this store's dialect.
    pub(super) fn sql<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        self.dialect.sql(text)
    }

    /// Starts a transaction that will write (see [`Dialect::begin_write`]).
    pub(super) async fn begin_write(&self) -> anyhow::Result<WriteTx> {
        self.writer.begin().await.doing("cannot start a transaction")
    }

    /// Runs `statements` on `connection` (inside the caller's transaction), in order: on
    /// SQLite as one multi-statement query, a single round trip to the writer's thread (sqlx
    /// binds each statement's values in turn); on the servers one after another, since their
    /// protocols prepare one statement at a time.
    ///
    /// # Errors
    /// The first failure, saying it happened while doing `what`; the statements before it ran,
    /// and the caller's transaction (or savepoint) undoes them.
    pub(super) async fn run_together(
        &self,
        connection: &mut sqlx::AnyConnection,
        statements: Vec<Deferred>,
        what: &str,
    ) -> anyhow::Result<()> {
        if self.dialect == Dialect::Sqlite {
            let sql = statements.iter().map(|statement| statement.sql.as_str()).collect::<Vec<_>>().join(";\n");
            let mut query = sqlx::query(&sql);
            for statement in statements {
                query = (statement.bind)(query);
            }
            query.execute(&mut *connection).await.doing_with(|| what.to_owned())?;
        } else {
            for statement in statements {
                (statement.bind)(sqlx::query(&statement.sql))
                    .execute(&mut *connection)
                    .await
                    .doing_with(|| what.to_owned())?;
            }
        }
        Ok(())
    }

    /// Runs one housekeeping `DELETE` whose only parameter is a cutoff instant. Safe on every
    /// instance at once: each deletes what is past the cutoff, and a row deleted by another is
    /// simply not counted twice.
    pub(super) async fn delete_before(
        &self,
        statement: &str,
        cutoff: DateTime<Utc>,
        what: &str,
    ) -> anyhow::Result<u64> {
        let done = self
            .writer
            .execute(sqlx::query(&self.sql(statement)).bind(to_millis(cutoff)))
            .await
            .doing_with(|| format!("cannot purge {what}"))?;
        Ok(done.rows_affected())
    }

    /// Queues an email inside a transaction that stores what it is about (a link, an address
    /// change), so both are stored or neither is.
    pub(super) async fn insert_outbox_within(
        &self,
        tx: &mut WriteTx,
        email: &NewOutboxMessage,
    ) -> anyhow::Result<OutboxId> {
        let (outbox_id, statement) = self.outbox_statement(email)?;
        let what = format!("cannot queue the {} email", email.kind.as_str());
        self.run_together(&mut *tx, vec![statement], &what).await?;
        Ok(outbox_id)
    }

    /// The `INSERT` that queues `email`, and the id it gets (see
    /// [`SqlStore::insert_outbox_within`]).
    pub(super) fn outbox_statement(&self, email: &NewOutboxMessage) -> anyhow::Result<(OutboxId, Deferred)> {
        let outbox_id = new_id::<OutboxKind>()?;
        // A row leased to this instance's worker starts as claimed: one attempt begun, due
        // again only when the lease runs out.
        let (attempts, next_attempt_at) = match email.leased_until {
            Some(until) => (1_i64, until),
            None => (0, email.created_at),
        };
        let values = (
            outbox_id.as_str().to_owned(),
            email.kind.as_str(),
            email.lang.clone(),
            email.recipient.as_str().to_owned(),
            email.link_token_hash.to_hex(),
            email.sealed_body.clone(),
            (to_millis(email.expires), attempts, to_millis(next_attempt_at), to_millis(email.created_at)),
        );
        let statement = Deferred::new(
            self.sql(
                "INSERT INTO outbox (id, kind, lang, recipient, link_token_hash, sealed_body, link_expires, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ),
            move |query| {
                let (id, kind, lang, recipient, link_token_hash, sealed_body, (expires, attempts, next, created)) =
                    values;
                query
                    .bind(id)
                    .bind(kind)
                    .bind(lang)
                    .bind(recipient)
                    .bind(link_token_hash)
                    .bind(sealed_body)
                    .bind(expires)
                    .bind(attempts)
                    .bind(next)
                    .bind(created)
                    .bind(created)
            },
        );
        Ok((outbox_id, statement))
    }

    /// Inserts a user for `email` unless one exists, then reads it back: `Created` when the row
    /// read back is the one just inserted. Racing first sign-ins insert one row between them
    /// (the unique address decides), and every racer reads that row.
    pub(super) async fn insert_user_within(
        &self,
        tx: &mut WriteTx,
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

    /// Stores a session and its sign-in's audit event (naming the new session) inside `tx`,
    /// the event in one statement with any `earlier` one (the user's creation), after the
    /// statements `before` (all of them one round trip on SQLite); returns the session and its
    /// event, the event for [`SqlStore::log_committed`] once `tx` commits.
    pub(super) async fn insert_session(
        &self,
        tx: &mut WriteTx,
        session: &NewSession,
        earlier: Option<&domain::audit::AuditEvent>,
        before: Vec<Deferred>,
    ) -> anyhow::Result<(Session, domain::audit::AuditEvent)> {
        let id = new_id::<SessionKind>()?;
        let values = (
            id.as_str().to_owned(),
            session.token_hash.to_hex(),
            session.user_id.as_str().to_owned(),
            to_millis(session.expires),
            session.user_agent.as_deref().map(|agent| truncated(agent, MAX_USER_AGENT)),
            to_millis(session.created_at),
            session.method.as_str(),
        );
        let mut statements = before;
        statements.push(Deferred::new(
            self.sql(
                "INSERT INTO sessions (id, session_token, user_id, expires, user_agent, created_at, updated_at, \
                 method) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ),
            move |query| {
                let (id, token, user_id, expires, agent, created, method) = values;
                query
                    .bind(id)
                    .bind(token)
                    .bind(user_id)
                    .bind(expires)
                    .bind(agent)
                    .bind(created)
                    .bind(created)
                    .bind(method)
            },
        ));
        let event = session.audit.clone().of_user(&session.user_id).in_session(&id);
        let events: Vec<&domain::audit::AuditEvent> = earlier.into_iter().chain([&event]).collect();
        self.run_with_events(&mut *tx, statements, &events, None, "cannot store the session").await?;
        let stored = Session {
            id,
            user_id: session.user_id.clone(),
            expires: session.expires,
            created_at: session.created_at,
            method: session.method,
        };
        Ok((stored, event))
    }

    pub(super) async fn user_by_email(
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
}

#[async_trait::async_trait]
impl StoreHealth for SqlStore {
    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.doing("the database does not answer")?;
        Ok(())
    }
}
