//! Many instances on one database: two real `magiclink serve` processes share a PostgreSQL (and
//! then a MariaDB) database and a real SMTP server, as two machines behind a load balancer
//! would. A link asked for on one is used on the other, a session works on both and ends on
//! both, and a burst of sign-ins spread over both is emailed exactly once each.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use adapters::database::{Database, Dialect, OpenMode, PoolSettings};
use futures_util::StreamExt as _;
use support::Serving;
use system_tests::smtp::SmtpServer;
use system_tests::{cookie_header, keep_cookies};

/// The public origin both instances are configured with: links never name an instance.
const PUBLIC_ORIGIN: &str = "http://auth.example.test";
/// The shared secret (links, forms and pending sign-ins verify on either instance).
const SECRET: &str = "many-instances-secret-many-instances-secret";

/// One `serve` process on `database_url`, mailing through the SMTP server on `smtp_port`.
fn instance(dir: &std::path::Path, database_url: &str, smtp_port: u16) -> Serving {
    let smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
    Serving::start(
        dir,
        &["--bind", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", database_url),
            ("AUTH_SECRET", SECRET),
            ("MAGICLINK_SERVER__BASE_URL", PUBLIC_ORIGIN),
            ("MAGICLINK_MAILER__KIND", "smtp"),
            ("MAGICLINK_MAILER__FROM", "magiclink <auth@example.test>"),
            ("MAGICLINK_MAILER__SMTP__URL", &smtp_url),
            ("MAGICLINK_MAILER__SMTP__STARTTLS", "off"),
            // 200 sign-ins from one test client in a minute are the point here, not abuse.
            ("MAGICLINK_RATE_LIMIT__ADDRESS_MIN_GAP", "0"),
            ("MAGICLINK_RATE_LIMIT__ADDRESS_PER_HOUR", "0"),
            ("MAGICLINK_RATE_LIMIT__CLIENT_PER_HOUR", "0"),
            ("MAGICLINK_RATE_LIMIT__GLOBAL_PER_HOUR", "0"),
        ],
    )
}

/// A browser: a cookie jar and a client that does not follow redirects.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { http, jar: BTreeMap::new() }
    }

    async fn get(&mut self, url: &str) -> reqwest::Response {
        let response =
            self.http.get(url).header("cookie", cookie_header(&self.jar)).send().await.expect("the server answers");
        keep_cookies(&mut self.jar, response.headers());
        response
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let response = self
            .http
            .post(url)
            .header("cookie", cookie_header(&self.jar))
            .form(form)
            .send()
            .await
            .expect("the server answers");
        keep_cookies(&mut self.jar, response.headers());
        response
    }

    async fn csrf_token(&mut self, origin: &str) -> String {
        let reply: serde_json::Value = self.get(&format!("{origin}/api/auth/csrf")).await.json().await.expect("JSON");
        reply["csrfToken"].as_str().expect("csrfToken").to_owned()
    }

    async fn ask_for_link(&mut self, origin: &str, email: &str) {
        let token = self.csrf_token(origin).await;
        let posted =
            self.post(&format!("{origin}/api/auth/signin/email"), &[("email", email), ("csrfToken", &token)]).await;
        assert_eq!(posted.status(), reqwest::StatusCode::SEE_OTHER, "the sign-in form is accepted");
    }

    async fn session_email(&mut self, origin: &str) -> Option<String> {
        let session: serde_json::Value =
            self.get(&format!("{origin}/api/auth/session")).await.json().await.expect("JSON");
        session["user"]["email"].as_str().map(str::to_owned)
    }
}

/// The link in a raw email, its path and query only (the host is the public origin).
fn link_path(raw: &[u8]) -> String {
    let text = system_tests::smtp::text_part(raw);
    let start = text.find(PUBLIC_ORIGIN).expect("the link names the public origin, not an instance");
    let link = text[start..].split_whitespace().next().expect("a link");
    link.trim_start_matches(PUBLIC_ORIGIN).to_owned()
}

