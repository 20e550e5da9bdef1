//! The SQL stores: one implementation of every storage port ([`SqlStore`]) for SQLite,
//! PostgreSQL and MySQL/MariaDB, the dialect differences ([`Dialect`]), and opening a pool and
//! migrating it.
//!
//! Why one store and not three: the rules a store keeps (single use, retirement, leases,
//! purges) are the service's guarantees, and three copies would drift. sqlx's `Any` driver
//! carries the few types the schema uses to every backend, so only the SQL that really differs
//! is per backend, in [`Dialect`] and in `migrations/{sqlite,postgres,mysql}`.

mod audit;
mod dialect;
mod links;
mod logout;
mod oidc;
mod outbox;
mod passkeys;
mod passwords;
mod rate_limits;
mod seed;
mod sessions;
mod sqlite;
mod store;
mod users;
mod writer;

use std::borrow::Cow;

use anyhow::Context as _;
use chrono::DateTime;
use domain::SecretText;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::AnyConnection;
use sqlx::Executor as _;

pub use audit::{event_json, AuditOptions, WebhookRouting};
pub use dialect::Dialect;
pub use seed::{seeded_address, seeded_session_token, Seeded};
pub use store::{PoolUsage, SqlStore, MAX_DELIVERY_ERROR, MAX_USER_AGENT};
pub use writer::{GroupCommitCounts, MAX_TURNS_PER_COMMIT};

use crate::migrations::MigrationState;

/// The migration files of every backend, embedded by `build.rs`: (version, description, SQL).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/migrations.rs"));
}

/// A driver's failure as the store reports it: what was being done, and, when the database
/// could not be asked at all, [`ports::Unavailable::Database`] in the cause chain, so that the
/// web layer answers 503 with `Retry-After` instead of 500 (and never "signed out").
pub(crate) trait Doing<T> {
    /// The failure, saying it happened while doing `what`.
    fn doing(self, what: &'static str) -> anyhow::Result<T>;
    /// The same, with the words built only on failure.
    fn doing_with(self, what: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T> Doing<T> for Result<T, sqlx::Error> {
    fn doing(self, what: &'static str) -> anyhow::Result<T> {
        self.map_err(|error| store_failure(error, what.to_owned()))
    }

    fn doing_with(self, what: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|error| store_failure(error, what()))
    }
}

/// `error`, in the words of `what`, marked unavailable when no answer could be had: no pooled
/// connection within the acquire timeout, the server unreachable, refusing, or gone mid-query
/// (a connection cut during its handshake or a reply surfaces as an I/O, TLS or protocol
/// error). An answer the server gave (a constraint, a full disk) is not an outage.
fn store_failure(error: sqlx::Error, what: String) -> anyhow::Error {
    let unreachable = matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    );
    let failure = anyhow::Error::new(error).context(what);
    if unreachable {
        failure.context(ports::Unavailable::Database)
    } else {
        failure
    }
}

/// Whether opening a database may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database when missing: the SQLite file (and its folder), or the database on a
    /// PostgreSQL or MySQL server.
    CreateIfMissing,
    /// Open only an existing database: commands that read, and production on a server.
    MustExist,
}

/// The migrations for `dialect`, built once.
fn migrator(dialect: Dialect) -> &'static Migrator {
    static SQLITE: std::sync::OnceLock<Migrator> = std::sync::OnceLock::new();
    static POSTGRES: std::sync::OnceLock<Migrator> = std::sync::OnceLock::new();
    static MYSQL: std::sync::OnceLock<Migrator> = std::sync::OnceLock::new();
    let (cell, files) = match dialect {
        Dialect::Sqlite => (&SQLITE, embedded::SQLITE),
        Dialect::Postgres => (&POSTGRES, embedded::POSTGRES),
        Dialect::MySql => (&MYSQL, embedded::MYSQL),
    };
    cell.get_or_init(|| {
        let migrations: Vec<Migration> = files
            .iter()
            .map(|(version, description, sql)| {
                // The checksum is SHA-384 of the text, as `sqlx::migrate!` computes it, so
                // databases migrated by earlier builds stay valid.
                let no_tx = sql.starts_with("-- no-transaction");
                Migration::new(*version, Cow::Borrowed(description), MigrationType::Simple, Cow::Borrowed(sql), no_tx)
            })
            .collect();
        Migrator { migrations: Cow::Owned(migrations), ..Migrator::DEFAULT }
    })
}

