//! Developer tasks that only `cargo xtask` offers: `test` and `bench`.
//!
//! `cargo xtask test` is the README's test command and what `.ci/run` calls. It exists because a
//! plain `cargo test` on a machine without Chromium or an SMTP server passes with whole suites
//! silently skipped: this task says up front what is missing and how to install it, and lists
//! every skipped test at the end, so a green run cannot hide a suite that never ran.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The environment variable naming the file where skipped tests record themselves. Not
/// `MAGICLINK_...`: that prefix is configuration, and an unknown key stops the service.
pub const SKIP_LOG_VAR: &str = "XTASK_TEST_SKIP_LOG";

/// How to tell that a prerequisite is present.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// The first of these programs that exists (absolute paths, or names looked up on `PATH`).
    Program(&'static [&'static str]),
    /// A Python whose standard library or site-packages has this module.
    PythonModule { pythons: &'static [&'static str], module: &'static str },
    /// A server accepting TCP connections at this address.
    Listening(&'static str),
}

/// Something outside Rust that some tests need.
#[derive(Debug, Clone, Copy)]
pub struct Prerequisite {
    /// What it is, for people.
    pub what: &'static str,
    /// The Debian package that provides it (for a PyPI package, its pinned requirement,
    /// `name==version`).
    pub package: &'static str,
    /// Which tests need it.
    pub used_by: &'static str,
    probe: Probe,
}

