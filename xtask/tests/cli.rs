//! The shipped `magiclink` binary as an operator runs it: `migrate`, `migrate --status`,
//! `secret`, `outbox`, `serve`, `users`, `clients`, `keys`, `--version` and `--help`, and the
//! production profile's refusals.

mod support;

use std::process::{Command, Output};

use support::{http_get, Serving};

fn magiclink(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_magiclink"));
    command.args(args).current_dir(dir).env("MAGICLINK_CONFIG_DIR", dir.join("no-config"));
    for name in ["AUTH_SECRET", "AUTH_URL", "DATABASE_URL", "MAGICLINK_PROFILE", "RUST_LOG"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("magiclink runs")
}

/// The database at `url`, as the service opens it (created when missing).
async fn open_database(url: &str) -> adapters::database::Database {
    let url = domain::SecretText::new(url);
    adapters::database::Database::open(
        &url,
        adapters::database::PoolSettings::new(1),
        adapters::database::OpenMode::CreateIfMissing,
    )
    .await
    .expect("opens")
    .expect("exists or was created")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn migrate_applies_each_migration_once_and_status_lists_them() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("db/ops.sqlite").display());

    let pending = magiclink(dir.path(), &["migrate", "--status", "--database-url", &url], &[]);
    let first = magiclink(dir.path(), &["migrate", "--database-url", &url], &[]);
    let second = magiclink(dir.path(), &["migrate"], &[("DATABASE_URL", &url)]);
    let applied = magiclink(dir.path(), &["migrate", "--status", "--database-url", &url], &[]);

    assert!(first.status.success() && second.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(stdout(&pending).contains("initial") && stdout(&pending).contains("pending"), "{}", stdout(&pending));
    assert!(stdout(&first).starts_with("Applied 20261127000001 initial"), "{}", stdout(&first));
    assert_eq!(stdout(&second).trim(), "Nothing to do: the database is up to date.");
    assert!(stdout(&applied).contains("initial") && stdout(&applied).contains("applied 20"), "{}", stdout(&applied));
    assert!(!stdout(&applied).contains("pending"));
}

#[test]
fn secret_prints_32_random_bytes_in_base64() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let one = stdout(&magiclink(dir.path(), &["secret"], &[]));
    let two = stdout(&magiclink(dir.path(), &["secret"], &[]));

    assert_eq!(one.trim().len(), 44, "{one}");
    assert_ne!(one, two);
}

#[test]
fn production_lists_every_problem_in_one_run_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let database = dir.path().join("prod.sqlite");
    let url = format!("sqlite://{}", database.display());

    let output = magiclink(
        dir.path(),
        &["serve", "--bind", "127.0.0.1:0", "--database-url", &url],
        &[("MAGICLINK_PROFILE", "production")],
    );

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started in production with the defaults");
    for named in ["AUTH_SECRET", "server.base_url", "mailer.kind", "`magiclink secret`"] {
        assert!(stderr.contains(named), "{named} is not named in: {stderr}");
    }
    assert_eq!(stderr.trim().lines().count(), 4, "a heading and one line per problem: {stderr}");
    assert!(!database.exists(), "a refused start creates no database");
}

#[tokio::test]
async fn production_refuses_a_missing_or_unmigrated_database_without_creating_one() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let database = dir.path().join("prod.sqlite");
    let url = format!("sqlite://{}", database.display());
    let production = [
        ("MAGICLINK_PROFILE", "production"),
        ("AUTH_SECRET", "q3V9c1mZ0rYb8LxT2kFhN6sWdP4eJuGa7oQyRiXv5Ek"),
        ("AUTH_URL", "https://auth.example.com"),
        ("MAGICLINK_MAILER__KIND", "resend"),
        ("MAGICLINK_MAILER__FROM", "no-reply@example.com"),
        ("AUTH_RESEND_KEY", "re_test"),
    ];
    let serve = ["serve", "--bind", "127.0.0.1:0", "--database-url", url.as_str()];

    let missing = magiclink(dir.path(), &serve, &production);
    std::fs::write(&database, b"").expect("an empty file is an empty SQLite database");
    let unmigrated = magiclink(dir.path(), &serve, &production);

    let missing_said = String::from_utf8_lossy(&missing.stderr);
    let unmigrated_said = String::from_utf8_lossy(&unmigrated.stderr);
    assert!(!missing.status.success() && !unmigrated.status.success());
    assert!(missing_said.contains("does not exist yet: run `magiclink migrate` first"), "{missing_said}");
    assert!(unmigrated_said.contains("pending migration(s): run `magiclink migrate` first"), "{unmigrated_said}");
    let store = open_database(&url).await;
    let migrations = store.migration_status().await.expect("readable");
    assert!(migrations.iter().all(|m| m.applied_at.is_none()), "serve migrated nothing: {migrations:?}");
}