/// Every migration this build carries for `dialect`, all marked pending: the status of a
/// database that does not exist yet.
pub fn known_migrations(dialect: Dialect) -> Vec<MigrationState> {
    migrator(dialect)
        .iter()
        .map(|m| MigrationState { version: m.version, description: m.description.to_string(), applied_at: None })
        .collect()
}

/// The error sqlx gives, rewritten for one line: what failed, on which (masked) database, and
/// what the server or the network said.
fn connect_error(doing: &str, shown: &str, error: &sqlx::Error) -> anyhow::Error {
    let said = match error {
        sqlx::Error::Database(database) => format!("the server said: {}", database.message()),
        sqlx::Error::Io(io) => format!("cannot reach the server: {io}"),
        other => other.to_string(),
    };
    anyhow::anyhow!("cannot {doing} the database {shown}: {said}")
}

/// How a store's connection pools are sized and how long they wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections in the pool (on SQLite the readers; writes have one more of their own).
    pub max_connections: u32,
    /// How long a request waits for a connection, opening one included, before it fails as
    /// [`ports::Unavailable::Database`]: short, so that an outage answers 503 at once instead
    /// of holding every request.
    pub acquire_timeout: std::time::Duration,
    /// How long the first connection at start-up may take before "no answer".
    pub connect_timeout: std::time::Duration,
    /// SQLite only: past this size the background checkpoint waits for readers and empties
    /// the WAL (see [`checkpoint_in_the_background`]).
    pub sqlite_wal_limit_bytes: u64,
}

impl PoolSettings {
    /// `max_connections` connections, with the default timeouts (`config/default.toml`).
    pub fn new(max_connections: u32) -> Self {
        Self {
            max_connections,
            acquire_timeout: std::time::Duration::from_secs(3),
            connect_timeout: std::time::Duration::from_secs(5),
            sqlite_wal_limit_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Why the first connection to a database server failed.
enum FirstConnection {
    /// The server or the network answered with an error.
    Failed(sqlx::Error),
    /// Nothing answered within the connect timeout.
    NoAnswer,
}

/// Opens and closes one connection to the server at `url`, within `timeout`.
async fn first_connection(url: &str, timeout: std::time::Duration) -> Result<(), FirstConnection> {
    use sqlx::Connection as _;
    let connection = tokio::time::timeout(timeout, AnyConnection::connect(url))
        .await
        .map_err(|_| FirstConnection::NoAnswer)?
        .map_err(FirstConnection::Failed)?;
    // A failure to say goodbye politely changes nothing: the connection is gone either way.
    let _ = connection.close().await;
    Ok(())
}

/// Whether creating a database failed only because it exists by now: PostgreSQL's
/// `duplicate_database` (42P04), or the unique violation on `pg_database` that two concurrent
/// `CREATE DATABASE`s meet instead (23505); MySQL's and MariaDB's `ER_DB_CREATE_EXISTS` (1007).
fn is_already_existing_database(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database) = error else { return false };
    if matches!(database.code().as_deref(), Some("42P04" | "23505")) {
        return true;
    }
    database.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|mysql| mysql.number() == 1007)
}

/// Whether connecting failed only because the database itself does not exist on the server.
fn is_missing_database(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(database) = error else { return false };
    if database.code().as_deref() == Some("3D000") {
        return true; // PostgreSQL: invalid_catalog_name
    }
    // MySQL and MariaDB: ER_BAD_DB_ERROR.
    database.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>().is_some_and(|mysql| mysql.number() == 1049)
}

impl SqlStore {
    /// Opens a pool on the database at `url` in `dialect`. With [`OpenMode::MustExist`], `None`
    /// when the database does not exist (nothing is created); with
    /// [`OpenMode::CreateIfMissing`], a missing database is created first.
    ///
    /// `shown` is the URL as messages may show it (password masked).
    ///
    /// # Errors
    /// One line naming the (masked) URL when the server cannot be reached, refuses the
    /// credentials, or the file cannot be created.
    pub(crate) async fn open(
        url: &SecretText,
        shown: &str,
        dialect: Dialect,
        pool: PoolSettings,
        mode: OpenMode,
    ) -> anyhow::Result<Option<Self>> {
        sqlx::any::install_default_drivers();
        let url = match dialect {
            Dialect::Sqlite => match sqlite::prepare_file(url.expose(), mode).await? {
                Some(url) => url,
                None => return Ok(None),
            },
            Dialect::Postgres | Dialect::MySql => url.expose().to_owned(),
        };
        let options = AnyPoolOptions::new()
            .max_connections(pool.max_connections.max(1))
            .acquire_timeout(pool.acquire_timeout)
            .after_connect(move |conn, _| Box::pin(async move { configure_connection(conn, dialect).await }))
            .after_release(|conn, _| Box::pin(async move { outside_any_transaction(conn).await }));
        // One connection first, outside the pool: the pool retries a refused connection until
        // its acquire timeout and then reports only the timeout, where an operator needs
        // "connection refused" at once. It also tells a missing database from the rest.
        if dialect != Dialect::Sqlite {
            match first_connection(&url, pool.connect_timeout).await {
                Ok(()) => {}
                Err(FirstConnection::Failed(error)) if is_missing_database(&error) => {
                    if mode == OpenMode::MustExist {
                        return Ok(None);
                    }
                    match <sqlx::Any as sqlx::migrate::MigrateDatabase>::create_database(&url).await {
                        Ok(()) => tracing::info!(database = shown, "created the database"),
                        // Another instance starting at the same moment created it first.
                        Err(error) if is_already_existing_database(&error) => {}
                        Err(error) => return Err(connect_error("create", shown, &error)),
                    }
                }
                Err(FirstConnection::Failed(error)) => return Err(connect_error("open", shown, &error)),
                Err(FirstConnection::NoAnswer) => anyhow::bail!(
                    "cannot open the database {shown}: cannot reach the server: no answer within {} s",
                    pool.connect_timeout.as_secs_f64()
                ),
            }
        }
        let readers = options.clone().connect(&url).await.map_err(|error| connect_error("open", shown, &error))?;
        // SQLite writes through one connection of its own (see `SqlStore`); the servers lock
        // rows, not the database, so their writes share the pool.
        let writer = match dialect {
            Dialect::Sqlite => {
                let writer = options
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .map_err(|error| connect_error("open", shown, &error))?;
                checkpoint_in_the_background(readers.clone(), pool.sqlite_wal_limit_bytes);
                writer::Writer::grouped(writer, pool.acquire_timeout)
            }
            Dialect::Postgres | Dialect::MySql => {
                writer::Writer::Pooled { pool: readers.clone(), begin: dialect.begin_write() }
            }
        };
        Ok(Some(Self::new(readers, writer, dialect)))
    }