/// Headless Chromium, for the browser tests.
pub const CHROMIUM: Prerequisite = Prerequisite {
    what: "Chromium",
    package: "chromium",
    used_by: "the browser tests",
    probe: Probe::Program(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]),
};
/// chromedriver, which drives Chromium.
pub const CHROMEDRIVER: Prerequisite = Prerequisite {
    what: "chromedriver",
    package: "chromium-driver",
    used_by: "the browser tests",
    probe: Probe::Program(&["/usr/bin/chromedriver"]),
};
/// A Python with aiosmtpd: the real SMTP server the email tests send to.
pub const AIOSMTPD: Prerequisite = Prerequisite {
    what: "the SMTP test server (aiosmtpd)",
    package: "python3-aiosmtpd",
    used_by: "the SMTP and browser-over-SMTP tests",
    probe: Probe::PythonModule { pythons: &["/usr/bin/python3", "python3"], module: "aiosmtpd" },
};
/// systemd-analyze, which verifies the shipped systemd unit.
pub const SYSTEMD_ANALYZE: Prerequisite = Prerequisite {
    what: "systemd-analyze",
    package: "systemd",
    used_by: "the systemd unit check",
    probe: Probe::Program(&["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]),
};
/// Node.js, which runs the integration guide's JavaScript snippet.
pub const NODE: Prerequisite = Prerequisite {
    what: "Node.js",
    package: "nodejs",
    used_by: "the integration guide's Node snippet",
    probe: Probe::Program(&["node", "nodejs"]),
};
/// Python 3, which runs the integration guide's Python snippet.
pub const PYTHON: Prerequisite = Prerequisite {
    what: "Python 3",
    package: "python3",
    used_by: "the integration guide's Python snippet",
    probe: Probe::Program(&["python3"]),
};
/// nginx, the reverse proxy in front of the forward-auth tests.
pub const NGINX: Prerequisite = Prerequisite {
    what: "nginx",
    package: "nginx",
    used_by: "the forward-auth tests behind a real nginx",
    probe: Probe::Program(&["/usr/sbin/nginx", "nginx"]),
};
/// Caddy, the other reverse proxy in front of the forward-auth tests.
pub const CADDY: Prerequisite = Prerequisite {
    what: "caddy",
    package: "caddy",
    used_by: "the forward-auth test behind a real Caddy",
    probe: Probe::Program(&["/usr/bin/caddy", "caddy"]),
};

/// Redis on its standard loopback port, for the Redis rate-limiter tests.
pub const REDIS: Prerequisite = Prerequisite {
    what: "Redis on 127.0.0.1:6379",
    package: "redis-server",
    used_by: "the Redis rate-limit tests",
    probe: Probe::Listening("127.0.0.1:6379"),
};

/// PostgreSQL on its standard loopback port (`TEST_POSTGRES_URL` may point elsewhere).
pub const POSTGRES: Prerequisite = Prerequisite {
    what: "PostgreSQL on 127.0.0.1:5432",
    package: "postgresql",
    used_by: "the conformance suite and the PostgreSQL flow and many-instance tests",
    probe: Probe::Listening("127.0.0.1:5432"),
};

/// MariaDB (or MySQL) on its standard loopback port (`TEST_MYSQL_URL` may point elsewhere).
pub const MARIADB: Prerequisite = Prerequisite {
    what: "MariaDB on 127.0.0.1:3306",
    package: "mariadb-server",
    used_by: "the conformance suite and the MariaDB flow and many-instance tests",
    probe: Probe::Listening("127.0.0.1:3306"),
};

/// schemathesis, the OpenAPI fuzzer that checks the served document against the server. From
/// PyPI (pinned), installed by `.ci/run` into a virtual environment of its own.
pub const SCHEMATHESIS: Prerequisite = Prerequisite {
    what: "schemathesis",
    package: "schemathesis==4.32.5",
    used_by: "the OpenAPI contract test",
    probe: Probe::Program(&["/opt/magiclink-ci/schemathesis/bin/schemathesis", "schemathesis"]),
};

/// openid-client (panva's OpenID-certified relying-party library), the Node client the OpenID
/// Provider is proven with. From the npm registry (pinned), installed by `.ci/run` into a
/// folder of its own.
pub const OPENID_CLIENT: Prerequisite = Prerequisite {
    what: "openid-client (npm)",
    package: "openid-client@6.9.1",
    used_by: "the OpenID Connect test with a Node relying party",
    probe: Probe::Program(&["/opt/magiclink-ci/openid-client/node_modules/openid-client/package.json"]),
};

/// jose (panva's JOSE library, openid-client's own), which verifies the back-channel logout
/// tokens a test receiver gets. From the npm registry (pinned), beside openid-client.
pub const JOSE: Prerequisite = Prerequisite {
    what: "jose (npm)",
    package: "jose@6.2.19",
    used_by: "the back-channel logout test's receiver",
    probe: Probe::Program(&["/opt/magiclink-ci/openid-client/node_modules/jose/package.json"]),
};

/// Authlib, the Python client the OpenID Provider is proven with. From PyPI (pinned), installed
/// by `.ci/run` into a virtual environment of its own.
pub const AUTHLIB: Prerequisite = Prerequisite {
    what: "Authlib (PyPI)",
    package: "authlib==1.9.10",
    used_by: "the OpenID Connect test with a Python relying party",
    probe: Probe::PythonModule { pythons: &["/opt/magiclink-ci/authlib/bin/python"], module: "authlib" },
};

/// standardwebhooks, the Standard Webhooks reference library, with which a test receiver
/// verifies every webhook. From PyPI (pinned), installed by `.ci/run` into a virtual
/// environment of its own.
pub const STANDARDWEBHOOKS: Prerequisite = Prerequisite {
    what: "standardwebhooks (PyPI)",
    package: "standardwebhooks==1.3.0",
    used_by: "the webhook test's receiver",
    probe: Probe::PythonModule {
        pythons: &["/opt/magiclink-ci/standardwebhooks/bin/python"],
        module: "standardwebhooks",
    },
};

/// Where `.ci/run` installs openid-client.
pub const OPENID_CLIENT_DIR: &str = "/opt/magiclink-ci/openid-client";

/// Auth.js on Express, the framework of the tutorial this project grew from, as an app that
/// signs people in through magiclink. From the npm registry (pinned), installed by `.ci/run`.
pub const AUTHJS: Prerequisite = Prerequisite {
    what: "Auth.js for Express (npm)",
    package: "@auth/express@0.12.3",
    used_by: "the OpenID Connect test with an Auth.js app in Chromium",
    probe: Probe::Program(&["/opt/magiclink-ci/authjs/node_modules/@auth/express/package.json"]),
};

/// Where `.ci/run` installs Auth.js and Express.
pub const AUTHJS_DIR: &str = "/opt/magiclink-ci/authjs";

/// Everything `cargo xtask test` checks for, in the order it reports them.
pub const PREREQUISITES: [Prerequisite; 17] = [
    CHROMIUM,
    CHROMEDRIVER,
    AIOSMTPD,
    SYSTEMD_ANALYZE,
    NODE,
    PYTHON,
    NGINX,
    CADDY,
    REDIS,
    POSTGRES,
    MARIADB,
    SCHEMATHESIS,
    OPENID_CLIENT,
    JOSE,
    AUTHLIB,
    AUTHJS,
    STANDARDWEBHOOKS,
];

impl Prerequisite {
    /// The program to run (for a Python module, the Python that has it; for a server, an empty
    /// path), or `None` if absent.
    pub fn find(&self) -> Option<PathBuf> {
        match self.probe {
            Probe::Listening(address) => {
                let address: std::net::SocketAddr = address.parse().ok()?;
                std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
                    .ok()
                    .map(|_| PathBuf::new())
            }
            Probe::Program(candidates) => candidates.iter().find_map(|candidate| locate(candidate)),
            Probe::PythonModule { pythons, module } => {
                pythons.iter().filter_map(|python| locate(python)).find(|python| {
                    Command::new(python)
                        .args(["-c", &format!("import {module}")])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|status| status.success())
                })
            }
        }
    }

    /// Whether it comes from PyPI rather than Debian (its package is pinned with `==`).
    fn comes_from_pypi(&self) -> bool {
        self.package.contains("==")
    }

    /// Whether it comes from the npm registry (its package is pinned with `@`, after any scope).
    fn comes_from_npm(&self) -> bool {
        self.package.trim_start_matches('@').contains('@')
    }

    /// One sentence for a skipped test: what is missing and how to get it.
    pub fn missing_reason(&self) -> String {
        match self.probe {
            Probe::Listening(_) => format!("{} is not running (Debian package `{}`)", self.what, self.package),
            _ if self.comes_from_pypi() => format!("{} is not installed (PyPI package `{}`)", self.what, self.package),
            _ if self.comes_from_npm() => format!("{} is not installed (npm package `{}`)", self.what, self.package),
            _ => format!("{} is not installed (Debian package `{}`)", self.what, self.package),
        }
    }
}

/// An absolute path as is, if it exists; a bare name looked up on `PATH`.
fn locate(candidate: &str) -> Option<PathBuf> {
    let path = Path::new(candidate);
    if path.is_absolute() {
        return path.exists().then(|| path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(candidate)).find(|full| full.is_file())
}

/// Whether this run is CI's, where a missing prerequisite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A `cargo` command for the workspace at `root`, with the environment `cargo run` gave xtask
/// itself removed: `CARGO_MANIFEST_DIR`, `CARGO_PKG_*` and the like describe the xtask package,
/// and build scripts that watch them (ring's does, through `rerun-if-env-changed`) would see
/// them change between `cargo xtask test` and a plain `cargo build`, and rebuild ring, rustls,
/// sqlx and reqwest each time one follows the other.
pub fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(root);
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if SET_BY_CARGO_RUN.contains(&name) || name.starts_with("CARGO_PKG_") {
            command.env_remove(name);
        }
    }
    command
}

