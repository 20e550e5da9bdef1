//! The product's commands, `serve`, `migrate`, `users`, `clients`, `keys`, `outbox` and `secret`, shared by the `magiclink`
//! binary and `cargo xtask`.
//!
//! Every message that tells the operator to run another command names it the way they invoked
//! this one ([`Program`]): `magiclink migrate` for the shipped binary, `cargo xtask migrate`
//! for a developer.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Args, Parser, Subcommand};
use domain::audit::AuditKind;
use domain::ServerSecret;

pub use crate::settings::Program;
use crate::settings::{self, Overrides, Settings, Sources, DEVELOPMENT};
use crate::wiring::{self, OpenMode};

/// The shipped binary's command line.
#[derive(Debug, Parser)]
#[command(
    name = "magiclink",
    version,
    about = "Passwordless sign-in: people type their email address and sign in with the one-time link it is sent."
)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration profile: `development` (the default) or any other name, which gets the
    /// production checks and reads `config/{profile}.toml`.
    #[arg(long, global = true, env = "MAGICLINK_PROFILE", default_value = DEVELOPMENT)]
    pub profile: String,
    /// Folder holding `default.toml` and `{profile}.toml`.
    #[arg(long, global = true, env = "MAGICLINK_CONFIG_DIR", default_value = "config")]
    pub config_dir: PathBuf,
    /// Database URL, overriding every other setting of it.
    #[arg(long, global = true)]
    pub database_url: Option<String>,
}

/// The product's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (applies migrations first in the development profile).
    Serve {
        /// Address to listen on, overriding `server.bind`.
        #[arg(long)]
        bind: Option<String>,
    },
    /// Apply pending database migrations, printing each one.
    Migrate {
        /// List applied and pending migrations instead of applying any.
        #[arg(long)]
        status: bool,
    },
    /// Print a fresh random secret for AUTH_SECRET.
    Secret,
    /// Add, list or remove users (for `sign_up.mode = "existing"` or `"allowlist"`).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Register, list or remove the apps that sign people in through magiclink (OpenID Connect).
    #[command(subcommand)]
    Clients(crate::clients::ClientsCommand),
    /// List or rotate the keys ID tokens are signed with.
    #[command(subcommand)]
    Keys(crate::clients::KeysCommand),
    /// List queued and delivered sign-in emails (metadata only), newest first.
    Outbox {
        /// Only rows in this state: pending, sent, failed or dropped.
        #[arg(long)]
        status: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Read the security audit log, newest first.
    Audit {
        /// Only this person's events: their address, or their user id (a deleted person's
        /// events keep only the id).
        #[arg(long)]
        user: Option<String>,
        /// Only events of this kind (`link.requested`, `session.signed_out`, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Only events at or after this moment: RFC 3339 (`2026-12-04T09:00:00Z`) or a date.
        #[arg(long)]
        since: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print one JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Fill the database with users and sessions for scale checks (development profile only:
    /// seeded sessions have predictable tokens).
    Seed {
        /// How many users to add.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        /// How many sessions to add, spread over the new users.
        #[arg(long, default_value_t = 0)]
        sessions: u64,
        /// Hours the new sessions stay valid (fewer than `session.max_age` less
        /// `session.update_age` makes them due for extension at their next read).
        #[arg(long, default_value_t = 30 * 24)]
        valid_hours: i64,
    },
}

/// `users add|list|delete|disable|enable`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user, so that the address may sign in when sign-up is closed.
    Add {
        /// The address.
        email: String,
    },
    /// List users by address.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Delete a user and everything tied to them (sessions, links, password, passkeys, app
    /// grants, emails); their audit events stay, without the address.
    #[command(alias = "remove")]
    Delete {
        /// The address.
        email: String,
    },
    /// Disable a user: their sessions end at once, and until enabled they cannot sign in (a
    /// link asked for gets the usual answer and no email).
    Disable {
        /// The address.
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The address.
        email: String,
    },
}

/// Runs a parsed command line and turns failures into lines on stderr and exit code 1.
pub fn main_with(global: GlobalArgs, command: Command, program: Program) -> ExitCode {
    main_embedding(global, command, program, wiring::magiclink_alone)
}

/// As [`main_with`], with `serve` serving the application `embed` builds around magiclink: the
/// same configuration, migrations, delivery worker and connection limits.
pub fn main_embedding(global: GlobalArgs, command: Command, program: Program, embed: wiring::Embed) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(global, command, program, embed)) {
        Ok(()) => ExitCode::SUCCESS,
        // A JSON log stays JSON to its last line: the reason `serve` stopped is an ERROR event.
        Err(error) if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) => {
            tracing::error!(error = %format!("{error:#}"), "magiclink stopped");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    // The log's last lines (that one included) are written out before the process ends.
    drop(LOG_WRITER.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
    code
}

/// The logging thread's guard, once `serve` set it up: dropped last, writing out what is queued.
static LOG_WRITER: std::sync::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> = std::sync::Mutex::new(None);

/// Whether `serve` set up JSON logging, so that the line saying why it stopped is JSON too.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn run(global: GlobalArgs, command: Command, program: Program, embed: wiring::Embed) -> anyhow::Result<()> {
    let sources = Sources {
        config_dir: global.config_dir.clone(),
        dotenv: PathBuf::from(".env"),
        profile: global.profile.clone(),
    };
    let mut overrides = Overrides { database_url: global.database_url.clone(), ..Overrides::default() };
    match command {
        Command::Secret => {
            println!("{}", new_secret()?);
            Ok(())
        }
        Command::Outbox { status, limit } => {
            let settings = settings::load(&sources, &overrides)?;
            list_outbox(&settings, status.as_deref(), limit, program).await
        }
        Command::Audit { user, kind, since, limit, json } => {
            let settings = settings::load(&sources, &overrides)?;
            let filter = AuditFilter { user, kind, since, limit };
            list_audit(&settings, filter, json, program).await
        }
        Command::Users(command) => {
            let settings = settings::load(&sources, &overrides)?;
            users(&settings, command, program).await
        }
        Command::Clients(command) => {
            let settings = settings::load(&sources, &overrides)?;
            crate::clients::clients(&settings, command, program).await
        }
        Command::Keys(command) => {
            let settings = settings::load(&sources, &overrides)?;
            crate::clients::keys(&settings, command, program).await
        }
        Command::Migrate { status } => {
            let settings = settings::load(&sources, &overrides)?;
            if status {
                migration_status(&settings).await
            } else {
                migrate(&settings, &global.profile).await
            }
        }
        Command::Seed { users, sessions, valid_hours } => {
            let settings = settings::load(&sources, &overrides)?;
            let valid_for = chrono::TimeDelta::try_hours(valid_hours).context("--valid-hours is out of range")?;
            seed(&settings, &global.profile, (users, sessions, valid_for), program).await
        }
        Command::Serve { bind } => {
            overrides.bind = bind;
            let settings = settings::load(&sources, &overrides)?;
            serve(&settings, &global.profile, program, embed).await
        }
    }
}

