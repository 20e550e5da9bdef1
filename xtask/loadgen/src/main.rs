//! `loadgen`: the end-to-end benchmark behind `cargo xtask bench`.
//!
//! It starts the `magiclink` binary on a fresh database with the development mailbox, seeds
//! users and sessions, starts the baseline server (poem and one indexed read of the same
//! database, [`baseline`]), and drives both over loopback with closed-loop HTTP/1.1 clients
//! written here: session checks and baseline reads at 64 connections, whole sign-ins (CSRF
//! token, sign-in POST, link from the mailbox, link opened, session read) at 1 and 16 clients,
//! a returning person's passkey sign-in (CSRF token, options, assertion, session read: no
//! email) at 1 client, compared with the link sign-in at 1 client, an app's OpenID Connect
//! sign-in of a person with a live session (authorize, token with an RS256 ID token, userinfo)
//! at 1 and 16 clients, compared with the session check,
//! and session checks again while 16 clients guess passwords as fast as they are answered (each
//! guess an argon2id verification), to show hashing never starves the other endpoints.
//! Every answer is checked. It prints requests per second, latency percentiles per step, the
//! server's CPU and memory, and each figure's ratio to the baseline measured in the same run.
//!
//! Built in release mode by `cargo xtask bench`; a test runs `--quick` on the debug build so the
//! harness cannot rot.

// The software WebAuthn authenticator the system tests use, shared as one file: the passkey
// phase signs in with it as a returning person would with a phone.
#[path = "../../../tests/support/authenticator.rs"]
mod authenticator;
mod baseline;
mod http;
mod process;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};

