//! The database as the rest of the service sees it: every storage port behind `Arc<dyn ...>`,
//! plus migrations and closing, opened from a URL whose scheme picks the backend.
//!
//! Nothing above this crate names a concrete store: the composition root, the commands and
//! the system tests hold a [`Database`], and which backend it is follows from the URL alone.

use std::sync::Arc;

use domain::SecretText;
use ports::{LinkStore, Outbox, PasswordStore, RateLimiter, SessionStore, StoreHealth, UserStore};

use crate::migrations::MigrationState;
use crate::sql::{known_migrations, SqlStore};
pub use crate::sql::{Dialect, OpenMode, PoolSettings};

/// Every storage port of one database, and its migrations.
#[derive(Clone)]
pub struct Database {
    /// Magic links.
    pub links: Arc<dyn LinkStore>,
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// The optional passwords.
    pub passwords: Arc<dyn PasswordStore>,
    /// Passkeys and their ceremonies.
    pub passkeys: Arc<dyn ports::PasskeyStore>,
    /// The OpenID Provider's registered clients.
    pub clients: Arc<dyn ports::ClientStore>,
    /// The OpenID Provider's codes, grants, tokens and consents.
    pub grants: Arc<dyn ports::GrantStore>,
    /// The OpenID Provider's signing keys.
    pub signing_keys: Arc<dyn ports::SigningKeyStore>,
    /// The outbox: emails and notices to apps.
    pub outbox: Arc<dyn Outbox>,
    /// The security audit log.
    pub audit: Arc<dyn ports::AuditLog>,
    /// Whether it answers.
    pub health: Arc<dyn StoreHealth>,
    /// Rate-limit counters kept in the database.
    pub rate_limits: Arc<dyn RateLimiter>,
    store: SqlStore,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.store.dialect().name())
    }
}

/// Query parameters whose values are shown as they are: none of them can carry a credential.
/// Every other parameter's value is masked, since drivers accept passwords (`password=`,
/// `sslpassword=`) and keys in the query too, and a name this list does not know may be one.
const HARMLESS_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "application_name",
    "mode",
    "cache",
    "charset",
    "timezone",
    "statement-cache-capacity",
    "connect_timeout",
    "options",
];

/// The URL with every credential replaced by `***`, for messages and logs: the user-info's
/// password and the value of any query parameter not known to be harmless. Works for every
/// URL the service takes (database, Redis, SMTP).
pub fn masked_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(a malformed URL)".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let masked: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let shown = if HARMLESS_PARAMETERS.contains(&name.to_ascii_lowercase().as_str()) {
                    value.into_owned()
                } else {
                    "***".to_owned()
                };
                (name.into_owned(), shown)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(masked);
    }
    // The query is re-encoded above; `***` shows as `%2A%2A%2A` there, which reads worse.
    parsed.to_string().replace("%2A%2A%2A", "***")
}

/// The setting every database error names, so an operator knows what to change.
const SETTING: &str = "database.url (DATABASE_URL)";

/// The dialect `url`'s scheme names.
///
/// # Errors
/// Names the (masked) URL and the schemes this build supports.
pub fn dialect_of(url: &SecretText) -> anyhow::Result<Dialect> {
    let raw = url.expose();
    scheme(raw).and_then(Dialect::from_scheme).ok_or_else(|| {
        anyhow::anyhow!(
            "{SETTING} `{}` is not supported: use sqlite://path/to/file.sqlite, \
             postgres://user:password@host/database or mysql://user:password@host/database",
            masked_url(raw)
        )
    })
}

impl Database {
    /// Has the store wake this instance's delivery worker when it queues rows on its own (the
    /// back-channel logout notices of an ended session); see [`SqlStore::wake_worker_with`].
    pub fn wake_worker_with(&self, wakes: crate::handover::Wakes) {
        self.store.wake_worker_with(wakes);
    }

    /// Sets what the store does with audit events (`[audit]`); see
    /// [`SqlStore::configure_audit`].
    pub fn configure_audit(&self, options: crate::sql::AuditOptions) {
        self.store.configure_audit(options);
    }

    /// Sets which audit events the store queues as webhooks, and for which endpoints; see
    /// [`SqlStore::configure_webhooks`].
    pub fn configure_webhooks(&self, routing: crate::sql::WebhookRouting) {
        self.store.configure_webhooks(routing);
    }

