//! The SQLite stores: users, links and sessions in one database file, through a sqlx pool.
//!
//! SQLite is the embedded default: no server to run, one file to back up. The pool runs it in
//! WAL mode (readers never block the writer), with foreign keys enforced and a busy timeout so
//! that concurrent writers queue instead of failing. Every query here looks rows up by an
//! indexed column; the schema is in `migrations/sqlite/`.

use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::id::Id;
use domain::rate_limit::Gcra;
use domain::{
    EmailAddress, LinkTokenHash, OutboxId, Session, SessionId, SessionTokenHash, SignInCodeHash, User, UserId,
};
use ports::{
    Admission, Bucket, CodeRedemption, DeliveryState, LinkState, LinkStore, NewLink, NewOutboxMessage, NewSession,
    Outbox, OutboxCounts, OutboxEntry, OutboxMessage, RateLimiter, Redemption, SessionStore, StoreHealth, UserAdded,
    UserStore,
};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::Row as _;
use uuid::Uuid;

use crate::migrations::MigrationState;
use crate::time::{from_millis, to_millis};

/// The SQLite migrations, embedded in the binary so a deployment cannot run with the wrong ones.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Retires the address's other unused links once one was used: one sign-in per batch of emails.
async fn retire_other_links(tx: &mut sqlx::SqliteConnection, identifier: &EmailAddress) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM verification_tokens WHERE identifier = ? AND used_at IS NULL")
        .bind(identifier.as_str())
        .execute(tx)
        .await
        .context("cannot retire the other links")?;
    Ok(())
}

/// A link's `used_at` and `expires`, by token hash and address.
const LINK_STATE: &str = "SELECT used_at, expires FROM verification_tokens WHERE token = ? AND identifier = ?";

/// Classifies a link row from [`LINK_STATE`] at `now`.
fn link_state(row: Option<(Option<i64>, i64)>, now: DateTime<Utc>) -> LinkState {
    match row {
        None => LinkState::Unknown,
        Some((Some(_used_at), _)) => LinkState::Used,
        Some((None, expires)) if expires <= to_millis(now) => LinkState::Expired,
        Some((None, _)) => LinkState::Unused,
    }
}

/// Whether opening a database may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (and its folder) when missing: serving and migrating.
    CreateIfMissing,
    /// Open only an existing file: commands that read.
    MustExist,
}