#[test]
fn version_and_help_describe_the_product() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let version = stdout(&magiclink(dir.path(), &["--version"], &[]));
    let help = stdout(&magiclink(dir.path(), &["--help"], &[]));

    assert_eq!(version.trim(), format!("magiclink {}", env!("CARGO_PKG_VERSION")));
    assert_ne!(env!("CARGO_PKG_VERSION"), "0.0.0", "the workspace has a real version");
    assert!(help.starts_with("Passwordless sign-in"), "{help}");
    assert!(help.contains("Usage: magiclink"), "{help}");
    assert!(!help.contains("xtask") && !help.contains("composition root"), "{help}");
}

#[test]
fn reading_commands_on_a_missing_database_say_migrate_first_and_create_nothing() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let database = dir.path().join("data/never.sqlite");
    let url = format!("sqlite://{}", database.display());

    let outbox = magiclink(dir.path(), &["outbox", "--database-url", &url], &[]);
    let status = magiclink(dir.path(), &["migrate", "--status", "--database-url", &url], &[]);

    let stderr = String::from_utf8_lossy(&outbox.stderr);
    assert!(!outbox.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not exist yet: run `magiclink migrate` first"), "{stderr}");
    assert!(status.status.success());
    assert!(stdout(&status).contains("pending"), "{}", stdout(&status));
    assert!(!database.exists() && !database.parent().expect("folder").exists(), "reading created files");
}

#[test]
fn outbox_on_an_unmigrated_database_says_migrate_first_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let database = dir.path().join("empty.sqlite");
    std::fs::write(&database, b"").expect("an empty file is an empty SQLite database");
    let url = format!("sqlite://{}", database.display());

    let outbox = magiclink(dir.path(), &["outbox", "--database-url", &url], &[]);

    let stderr = String::from_utf8_lossy(&outbox.stderr);
    assert!(!outbox.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("pending migration(s): run `magiclink migrate` first"), "{stderr}");
    assert!(!stderr.contains("no such table"), "no driver message: {stderr}");
}

#[cfg(unix)]
#[test]
fn the_database_file_and_its_new_folder_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temporary folder");
    let database = dir.path().join("private/magiclink.sqlite");
    let url = format!("sqlite://{}", database.display());

    let migrated = magiclink(dir.path(), &["migrate", "--database-url", &url], &[]);

    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let mode = |path: &std::path::Path| std::fs::metadata(path).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&database), 0o600, "database file");
    assert_eq!(mode(database.parent().expect("folder")), 0o700, "database folder");
    for sibling in ["magiclink.sqlite-wal", "magiclink.sqlite-shm"] {
        let path = database.with_file_name(sibling);
        if path.exists() {
            assert_eq!(mode(&path) & 0o077, 0, "{sibling} is private too");
        }
    }
}

#[test]
fn an_unsupported_database_url_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = magiclink(dir.path(), &["migrate", "--database-url", "mongodb://nope"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("mongodb://nope"));
}

/// The one error line `migrate` prints for `url`: it must name the setting and mask the password.
fn database_error_line(url: &str) -> String {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = magiclink(dir.path(), &["migrate", "--database-url", url], &[]);
    assert!(!output.status.success(), "{url} cannot be migrated");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("database.url (DATABASE_URL)"), "names the setting: {stderr}");
    assert!(!stderr.contains("hunter2"), "the password is masked: {stderr}");
    stderr
}

#[test]
fn an_unreachable_database_server_is_one_line_naming_the_setting_with_the_password_masked() {
    let line = database_error_line("postgres://app:hunter2@127.0.0.1:1/auth");
    assert!(line.contains("postgres://app:***@127.0.0.1:1/auth") && line.contains("cannot reach the server"), "{line}");
}

