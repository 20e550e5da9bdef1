//! Faults an operator meets, caused for real: the database server cut off (refusing, or
//! swallowing packets) through a [`Cable`], Redis cut off the same way, and SQLite on a disk
//! that fills up (a small tmpfs). Each test says what a person and a program see while the
//! fault lasts, and that the service recovers by itself when it ends.

use std::time::{Duration, Instant};

use adapters::database::Dialect;
use poem::http::StatusCode;
use system_tests::cable::{Cable, Mode};
use system_tests::{require, Reply, TestApp};
use xtask::settings::OnStoreError;

/// What `/healthz` must beat: a load balancer's probe gets its answer within two seconds.
const HEALTH_DEADLINE: Duration = Duration::from_secs(2);

/// `GET /healthz`, and how long it took.
async fn health(app: &TestApp) -> (Reply, Duration) {
    let started = Instant::now();
    let reply = app.get("/healthz").await;
    (reply, started.elapsed())
}

/// `url` with its host and port replaced by the cable's.
fn through(cable: &Cable, url: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a server URL");
    parsed.set_host(Some("127.0.0.1")).expect("a host");
    parsed.set_port(Some(cable.address().port())).expect("a port");
    parsed.to_string()
}

/// A cable to the test server of `dialect`.
async fn cable_to_server(dialect: Dialect) -> Cable {
    let server = adapters::scratch::server_url(dialect).expect("a server dialect");
    let parsed = url::Url::parse(&server).expect("a server URL");
    Cable::to(&format!("{}:{}", parsed.host_str().expect("a host"), parsed.port_or_known_default().expect("a port")))
        .await
}

/// Asks for a link with the form, as a person would.
async fn request_link_form(app: &TestApp, token: &str, email: &str) -> Reply {
    app.post_form("/api/auth/signin/email", &[("email", email), ("csrfToken", token)], None).await
}