use crate::process::Server;
use crate::workload::{closed_loop, Read, Recorded, Routes};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "magiclink's end-to-end benchmark (run it with `cargo xtask bench`).")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Start magiclink and the baseline, drive them, print the figures.
    Run(RunArgs),
    /// Serve the baseline endpoint (started by `run`).
    Baseline {
        /// The database to read.
        #[arg(long)]
        database_url: String,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// Pool size (the service's `database.max_connections`).
        #[arg(long, default_value_t = 8)]
        connections: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The magiclink binary to measure.
    #[arg(long)]
    magiclink: PathBuf,
    /// The configuration folder (`config/`).
    #[arg(long, default_value = "config")]
    config_dir: PathBuf,
    /// Which database: a fresh SQLite file, or a fresh database on the PostgreSQL server at
    /// `TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/test).
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    database: Backend,
    /// One second per phase: a smoke run that checks the harness, not the figures.
    #[arg(long)]
    quick: bool,
    /// Also seed 1,000,000 sessions and measure session checks again.
    #[arg(long)]
    at_scale: bool,
    /// Seconds per measured phase (10 by default, 1 with --quick).
    #[arg(long)]
    seconds: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Mode::Baseline { database_url, bind, connections } => {
                baseline::serve(&database_url, &bind, connections).await.map(|()| true)
            }
            Mode::Run(args) => run(&args).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Connections of the session-check and baseline phases, and clients of the sign-in phase.
const READERS: usize = 64;
const SIGNERS: usize = 16;
/// Clients guessing passwords during the burst phase.
const GUESSERS: usize = 16;
/// The burst phase's name in the report.
const BURST_PHASE: &str = "session check, password burst";
/// The session checks measured while sixteen clients sign in.
const SIGN_IN_BURST_PHASE: &str = "session check, sign-in burst";
/// Users and sessions seeded before the session checks.
const SEEDED: u64 = 1000;
/// Sessions seeded due for extension, per connection of the extension phase, which reads one
/// of them (each once) in every `EXTENDING_ONE_IN` session checks.
const DUE_PER_CONNECTION: u64 = 400;
const EXTENDING_ONE_IN: usize = 10;
/// The extension phase's name in the report (one in `EXTENDING_ONE_IN`).
const EXTENDING_PHASE: &str = "session check, 1 in 10 extends";
/// The phase of returning people signing in with a passkey, one client.
const PASSKEY_PHASE: &str = "passkey sign-in, 1 client";
/// The phases of apps signing people in through magiclink (OpenID Connect), 1 and 16 clients.
const OIDC_PHASE_ONE: &str = "OIDC sign-in, 1 client";
const OIDC_PHASE_MANY: &str = "OIDC sign-in, 16 clients";
/// Hours the sessions due for extension stay valid: 28 days, two days short of `max_age`, so
/// more than `update_age` (a day) has passed since they were last set.
const DUE_VALID_HOURS: &str = "672";
/// Sessions in the table for `--at-scale`.
const AT_SCALE: u64 = 1_000_000;
/// The service's pool size, given to the baseline too.
const POOL: u32 = 8;

/// A database made for this run, dropped after it.
struct Scratch {
    url: String,
    drop_with: Option<(String, String)>,
}

impl Scratch {
    fn new(backend: Backend, folder: &Path) -> anyhow::Result<Self> {
        Ok(match backend {
            Backend::Sqlite => {
                Self { url: format!("sqlite://{}", folder.join("bench.sqlite").display()), drop_with: None }
            }
            Backend::Postgres => {
                let server = std::env::var("TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
                let name = format!("magiclink_bench_{}", std::process::id());
                let mut url = url::Url::parse(&server).context("TEST_POSTGRES_URL is not a URL")?;
                url.set_path(&name);
                Self { url: url.to_string(), drop_with: Some((server, name)) }
            }
        })
    }

    async fn drop_database(&self) {
        use sqlx::Connection as _;
        if let Some((server, name)) = &self.drop_with {
            if let Ok(mut connection) = sqlx::PgConnection::connect(server).await {
                let _ =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut connection).await;
            }
        }
    }
}

/// The service's command with the benchmark's configuration: development profile (the dev
/// mailbox), a fixed secret, the client and global link limits raised out of the way (every
/// request comes from one address) but still charged, logs at the default level.
fn magiclink(args: &RunArgs, database_url: &str, subcommand: &[&str]) -> Command {
    let mut command = Command::new(&args.magiclink);
    command
        .args(subcommand)
        .env("MAGICLINK_PROFILE", "development")
        .env("MAGICLINK_CONFIG_DIR", &args.config_dir)
        .env("DATABASE_URL", database_url)
        .env("MAGICLINK_DATABASE__MAX_CONNECTIONS", POOL.to_string())
        .env("AUTH_SECRET", "bench-secret-bench-secret-bench-secret-0123")
        // Every load-generating client comes from one loopback address.
        .env("MAGICLINK_SERVER__MAX_CONNECTIONS_PER_CLIENT", "0")
        .env("MAGICLINK_RATE_LIMIT__CLIENT_PER_HOUR", "1000000000")
        .env("MAGICLINK_RATE_LIMIT__GLOBAL_PER_HOUR", "1000000000")
        .env("MAGICLINK_PASSKEY__SIGN_INS_PER_CLIENT_PER_HOUR", "0")
        // One app's token requests from every client: its limit out of the way.
        .env("MAGICLINK_OIDC__TOKEN_REQUESTS_PER_CLIENT_PER_MINUTE", "0")
        // Passwords on at the default cost, their limits off: every guess is hashed.
        .env("MAGICLINK_PASSWORD__ENABLED", "true")
        .env("MAGICLINK_PASSWORD__FAILED_PER_ADDRESS_PER_HOUR", "0")
        .env("MAGICLINK_PASSWORD__FAILED_PER_CLIENT_PER_HOUR", "0")
        .env("NO_COLOR", "1")
        .env_remove("AUTH_URL")
        .env_remove("RUST_LOG");
    command
}

async fn run(args: &RunArgs) -> anyhow::Result<bool> {
    let folder = tempfile::tempdir().context("cannot make a temporary folder")?;
    let log = folder.path().join("servers.log");
    let scratch = Scratch::new(args.database, folder.path())?;
    let outcome = measure(args, &scratch, &log).await;
    scratch.drop_database().await;
    if outcome.is_err() {
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("last lines of the servers' output:");
            for line in tail.into_iter().rev() {
                eprintln!("  {line}");
            }
        }
    }
    outcome
}

/// What one phase measured, for the report.
struct Phase {
    name: &'static str,
    clients: usize,
    recorded: Recorded,
    elapsed: Duration,
    server_cores: f64,
    /// Cores the load generator itself used: the machine is shared.
    driver_cores: f64,
    /// The server's resident memory at the end of the phase, in MiB: which phase grew it.
    rss_mib: f64,
    /// The median and 99th percentile of a request or a flow, in ms, once reported.
    p50: f64,
    p99: f64,
}