#[test]
fn credentials_a_database_server_refuses_are_one_line_naming_the_setting_with_the_password_masked() {
    for (server, url, masked) in [
        (&xtask::tasks::POSTGRES, "postgres://nobody:hunter2@127.0.0.1:5432/test", "postgres://nobody:***@"),
        (&xtask::tasks::MARIADB, "mysql://nobody:hunter2@127.0.0.1:3306/test", "mysql://nobody:***@"),
    ] {
        if xtask::tasks::require(server).is_none() {
            continue;
        }
        let line = database_error_line(url);
        assert!(line.contains(masked) && line.contains("the server said"), "{line}");
    }
}

#[tokio::test]
async fn outbox_lists_delivery_state_with_masked_addresses() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("outbox.sqlite").display());
    let time_zone_named = |text: &str| text.lines().skip(1).all(|line| line.contains(" UTC "));
    let store = open_database(&url).await;
    store.migrate().await.expect("migrates");
    let now = chrono::Utc::now();
    let hash = domain::LinkToken::from_random_bytes([4; 32]).hash(&domain::ServerSecret::new(*b"cli-test"));
    let to = domain::EmailAddress::parse("alice@example.com").expect("valid");
    let secret = domain::ServerSecret::new(*b"cli-test");
    let code_hash = domain::SignInCode::from_random_bytes([1; 8]).hash(&secret, &hash);
    let link =
        ports::NewLink { identifier: to.clone(), token_hash: hash.clone(), code_hash, expires: now, created_at: now };
    let email = ports::NewOutboxMessage {
        kind: ports::EmailKind::SignIn,
        lang: "en".to_owned(),
        recipient: to,
        link_token_hash: hash,
        sealed_body: vec![1; 48],
        expires: now,
        created_at: now,
        leased_until: None,
    };
    let requested = domain::audit::AuditEvent::new(
        domain::audit::AuditKind::LinkRequested,
        domain::audit::AuditOutcome::Succeeded,
        now,
        &domain::audit::RequestOrigin::default(),
    );
    store.links.insert_with_email(&link, &email, &requested).await.expect("queued");
    store.close().await;

    let listing = magiclink(dir.path(), &["outbox", "--database-url", &url], &[]);
    let filtered = magiclink(dir.path(), &["outbox", "--status", "sent", "--database-url", &url], &[]);
    let bad = magiclink(dir.path(), &["outbox", "--status", "lost", "--database-url", &url], &[]);

    let text = stdout(&listing);
    assert!(text.starts_with("pending 1  sent 0  failed 0  dropped 0"), "{text}");
    assert!(text.contains("a***@example.com") && text.contains("pending") && !text.contains("alice@"), "{text}");
    assert!(time_zone_named(&text), "times say UTC: {text}");
    assert_eq!(stdout(&filtered).lines().count(), 1, "only the counts line");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--status `lost`"));
}

#[test]
fn development_links_point_at_the_bound_port_and_logs_carry_no_colour() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("dev.sqlite").display());

    let server = Serving::start(dir.path(), &["--bind", "127.0.0.1:0", "--database-url", &url], &[]);
    let mut output = server.read_until("Listening on http://");
    let origin = output.last().and_then(|line| line.strip_prefix("Listening on ")).expect("origin").to_owned();
    output.extend(server.read_until("read them at"));
    let providers = http_get(&origin, "/api/auth/providers");

    let said = output.join("\n");
    assert!(said.contains(&format!("links point at {origin} (the bound address")), "{said}");
    assert!(said.contains(&format!("read them at {origin}/dev/mailbox")), "{said}");
    assert!(providers.contains(&format!("\"callbackUrl\":\"{origin}/api/auth/callback/email\"")), "{providers}");
    assert!(said.contains("no AUTH_SECRET set"), "the start-up warning is logged: {said}");
    assert!(!said.contains('\u{1b}'), "no colour codes when the output is not a terminal: {said:?}");
}

#[test]
fn the_first_start_makes_the_providers_signing_key_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("keys.sqlite").display());
    let secret = [("AUTH_SECRET", "keys-test-secret-keys-test-secret-keys-test")];
    let keys = || stdout(&magiclink(dir.path(), &["keys", "list", "--database-url", &url], &[]));
    for start in 0..2 {
        let server = Serving::start(dir.path(), &["--bind", "127.0.0.1:0", "--database-url", &url], &secret);
        let origin = server.origin();
        // Read before any request: the key was made before the service said it listens.
        let listed = keys();
        let key_set = http_get(&origin, "/api/auth/oidc/jwks.json");
        drop(server);
        assert_eq!(listed.lines().count(), 1, "start {start}: one key, kept across restarts: {listed}");
        assert!(listed.contains("RS256") && listed.contains("current"), "{listed}");
        let kid = listed.split_whitespace().next().expect("a kid");
        assert!(key_set.contains(kid), "the published key set names it: {key_set}");
    }
}