async fn two_instances_share_one_database(dialect: Dialect) {
    let Some(scratch) = system_tests::stores::scratch_database(dialect).await else { return };
    let Some(mut smtp) = SmtpServer::start(None) else { return };
    let dir = tempfile::tempdir().expect("temporary folder");
    // Both start on the empty database before either listens: the development profile
    // migrates at start-up, and the migrations' advisory lock lets only one apply them.
    let serving_a = instance(dir.path(), scratch.url_text(), smtp.port);
    let serving_b = instance(dir.path(), scratch.url_text(), smtp.port);
    let (origin_a, origin_b) = (serving_a.origin(), serving_b.origin());

    // A link asked for through A is used through B; the session then works on both.
    let mut browser = Browser::new();
    browser.ask_for_link(&origin_a, "first@example.com").await;
    assert_eq!(smtp.next_delivery().await, "first@example.com");
    let path = link_path(&smtp.messages()[0]);
    let opened = browser.get(&format!("{origin_b}{path}")).await;
    assert_eq!(opened.status(), reqwest::StatusCode::SEE_OTHER);
    assert!(browser.jar.keys().any(|name| name.ends_with("session-token")), "signed in by B: {:?}", browser.jar);
    assert_eq!(browser.session_email(&origin_a).await.as_deref(), Some("first@example.com"));
    assert_eq!(browser.session_email(&origin_b).await.as_deref(), Some("first@example.com"));

    // Signing out through B ends the session on A too.
    let session_cookie = cookie_header(&browser.jar);
    let token = browser.csrf_token(&origin_b).await;
    let out = browser.post(&format!("{origin_b}/api/auth/signout"), &[("csrfToken", &token)]).await;
    assert_eq!(out.status(), reqwest::StatusCode::SEE_OTHER);
    let replayed: serde_json::Value = reqwest::Client::new()
        .get(format!("{origin_a}/api/auth/session"))
        .header("cookie", session_cookie)
        .send()
        .await
        .expect("A answers")
        .json()
        .await
        .expect("JSON");
    assert!(replayed.is_null(), "the old cookie signs nobody in on A: {replayed}");

    // 200 sign-in requests spread over both instances: 200 emails, each once.
    let addresses: Vec<String> = (0..200).map(|n| format!("burst-{n}@example.com")).collect();
    futures_util::stream::iter(addresses.iter().enumerate())
        .for_each_concurrent(16, |(n, address)| {
            let origin = if n % 2 == 0 { origin_a.clone() } else { origin_b.clone() };
            async move { Browser::new().ask_for_link(&origin, address).await }
        })
        .await;
    let mut delivered = BTreeSet::new();
    for _ in 0..200 {
        assert!(delivered.insert(smtp.next_delivery().await), "an address was mailed twice");
    }
    assert_eq!(delivered, addresses.iter().cloned().collect::<BTreeSet<_>>());

    // Every row is recorded as sent: nothing is left that either instance could send again.
    let database = Database::open(&scratch.url(), PoolSettings::new(2), OpenMode::MustExist)
        .await
        .expect("opens")
        .expect("exists");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let counts = database.outbox.counts().await.expect("counts");
        if counts.pending == 0 {
            assert_eq!((counts.sent, counts.failed, counts.dropped), (201, 0, 0));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rows still pending: {counts:?}");
        // Waiting for the last `mark_sent` to commit after its message arrived.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(smtp.messages().len(), 201, "no message was sent twice");
    database.close().await;
    drop((serving_a, serving_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_database_behave_as_one_service() {
    two_instances_share_one_database(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_mariadb_database_behave_as_one_service() {
    two_instances_share_one_database(Dialect::MySql).await;
}

/// Two `magiclink migrate` processes started at the same moment on a database that does not
/// exist yet, as two instances deployed at once would: both succeed, and each migration is
/// reported as applied by exactly one of them. Several rounds, since the race is timing's.
async fn two_instances_creating_and_migrating_at_once_both_succeed(dialect: Dialect) {
    for round in 0..4 {
        let Some(scratch) = system_tests::stores::scratch_database(dialect).await else { return };
        // The scratch database is made to be dropped with `scratch`; drop it now, so that the
        // instances find it missing and create it.
        drop_database_now(dialect, scratch.url_text()).await;
        let dir = tempfile::tempdir().expect("temporary folder");
        let start = || {
            std::process::Command::new(env!("CARGO_BIN_EXE_magiclink"))
                .arg("migrate")
                .current_dir(dir.path())
                .env("MAGICLINK_CONFIG_DIR", dir.path().join("no-config"))
                .env("DATABASE_URL", scratch.url_text())
                .env_remove("MAGICLINK_PROFILE")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("magiclink starts")
        };
        let (first, second) = (start(), start());
        let outputs = [first.wait_with_output().expect("ran"), second.wait_with_output().expect("ran")];

        for output in &outputs {
            assert!(
                output.status.success(),
                "round {round}: an instance failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let applied: Vec<String> = outputs
            .iter()
            .flat_map(|output| String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|line| line.starts_with("Applied "))
            .collect();
        let known = Database::known_migrations(&scratch.url()).expect("known").len();
        assert_eq!(applied.len(), known, "round {round}: each migration reported once: {applied:?}");
    }
}

/// Drops the database a scratch URL names, through the server's default database.
async fn drop_database_now(dialect: Dialect, url: &str) {
    use sqlx::Connection as _;
    let name = url::Url::parse(url).expect("a URL").path().trim_start_matches('/').to_owned();
    let server = system_tests::scratch::server_url(dialect).expect("a server");
    let mut admin = sqlx::AnyConnection::connect(&server).await.expect("the server answers");
    sqlx::Executor::execute(&mut admin, format!("DROP DATABASE {name}").as_str()).await.expect("dropped");
    admin.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_creating_one_postgres_database_at_once_both_succeed() {
    two_instances_creating_and_migrating_at_once_both_succeed(Dialect::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_creating_one_mariadb_database_at_once_both_succeed() {
    two_instances_creating_and_migrating_at_once_both_succeed(Dialect::MySql).await;
}
