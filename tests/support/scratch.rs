//! Throwaway databases for tests: a fresh, empty database per test on the shared servers (or a
//! fresh SQLite file), dropped when the test is done, so tests run in parallel and a rerun
//! starts clean.
//!
//! The servers are found at `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `TEST_MYSQL_URL` (default
//! `mysql://root@127.0.0.1:3306/test`): those URLs name an existing database to connect to
//! while creating and dropping the scratch ones. Not `MAGICLINK_...` variables: that prefix is
//! configuration, and servers started by tests would refuse an unknown key.

use anyhow::Context as _;
use domain::SecretText;
use sqlx::{Connection as _, Executor as _};

use adapters::database::masked_url;
use adapters::database::Dialect;

/// Where the PostgreSQL tests find their server.
pub const POSTGRES_URL_VAR: &str = "TEST_POSTGRES_URL";
/// Where the MySQL/MariaDB tests find their server.
pub const MYSQL_URL_VAR: &str = "TEST_MYSQL_URL";

/// The server URL tests use for `dialect` (`None` for SQLite, which needs no server).
pub fn server_url(dialect: Dialect) -> Option<String> {
    let (var, default) = match dialect {
        Dialect::Sqlite => return None,
        Dialect::Postgres => (POSTGRES_URL_VAR, "postgres://postgres@127.0.0.1:5432/test"),
        Dialect::MySql => (MYSQL_URL_VAR, "mysql://root@127.0.0.1:3306/test"),
    };
    Some(std::env::var(var).unwrap_or_else(|_| default.to_owned()))
}

/// One scratch database; dropped (with everything in it) when this is dropped.
#[derive(Debug)]
pub struct ScratchDatabase {
    dialect: Dialect,
    url: String,
    name: String,
    /// The server URL the database was created through, to drop it the same way.
    server: Option<String>,
}

impl ScratchDatabase {
    /// Creates an empty database for `dialect`, named `magiclink_t_<random>`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses to create a database: the caller decides
    /// whether that skips the test (on a newcomer's machine) or fails it (in CI).
    pub async fn create(dialect: Dialect) -> anyhow::Result<Self> {
        let random: String = ports::random::os_random::<8>()?.iter().map(|byte| format!("{byte:02x}")).collect();
        let name = format!("magiclink_t_{random}");
        let Some(server) = server_url(dialect) else {
            let file = std::env::temp_dir().join(format!("{name}.sqlite"));
            return Ok(Self { dialect, url: format!("sqlite://{}", file.display()), name, server: None });
        };
        sqlx::any::install_default_drivers();
        let mut admin = sqlx::AnyConnection::connect(&server)
            .await
            .with_context(|| format!("cannot connect to {} ({})", masked_url(&server), dialect.name()))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .with_context(|| format!("cannot create a database on {}", masked_url(&server)))?;
        let _ = admin.close().await;
        let mut url = url::Url::parse(&server).context("the test server URL does not parse")?;
        url.set_path(&format!("/{name}"));
        Ok(Self { dialect, url: url.to_string(), name, server: Some(server) })
    }

    /// The URL of the scratch database, as `database.url` takes it.
    pub fn url(&self) -> SecretText {
        SecretText::new(&self.url)
    }

    /// The URL as text, for a server process's environment.
    pub fn url_text(&self) -> &str {
        &self.url
    }

    /// Its dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Drops the database (or deletes the file and its WAL companions).
    fn drop_now(&self) -> anyhow::Result<()> {
        let Some(server) = &self.server else {
            let file = self.url.trim_start_matches("sqlite://");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{file}{suffix}"));
            }
            return Ok(());
        };
        // Drop may run inside a runtime (most tests are async), which cannot block on itself:
        // a thread with its own small runtime does it.
        let statement = match self.dialect {
            // FORCE ends the test's connections that are still open.
            Dialect::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            Dialect::MySql | Dialect::Sqlite => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let server = server.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut admin = sqlx::AnyConnection::connect(&server).await?;
                admin.execute(statement.as_str()).await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread dropping the database panicked"))?
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if let Err(error) = self.drop_now() {
            eprintln!("warning: cannot drop the scratch database {}: {error:#}", self.name);
        }
    }
}