#[test]
fn users_are_added_listed_disabled_enabled_and_deleted_by_address() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("users.sqlite").display());
    let db = ["--database-url", url.as_str()];
    assert!(magiclink(dir.path(), &["migrate", db[0], db[1]], &[]).status.success());

    let added = magiclink(dir.path(), &["users", "add", "Ann@Example.com", db[0], db[1]], &[]);
    let again = magiclink(dir.path(), &["users", "add", "ann@example.com", db[0], db[1]], &[]);
    let bad = magiclink(dir.path(), &["users", "add", "not an address", db[0], db[1]], &[]);
    let listed = magiclink(dir.path(), &["users", "list", db[0], db[1]], &[]);
    let disabled = magiclink(dir.path(), &["users", "disable", "ann@example.com", db[0], db[1]], &[]);
    let disabled_again = magiclink(dir.path(), &["users", "disable", "ann@example.com", db[0], db[1]], &[]);
    let enabled = magiclink(dir.path(), &["users", "enable", "ann@example.com", db[0], db[1]], &[]);
    let nobody = magiclink(dir.path(), &["users", "disable", "bob@example.com", db[0], db[1]], &[]);
    let removed = magiclink(dir.path(), &["users", "delete", "ann@example.com", db[0], db[1]], &[]);
    let gone = magiclink(dir.path(), &["users", "remove", "ann@example.com", db[0], db[1]], &[]);
    let empty = magiclink(dir.path(), &["users", "list", db[0], db[1]], &[]);

    assert!(stdout(&added).starts_with("Added ann@example.com"), "{}", stdout(&added));
    assert!(stdout(&again).starts_with("ann@example.com already exists"), "{}", stdout(&again));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`not an address` is not an address"));
    assert!(stdout(&listed).contains("ann@example.com  never signed in"), "{}", stdout(&listed));
    assert!(stdout(&disabled).starts_with("Disabled ann@example.com ("), "{}", stdout(&disabled));
    assert!(stdout(&disabled).trim().ends_with("0 session(s) ended"), "{}", stdout(&disabled));
    assert_eq!(stdout(&disabled_again).trim(), "ann@example.com was disabled already");
    assert!(stdout(&enabled).starts_with("Enabled ann@example.com ("), "{}", stdout(&enabled));
    assert!(!nobody.status.success());
    assert!(String::from_utf8_lossy(&nobody.stderr).contains("no user has the address bob@example.com"));
    assert!(stdout(&removed).starts_with("Deleted ann@example.com ("), "{}", stdout(&removed));
    assert!(!gone.status.success());
    assert_eq!(stdout(&empty), "");
}