/// Creates an empty database file, owner-only, with any missing folders (owner-only too).
fn create_private_file(file: &std::path::Path) -> anyhow::Result<()> {
    if let Some(folder) = file.parent().filter(|p| !p.as_os_str().is_empty() && !p.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(folder).with_context(|| format!("cannot create the database folder {}", folder.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        // Another process creating it at the same moment is as good as creating it.
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error).with_context(|| format!("cannot create the database file {}", file.display())),
    }
}

/// All three stores on one SQLite pool. Cloning shares the pool.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing, with its folder) the database at `url`, e.g.
    /// `sqlite://data/magiclink.sqlite`.
    ///
    /// # Errors
    /// Fails if the URL is not a SQLite URL or the file cannot be created or opened.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        Self::open(url, max_connections, OpenMode::CreateIfMissing)
            .await?
            .with_context(|| format!("the SQLite database at `{url}` was not created"))
    }

    /// Opens the database at `url`; with [`OpenMode::MustExist`], `None` when there is no such
    /// file (nothing is created: commands that only read must not leave files behind).
    ///
    /// A file this creates is readable by its owner only (0600, in a 0700 folder if the folder
    /// is new too): it holds addresses and session hashes. SQLite gives the `-wal` and `-shm`
    /// files it creates later the database file's own permissions.
    ///
    /// # Errors
    /// Fails if the URL is not a SQLite URL or the file cannot be created or opened.
    pub async fn open(url: &str, max_connections: u32, mode: OpenMode) -> anyhow::Result<Option<Self>> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("`{url}` is not a SQLite URL (expected sqlite://path/to/file.sqlite)"))?
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable in WAL mode except for the last transactions before a power cut.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = options.get_filename().to_owned();
        let in_memory = file.as_os_str().is_empty() || file.as_os_str() == ":memory:";
        if !in_memory && !file.exists() {
            match mode {
                OpenMode::MustExist => return Ok(None),
                OpenMode::CreateIfMissing => create_private_file(&file)?,
            }
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the SQLite database at `{url}`"))?;
        Ok(Some(Self { pool }))
    }

    /// The pool, for tests that read raw rows.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Applies pending migrations and returns those it applied, oldest first.
    ///
    /// # Errors
    /// Fails if a migration fails or an applied one was edited since (checksum mismatch).
    pub async fn migrate(&self) -> anyhow::Result<Vec<MigrationState>> {
        let pending: Vec<MigrationState> =
            self.migration_status().await?.into_iter().filter(|m| m.applied_at.is_none()).collect();
        MIGRATOR.run(&self.pool).await.context("migration failed")?;
        let now = self.migration_status().await?;
        Ok(now.into_iter().filter(|m| pending.iter().any(|p| p.version == m.version)).collect())
    }

    /// Every known migration, applied or pending, oldest first.
    ///
    /// # Errors
    /// Fails if the bookkeeping table cannot be read.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<MigrationState>> {
        let has_table: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        let applied: Vec<(i64, String)> = if has_table {
            sqlx::query_as("SELECT version, CAST(installed_on AS TEXT) FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        Self::known_migrations()
            .into_iter()
            .map(|mut migration| {
                migration.applied_at = applied
                    .iter()
                    .find(|(version, _)| *version == migration.version)
                    .map(|(_, at)| parse_sqlite_timestamp(at))
                    .transpose()?;
                Ok(migration)
            })
            .collect()
    }

    /// Every migration this build carries, all marked pending: the status of a database that
    /// does not exist yet.
    pub fn known_migrations() -> Vec<MigrationState> {
        MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| MigrationState { version: m.version, description: m.description.to_string(), applied_at: None })
            .collect()
    }

    /// Runs one housekeeping `DELETE` whose only parameter is a cutoff instant.
    async fn delete_before(&self, statement: &'static str, cutoff: DateTime<Utc>, what: &str) -> anyhow::Result<u64> {
        let done = sqlx::query(statement)
            .bind(to_millis(cutoff))
            .execute(&self.pool)
            .await
            .with_context(|| format!("cannot purge {what}"))?;
        Ok(done.rows_affected())
    }

    /// Closes the pool, waiting for connections to finish (and SQLite to checkpoint its WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `_sqlx_migrations.installed_on` is SQLite's `CURRENT_TIMESTAMP`: `YYYY-MM-DD HH:MM:SS` in UTC.
fn parse_sqlite_timestamp(text: &str) -> anyhow::Result<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .map(|naive| naive.and_utc())
        .with_context(|| format!("unreadable migration timestamp `{text}`"))
}

/// A fresh UUIDv7 id: unique without coordination and ordered by creation time.
fn new_id<K>() -> anyhow::Result<Id<K>> {
    Id::parse(&Uuid::now_v7().to_string()).map_err(|_| anyhow::anyhow!("uuid made a malformed id"))
}

/// An id read back from a row, checked.
fn stored_id<K>(row: &SqliteRow, column: &str) -> anyhow::Result<Id<K>> {
    let text: String = row.try_get(column)?;
    Id::parse(&text).map_err(|_| anyhow::anyhow!("stored {column} `{text}` is not an id"))
}

fn user_from_row(row: &SqliteRow) -> anyhow::Result<User> {
    let email: String = row.try_get("email")?;
    Ok(User {
        id: stored_id(row, "user_id")?,
        email: EmailAddress::parse(&email).with_context(|| format!("stored address for user is not valid: {email}"))?,
        name: row.try_get("name")?,
        image: row.try_get("image")?,
        email_verified: row.try_get::<Option<i64>, _>("email_verified")?.map(from_millis).transpose()?,
    })
}

