//! The shipped `magiclink` binary as an operator runs it: `migrate`, `migrate --status`,
//! `secret`, and the production profile's refusals.

use std::process::{Command, Output};

fn magiclink(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_magiclink"));
    command.args(args).current_dir(dir).env("MAGICLINK_CONFIG_DIR", dir.join("no-config"));
    for name in ["AUTH_SECRET", "AUTH_URL", "DATABASE_URL", "MAGICLINK_PROFILE", "RUST_LOG"] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("magiclink runs")
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
fn production_refuses_to_start_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("prod.sqlite").display());
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("MAGICLINK_PROFILE", "production")], "AUTH_SECRET"),
        (
            &[("MAGICLINK_PROFILE", "production"), ("AUTH_SECRET", "0123456789abcdef0123456789abcdef")],
            "server.base_url",
        ),
        (
            &[
                ("MAGICLINK_PROFILE", "production"),
                ("AUTH_SECRET", "0123456789abcdef0123456789abcdef"),
                ("AUTH_URL", "https://auth.example.com"),
            ],
            "mailer.kind",
        ),
    ];
    for (env, named) in cases {
        let output = magiclink(dir.path(), &["serve", "--bind", "127.0.0.1:0", "--database-url", &url], env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "started with {env:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
}

#[test]
fn an_unsupported_database_url_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let output = magiclink(dir.path(), &["migrate", "--database-url", "mongodb://nope"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("mongodb://nope"));
}

#[tokio::test]
async fn outbox_lists_delivery_state_with_masked_addresses() {
    use ports::LinkStore as _;
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("outbox.sqlite").display());
    let store = adapters::sqlite::SqliteStore::connect(&url, 1).await.expect("opens");
    store.migrate().await.expect("migrates");
    let now = chrono::Utc::now();
    let hash = domain::LinkToken::from_random_bytes([4; 32]).hash(&domain::ServerSecret::new(*b"cli-test"));
    let to = domain::EmailAddress::parse("alice@example.com").expect("valid");
    let link = ports::NewLink { identifier: to.clone(), token_hash: hash.clone(), expires: now, created_at: now };
    let email = ports::NewOutboxMessage {
        recipient: to,
        link_token_hash: hash,
        sealed_link: vec![1; 48],
        link_expires: now,
        created_at: now,
    };
    store.insert_with_email(&link, &email).await.expect("queued");
    store.close().await;

    let listing = magiclink(dir.path(), &["outbox", "--database-url", &url], &[]);
    let filtered = magiclink(dir.path(), &["outbox", "--status", "sent", "--database-url", &url], &[]);
    let bad = magiclink(dir.path(), &["outbox", "--status", "lost", "--database-url", &url], &[]);

    let text = stdout(&listing);
    assert!(text.starts_with("pending 1  sent 0  failed 0  dropped 0"), "{text}");
    assert!(text.contains("a***@example.com") && text.contains("pending") && !text.contains("alice@"), "{text}");
    assert_eq!(stdout(&filtered).lines().count(), 1, "only the counts line");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--status `lost`"));
}
