//! The deployment files shipped in `deploy/`: the systemd unit parses cleanly under
//! `systemd-analyze verify` and keeps its hardening (`systemd-analyze security`), and the
//! migration command of its install comment (and of `docs/deployment.md`) runs with exactly its
//! environment, so the database it migrates is the one the service opens.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use xtask::tasks::{require, SYSTEMD_ANALYZE};

/// The shipped unit, with `ExecStart` pointing at the binary this build made (verify checks that
/// the command exists and is executable).
fn unit_for_this_build(dir: &Path) -> std::path::PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/magiclink.service");
    let text = std::fs::read_to_string(shipped).expect("deploy/magiclink.service is readable");
    assert!(text.contains("ExecStart=/usr/local/bin/magiclink serve"), "the unit runs the installed binary");
    let unit = dir.join("magiclink.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/magiclink", env!("CARGO_BIN_EXE_magiclink")))
        .expect("unit written");
    unit
}

#[test]
fn the_systemd_unit_verifies_without_a_single_warning() {
    let Some(systemd_analyze) = require(&SYSTEMD_ANALYZE) else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    let unit = unit_for_this_build(dir.path());

    let output = Command::new(systemd_analyze).arg("verify").arg(&unit).output().expect("systemd-analyze runs");

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // verify exits 0 on unknown keys and bad values, only warning about them.
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");
}

#[test]
fn the_systemd_unit_keeps_its_sandbox() {
    let Some(systemd_analyze) = require(&SYSTEMD_ANALYZE) else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    let unit = unit_for_this_build(dir.path());

    let output = Command::new(systemd_analyze)
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze runs");

    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let exposure: f64 = text
        .split("Overall exposure level for magiclink.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {text}"));
    // systemd rates 0 to 10; up to 2 is its "OK" band. The shipped unit scores about 1.2.
    assert!(exposure <= 2.0, "exposure {exposure} (was about 1.2): {text}");
}

/// How a command (the unit's service, or a `systemd-run` of the migration) is run: the
/// environment variables it sets, and the properties that decide which user, folder and
/// secrets it runs with.
#[derive(Debug, PartialEq, Eq)]
struct RunsAs {
    environment: BTreeMap<String, String>,
    properties: BTreeMap<String, String>,
}

/// The properties a migration must share with the service to open the same database as the
/// same user.
const SHARED_PROPERTIES: [&str; 4] = ["DynamicUser", "StateDirectory", "WorkingDirectory", "EnvironmentFile"];

fn shipped_unit() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/magiclink.service"))
        .expect("deploy/magiclink.service is readable")
}

/// The `[Service]` section's environment and shared properties.
fn service_runs_as(unit: &str) -> RunsAs {
    let mut runs_as = RunsAs { environment: BTreeMap::new(), properties: BTreeMap::new() };
    for line in unit.lines().filter(|line| !line.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else { continue };
        if key == "Environment" {
            let (name, value) = value.split_once('=').expect("Environment=NAME=value");
            runs_as.environment.insert(name.to_owned(), value.to_owned());
        } else if SHARED_PROPERTIES.contains(&key) {
            runs_as.properties.insert(key.to_owned(), value.to_owned());
        }
    }
    runs_as
}

/// The `systemd-run ... magiclink migrate` command in `text` (its lines joined at the trailing
/// backslashes, a leading `#` dropped): its `-E` variables and `-p` properties.
fn migration_runs_as(text: &str) -> RunsAs {
    let lines: Vec<&str> = text.lines().map(|line| line.trim_start_matches('#').trim()).collect();
    let start = lines.iter().position(|line| line.starts_with("systemd-run")).expect("a systemd-run command");
    let mut command = String::new();
    for line in &lines[start..] {
        command.push_str(line.trim_end_matches('\\'));
        command.push(' ');
        if !line.ends_with('\\') {
            break;
        }
    }
    assert!(command.trim_end().ends_with("/usr/local/bin/magiclink migrate"), "{command}");
    let mut runs_as = RunsAs { environment: BTreeMap::new(), properties: BTreeMap::new() };
    let mut words = command.split_whitespace();
    while let Some(word) = words.next() {
        let target = match word {
            "-E" => &mut runs_as.environment,
            "-p" => &mut runs_as.properties,
            _ => continue,
        };
        let (key, value) = words.next().and_then(|pair| pair.split_once('=')).expect("KEY=value after -E or -p");
        target.insert(key.to_owned(), value.to_owned());
    }
    runs_as
}

#[test]
fn the_install_comment_and_the_guide_migrate_with_exactly_the_units_environment() {
    let unit = shipped_unit();
    let guide = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deployment.md"))
        .expect("docs/deployment.md");
    let service = service_runs_as(&unit);
    let migrate_section = guide.split("### Migrate, then start").nth(1).expect("the guide's migration section");

    assert!(service.environment.contains_key("DATABASE_URL"), "the unit names its database: {service:?}");
    assert_eq!(service.properties.len(), SHARED_PROPERTIES.len(), "{service:?}");
    for (place, text) in [("the unit's install comment", unit.as_str()), ("docs/deployment.md", migrate_section)] {
        assert_eq!(migration_runs_as(text), service, "{place} must migrate with the unit's environment");
    }
}

/// The unit's folders (`/var/lib/magiclink`, `/etc/magiclink`) moved under `root`.
fn moved_under(value: &str, root: &Path) -> String {
    value
        .replace("/var/lib/magiclink", &root.join("state").display().to_string())
        .replace("/etc/magiclink", &root.join("etc").display().to_string())
}

#[test]
fn migrating_as_the_install_comment_says_prepares_the_database_the_unit_serves() {
    let root = tempfile::tempdir().expect("temporary folder");
    for folder in ["state", "etc"] {
        std::fs::create_dir_all(root.path().join(folder)).expect("folder");
    }
    let unit = shipped_unit();
    let service = service_runs_as(&unit);
    let migration = migration_runs_as(&unit);
    // What an operator puts in /etc/magiclink/magiclink.env for production.
    let env_file = [
        ("AUTH_SECRET", "q3V9c1mZ0rYb8LxT2kFhN6sWdP4eJuGa7oQyRiXv5Ek"),
        ("AUTH_URL", "https://auth.example.com"),
        ("MAGICLINK_MAILER__KIND", "resend"),
        ("MAGICLINK_MAILER__FROM", "no-reply@example.com"),
        ("AUTH_RESEND_KEY", "re_0123456789abcdefghijklmnopqrstuv"),
        // No network here: the start-up check of the mail provider is the one thing left out.
        ("MAGICLINK_MAILER__CHECK_AT_START", "false"),
    ];
    let environment = |runs_as: &RunsAs| -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> =
            env_file.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        all.extend(runs_as.environment.iter().map(|(name, value)| (name.clone(), moved_under(value, root.path()))));
        all
    };
    let working_dir = |runs_as: &RunsAs| moved_under(&runs_as.properties["WorkingDirectory"], root.path());

    let migrated = Command::new(env!("CARGO_BIN_EXE_magiclink"))
        .arg("migrate")
        .current_dir(working_dir(&migration))
        .env_clear()
        .envs(environment(&migration))
        .output()
        .expect("magiclink runs");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let environment = environment(&service);
    let pairs: Vec<(&str, &str)> = environment.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
    let serving = support::Serving::start(Path::new(&working_dir(&service)), &["--bind", "127.0.0.1:0"], &pairs);
    let origin = serving.origin();
    assert!(
        support::http_get(&origin, "/healthz").contains("database: ok"),
        "the service runs on the migrated database"
    );
}