#[test]
fn the_audit_log_lists_what_operators_changed_by_person_kind_and_time_as_text_or_json() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("audit.sqlite").display());
    let db = ["--database-url", url.as_str()];
    assert!(magiclink(dir.path(), &["migrate", db[0], db[1]], &[]).status.success());
    let added = magiclink(dir.path(), &["users", "add", "ann@example.com", db[0], db[1]], &[]);
    let user_id = stdout(&added).trim().rsplit_once('(').expect("(id)").1.trim_end_matches(')').to_owned();
    assert!(magiclink(dir.path(), &["users", "add", "bob@example.com", db[0], db[1]], &[]).status.success());
    assert!(magiclink(dir.path(), &["users", "remove", "ann@example.com", db[0], db[1]], &[]).status.success());

    // Ann is gone: her events are found by her id, not her address.
    let by_address = magiclink(dir.path(), &["audit", "--user", "ann@example.com", db[0], db[1]], &[]);
    assert!(String::from_utf8_lossy(&by_address.stderr).contains("no user has the address"));
    let by_id = magiclink(dir.path(), &["audit", "--json", "--user", &user_id, db[0], db[1]], &[]);
    let lines: Vec<serde_json::Value> =
        stdout(&by_id).lines().map(|line| serde_json::from_str(line).expect("one JSON object per line")).collect();
    let kinds: Vec<&str> = lines.iter().map(|line| line["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, vec!["user.deleted", "user.created"], "newest first");
    for line in &lines {
        assert_eq!(line["user_id"], user_id.as_str());
        assert!(chrono::DateTime::parse_from_rfc3339(line["at"].as_str().expect("at")).is_ok());
        assert!(line["detail"].as_str().is_some_and(|detail| detail.starts_with("operator: users ")));
    }
    assert!(!stdout(&by_id).contains("ann@example.com"), "no address in the log");

    let created = magiclink(dir.path(), &["audit", "--kind", "user.created", db[0], db[1]], &[]);
    assert_eq!(stdout(&created).lines().count(), 2, "{}", stdout(&created));
    assert!(stdout(&created).lines().all(|line| line.contains("user.created")));
    let future = magiclink(dir.path(), &["audit", "--since", "2999-01-01", db[0], db[1]], &[]);
    assert_eq!(stdout(&future), "");
    let unknown = magiclink(dir.path(), &["audit", "--kind", "user.vanished", db[0], db[1]], &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("one of link.requested"));
    let bad_time = magiclink(dir.path(), &["audit", "--since", "yesterday", db[0], db[1]], &[]);
    assert!(!bad_time.status.success());
}

/// Whether a log line's fields are plain values: strings, numbers (with at most microsecond
/// digits) and booleans, never a Rust `Debug` rendering such as `Some("...")`.
fn plain_fields(line: &serde_json::Value) -> bool {
    line["fields"].as_object().is_some_and(|fields| {
        fields.values().all(|value| match value {
            serde_json::Value::String(text) => !text.starts_with("Some(") && text != "None",
            serde_json::Value::Number(number) => {
                number.as_f64().is_some_and(|n| ((n * 1000.0) - (n * 1000.0).round()).abs() < 1e-6)
            }
            serde_json::Value::Bool(_) => true,
            _ => false,
        })
    })
}

#[test]
fn with_json_logs_every_line_of_a_run_is_json_with_plain_fields_and_each_request_has_an_access_line() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("json.sqlite").display());
    let serving = Serving::start(
        dir.path(),
        &["--bind", "127.0.0.1:0", "--database-url", &url],
        &[("MAGICLINK_LOG__FORMAT", "json"), ("NO_COLOR", "1")],
    );

    let started = serving.read_until("Listening on http://");
    let listening: serde_json::Value = serde_json::from_str(started.last().expect("a line")).expect("JSON");
    let message = listening["fields"]["message"].as_str().expect("a message");
    let origin = message.strip_prefix("Listening on ").expect("the origin").to_owned();
    assert!(http_get(&origin, "/healthz?probe=1").starts_with("HTTP/1.1 200"));
    let mut lines = started;
    lines.extend(serving.read_until("\"request\""));

    let parsed: Vec<serde_json::Value> =
        lines.iter().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    for line in &parsed {
        assert!(plain_fields(line), "a field is not a plain value: {line}");
    }
    let messages: Vec<&str> = parsed.iter().filter_map(|line| line["fields"]["message"].as_str()).collect();
    assert!(messages.iter().any(|m| m.starts_with("Applied migration")), "{messages:?}");
    assert!(messages.iter().any(|m| m.starts_with("Development mailer: emails are not sent")), "{messages:?}");
    let request = parsed.iter().find(|line| line["fields"]["message"] == "request").expect("an access line");
    assert_eq!(request["level"], "INFO");
    assert_eq!(request["fields"]["path"], "/healthz", "the path, never the query");
    assert_eq!(request["fields"]["status"], 200);
    assert!(request["fields"]["ms"].is_number(), "{request}");
    assert!(request["span"]["request_id"].is_string(), "{request}");
}