/// Signed in, then the database cut off in `mode`: every request that needs it is answered 503
/// with `Retry-After` (a page for people, a problem for programs), the session cookie is kept,
/// `/healthz` says so within two seconds, and all is well again once the cable is back.
async fn a_database_cut_off_answers_503_and_recovers(dialect: Dialect, mode: Mode) {
    let cable = cable_to_server(dialect).await;
    let Some(app) = TestApp::spawn_on_server_via(dialect, |url| through(&cable, url), |_| {}).await else { return };
    app.sign_in("ada@example.com", "/").await;
    let token = app.csrf_token().await;
    assert_eq!(health(&app).await.0.status, StatusCode::OK);

    cable.set(mode);
    let session = app.get_json("/api/auth/session").await;
    let page = request_link_form(&app, &token, "grace@example.com").await;
    let (healthz, took) = health(&app).await;

    assert_eq!(session.status, StatusCode::SERVICE_UNAVAILABLE, "{}", session.body);
    assert_eq!(session.json()["type"], "urn:magiclink:problem:unavailable");
    assert_eq!(session.header("retry-after"), "5");
    assert_eq!(session.set_cookie("magiclink.session-token"), "", "an outage never signs anyone out");
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(page.header("retry-after"), "5");
    assert!(page.body.contains("Temporarily unavailable"), "a page for people: {}", page.body);
    assert_eq!(healthz.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(healthz.body, "database: unavailable\n");
    assert!(took < HEALTH_DEADLINE, "/healthz answered after {took:?}");

    cable.set(Mode::Connected);
    let (healthz, _) = health(&app).await;
    let session = app.get_json("/api/auth/session").await;
    assert_eq!(healthz.status, StatusCode::OK, "{}", healthz.body);
    assert_eq!(session.status, StatusCode::OK, "{}", session.body);
    assert_eq!(session.json()["user"]["email"], "ada@example.com", "the session outlived the outage");
    assert_eq!(request_link_form(&app, &token, "grace@example.com").await.status, StatusCode::SEE_OTHER);
}

/// Redis cut off under `rate_limit.store`: with `on_store_error = "refuse"` a link request is
/// answered 503 within about a second and `/healthz` names Redis; with `"allow"` it goes
/// through uncounted and `/healthz` stays 200. Both recover when Redis is back.
async fn redis_cut_off_is_met_as_configured(on_store_error: OnStoreError) {
    if require(&xtask::tasks::REDIS).is_none() {
        return;
    }
    let cable = Cable::to("127.0.0.1:6379").await;
    let store = format!("redis://{}", cable.address());
    let app = TestApp::spawn_with(|settings| {
        settings.rate_limit = xtask::settings::RateLimitSettings {
            store: store.into(),
            on_store_error,
            ..xtask::settings::RateLimitSettings::default()
        };
    })
    .await;
    let token = app.csrf_token().await;

    cable.set(Mode::Swallowing);
    let started = Instant::now();
    let page = request_link_form(&app, &token, "redis-down@example.com").await;
    let waited = started.elapsed();
    let (healthz, took) = health(&app).await;

    match on_store_error {
        OnStoreError::Refuse => {
            assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
            assert_eq!(page.header("retry-after"), "5");
            assert_eq!(healthz.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(healthz.body, "database: ok\nrate_limit_store: unavailable\n");
            assert_eq!(app.deliver().await.claimed, 0, "nothing was sent uncounted");
        }
        OnStoreError::Allow => {
            assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
            assert_eq!(healthz.status, StatusCode::OK);
            assert_eq!(app.deliver().await.claimed, 1, "the link went out uncounted");
        }
    }
    // The client library's own retries would take many seconds; the bound is ours.
    assert!(waited < Duration::from_secs(5), "the request waited {waited:?} on Redis");
    assert!(took < HEALTH_DEADLINE, "/healthz answered after {took:?}");

    cable.set(Mode::Connected);
    let page = request_link_form(&app, &token, "redis-back@example.com").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(health(&app).await.0.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_refusing_connections_answers_503_and_recovers() {
    a_database_cut_off_answers_503_and_recovers(Dialect::Postgres, Mode::Refusing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_swallowing_packets_answers_503_and_recovers() {
    a_database_cut_off_answers_503_and_recovers(Dialect::Postgres, Mode::Swallowing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_refusing_connections_answers_503_and_recovers() {
    a_database_cut_off_answers_503_and_recovers(Dialect::MySql, Mode::Refusing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_swallowing_packets_answers_503_and_recovers() {
    a_database_cut_off_answers_503_and_recovers(Dialect::MySql, Mode::Swallowing).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_refuses_with_503_when_so_configured() {
    redis_cut_off_is_met_as_configured(OnStoreError::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_lets_requests_through_when_so_configured() {
    redis_cut_off_is_met_as_configured(OnStoreError::Allow).await;
}

/// A small tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size` (as `mount` reads it, e.g. `4m`), or `None` after
    /// [`system_tests::skip_or_fail`] where this user cannot mount one.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a folder to mount on");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Self { dir }),
            Ok(output) => {
                let said = String::from_utf8_lossy(&output.stderr);
                system_tests::skip_or_fail(&format!("cannot mount a small tmpfs (root is needed): {}", said.trim()));
                None
            }
            Err(error) => {
                system_tests::skip_or_fail(&format!("cannot run mount: {error}"));
                None
            }
        }
    }

    /// Fills what is left of the disk with one file, and returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write as _;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("a filler file");
        let chunk = vec![0_u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        // What is left is smaller than a chunk: fill that too, a byte at a time.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
    }
}

/// SQLite on a disk that fills up: writes fail while it is full, and once space is freed they
/// work again without a restart (a failed `COMMIT` must not leave the one writer inside a
/// transaction for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_on_a_full_disk_writes_again_once_space_is_freed() {
    let Some(disk) = SmallDisk::mount("4m") else { return };
    let url = domain::SecretText::new(format!("sqlite://{}", disk.dir.path().join("magiclink.sqlite").display()));
    let database = adapters::database::Database::open(
        &url,
        adapters::database::PoolSettings::new(2),
        adapters::database::OpenMode::CreateIfMissing,
    )
    .await
    .expect("opens")
    .expect("created");
    database.migrate().await.expect("migrated");
    let now = chrono::Utc::now();
    let add = |n: usize| {
        let users = std::sync::Arc::clone(&database.users);
        let email = domain::EmailAddress::parse(&format!("person{n}@example.com")).expect("an address");
        async move { users.find_or_create_verified(&email, now).await }
    };
    add(0).await.expect("a write before the disk is full");

    let filler = disk.fill();
    let mut first_failure = None;
    for n in 1..=2000 {
        if let Err(error) = add(n).await {
            first_failure = Some(format!("{error:#}"));
            break;
        }
    }
    let failure = first_failure.expect("a write fails once the disk is full");
    assert!(failure.contains("full"), "{failure}");

    std::fs::remove_file(filler).expect("space freed");
    for n in 3000..3010 {
        add(n).await.unwrap_or_else(|error| panic!("writes work again without a restart: {error:#}"));
    }
    database.close().await;
}