    /// Applies pending migrations and returns those it applied, oldest first. Safe to run from
    /// many instances at once on the servers: PostgreSQL through sqlx's advisory lock, MySQL
    /// and MariaDB through [`Dialect::migration_lock`]. (SQLite serves one machine.)
    ///
    /// # Errors
    /// Fails if a migration fails or an applied one was edited since (checksum mismatch).
    pub async fn migrate(&self) -> anyhow::Result<Vec<MigrationState>> {
        // What was pending is read under the same lock as the run: of instances starting at
        // once, the one that applies a migration is the one that reports it.
        let mut connection = self.pool().acquire().await.context("cannot connect to migrate")?;
        let lock = self.dialect().migration_lock();
        if let Some((take, _)) = lock {
            let taken: Option<i64> =
                sqlx::query_scalar(take).fetch_one(&mut *connection).await.context("cannot lock the migrations")?;
            anyhow::ensure!(taken == Some(1), "cannot lock the migrations: the server answered {taken:?}");
        }
        let outcome = self.migrate_locked(&mut connection).await;
        if let Some((_, release)) = lock {
            sqlx::query(release).execute(&mut *connection).await.context("cannot unlock the migrations")?;
        }
        outcome
    }

    /// Reads what is pending, runs the migrator and reads again, all on `connection`, which
    /// holds the migration lock.
    async fn migrate_locked(&self, connection: &mut AnyConnection) -> anyhow::Result<Vec<MigrationState>> {
        let pending: Vec<MigrationState> =
            self.status_on(&mut *connection).await?.into_iter().filter(|m| m.applied_at.is_none()).collect();
        migrator(self.dialect()).run(&mut *connection).await.context("migration failed")?;
        let now = self.status_on(&mut *connection).await?;
        Ok(now.into_iter().filter(|m| pending.iter().any(|p| p.version == m.version)).collect())
    }

    /// Every known migration, applied or pending, oldest first. Reads only: a database that was
    /// never migrated has no bookkeeping table, and this does not create one.
    ///
    /// # Errors
    /// Fails if the bookkeeping table cannot be read.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<MigrationState>> {
        let mut connection = self.pool().acquire().await.context("cannot connect to read the migrations")?;
        self.status_on(&mut connection).await
    }