#[test]
fn production_refuses_to_start_when_the_mailer_cannot_reach_its_server_unless_told_not_to_check() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("prod.sqlite").display());
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("address");
    let smtp_url = format!("smtp://{closed}");
    let production = [
        ("MAGICLINK_PROFILE", "production"),
        ("AUTH_SECRET", "q3V9c1mZ0rYb8LxT2kFhN6sWdP4eJuGa7oQyRiXv5Ek"),
        ("AUTH_URL", "https://auth.example.com"),
        ("MAGICLINK_MAILER__KIND", "smtp"),
        ("MAGICLINK_MAILER__FROM", "no-reply@example.com"),
        ("MAGICLINK_MAILER__SMTP__URL", smtp_url.as_str()),
        ("MAGICLINK_MAILER__SMTP__STARTTLS", "off"),
    ];
    let migrated = magiclink(dir.path(), &["migrate", "--database-url", &url], &production);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let refused = magiclink(dir.path(), &["serve", "--bind", "127.0.0.1:0", "--database-url", &url], &production);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "started with a mailer that cannot reach its server");
    assert!(said.contains("the mailer check failed, so nobody could get a sign-in email"), "{said}");
    assert!(said.contains("cannot reach the SMTP server with mailer.smtp's settings"), "{said}");

    let mut unchecked = production.to_vec();
    unchecked.push(("MAGICLINK_MAILER__CHECK_AT_START", "false"));
    let serving = Serving::start(dir.path(), &["--bind", "127.0.0.1:0", "--database-url", &url], &unchecked);
    assert!(http_get(&serving.origin(), "/healthz").contains("database: ok"), "starts without the check");
}

#[test]
fn with_json_logs_the_reason_serve_stopped_is_a_json_error_line() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("missing.sqlite").display());
    let production = [
        ("MAGICLINK_PROFILE", "production"),
        ("MAGICLINK_LOG__FORMAT", "json"),
        ("AUTH_SECRET", "q3V9c1mZ0rYb8LxT2kFhN6sWdP4eJuGa7oQyRiXv5Ek"),
        ("AUTH_URL", "https://auth.example.com"),
        ("MAGICLINK_MAILER__KIND", "resend"),
        ("MAGICLINK_MAILER__FROM", "no-reply@example.com"),
        ("AUTH_RESEND_KEY", "re_test"),
    ];

    let stopped = magiclink(dir.path(), &["serve", "--bind", "127.0.0.1:0", "--database-url", &url], &production);

    assert!(!stopped.status.success());
    let printed = format!("{}{}", stdout(&stopped), String::from_utf8_lossy(&stopped.stderr));
    let lines: Vec<serde_json::Value> =
        printed.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let last = lines.last().expect("a line");
    assert_eq!(last["level"], "ERROR", "{last}");
    assert_eq!(last["fields"]["message"], "magiclink stopped");
    let reason = last["fields"]["error"].as_str().expect("the reason");
    assert!(reason.contains("does not exist yet: run `magiclink migrate` first"), "{reason}");
}