    /// Opens the database at `url`, choosing the backend by the URL's scheme: `sqlite:`,
    /// `postgres://` or `postgresql://`, `mysql://` or `mariadb://`. With
    /// [`OpenMode::MustExist`], `None` when it does not exist yet (and nothing is created).
    ///
    /// # Errors
    /// One line naming the setting and the (masked) URL when the scheme is not supported, the
    /// server cannot be reached or refuses the credentials.
    pub async fn open(url: &SecretText, pool: PoolSettings, mode: OpenMode) -> anyhow::Result<Option<Self>> {
        let dialect = dialect_of(url)?;
        let shown = masked_url(url.expose());
        let store = SqlStore::open(url, &shown, dialect, pool, mode)
            .await
            .map_err(|error| anyhow::anyhow!("{SETTING}: {error:#}"))?;
        Ok(store.map(Self::over))
    }

    fn over(store: SqlStore) -> Self {
        let shared = Arc::new(store.clone());
        Self {
            links: shared.clone(),
            users: shared.clone(),
            sessions: shared.clone(),
            passwords: shared.clone(),
            passkeys: shared.clone(),
            clients: shared.clone(),
            grants: shared.clone(),
            signing_keys: shared.clone(),
            outbox: shared.clone(),
            audit: shared.clone(),
            health: shared.clone(),
            rate_limits: shared,
            store,
        }
    }

    /// The backend's dialect.
    pub fn dialect(&self) -> Dialect {
        self.store.dialect()
    }

    /// The connection pools' usage now.
    pub fn pool_usage(&self) -> crate::sql::PoolUsage {
        self.store.pool_usage()
    }

    /// Every migration the backend at `url` would apply, all pending: the status of a database
    /// that does not exist yet.
    ///
    /// # Errors
    /// When the scheme is not supported.
    pub fn known_migrations(url: &SecretText) -> anyhow::Result<Vec<MigrationState>> {
        Ok(known_migrations(dialect_of(url)?))
    }

    /// Applies pending migrations and returns those it applied, oldest first.
    ///
    /// # Errors
    /// Fails if a migration fails or an applied one was edited since.
    pub async fn migrate(&self) -> anyhow::Result<Vec<MigrationState>> {
        self.store.migrate().await
    }

    /// Every known migration, applied or pending, oldest first.
    ///
    /// # Errors
    /// Fails if the bookkeeping cannot be read.
    pub async fn migration_status(&self) -> anyhow::Result<Vec<MigrationState>> {
        self.store.migration_status().await
    }

    /// Fills the database with `users` users and `sessions` sessions, valid for `valid_for`
    /// from `now`, for scale checks (see [`crate::sql::seeded_session_token`]).
    ///
    /// # Errors
    /// On a storage failure, or sessions without users.
    pub async fn seed(
        &self,
        users: u64,
        sessions: u64,
        now: chrono::DateTime<chrono::Utc>,
        valid_for: chrono::TimeDelta,
    ) -> anyhow::Result<crate::sql::Seeded> {
        self.store.seed(users, sessions, now, valid_for).await
    }

    /// Closes the connections, waiting for those in use.
    pub async fn close(&self) {
        self.store.close().await;
    }
}

fn scheme(url: &str) -> Option<&str> {
    url.split_once(':').map(|(scheme, _)| scheme)
}

#[cfg(test)]
mod tests {
    use super::masked_url;

    #[test]
    fn passwords_in_urls_are_masked() {
        assert_eq!(masked_url("postgres://app:hunter2@db:5432/auth"), "postgres://app:***@db:5432/auth");
        assert_eq!(masked_url("redis://:s3cret@127.0.0.1:6379"), "redis://:***@127.0.0.1:6379");
        assert_eq!(masked_url("sqlite://data/x.sqlite"), "sqlite://data/x.sqlite");
        assert!(!masked_url("not a url with hunter2").contains("hunter2"));
    }

    #[test]
    fn credentials_in_the_query_are_masked_and_harmless_parameters_kept() {
        assert_eq!(
            masked_url("postgres://app@db/auth?password=hunter2&sslmode=require"),
            "postgres://app@db/auth?password=***&sslmode=require"
        );
        assert_eq!(
            masked_url("mysql://root@db/auth?ssl-mode=REQUIRED&sslpassword=pw&unknown=x"),
            "mysql://root@db/auth?ssl-mode=REQUIRED&sslpassword=***&unknown=***"
        );
        assert_eq!(
            masked_url("smtp://user:pw@mail.example.com:587?tls=required&auth_token=abc"),
            "smtp://user:***@mail.example.com:587?tls=***&auth_token=***"
        );
        assert_eq!(masked_url("sqlite://data/x.sqlite?mode=rwc"), "sqlite://data/x.sqlite?mode=rwc");
    }
}