    /// [`SqlStore::migration_status`], on one connection.
    async fn status_on(&self, connection: &mut AnyConnection) -> anyhow::Result<Vec<MigrationState>> {
        let dialect = self.dialect();
        let tables: i64 = sqlx::query_scalar(&dialect.sql(dialect.count_tables_named()))
            .bind("_sqlx_migrations")
            .fetch_one(&mut *connection)
            .await
            .context("cannot read the migration bookkeeping")?;
        let applied: Vec<(i64, i64)> = if tables > 0 {
            sqlx::query_as(dialect.applied_migrations())
                .fetch_all(&mut *connection)
                .await
                .context("cannot read the applied migrations")?
        } else {
            Vec::new()
        };
        known_migrations(dialect)
            .into_iter()
            .map(|mut migration| {
                migration.applied_at = applied
                    .iter()
                    .find(|(version, _)| *version == migration.version)
                    .map(|(_, at)| DateTime::from_timestamp_millis(*at).context("unreadable migration timestamp"))
                    .transpose()?;
                Ok(migration)
            })
            .collect()
    }

    /// Closes the pools, waiting for connections to finish (and SQLite to checkpoint its WAL).
    pub async fn close(&self) {
        self.writer().close().await;
        self.pool().close().await;
    }
}

/// How often the SQLite WAL is copied back into the database file.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Folds SQLite's WAL back into the database file every [`CHECKPOINT_EVERY`] on a reading
/// connection, until the pool closes. SQLite would otherwise checkpoint inside the commit that
/// fills the WAL, on the one writer, and every write queued behind it would wait for that
/// copy and its fsync (the one-client sign-in's p99 in `docs/benchmarks.md`). A passive
/// checkpoint never blocks the writer or readers.
///
/// But a passive checkpoint never lets the WAL start over while some reader still reads from
/// it, and under steady load some reader always does: the file then grows without end (1 GB
/// in 150 s was seen). So once the WAL holds more than `wal_limit_bytes`, a `TRUNCATE`
/// checkpoint waits (up to the busy timeout) for the readers of the moment to finish, holds
/// new writes back meanwhile, and empties the file. `journal_size_limit` keeps any WAL that
/// is reset without it to the same size.
fn checkpoint_in_the_background(pool: sqlx::AnyPool, wal_limit_bytes: u64) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if pool.is_closed() {
                return;
            }
            if let Err(error) = checkpoint(&pool, wal_limit_bytes).await {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %error, "a background WAL checkpoint failed; the next one tries again");
            }
        }
    });
}

/// One round of [`checkpoint_in_the_background`].
async fn checkpoint(pool: &sqlx::AnyPool, wal_limit_bytes: u64) -> Result<(), sqlx::Error> {
    let mut connection = pool.acquire().await?;
    // (busy, frames in the WAL, frames copied back)
    let (_, frames, _): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut *connection).await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&mut *connection).await?;
    let wal_bytes = u64::try_from(frames.saturating_mul(page_size)).unwrap_or(0);
    if wal_bytes > wal_limit_bytes {
        let (busy, _, _): (i64, i64, i64) =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut *connection).await?;
        if busy != 0 {
            tracing::debug!(wal_bytes, "the WAL could not be emptied yet (readers busy); trying again next round");
        }
    }
    Ok(())
}

/// Whether a connection handed back to the pool may be used again: only outside any
/// transaction. A transaction dropped without commit queues its rollback; a ping runs it. But
/// when a `COMMIT` fails (SQLite on a full disk), SQLite may already have rolled the
/// transaction back itself, the queued `ROLLBACK` then fails, and sqlx still counts the
/// connection as inside a transaction: every later `BEGIN` on it would be refused until a
/// restart. Such a connection is closed instead, and the pool opens a fresh one.
async fn outside_any_transaction(conn: &mut AnyConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection as _;
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    conn.ping().await?;
    Ok(!conn.is_in_transaction())
}

/// Per-connection settings that the URL cannot carry.
async fn configure_connection(conn: &mut AnyConnection, dialect: Dialect) -> Result<(), sqlx::Error> {
    match dialect {
        // NORMAL is durable in WAL mode except for the last transactions before a power cut.
        // No checkpoint on commit: `checkpoint_in_the_background` does it off the write path.
        Dialect::Sqlite => {
            conn.execute("PRAGMA synchronous = NORMAL").await?;
            conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
            // A WAL that starts over is cut back to this size (64 MiB) rather than kept whole.
            conn.execute("PRAGMA journal_size_limit = 67108864").await.map(drop)
        }
        // PostgreSQL's default isolation, so that the store's statements mean the same on both
        // servers; it also spares InnoDB the gap locks that REPEATABLE READ takes.
        Dialect::MySql => conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED").await.map(drop),
        Dialect::Postgres => Ok(()),
    }
}
