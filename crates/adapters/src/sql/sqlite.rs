//! What only SQLite needs before the shared store can open it: the database file.
//!
//! SQLite is the embedded default: no server to run, one file to back up. The file is created
//! here, readable by its owner only, and switched to WAL mode (readers never block the writer;
//! the mode is kept in the file). Everything else, the queries included, is the shared
//! [`super::SqlStore`].

use std::str::FromStr as _;

use anyhow::Context as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{ConnectOptions as _, Connection as _};

use super::OpenMode;

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

/// Makes the file at `url` (e.g. `sqlite://data/magiclink.sqlite`) ready to open and returns
/// the URL to open. With [`OpenMode::MustExist`], `None` when there is no such file: commands
/// that only read must not leave files behind.
///
/// A file this creates is readable by its owner only (0600, in a 0700 folder if the folder is
/// new too): it holds addresses and session hashes. SQLite gives the `-wal` and `-shm` files it
/// creates later the database file's own permissions.
///
/// # Errors
/// Fails if the URL is not a SQLite URL or the file cannot be created or opened.
pub(crate) async fn prepare_file(url: &str, mode: OpenMode) -> anyhow::Result<Option<String>> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("`{url}` is not a SQLite URL (expected sqlite://path/to/file.sqlite)"))?;
    let file = options.get_filename().to_owned();
    let in_memory = file.as_os_str().is_empty() || file.as_os_str() == ":memory:";
    if in_memory {
        return Ok(Some(url.to_owned()));
    }
    if !file.exists() {
        match mode {
            OpenMode::MustExist => return Ok(None),
            OpenMode::CreateIfMissing => create_private_file(&file)?,
        }
    }
    // WAL is a property of the file: set once here, every later connection finds it.
    let connection = options
        .journal_mode(SqliteJournalMode::Wal)
        .connect()
        .await
        .with_context(|| format!("cannot open the SQLite database at `{url}`"))?;
    connection.close().await.context("cannot close the SQLite database")?;
    Ok(Some(url.to_owned()))
}
