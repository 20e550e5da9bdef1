//! The commands: `serve`, `migrate`, `secret`, shared by the `magiclink` and `xtask` binaries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use domain::ServerSecret;

use crate::settings::{self, Overrides, Settings, Sources, DEVELOPMENT};
use crate::wiring;

/// Passwordless sign-in by magic link.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
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
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
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
    /// List queued and delivered sign-in emails (metadata only), newest first.
    Outbox {
        /// Only rows in this state: pending, sent, failed or dropped.
        #[arg(long)]
        status: Option<String>,
        /// At most this many rows.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

/// Runs a parsed command line and turns failures into one line on stderr and exit code 1.
pub fn main_with(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let sources =
        Sources { config_dir: cli.config_dir.clone(), dotenv: PathBuf::from(".env"), profile: cli.profile.clone() };
    let mut overrides = Overrides { database_url: cli.database_url.clone(), ..Overrides::default() };
    match cli.command {
        Command::Secret => {
            println!("{}", new_secret()?);
            Ok(())
        }
        Command::Outbox { status, limit } => {
            let settings = settings::load(&sources, &overrides)?;
            list_outbox(&settings, status.as_deref(), limit).await
        }
        Command::Migrate { status } => {
            let settings = settings::load(&sources, &overrides)?;
            migrate(&settings, status).await
        }
        Command::Serve { bind } => {
            overrides.bind = bind;
            let settings = settings::load(&sources, &overrides)?;
            serve(&settings, &cli.profile).await
        }
    }
}

/// 32 bytes from the OS CSPRNG in standard base64, like `openssl rand -base64 32`.
fn new_secret() -> anyhow::Result<String> {
    Ok(base64::engine::general_purpose::STANDARD.encode(ports::random::os_random::<32>()?))
}

async fn migrate(settings: &Settings, status_only: bool) -> anyhow::Result<()> {
    let store = wiring::open_store(settings).await?;
    if status_only {
        for migration in store.migration_status().await? {
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
    } else {
        let applied = store.migrate().await?;
        if applied.is_empty() {
            println!("Nothing to do: the database is up to date.");
        }
        for migration in applied {
            println!("Applied {} {}", migration.version, migration.description);
        }
    }
    store.close().await;
    Ok(())
}

async fn list_outbox(settings: &Settings, status: Option<&str>, limit: u32) -> anyhow::Result<()> {
    use ports::Outbox as _;
    let state = status
        .map(|s| {
            ports::DeliveryState::parse(s)
                .with_context(|| format!("--status `{s}`: use pending, sent, failed or dropped"))
        })
        .transpose()?;
    let store = wiring::open_store(settings).await?;
    let counts = store.counts().await?;
    println!("pending {}  sent {}  failed {}  dropped {}", counts.pending, counts.sent, counts.failed, counts.dropped);
    for entry in store.list(state, limit).await? {
        println!(
            "{}  {}  {:<22}  {:<7}  attempts {}  {}",
            entry.id,
            entry.created_at.format("%Y-%m-%d %H:%M:%S"),
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

async fn serve(settings: &Settings, profile: &str) -> anyhow::Result<()> {
    let checked = settings.check(profile)?;
    init_logging(&settings.log.filter);
    let secret = if checked.needs_ephemeral_secret {
        tracing::warn!("no AUTH_SECRET set: using an ephemeral secret, so links and forms stop working on restart");
        ServerSecret::new(ports::random::os_random::<32>()?)
    } else {
        ServerSecret::new(settings.secret.expose().as_bytes())
    };
    let service = wiring::build(settings, checked.base_url.clone(), secret, wiring::Parts::default()).await?;
    if profile == DEVELOPMENT {
        for migration in service.store.migrate().await? {
            println!("Applied migration {} {}", migration.version, migration.description);
        }
    } else {
        let pending = service.store.migration_status().await?.into_iter().filter(|m| m.applied_at.is_none()).count();
        anyhow::ensure!(pending == 0, "{pending} migration(s) pending: run `magiclink migrate` first");
    }
    let bound = wiring::bind(&settings.server.bind).await?;
    println!("Listening on http://{}", bound.local_addr);
    if service.mailbox.is_some() {
        println!(
            "Development mailer: emails are not sent; read them at {}/dev/mailbox (links are also logged here)",
            checked.base_url.as_str().trim_end_matches('/')
        );
    }
    wiring::run(service, bound, wiring::shutdown_signal()).await.context("serve failed")
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // A second initialisation (tests) is harmless; ignore it.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