/// What `cargo run` sets for the program it runs, besides `CARGO_PKG_*` (cargo's "Environment
/// variables Cargo sets for crates"). `CARGO` itself stays: it names the toolchain's cargo.
const SET_BY_CARGO_RUN: [&str; 6] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "OUT_DIR",
];

/// `cargo xtask test [ARGS]`: checks the prerequisites, runs `cargo test --workspace [ARGS]`
/// from `root`, then lists what was skipped. Exits as cargo did; in CI, a missing prerequisite
/// fails before anything is built.
pub fn test(root: &Path, args: &[String]) -> ExitCode {
    let missing: Vec<&Prerequisite> = PREREQUISITES.iter().filter(|p| p.find().is_none()).collect();
    if missing.is_empty() {
        println!("cargo xtask test: every prerequisite is installed.");
    } else {
        println!("cargo xtask test: missing prerequisites; the tests that need them will be SKIPPED:");
        for prerequisite in &missing {
            println!("  - {} (for {})", prerequisite.what, prerequisite.used_by);
        }
        let (registries, debian): (Vec<&Prerequisite>, Vec<&Prerequisite>) =
            missing.iter().partition(|p| p.comes_from_pypi() || p.comes_from_npm());
        let mut packages: Vec<&str> = debian.iter().map(|p| p.package).collect();
        packages.dedup();
        if !packages.is_empty() {
            println!("  Install them on Debian or Ubuntu with: apt-get install {}", packages.join(" "));
        }
        for prerequisite in registries {
            if prerequisite.comes_from_npm() {
                println!("  and from npm with: npm install {} (see .ci/run for the folder)", prerequisite.package);
            } else {
                println!("  and from PyPI with: pip install {}", prerequisite.package);
            }
        }
        if in_ci() {
            eprintln!("error: CI=true and prerequisites are missing: .ci/run must install them");
            return ExitCode::FAILURE;
        }
    }
    let skip_log = root.join("target/test-skips.log");
    if let Some(folder) = skip_log.parent() {
        let _ = std::fs::create_dir_all(folder);
    }
    // A stale log would list skips of an earlier run.
    let _ = std::fs::remove_file(&skip_log);
    let run = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp_millis());
    let status = cargo(root)
        .args(["test", "--workspace"])
        .args(args)
        .env(SKIP_LOG_VAR, &skip_log)
        .env(TEST_RUN_VAR, &run)
        .status();
    let left_running = left_behind_by(&run);
    let skipped = read_skip_log(&skip_log);
    println!();
    if skipped.is_empty() {
        println!("cargo xtask test: no test was skipped.");
    } else {
        println!("cargo xtask test: {} test(s) SKIPPED, so their suites did not run:", skipped.len());
        for line in &skipped {
            println!("  - {line}");
        }
    }
    if !left_running.is_empty() {
        println!("cargo xtask test: the tests left {} process(es) running (now killed):", left_running.len());
        for (pid, command) in &left_running {
            println!("  - {pid}: {command}");
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
    match status {
        // A test that leaves a browser or a server running is a broken test, even if it passed.
        Ok(status) if status.success() && left_running.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: cannot run cargo test: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Set for `cargo test` by `cargo xtask test`, naming the run; every process the tests start
/// (chromedriver and its Chromium, nginx, Caddy, the SMTP server) inherits it, so what is still
/// running once the run is over is found by it. Not `MAGICLINK_...`: the service would read that
/// prefix as a setting, and refuse an unknown one.
pub const TEST_RUN_VAR: &str = "XTASK_TEST_RUN";

/// How long processes get to finish exiting once the tests are done (a browser closing, nginx
/// stopping after its signal).
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The processes (pid, command line) running now whose environment names test run `run`.
/// Reads `/proc`: empty where there is none.
fn running_in(run: &str) -> Vec<(u32, String)> {
    let marker = format!("{TEST_RUN_VAR}={run}");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ.split(|byte| *byte == 0).any(|pair| pair == marker.as_bytes()).then_some(())?;
            let command = std::fs::read(entry.path().join("cmdline")).ok()?;
            // A zombie has no command line left: it has exited, only not been reaped.
            let command = String::from_utf8_lossy(&command).replace('\0', " ").trim().to_owned();
            (!command.is_empty()).then_some((pid, command))
        })
        .collect()
}

/// The processes (pid, command line) whose environment names test run `run`, once those that
/// are on their way out had [`EXIT_GRACE`] to go.
fn left_behind_by(run: &str) -> Vec<(u32, String)> {
    let deadline = std::time::Instant::now() + EXIT_GRACE;
    loop {
        let found = running_in(run);
        if found.is_empty() || std::time::Instant::now() >= deadline {
            return found;
        }
        // Waiting for processes to exit: nothing to be told by, so look again shortly.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The criterion benchmarks `cargo xtask bench --micro` runs: (package, bench target).
const MICRO_BENCHMARKS: [(&str, &str); 2] = [("adapters", "hot_paths"), ("adapters", "session_lookup")];

/// `cargo xtask bench [--micro] [ARGS]`.
///
/// Without `--micro`: builds the release `magiclink` and `loadgen` binaries and runs the
/// end-to-end benchmark (`loadgen run`, see `xtask/loadgen`) with `ARGS` (`--quick`,
/// `--at-scale`, `--database postgres`, `--seconds N`). With `--micro`: the criterion
/// benchmarks, `ARGS` passed to criterion.
pub fn bench(root: &Path, args: &[String]) -> ExitCode {
    if let Some(rest) = args.strip_prefix(&["--micro".to_owned()]) {
        return micro_benchmarks(root, rest);
    }
    let built = cargo(root)
        .args(["build", "--release", "-p", "xtask", "-p", "loadgen", "--bin", "magiclink", "--bin", "loadgen"])
        .status();
    if !built.is_ok_and(|status| status.success()) {
        eprintln!("error: the release build failed");
        return ExitCode::FAILURE;
    }
    let release = root.join("target/release");
    let ran = Command::new(release.join("loadgen"))
        .arg("run")
        .arg("--magiclink")
        .arg(release.join("magiclink"))
        .arg("--config-dir")
        .arg(root.join("config"))
        .args(args)
        .current_dir(root)
        .status();
    match ran {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

/// Set to make the OpenAPI test write `docs/openapi.json` instead of comparing with it.
pub const WRITE_OPENAPI_VAR: &str = "MAGICLINK_WRITE_OPENAPI";

/// `cargo xtask openapi`: runs the test that compares `docs/openapi.json` with the document the
/// code serves, asking it to write the file instead. The document comes from the real routes,
/// so there is one way to produce it.
pub fn write_openapi(root: &Path) -> ExitCode {
    let output = cargo(root)
        .args(["test", "-p", "system-tests", "--test", "system", "--", "--exact"])
        .arg("http_flow::the_checked_in_openapi_document_is_the_one_served")
        .env(WRITE_OPENAPI_VAR, "1")
        .output();
    // A test filter that matches nothing passes too: only "1 passed" means the file was written.
    let wrote = output.is_ok_and(|output| {
        output.status.success() && String::from_utf8_lossy(&output.stdout).contains("test result: ok. 1 passed")
    });
    if wrote {
        println!("wrote docs/openapi.json");
        ExitCode::SUCCESS
    } else {
        eprintln!("error: could not write docs/openapi.json");
        ExitCode::FAILURE
    }
}

/// Runs the criterion benchmarks in release mode (criterion prints each figure) and then the
/// session lookups per second at each table size with their ratio to the smallest.
fn micro_benchmarks(root: &Path, args: &[String]) -> ExitCode {
    for (package, target) in MICRO_BENCHMARKS {
        let status = cargo(root).args(["bench", "-p", package, "--bench", target, "--"]).args(args).status();
        if !status.is_ok_and(|status| status.success()) {
            eprintln!("error: the {target} benchmark failed");
            return ExitCode::FAILURE;
        }
    }
    print_ratios(&root.join("target/criterion/session_lookup"));
    ExitCode::SUCCESS
}

/// Prints `<backend>/<size>: N ops/s (ratio to the backend's first size)` from criterion's
/// estimates under `group` (one folder per backend, one per size inside).
fn print_ratios(group: &Path) {
    let mut backends: Vec<PathBuf> = std::fs::read_dir(group)
        .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.join("1k").exists()).collect())
        .unwrap_or_default();
    backends.sort();
    println!();
    for backend in backends {
        let name = backend.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let per_second = |size: &str| -> Option<f64> {
            let text = std::fs::read_to_string(backend.join(size).join("new/estimates.json")).ok()?;
            let estimates: serde_json::Value = serde_json::from_str(&text).ok()?;
            let nanoseconds = estimates["mean"]["point_estimate"].as_f64()?;
            Some(1e9 / nanoseconds)
        };
        let (Some(small), Some(large)) = (per_second("1k"), per_second("1M")) else { continue };
        println!("{name}: {small:.0} lookups/s at 1k rows, {large:.0} at 1M rows: ratio 1M/1k = {:.2}", large / small);
    }
}

/// The skip log's lines (`test name: reason`), without duplicates.
fn read_skip_log(path: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    lines.sort();
    lines.dedup();
    lines
}

/// For a test that needs something outside Rust: fails the test in CI, and elsewhere says why it
/// skips and records the skip for `cargo xtask test`'s summary.
///
/// # Panics
/// When `CI=true`: CI must provide every prerequisite.
pub fn skip_or_fail(reason: &str) {
    assert!(!in_ci(), "CI=true and {reason}: CI must provide it (see .ci/run)");
    record_skip(reason);
}

/// The program a prerequisite provides, or `None` after [`skip_or_fail`] has said it is missing.
pub fn require(prerequisite: &Prerequisite) -> Option<PathBuf> {
    let found = prerequisite.find();
    if found.is_none() {
        skip_or_fail(&prerequisite.missing_reason());
    }
    found
}

/// Records that the current test skipped, for `cargo xtask test`'s summary, and says why on
/// stderr. Does nothing beyond printing outside `cargo xtask test`.
pub fn record_skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("SKIPPED {test}: {reason}; install it to run this test (CI does)");
    if let Some(path) = std::env::var_os(SKIP_LOG_VAR) {
        append_skip(Path::new(&path), &test, reason);
    }
}

/// Appends one `test: reason` line to the skip log.
fn append_skip(log: &Path, test: &str, reason: &str) {
    use std::io::Write as _;
    // One write of the whole line: tests run in parallel, and appends of one write each never
    // interleave.
    let line = format!("{test}: {reason}\n");
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        let _ = file.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::{append_skip, read_skip_log, running_in, PREREQUISITES, TEST_RUN_VAR};

    #[test]
    fn skips_recorded_by_parallel_tests_are_listed_once_each_and_whole() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let log = dir.path().join("skips.log");
        std::thread::scope(|scope| {
            for i in 0..16 {
                let log = &log;
                scope.spawn(move || append_skip(log, &format!("test_{i:02}"), "Chromium is not installed"));
            }
        });
        append_skip(&log, "test_00", "Chromium is not installed");

        let listed = read_skip_log(&log);

        assert_eq!(listed.len(), 16, "{listed:#?}");
        assert!(listed.iter().all(|line| line.ends_with(": Chromium is not installed")), "{listed:#?}");
        assert_eq!(listed[0], "test_00: Chromium is not installed");
    }

    #[test]
    fn a_process_of_a_test_run_is_found_by_the_run_until_it_exits() {
        use std::io::BufRead as _;
        let run = format!("unit-{}", std::process::id());
        // A shell that says "ready" once it runs (so /proc shows its own environment, not the
        // forked test's) and exits when its input closes.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo ready; read line"])
            .env(TEST_RUN_VAR, &run)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh starts");
        let mut said = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut said).expect("a line");
        assert_eq!(said.trim(), "ready");

        let found = running_in(&run);
        let of_another_run = running_in("another-run");
        drop(child.stdin.take());
        child.wait().expect("exits once its input closes");

        assert_eq!(found, vec![(child.id(), "sh -c echo ready; read line".to_owned())]);
        assert!(of_another_run.iter().all(|(pid, _)| *pid != child.id()));
        assert!(running_in(&run).is_empty(), "gone once it exited");
    }

    #[test]
    fn every_prerequisite_says_which_package_brings_it() {
        for prerequisite in PREREQUISITES {
            let reason = prerequisite.missing_reason();
            assert!(reason.contains(&format!("`{}`", prerequisite.package)), "{reason}");
        }
    }
}