impl Phase {
    fn per_second(&self) -> f64 {
        self.recorded.completed as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs one phase against `server`, measuring the server's CPU over it.
async fn phase<F, Fut>(
    name: &'static str,
    server: &Server,
    clients: usize,
    duration: Duration,
    client: F,
) -> anyhow::Result<Phase>
where
    F: Fn(usize, std::time::Instant) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Recorded>> + Send + 'static,
{
    let cpu_before = server.cpu_time();
    let driver_before = process::own_cpu_time();
    let (recorded, elapsed) = closed_loop(clients, duration, client).await?;
    let server_cores = (server.cpu_time() - cpu_before).as_secs_f64() / elapsed.as_secs_f64();
    let driver_cores = (process::own_cpu_time() - driver_before).as_secs_f64() / elapsed.as_secs_f64();
    let rss_mib = server.rss_mib();
    Ok(Phase { name, clients, recorded, elapsed, server_cores, driver_cores, rss_mib, p50: 0.0, p99: 0.0 })
}

/// Session checks at [`READERS`] clients while `background` (a closed loop of `names.2`
/// clients, started just before) runs: the checks' phase, named `names.0`, and the
/// background's, named `names.1`.
async fn session_checks_during(
    names: (&'static str, &'static str, usize),
    service: &Server,
    routes: &Routes,
    duration: Duration,
    background: tokio::task::JoinHandle<anyhow::Result<(Recorded, Duration)>>,
) -> anyhow::Result<[Phase; 2]> {
    let (checks_name, background_name, background_clients) = names;
    let requests: Vec<_> = (0..READERS)
        .map(|connection| session_requests(share(0, SEEDED, connection), &routes.session_cookie, &routes.auth_base).0)
        .collect();
    let address = service.address;
    let checks = phase(checks_name, service, READERS, duration, |i, deadline| {
        workload::reads(address, requests[i].clone(), deadline)
    })
    .await?;
    let (recorded, elapsed) = background.await.context("the background clients panicked")??;
    let background = Phase {
        name: background_name,
        clients: background_clients,
        recorded,
        elapsed,
        server_cores: 0.0,
        driver_cores: 0.0,
        rss_mib: service.rss_mib(),
        p50: 0.0,
        p99: 0.0,
    };
    Ok([checks, background])
}

/// The session-check requests for seeded sessions `numbers`: the cookie for the service, and
/// the token hash for the baseline.
fn session_requests(numbers: impl Iterator<Item = u64>, cookie_name: &str, auth_base: &str) -> (Vec<Read>, Vec<Read>) {
    let mut service = Vec::new();
    let mut baseline = Vec::new();
    for n in numbers {
        let token = adapters::sql::seeded_session_token(n);
        let expected = "\"email\":\"seed-".to_owned();
        service.push(Read {
            path: format!("{auth_base}/session"),
            headers: vec![("cookie".to_owned(), format!("{cookie_name}={}", token.encode()))],
            expected: expected.clone(),
            also: None,
        });
        baseline.push(Read {
            path: format!("/baseline/session?h={}", token.hash().to_hex()),
            headers: Vec::new(),
            expected,
            also: None,
        });
    }
    (service, baseline)
}

/// Spreads `READERS` connections over `count` seeded sessions starting at `first`, each
/// connection cycling through its own share.
fn share(first: u64, count: u64, connection: usize) -> impl Iterator<Item = u64> {
    let step = READERS as u64;
    let per_connection = (count / step).clamp(1, 2000);
    (0..per_connection).map(move |k| first + (connection as u64 + k * step) % count)
}

/// The requests of one connection of the extension phase: its share of the ordinary seeded
/// sessions, with one of its own sessions due for extension in every `EXTENDING_ONE_IN`.
fn extending_requests(connection: usize, routes: &Routes) -> Vec<Read> {
    let (ordinary, _) = session_requests(share(0, SEEDED, connection), &routes.session_cookie, &routes.auth_base);
    let first_due = SEEDED + connection as u64 * DUE_PER_CONNECTION;
    let (due, _) =
        session_requests(first_due..first_due + DUE_PER_CONNECTION, &routes.session_cookie, &routes.auth_base);
    let mut requests = Vec::new();
    let mut ordinary = ordinary.into_iter().cycle();
    for read in due {
        requests.extend(ordinary.by_ref().take(EXTENDING_ONE_IN - 1));
        requests.push(Read { also: Some("extending"), ..read });
    }
    requests
}

async fn read_phases(
    label: (&'static str, &'static str),
    service: &Server,
    base: &Server,
    routes: &Routes,
    sessions: (u64, u64),
    duration: Duration,
) -> anyhow::Result<(Phase, Phase)> {
    let (first, count) = sessions;
    let mut service_requests = Vec::new();
    let mut baseline_requests = Vec::new();
    for connection in 0..READERS {
        let (s, b) = session_requests(share(first, count, connection), &routes.session_cookie, &routes.auth_base);
        service_requests.push(s);
        baseline_requests.push(b);
    }
    let address = base.address;
    let baseline = phase(label.0, base, READERS, duration, |i, deadline| {
        workload::reads(address, baseline_requests[i].clone(), deadline)
    })
    .await?;
    let address = service.address;
    let checks = phase(label.1, service, READERS, duration, |i, deadline| {
        workload::reads(address, service_requests[i].clone(), deadline)
    })
    .await?;
    Ok((baseline, checks))
}

async fn measure(args: &RunArgs, scratch: &Scratch, log: &Path) -> anyhow::Result<bool> {
    let seconds = args.seconds.unwrap_or(if args.quick { 1 } else { 10 });
    let duration = Duration::from_secs(seconds);
    let url = &scratch.url;
    process::run(magiclink(args, url, &["migrate"]), log)?;
    let seeded = SEEDED.to_string();
    process::run(magiclink(args, url, &["seed", "--users", &seeded, "--sessions", &seeded]), log)?;
    // Then sessions due for extension (numbered after those), for the extension phase only.
    let due = (DUE_PER_CONNECTION * READERS as u64).to_string();
    let due_seed = ["seed", "--users", &seeded, "--sessions", &due, "--valid-hours", DUE_VALID_HOURS];
    process::run(magiclink(args, url, &due_seed), log)?;
    // The app the OIDC phases sign people in to, registered as an operator would.
    let registered = magiclink(
        args,
        url,
        &[
            "clients",
            "add",
            "--name",
            "Bench app",
            "--id",
            "bench-app",
            "--first-party",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--json",
        ],
    )
    .output()
    .context("cannot run `clients add`")?;
    anyhow::ensure!(registered.status.success(), "clients add: {}", String::from_utf8_lossy(&registered.stderr));
    let registered: serde_json::Value =
        serde_json::from_slice(&registered.stdout).context("clients add --json did not print JSON")?;
    let oidc_app = workload::OidcClient {
        id: "bench-app".to_owned(),
        secret: registered["client_secret"].as_str().context("no client_secret")?.to_owned(),
        redirect_uri: "http://127.0.0.1:8080/callback".to_owned(),
    };
    // A port chosen first, so the base URL can name it with a host name: browsers (and so
    // magiclink) take passkeys only for one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let origin = format!("http://localhost:{port}");
    let mut serve = magiclink(args, url, &["serve", "--bind", &format!("127.0.0.1:{port}")]);
    serve.env("MAGICLINK_SERVER__BASE_URL", &origin);
    let service = Server::start(serve, log)?;
    let idle_rss = service.rss_mib();
    let mut baseline_command = Command::new(std::env::current_exe()?);
    baseline_command.args(["baseline", "--database-url", url, "--connections", &POOL.to_string()]);
    let base = Server::start(baseline_command, log)?;
    let routes = Routes {
        server: service.address,
        origin,
        auth_base: "/api/auth".to_owned(),
        session_cookie: "magiclink.session-token".to_owned(),
    };

    println!(
        "magiclink bench: {:?}, {} s per phase, {} cores; servers' output in {}",
        args.database,
        seconds,
        std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        log.display()
    );
    // Warm both servers (and the database's cache) before measuring.
    let warm = Duration::from_millis(if args.quick { 200 } else { 2000 });
    read_phases(("warm", "warm"), &service, &base, &routes, (0, SEEDED), warm).await?;

    let mut phases = Vec::new();
    let (baseline, checks) =
        read_phases(("baseline read", "session check"), &service, &base, &routes, (0, SEEDED), duration).await?;
    phases.push(baseline);
    phases.push(checks);
    let extending: Vec<Vec<Read>> = (0..READERS).map(|connection| extending_requests(connection, &routes)).collect();
    let address = service.address;
    phases.push(
        phase(EXTENDING_PHASE, &service, READERS, duration, |i, deadline| {
            workload::reads(address, extending[i].clone(), deadline)
        })
        .await?,
    );
    // Session checks again, while password guesses keep the hasher busy.
    let guessing = routes.clone();
    let guesses = tokio::spawn(closed_loop(GUESSERS, duration, move |i, deadline| {
        workload::password_guesses(guessing.clone(), i, deadline)
    }));
    phases.extend(
        session_checks_during(
            (BURST_PHASE, "password guesses (the burst)", GUESSERS),
            &service,
            &routes,
            duration,
            guesses,
        )
        .await?,
    );
    let one = routes.clone();
    phases.push(
        phase("sign-in, 1 client", &service, 1, duration, move |i, deadline| {
            workload::sign_ins(one.clone(), i, deadline)
        })
        .await?,
    );
    let returning = routes.clone();
    phases.push(
        phase(PASSKEY_PHASE, &service, 1, duration, move |i, deadline| {
            workload::passkey_sign_ins(returning.clone(), i, deadline)
        })
        .await?,
    );
    for (name, clients) in [(OIDC_PHASE_ONE, 1), (OIDC_PHASE_MANY, SIGNERS)] {
        let (apps, app) = (routes.clone(), oidc_app.clone());
        phases.push(
            phase(name, &service, clients, duration, move |i, deadline| {
                workload::oidc_sign_ins(apps.clone(), app.clone(), i, deadline)
            })
            .await?,
        );
    }
    let many = routes.clone();
    phases.push(
        phase("sign-in, 16 clients", &service, SIGNERS, duration + duration / 2, move |i, deadline| {
            workload::sign_ins(many.clone(), i, deadline)
        })
        .await?,
    );
    // Session checks again, while sixteen people sign in: the writes must not hold up reads.
    let signing = routes.clone();
    let sign_ins = tokio::spawn(closed_loop(SIGNERS, duration, move |i, deadline| {
        workload::sign_ins(signing.clone(), i, deadline)
    }));
    phases.extend(
        session_checks_during(
            (SIGN_IN_BURST_PHASE, "sign-ins (the burst)", SIGNERS),
            &service,
            &routes,
            duration,
            sign_ins,
        )
        .await?,
    );
    let loaded_rss = service.rss_mib();
    if args.at_scale {
        // The sessions seeded so far (ordinary and due) count towards the million; those due
        // for extension are left out of the reads, which would otherwise extend them.
        let seeded_so_far = SEEDED + DUE_PER_CONNECTION * READERS as u64;
        let more_sessions = (AT_SCALE - seeded_so_far).to_string();
        println!("seeding up to {AT_SCALE} sessions ...");
        process::run(magiclink(args, url, &["seed", "--users", &seeded, "--sessions", &more_sessions]), log)?;
        let (baseline, checks) = read_phases(
            ("baseline read, 1M sessions", "session check, 1M sessions"),
            &service,
            &base,
            &routes,
            (seeded_so_far, AT_SCALE - seeded_so_far),
            duration,
        )
        .await?;
        phases.push(baseline);
        phases.push(checks);
    }
    Ok(report(&mut phases, idle_rss, loaded_rss))
}

/// Prints the table and the targets; `false` when any answer failed its check.
fn report(phases: &mut [Phase], idle_rss: f64, loaded_rss: f64) -> bool {
    println!();
    println!(
        "{:<30} {:>7} {:>10} {:>9} {:>9} {:>12} {:>12} {:>9}",
        "phase", "clients", "per s", "p50 ms", "p99 ms", "server CPU", "driver CPU", "RSS MiB"
    );
    let mut healthy = true;
    for phase in phases.iter_mut() {
        let step = if phase.recorded.steps.contains_key("flow") { "flow" } else { "request" };
        let unit = if step == "flow" { "flows" } else { "req" };
        let per_second = phase.per_second();
        let p50 = phase.recorded.percentile(step, 50.0).unwrap_or_default();
        let p99 = phase.recorded.percentile(step, 99.0).unwrap_or_default();
        phase.p50 = p50;
        phase.p99 = p99;
        println!(
            "{:<30} {:>7} {:>10} {:>9.2} {:>9.2} {:>7.2} cores {:>6.2} cores {:>9.1}",
            phase.name,
            phase.clients,
            format!("{per_second:.0} {unit}"),
            p50,
            p99,
            phase.server_cores,
            phase.driver_cores,
            phase.rss_mib
        );
        if let Some(p99) = phase.recorded.percentile("extending", 99.0) {
            let p50 = phase.recorded.percentile("extending", 50.0).unwrap_or_default();
            let count = phase.recorded.steps.get("extending").map_or(0, Vec::len);
            println!("  {:<28} {:>7} {:>10} {p50:>9.3} {p99:>9.3}", "of which extending", "", format!("{count} req"));
        }
        if step == "flow" {
            let names: Vec<&'static str> = phase.recorded.steps.keys().copied().filter(|s| *s != "flow").collect();
            for name in names {
                let p50 = phase.recorded.percentile(name, 50.0).unwrap_or_default();
                let p99 = phase.recorded.percentile(name, 99.0).unwrap_or_default();
                println!("  {name:<28} {:>7} {:>10} {p50:>9.3} {p99:>9.3}", "", "");
            }
            if phase.recorded.steps.contains_key("link wait") {
                let first = phase.recorded.link_at_first_poll as f64 / phase.recorded.completed.max(1) as f64;
                println!("  link in the mailbox at the first look: {:.1}% of sign-ins", first * 100.0);
            }
        }
        if phase.recorded.failures > 0 {
            healthy = false;
            println!(
                "  FAILED CHECKS: {} (first: {})",
                phase.recorded.failures,
                phase.recorded.first_failure.as_deref().unwrap_or_default()
            );
        }
    }
    println!();
    println!("server memory (RSS): {idle_rss:.1} MiB idle after start, {loaded_rss:.1} MiB after the sign-in phases");
    let find = |name: &str| phases.iter().find(|p| p.name == name);
    if let (Some(checks), Some(base)) = (find("session check"), find("baseline read")) {
        println!(
            "session check / baseline read: {:.2} (target >= 0.85); p99 ratio {:.2} (target <= 1.3)",
            checks.per_second() / base.per_second(),
            checks.p99 / base.p99
        );
    }
    if let (Some(extending), Some(checks)) = (find(EXTENDING_PHASE), find("session check")) {
        println!(
            "session check with 1 in 10 extending / without: {:.2}; p99 ratio {:.2} (target: extensions stall nothing)",
            extending.per_second() / checks.per_second(),
            extending.p99 / checks.p99
        );
    }
    if let (Some(burst), Some(checks)) = (find(BURST_PHASE), find("session check")) {
        println!(
            "session check during a password burst / without: {:.2}; p99 ratio {:.2} (target: hashing starves nothing)",
            burst.per_second() / checks.per_second(),
            burst.p99 / checks.p99
        );
    }
    if let (Some(burst), Some(checks)) = (find(SIGN_IN_BURST_PHASE), find("session check")) {
        println!(
            "session check during a 16-client sign-in burst / without: {:.2} (target >= 0.80); p99 ratio {:.2}",
            burst.per_second() / checks.per_second(),
            burst.p99 / checks.p99
        );
    }
    if let (Some(large), Some(small)) = (find("session check, 1M sessions"), find("session check")) {
        println!(
            "session check at 1M sessions / at 1k: {:.2} (target >= 0.90)",
            large.per_second() / small.per_second()
        );
    }
    if let (Some(passkey), Some(link)) = (find(PASSKEY_PHASE), find("sign-in, 1 client")) {
        println!(
            "passkey sign-in / link sign-in at 1 client: {:.2} x the flows per second; p50 {:.2} x",
            passkey.per_second() / link.per_second(),
            passkey.p50 / link.p50
        );
    }
    if let Some(checks) = find("session check") {
        for name in [OIDC_PHASE_ONE, OIDC_PHASE_MANY] {
            if let Some(oidc) = find(name) {
                println!(
                    "{name} (authorize with a live session, token, userinfo): {:.0} flows/s, {:.3} x the session \
                     checks per second; p50 {:.2} ms",
                    oidc.per_second(),
                    oidc.per_second() / checks.per_second(),
                    oidc.p50
                );
            }
        }
    }
    if let Some(flows) = find("sign-in, 16 clients") {
        println!(
            "sign-in at 16 clients: {:.0} flows/s (target >= 2100), p99 {:.1} ms (target < 25)",
            flows.per_second(),
            flows.p99
        );
    }
    if !healthy {
        println!("some answers failed their checks: these figures do not count");
    }
    healthy
}