#[async_trait::async_trait]
impl LinkStore for SqliteStore {
    async fn insert_with_email(&self, link: &NewLink, email: &NewOutboxMessage) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO verification_tokens (identifier, token, code_hash, expires, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(link.identifier.as_str())
        .bind(link.token_hash.to_hex())
        .bind(link.code_hash.to_hex())
        .bind(to_millis(link.expires))
        .bind(to_millis(link.created_at))
        .execute(&mut *tx)
        .await
        .context("cannot store the link")?;
        sqlx::query(
            "INSERT INTO outbox (id, recipient, link_token_hash, sealed_body, link_expires, next_attempt_at, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(email.recipient.as_str())
        .bind(email.link_token_hash.to_hex())
        .bind(&email.sealed_link)
        .bind(to_millis(email.link_expires))
        .bind(to_millis(email.created_at))
        .execute(&mut *tx)
        .await
        .context("cannot queue the sign-in email")?;
        tx.commit().await.context("cannot commit the link and its email")?;
        Ok(())
    }

    async fn redeem(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Redemption> {
        let mut tx = self.pool.begin().await?;
        // One conditional statement decides who wins: of racing redemptions, only one matches
        // `used_at IS NULL`. It is the transaction's first statement, so it takes the write
        // lock at once and the losers wait, then see the row already used.
        let won: Option<String> = sqlx::query_scalar(
            "UPDATE verification_tokens SET used_at = ?1 \
             WHERE token = ?2 AND identifier = ?3 AND used_at IS NULL AND expires > ?1 \
             RETURNING token",
        )
        .bind(to_millis(now))
        .bind(token_hash.to_hex())
        .bind(identifier.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("cannot redeem the link")?;

        if let Some(stored) = won {
            // The final decision is a constant-time comparison, whatever the index did.
            anyhow::ensure!(LinkTokenHash::from_hex(&stored)?.matches(token_hash), "index returned another token");
            retire_other_links(&mut tx, identifier).await?;
            tx.commit().await?;
            return Ok(Redemption::Redeemed);
        }

        let existing: Option<(Option<i64>, i64)> = sqlx::query_as(LINK_STATE)
            .bind(token_hash.to_hex())
            .bind(identifier.as_str())
            .fetch_optional(&mut *tx)
            .await
            .context("cannot look the link up")?;
        tx.rollback().await?;
        Ok(match link_state(existing, now) {
            LinkState::Unknown => Redemption::Unknown,
            LinkState::Used => Redemption::AlreadyUsed,
            LinkState::Expired => Redemption::Expired,
            // Unused and unexpired, yet the update did not match: it cannot happen inside one
            // transaction, and "already used" is the answer that signs nobody in.
            LinkState::Unused => Redemption::AlreadyUsed,
        })
    }

    async fn redeem_code(
        &self,
        token_hash: &LinkTokenHash,
        code_hash: &SignInCodeHash,
        max_attempts: u32,
        now: DateTime<Utc>,
    ) -> anyhow::Result<CodeRedemption> {
        let mut tx = self.pool.begin().await?;
        // As in `redeem`, the first statement is the conditional write that decides.
        let won: Option<(String, String)> = sqlx::query_as(
            "UPDATE verification_tokens SET used_at = ?1 \
             WHERE token = ?2 AND used_at IS NULL AND expires > ?1 AND code_attempts < ?3 AND code_hash = ?4 \
             RETURNING identifier, code_hash",
        )
        .bind(to_millis(now))
        .bind(token_hash.to_hex())
        .bind(max_attempts)
        .bind(code_hash.to_hex())
        .fetch_optional(&mut *tx)
        .await
        .context("cannot redeem the code")?;
        if let Some((identifier, stored)) = won {
            anyhow::ensure!(SignInCodeHash::from_hex(&stored)?.matches(code_hash), "index returned another code");
            let identifier = EmailAddress::parse(&identifier).context("a stored address does not parse")?;
            retire_other_links(&mut tx, &identifier).await?;
            tx.commit().await?;
            return Ok(CodeRedemption::Redeemed { identifier });
        }
        let counted: Option<u32> = sqlx::query_scalar(
            "UPDATE verification_tokens SET code_attempts = code_attempts + 1 \
             WHERE token = ?2 AND used_at IS NULL AND expires > ?1 AND code_attempts < ?3 \
             RETURNING code_attempts",
        )
        .bind(to_millis(now))
        .bind(token_hash.to_hex())
        .bind(max_attempts)
        .fetch_optional(&mut *tx)
        .await
        .context("cannot count a wrong code")?;
        if let Some(attempts) = counted {
            tx.commit().await?;
            return Ok(CodeRedemption::Wrong { attempts_left: max_attempts.saturating_sub(attempts) });
        }
        let existing: Option<(Option<i64>, i64, u32)> =
            sqlx::query_as("SELECT used_at, expires, code_attempts FROM verification_tokens WHERE token = ?")
                .bind(token_hash.to_hex())
                .fetch_optional(&mut *tx)
                .await
                .context("cannot look the link up")?;
        tx.rollback().await?;
        Ok(match existing {
            None => CodeRedemption::Unknown,
            Some((Some(_used_at), _, _)) => CodeRedemption::AlreadyUsed,
            Some((None, expires, _)) if expires <= to_millis(now) => CodeRedemption::Expired,
            // Unused and unexpired, yet no attempt could be counted: they were all used up.
            Some((None, _, _)) => CodeRedemption::Exhausted,
        })
    }

    async fn state(
        &self,
        token_hash: &LinkTokenHash,
        identifier: &EmailAddress,
        now: DateTime<Utc>,
    ) -> anyhow::Result<LinkState> {
        let existing: Option<(Option<i64>, i64)> = sqlx::query_as(LINK_STATE)
            .bind(token_hash.to_hex())
            .bind(identifier.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("cannot look the link up")?;
        Ok(link_state(existing, now))
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM verification_tokens WHERE expires < ?", cutoff, "expired links").await
    }
}

#[async_trait::async_trait]
impl RateLimiter for SqliteStore {
    async fn acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission> {
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so the transaction holds SQLite's write lock from here on
        // and concurrent acquisitions are decided one after another. It also forgets counters
        // that have run out, which admit as if absent.
        sqlx::query("DELETE FROM rate_limits WHERE tat <= ?")
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await
            .context("cannot lock the rate limits")?;
        let mut admitted = Vec::with_capacity(buckets.len());
        for (index, bucket) in buckets.iter().enumerate() {
            let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = ?")
                .bind(&bucket.key)
                .fetch_optional(&mut *tx)
                .await
                .context("cannot read a rate limit")?;
            match bucket.quota.check(tat.map(from_millis).transpose()?, now) {
                Gcra::Admitted { tat } => admitted.push((&bucket.key, tat)),
                Gcra::Refused { retry_after } => {
                    tx.rollback().await?;
                    return Ok(Admission::Refused { bucket: index, retry_after });
                }
            }
        }
        for (key, tat) in admitted {
            sqlx::query("INSERT INTO rate_limits (key, tat) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET tat = ?2")
                .bind(key)
                .bind(to_millis(tat))
                .execute(&mut *tx)
                .await
                .context("cannot charge a rate limit")?;
        }
        tx.commit().await.context("cannot commit the rate limits")?;
        Ok(Admission::Admitted)
    }

    async fn wait(&self, bucket: &Bucket, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>> {
        let tat: Option<i64> = sqlx::query_scalar("SELECT tat FROM rate_limits WHERE key = ?")
            .bind(&bucket.key)
            .fetch_optional(&self.pool)
            .await
            .context("cannot read a rate limit")?;
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
impl UserStore for SqliteStore {
    async fn find_or_create_verified(&self, email: &EmailAddress, now: DateTime<Utc>) -> anyhow::Result<User> {
        // One upsert, so two first sign-ins racing for one address still make one user.
        let row = sqlx::query(
            "INSERT INTO users (id, email, email_verified, created_at, updated_at) VALUES (?1, ?2, ?3, ?3, ?3) \
             ON CONFLICT (email) DO UPDATE SET \
                 email_verified = COALESCE(users.email_verified, excluded.email_verified), \
                 updated_at = excluded.updated_at \
             RETURNING id AS user_id, name, email, email_verified, image",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(email.as_str())
        .bind(to_millis(now))
        .fetch_one(&self.pool)
        .await
        .context("cannot find or create the user")?;
        user_from_row(&row)
    }

    async fn find(&self, id: &UserId) -> anyhow::Result<Option<User>> {
        let row = sqlx::query("SELECT id AS user_id, name, email, email_verified, image FROM users WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("cannot read the user")?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_by_email(&self, email: &EmailAddress) -> anyhow::Result<Option<User>> {
        let row = sqlx::query("SELECT id AS user_id, name, email, email_verified, image FROM users WHERE email = ?")
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await
            .context("cannot read the user")?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn add(&self, email: &EmailAddress, now: DateTime<Utc>) -> anyhow::Result<UserAdded> {
        let created = sqlx::query(
            "INSERT INTO users (id, email, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
             ON CONFLICT (email) DO NOTHING \
             RETURNING id AS user_id, name, email, email_verified, image",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(email.as_str())
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await
        .context("cannot add the user")?;
        match created {
            Some(row) => Ok(UserAdded::Created(user_from_row(&row)?)),
            None => {
                let existing = self.find_by_email(email).await?.context("the user vanished while being added")?;
                Ok(UserAdded::Existed(existing))
            }
        }
    }

    async fn list(&self, limit: u32) -> anyhow::Result<Vec<User>> {
        let rows =
            sqlx::query("SELECT id AS user_id, name, email, email_verified, image FROM users ORDER BY email LIMIT ?")
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .context("cannot list the users")?;
        rows.iter().map(user_from_row).collect()
    }

    async fn remove(&self, email: &EmailAddress) -> anyhow::Result<bool> {
        let done = sqlx::query("DELETE FROM users WHERE email = ?")
            .bind(email.as_str())
            .execute(&self.pool)
            .await
            .context("cannot remove the user")?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait::async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, session: &NewSession) -> anyhow::Result<Session> {
        let id = new_id::<domain::id::SessionKind>()?;
        sqlx::query(
            "INSERT INTO sessions (id, session_token, user_id, expires, user_agent, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        )
        .bind(id.as_str())
        .bind(session.token_hash.to_hex())
        .bind(session.user_id.as_str())
        .bind(to_millis(session.expires))
        .bind(session.user_agent.as_deref())
        .bind(to_millis(session.created_at))
        .execute(&self.pool)
        .await
        .context("cannot store the session")?;
        Ok(Session { id, user_id: session.user_id.clone(), expires: session.expires })
    }

    async fn find(&self, token_hash: &SessionTokenHash) -> anyhow::Result<Option<(Session, User)>> {
        let row = sqlx::query(
            "SELECT s.id AS session_id, s.expires, u.id AS user_id, u.name, u.email, u.email_verified, u.image \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.session_token = ?",
        )
        .bind(token_hash.to_hex())
        .fetch_optional(&self.pool)
        .await
        .context("cannot read the session")?;
        let Some(row) = row else { return Ok(None) };
        let user = user_from_row(&row)?;
        let session = Session {
            id: stored_id(&row, "session_id")?,
            user_id: user.id.clone(),
            expires: from_millis(row.try_get("expires")?)?,
        };
        Ok(Some((session, user)))
    }

    async fn extend(&self, session_id: &SessionId, expires: DateTime<Utc>, now: DateTime<Utc>) -> anyhow::Result<()> {
        sqlx::query("UPDATE sessions SET expires = ?, updated_at = ? WHERE id = ?")
            .bind(to_millis(expires))
            .bind(to_millis(now))
            .bind(session_id.as_str())
            .execute(&self.pool)
            .await
            .context("cannot extend the session")?;
        Ok(())
    }

    async fn delete(&self, token_hash: &SessionTokenHash) -> anyhow::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE session_token = ?")
            .bind(token_hash.to_hex())
            .execute(&self.pool)
            .await
            .context("cannot delete the session")?;
        Ok(())
    }

    async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM sessions WHERE expires < ?", cutoff, "expired sessions").await
    }
}

#[async_trait::async_trait]
impl StoreHealth for SqliteStore {
    async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.context("the database does not answer")?;
        Ok(())
    }
}

fn outbox_entry_from_row(row: &SqliteRow) -> anyhow::Result<OutboxEntry> {
    let recipient: String = row.try_get("recipient")?;
    let status: String = row.try_get("status")?;
    Ok(OutboxEntry {
        id: stored_id(row, "id")?,
        recipient: EmailAddress::parse(&recipient)
            .with_context(|| format!("stored recipient is not valid: {recipient}"))?,
        state: DeliveryState::parse(&status).with_context(|| format!("unknown outbox status `{status}`"))?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        created_at: from_millis(row.try_get("created_at")?)?,
        next_attempt_at: from_millis(row.try_get("next_attempt_at")?)?,
        provider_message_id: row.try_get("provider_message_id")?,
        last_error: row.try_get("last_error")?,
    })
}

#[async_trait::async_trait]
impl Outbox for SqliteStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        // One statement claims: concurrent claimers cannot both take a row.
        let rows = sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?1, updated_at = ?2 \
             WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?2 \
                          ORDER BY next_attempt_at LIMIT ?3) \
             RETURNING id, recipient, link_token_hash, sealed_body, link_expires, attempts",
        )
        .bind(to_millis(lease_until))
        .bind(to_millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .context("cannot claim due outbox rows")?;
        rows.iter()
            .map(|row| {
                let recipient: String = row.try_get("recipient")?;
                let hash: String = row.try_get("link_token_hash")?;
                Ok(OutboxMessage {
                    id: stored_id(row, "id")?,
                    recipient: EmailAddress::parse(&recipient)
                        .with_context(|| format!("stored recipient is not valid: {recipient}"))?,
                    link_token_hash: LinkTokenHash::from_hex(&hash).context("stored token hash is not valid")?,
                    sealed_link: row
                        .try_get::<Option<Vec<u8>>, _>("sealed_body")?
                        .context("a pending row has no body")?,
                    link_expires: from_millis(row.try_get("link_expires")?)?,
                    attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    async fn mark_sent(
        &self,
        id: &OutboxId,
        provider_message_id: Option<String>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET status = 'sent', sealed_body = NULL, provider_message_id = ?, last_error = NULL, \
             next_attempt_at = ?2, updated_at = ?2 WHERE id = ?3",
        )
        .bind(provider_message_id)
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .context("cannot record a sent email")?;
        Ok(())
    }

    async fn mark_retry(
        &self,
        id: &OutboxId,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
        )
        .bind(to_millis(next_attempt_at))
        .bind(error)
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .context("cannot schedule a retry")?;
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
        sqlx::query(
            "UPDATE outbox SET status = ?1, sealed_body = NULL, last_error = ?2, next_attempt_at = ?3, updated_at = ?3 \
             WHERE id = ?4",
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(to_millis(now))
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .context("cannot record a failed email")?;
        Ok(())
    }

    async fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let next: Option<i64> = sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'")
            .fetch_one(&self.pool)
            .await
            .context("cannot read the outbox")?;
        next.map(from_millis).transpose()
    }

    async fn list(&self, state: Option<DeliveryState>, limit: u32) -> anyhow::Result<Vec<OutboxEntry>> {
        let columns = "id, recipient, status, attempts, created_at, next_attempt_at, provider_message_id, last_error";
        let rows = match state {
            Some(state) => {
                sqlx::query(&format!("SELECT {columns} FROM outbox WHERE status = ? ORDER BY created_at DESC LIMIT ?"))
                    .bind(state.as_str())
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query(&format!("SELECT {columns} FROM outbox ORDER BY created_at DESC LIMIT ?"))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .context("cannot list the outbox")?;
        rows.iter().map(outbox_entry_from_row).collect()
    }

    async fn counts(&self) -> anyhow::Result<OutboxCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .context("cannot count the outbox")?;
        let mut counts = OutboxCounts::default();
        for (status, count) in rows {
            let count = u64::try_from(count).unwrap_or_default();
            match DeliveryState::parse(&status) {
                Some(DeliveryState::Pending) => counts.pending = count,
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
