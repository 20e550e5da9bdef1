//! Scratch stores for the conformance suite and the per-backend flow tests: a migrated, empty
//! database per test on SQLite, PostgreSQL or MariaDB, dropped when the test is done.

use crate::scratch::ScratchDatabase;
use adapters::database::{Database, Dialect, OpenMode, PoolSettings};

use crate::skip_or_fail;

/// A migrated scratch database, its ports, and a raw pool for looking underneath.
pub struct ScratchStore {
    /// The storage ports.
    pub database: Database,
    /// A raw connection pool on the same database, for checks the ports do not offer (what is
    /// stored, what the schema refuses, query plans).
    pub raw: sqlx::AnyPool,
    /// The database itself; dropped last.
    pub scratch: ScratchDatabase,
}

/// The name people know the backend by, for skip messages.
pub fn server_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "SQLite",
        Dialect::Postgres => "PostgreSQL",
        Dialect::MySql => "MariaDB/MySQL",
    }
}

/// A fresh scratch database for `dialect`, migrated, or `None` after [`skip_or_fail`] when its
/// server is not reachable (which fails the test in CI).
pub async fn scratch_store(dialect: Dialect, max_connections: u32) -> Option<ScratchStore> {
    let scratch = scratch_database(dialect).await?;
    // The contracts race many callers on a few connections (waiting on row locks, not on an
    // outage), on a machine running other tests: the pool waits as long as sqlx's default.
    let pool =
        PoolSettings { acquire_timeout: std::time::Duration::from_secs(30), ..PoolSettings::new(max_connections) };
    let database = Database::open(&scratch.url(), pool, OpenMode::CreateIfMissing)
        .await
        .expect("the scratch database opens")
        .expect("and exists");
    database.migrate().await.expect("migrations apply");
    sqlx::any::install_default_drivers();
    let raw = sqlx::any::AnyPoolOptions::new()
        .max_connections(2)
        .connect(scratch.url_text())
        .await
        .expect("a raw pool opens");
    Some(ScratchStore { database, raw, scratch })
}

/// An empty scratch database for `dialect` (not migrated), or `None` after [`skip_or_fail`].
pub async fn scratch_database(dialect: Dialect) -> Option<ScratchDatabase> {
    match ScratchDatabase::create(dialect).await {
        Ok(scratch) => Some(scratch),
        Err(error) => {
            skip_or_fail(&format!(
                "{} is not reachable ({error:#}); see DEVELOPERS.md for the test servers",
                server_name(dialect)
            ));
            None
        }
    }
}

impl ScratchStore {
    /// Opens the same database again, as a new process would.
    pub async fn reopen(&self, max_connections: u32) -> Database {
        Database::open(&self.scratch.url(), PoolSettings::new(max_connections), OpenMode::MustExist)
            .await
            .expect("reopens")
            .expect("still exists")
    }

    /// Closes the pools; the database is dropped with `self`.
    pub async fn close(self) {
        self.database.close().await;
        self.raw.close().await;
    }
}