#[tokio::test]
async fn clients_are_registered_listed_given_new_secrets_and_removed_and_keys_rotate() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("clients.sqlite").display());
    let db = ["--database-url", url.as_str()];
    let secret = [("AUTH_SECRET", "cli-test-secret-cli-test-secret-cli-test-secret")];
    assert!(magiclink(dir.path(), &["migrate", db[0], db[1]], &[]).status.success());
    let add = |extra: &[&str]| {
        let mut args = vec!["clients", "add", "--name", "Grafana", "--redirect-uri", "https://grafana.example.com/cb"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&db);
        magiclink(dir.path(), &args, &[])
    };

    let confidential =
        add(&["--json", "--id", "grafana", "--backchannel-logout-uri", "https://grafana.example.com/bc-logout"]);
    assert!(confidential.status.success(), "{}", String::from_utf8_lossy(&confidential.stderr));
    let shown: serde_json::Value = serde_json::from_str(stdout(&confidential).trim()).expect("one JSON object");
    assert_eq!(shown["client_id"], "grafana");
    assert_eq!(shown["public"], false);
    assert_eq!(shown["backchannel_logout_uri"], "https://grafana.example.com/bc-logout");
    let plain_http = add(&["--id", "plain", "--backchannel-logout-uri", "http://grafana.example.com/bc"]);
    assert!(String::from_utf8_lossy(&plain_http.stderr).contains("back-channel logout URI must use https"));
    let first_secret = shown["client_secret"].as_str().expect("a secret, shown once").to_owned();
    let public = add(&["--public", "--first-party", "--id", "spa"]);
    assert!(stdout(&public).contains("client_id: spa") && !stdout(&public).contains("client_secret"));
    let taken = add(&["--id", "grafana"]);
    assert!(!taken.status.success() && String::from_utf8_lossy(&taken.stderr).contains("exists already"));
    let insecure = magiclink(
        dir.path(),
        &["clients", "add", "--name", "X", "--redirect-uri", "http://app.example.com/cb", db[0], db[1]],
        &[],
    );
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("must use https"));

    let listed = magiclink(dir.path(), &["clients", "list", "--json", db[0], db[1]], &[]);
    let ids: Vec<String> = stdout(&listed)
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON")["client_id"].to_string())
        .collect();
    assert_eq!(ids, vec!["\"grafana\"", "\"spa\""]);
    assert!(!stdout(&listed).contains(&first_secret), "a secret is never listed");

    let rotated = magiclink(dir.path(), &["clients", "rotate-secret", "grafana", "--json", db[0], db[1]], &[]);
    let rotated: serde_json::Value = serde_json::from_str(stdout(&rotated).trim()).expect("JSON");
    let new_secret = rotated["client_secret"].as_str().expect("a new secret");
    let stored = open_database(&url).await;
    let client = stored
        .clients
        .find_client(&domain::oidc::ClientId::parse("grafana").expect("id"))
        .await
        .expect("read")
        .expect("registered");
    assert!(client.secret_matches(new_secret) && !client.secret_matches(&first_secret));
    stored.close().await;
    let no_secret = magiclink(dir.path(), &["clients", "rotate-secret", "spa", db[0], db[1]], &[]);
    assert!(!no_secret.status.success(), "a public client has no secret to rotate");

    let rotate = magiclink(dir.path(), &["keys", "rotate", db[0], db[1]], &secret);
    assert!(rotate.status.success(), "{}", String::from_utf8_lossy(&rotate.stderr));
    assert_eq!(stdout(&rotate).matches("New signing key").count(), 3, "RS256, ES256 and EdDSA");
    let again = magiclink(dir.path(), &["keys", "rotate", db[0], db[1]], &secret);
    assert!(again.status.success());
    let keys = stdout(&magiclink(dir.path(), &["keys", "list", db[0], db[1]], &[]));
    assert_eq!((keys.matches("current").count(), keys.matches("retired").count()), (3, 3), "{keys}");
    let without_secret = magiclink(dir.path(), &["keys", "rotate", db[0], db[1]], &[]);
    assert!(!without_secret.status.success(), "keys are sealed under AUTH_SECRET: none, no rotation");

    assert!(magiclink(dir.path(), &["clients", "remove", "grafana", db[0], db[1]], &[]).status.success());
    assert!(!magiclink(dir.path(), &["clients", "remove", "grafana", db[0], db[1]], &[]).status.success());

    // A client kept in the configuration: its secret and hash come from `new-secret`, and the
    // commands leave it to the file.
    let made = stdout(&magiclink(dir.path(), &["clients", "new-secret", "--json"], &[]));
    let made: serde_json::Value = serde_json::from_str(made.trim()).expect("JSON");
    let secret = made["client_secret"].as_str().expect("a secret");
    let hash = domain::oidc::ClientSecret::parse(secret).expect("a secret").hash().to_hex();
    assert_eq!(made["secret_hash"], hash.as_str());
    let configured = domain::oidc::Client {
        id: domain::oidc::ClientId::parse("wiki").expect("id"),
        name: "Wiki".to_owned(),
        kind: domain::oidc::ClientKind::Confidential,
        secret_hash: Some(domain::oidc::ClientSecretHash::from_hex(&hash).expect("hash")),
        redirect_uris: vec![url::Url::parse("https://wiki.example.com/cb").expect("URL")],
        post_logout_redirect_uris: vec![],
        first_party: false,
        backchannel_logout_uri: None,
        id_token_algorithm: domain::oidc::SigningAlgorithm::Rs256,
        from_config: true,
        created_at: chrono::Utc::now(),
    };
    let stored = open_database(&url).await;
    stored.clients.sync_configured_clients(&[configured]).await.expect("in step");
    stored.close().await;
    for command in [["clients", "remove", "wiki"], ["clients", "rotate-secret", "wiki"]] {
        let refused = magiclink(dir.path(), &[command[0], command[1], command[2], db[0], db[1]], &[]);
        assert!(String::from_utf8_lossy(&refused.stderr).contains("listed in the configuration"), "{command:?}");
    }
    assert!(stdout(&magiclink(dir.path(), &["clients", "list", db[0], db[1]], &[])).contains("from configuration"));
}