/// 32 bytes from the OS CSPRNG in standard base64, like `openssl rand -base64 32`.
fn new_secret() -> anyhow::Result<String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(ports::random::os_random::<32>()?))
}

async fn migrate(settings: &Settings, profile: &str) -> anyhow::Result<()> {
    let Some(store) = wiring::open_store(settings, wiring::creation_mode(settings, profile)).await? else {
        anyhow::bail!(
            "the database {} does not exist: outside the development profile `migrate` does not create \
             databases on a server; create it (e.g. CREATE DATABASE magiclink) and run `migrate` again",
            adapters::database::masked_url(settings.database.url.expose())
        );
    };
    let applied = store.migrate().await?;
    if applied.is_empty() {
        println!("Nothing to do: the database is up to date.");
    }
    for migration in applied {
        println!("Applied {} {}", migration.version, migration.description);
    }
    store.close().await;
    Ok(())
}

/// Lists applied and pending migrations. A database that does not exist yet has every migration
/// pending; it is not created.
async fn migration_status(settings: &Settings) -> anyhow::Result<()> {
    let store = wiring::open_store(settings, OpenMode::MustExist).await?;
    let migrations = match &store {
        Some(store) => store.migration_status().await?,
        None => {
            println!("The database does not exist yet; `migrate` creates it.");
            adapters::database::Database::known_migrations(&settings.database.secret_url())?
        }
    };
    for migration in migrations {
        match migration.applied_at {
            Some(at) => println!(
                "{} {:<24} applied {}",
                migration.version,
                migration.description,
                at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            None => println!("{} {:<24} pending", migration.version, migration.description),
        }
    }
    if let Some(store) = store {
        store.close().await;
    }
    Ok(())
}

async fn users(settings: &Settings, command: UsersCommand, program: Program) -> anyhow::Result<()> {
    let parse = |raw: &str| {
        domain::EmailAddress::parse(raw).map_err(|reason| anyhow::anyhow!("`{raw}` is not an address: {reason}"))
    };
    let store = wiring::open_migrated(settings, program).await?;
    // Webhooks are sealed under the server secret, so that the server opens them; without one
    // configured (development's ephemeral secret) a command cannot queue them.
    if !settings.secret.expose().is_empty() {
        wiring::route_webhooks(settings, &store, wiring::secret_ring(settings).current())?;
    } else if !settings.webhooks.is_empty() {
        eprintln!("note: no secret is configured, so this command's changes are not told to the webhooks");
    }
    let result = async {
        match command {
            UsersCommand::Add { email } => match store.users.add(&parse(&email)?, chrono::Utc::now()).await? {
                ports::UserAdded::Created(user) => {
                    wiring::operator_did(&store, AuditKind::UserCreated, Some(&user.id), "users add").await?;
                    println!("Added {} ({})", user.email, user.id.as_str());
                }
                ports::UserAdded::Existed(user) => println!("{} already exists ({})", user.email, user.id.as_str()),
            },
            UsersCommand::List { limit } => {
                for user in store.users.list(limit).await? {
                    let verified = user.email_verified.map_or_else(
                        || "never signed in".to_owned(),
                        |at| format!("verified {}", at.format("%Y-%m-%d %H:%M UTC")),
                    );
                    println!("{}  {}  {}", user.id.as_str(), user.email, verified);
                }
            }
            UsersCommand::Delete { email } => {
                let email = parse(&email)?;
                let event = wiring::operator_event(AuditKind::UserDeleted, "users delete");
                let deleted = store.users.remove(&email, None, &event).await?;
                let user_id = deleted.ok_or_else(|| anyhow::anyhow!("no user has the address {email}"))?;
                println!("Deleted {email} ({}), their sessions, links, passkeys and password", user_id.as_str());
            }
            UsersCommand::Disable { email } => {
                let email = parse(&email)?;
                let event = wiring::operator_event(AuditKind::UserDisabled, "users disable");
                match store.users.set_disabled(&email, true, &event, chrono::Utc::now()).await? {
                    ports::AccountStatusChange::Changed { user_id, sessions_ended } => {
                        println!("Disabled {email} ({}); {sessions_ended} session(s) ended", user_id.as_str())
                    }
                    ports::AccountStatusChange::Unchanged => println!("{email} was disabled already"),
                    ports::AccountStatusChange::NoSuchUser => anyhow::bail!("no user has the address {email}"),
                }
            }
            UsersCommand::Enable { email } => {
                let email = parse(&email)?;
                let event = wiring::operator_event(AuditKind::UserEnabled, "users enable");
                match store.users.set_disabled(&email, false, &event, chrono::Utc::now()).await? {
                    ports::AccountStatusChange::Changed { user_id, .. } => {
                        println!("Enabled {email} ({})", user_id.as_str());
                    }
                    ports::AccountStatusChange::Unchanged => println!("{email} was not disabled"),
                    ports::AccountStatusChange::NoSuchUser => anyhow::bail!("no user has the address {email}"),
                }
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `audit`'s filters, as typed.
struct AuditFilter {
    user: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    limit: u32,
}

async fn list_audit(settings: &Settings, filter: AuditFilter, json: bool, program: Program) -> anyhow::Result<()> {
    let kind = filter
        .kind
        .as_deref()
        .map(|raw| {
            AuditKind::parse(raw).with_context(|| {
                let known: Vec<&str> = AuditKind::ALL.iter().map(|kind| kind.as_str()).collect();
                format!("--kind `{raw}`: one of {}", known.join(", "))
            })
        })
        .transpose()?;
    let since = filter.since.as_deref().map(parse_moment).transpose()?;
    let store = wiring::open_migrated(settings, program).await?;
    let result = async {
        let user_id = match filter.user.as_deref() {
            None => None,
            Some(raw) => Some(match domain::UserId::parse(raw) {
                Ok(id) => id,
                Err(_) => {
                    let email = domain::EmailAddress::parse(raw).map_err(|reason| {
                        anyhow::anyhow!("--user `{raw}` is neither an address nor a user id: {reason}")
                    })?;
                    store
                        .users
                        .find_by_email(&email)
                        .await?
                        .with_context(|| format!("no user has the address {email}"))?
                        .id
                }
            }),
        };
        let query = ports::AuditQuery { user_id, kind, since, before_id: None, limit: filter.limit };
        for recorded in store.audit.list(&query).await? {
            if json {
                println!("{}", adapters::sql::event_json(Some(&recorded.id), &recorded.event));
            } else {
                let event = &recorded.event;
                let outcome = match event.outcome.reason() {
                    Some(reason) => format!("refused ({reason})"),
                    None => "ok".to_owned(),
                };
                println!(
                    "{}  {:<24}  {:<18}  user {}  {}  {}  {}",
                    event.at.format("%Y-%m-%d %H:%M:%S UTC"),
                    event.kind.as_str(),
                    outcome,
                    event.user_id.as_ref().map_or("-", |id| id.as_str()),
                    event.origin.client_address.as_deref().unwrap_or("-"),
                    event.origin.user_agent.as_deref().unwrap_or("-"),
                    event.detail.as_deref().unwrap_or(""),
                );
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// A moment typed on the command line: RFC 3339, or a date (its midnight, UTC).
fn parse_moment(raw: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(moment) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(moment.with_timezone(&chrono::Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").with_context(|| {
        format!("--since `{raw}`: an RFC 3339 moment (2026-12-04T09:00:00Z) or a date (2026-12-04)")
    })?;
    Ok(date.and_time(chrono::NaiveTime::MIN).and_utc())
}

async fn list_outbox(settings: &Settings, status: Option<&str>, limit: u32, program: Program) -> anyhow::Result<()> {
    let state = status
        .map(|s| {
            ports::DeliveryState::parse(s)
                .with_context(|| format!("--status `{s}`: use pending, sent, failed or dropped"))
        })
        .transpose()?;
    let store = wiring::open_migrated(settings, program).await?;
    let counts = store.outbox.counts().await?;
    println!("pending {}  sent {}  failed {}  dropped {}", counts.pending, counts.sent, counts.failed, counts.dropped);
    for entry in store.outbox.list(state, limit).await? {
        println!(
            "{}  {}  {:<22}  {:<7}  attempts {}  {}",
            entry.id,
            entry.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            entry.recipient.masked(),
            entry.state.as_str(),
            entry.attempts,
            match (&entry.provider_message_id, &entry.last_error) {
                (Some(id), _) => format!("id {id}"),
                (None, Some(error)) => format!("error: {error}"),
                (None, None) => String::new(),
            }
        );
    }
    store.close().await;
    Ok(())
}

async fn seed(
    settings: &Settings,
    profile: &str,
    (users, sessions, valid_for): (u64, u64, chrono::TimeDelta),
    program: Program,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        profile == DEVELOPMENT,
        "seed runs only in the development profile: seeded sessions have predictable tokens"
    );
    let store = wiring::open_migrated(settings, program).await?;
    let started = std::time::Instant::now();
    let seeded = store.seed(users, sessions, chrono::Utc::now(), valid_for).await;
    store.close().await;
    let seeded = seeded?;
    println!(
        "Seeded {} users and {} sessions in {:.1} s",
        seeded.users,
        seeded.sessions,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn serve(settings: &Settings, profile: &str, program: Program, embed: wiring::Embed) -> anyhow::Result<()> {
    // The settings' own refusal is a list for the person at the terminal; after it every line
    // is the log's, in its format.
    let checked = settings.check(profile, program)?;
    init_logging(&settings.log);
    if profile != DEVELOPMENT {
        // Outside development the schema changes only by a deliberate `migrate`: refuse to
        // start (and create nothing) while the database is missing or behind.
        wiring::open_migrated(settings, program).await?.close().await;
    }
    wiring::raise_open_file_limit(settings.server.max_connections);
    let secret = if checked.needs_ephemeral_secret {
        tracing::warn!("no AUTH_SECRET set: using an ephemeral secret, so links and forms stop working on restart");
        ServerSecret::new(ports::random::os_random::<32>()?)
    } else {
        ServerSecret::new(settings.secret.expose().as_bytes())
    };
    // Bound first, so that a development base URL can name the port actually bound.
    let bound = wiring::bind(&settings.server.bind).await?;
    let base_url = checked.public_base_url(bound.local_addr);
    let parts = wiring::Parts { embed, ..wiring::Parts::default() };
    let service = wiring::build(settings, base_url.clone(), secret, parts).await?;
    if settings.mailer.check_at_start {
        check_mailer(service.mailer.as_ref(), profile).await?;
    }
    if profile == DEVELOPMENT {
        for migration in service.store.migrate().await? {
            announce(&settings.log, &format!("Applied migration {} {}", migration.version, migration.description));
        }
    }
    wiring::sync_configured_clients(settings, &service.store).await?;
    if let Some(oidc) = &service.oidc {
        // The provider's RS256 key exists from the first start (made and stored sealed now
        // when there is none), so the first app to sign someone in does not wait for it.
        oidc.signer().key_set().await.context("cannot make or read the OpenID Provider's signing keys")?;
    }
    let origin = base_url.as_str().trim_end_matches('/');
    announce(&settings.log, &format!("Listening on http://{}", bound.local_addr));
    if checked.base_url.is_none() {
        announce(
            &settings.log,
            &format!("server.base_url is not set: links point at {origin} (the bound address; development only)"),
        );
    }
    if service.mailbox.is_some() {
        announce(
            &settings.log,
            &format!(
                "Development mailer: emails are not sent; read them at {origin}/dev/mailbox (links are also logged here)"
            ),
        );
    }
    wiring::run(service, bound, wiring::shutdown_signal()).await.context("serve failed")
}

/// How long the start-up check of the mailer may take: a provider that does not answer in
/// this long will not deliver sign-in emails in time either.
const MAILER_CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// Checks that the mailer reaches its provider, before the service listens: outside
/// development a failure stops start-up, saying what is wrong; in development it is a warning
/// (a developer may be offline).
async fn check_mailer(mailer: &dyn ports::Mailer, profile: &str) -> anyhow::Result<()> {
    let checked = match tokio::time::timeout(MAILER_CHECK_DEADLINE, mailer.check()).await {
        Ok(checked) => checked,
        Err(_) => Err(anyhow::anyhow!("the mail provider did not answer within {} s", MAILER_CHECK_DEADLINE.as_secs())),
    };
    match checked {
        Ok(()) => Ok(()),
        Err(error) if profile == DEVELOPMENT => {
            tracing::warn!(error = %format!("{error:#}"), "the mailer check failed: sign-in emails will not be delivered");
            Ok(())
        }
        Err(error) => Err(error.context(
            "the mailer check failed, so nobody could get a sign-in email: fix the [mailer] settings \
             (or set mailer.check_at_start = false to start without checking)",
        )),
    }
}

/// Says something at start-up: a plain line for the person at the terminal, or, with
/// `log.format = "json"`, an info event like any other, so that every line of a JSON log is
/// JSON.
fn announce(log: &crate::settings::LogSettings, line: &str) {
    match log.format {
        crate::settings::LogFormat::Text => println!("{line}"),
        crate::settings::LogFormat::Json => tracing::info!("{line}"),
    }
}

/// Installs the process's logger. Lines are written by a thread of their own, not by the
/// request's worker: a request no longer makes a `write` to stdout per line (a pipe to journald
/// or a container runtime, which also stalls the worker when the reader is slow), and under load
/// the thread writes every line queued meanwhile in one `write`. Nothing is dropped: a full queue
/// (128,000 lines) makes the logging request wait instead. The thread's guard is kept in
/// [`LOG_WRITER`] until the process ends.
fn init_logging(log: &crate::settings::LogSettings) {
    // Colour codes only for a person at a terminal: files and journald get plain text.
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("magiclink-log")
        .finish(std::io::BufWriter::new(std::io::stdout()));
    // A second initialisation (tests) is harmless; ignore it.
    if tracing::subscriber::set_global_default(log_subscriber(log, colour, writer)).is_ok() {
        JSON_LOGS.store(log.format == crate::settings::LogFormat::Json, std::sync::atomic::Ordering::Relaxed);
        *LOG_WRITER.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(guard);
    }
}

/// The process's log subscriber for `log` (`RUST_LOG`, when set, replaces `log.filter`),
/// writing to `writer`. Tests build it with a writer of their own to read a whole run's lines.
pub fn log_subscriber<W>(
    log: &crate::settings::LogSettings,
    colour: bool,
    writer: W,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_writer(writer);
    match log.format {
        crate::settings::LogFormat::Text => Box::new(builder.with_ansi(colour).finish()),
        crate::settings::LogFormat::Json => Box::new(builder.json().with_ansi(false).finish()),
    }
}
