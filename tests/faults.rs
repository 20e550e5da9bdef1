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
    let server = system_tests::scratch::server_url(dialect).expect("a server dialect");
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

/// SQLite under sustained reads and writes: readers always active kept the WAL from ever
/// starting over (586 MB after five minutes against a 27 MB database). With a limit of 1 MiB,
/// the WAL is emptied whenever it passes the limit, so it stays near it however long the load
/// lasts, instead of growing with everything written.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_sqlite_wal_stays_bounded_under_sustained_reads_and_writes() {
    const LIMIT: u64 = 1024 * 1024;
    let dir = tempfile::tempdir().expect("a folder");
    let file = dir.path().join("busy.sqlite");
    let url = domain::SecretText::new(format!("sqlite://{}", file.display()));
    let pool =
        adapters::database::PoolSettings { sqlite_wal_limit_bytes: LIMIT, ..adapters::database::PoolSettings::new(4) };
    let database = adapters::database::Database::open(&url, pool, adapters::database::OpenMode::CreateIfMissing)
        .await
        .expect("opens")
        .expect("created");
    database.migrate().await.expect("migrated");
    let now = chrono::Utc::now();
    let user = database
        .users
        .find_or_create_verified(&domain::EmailAddress::parse("reader@example.com").expect("valid"), now)
        .await
        .expect("a user");
    let session = |n: u64| {
        let mut bytes = [7_u8; 32];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        ports::NewSession {
            token_hash: domain::SessionToken::from_random_bytes(bytes).hash(),
            user_id: user.id.clone(),
            expires: now + chrono::TimeDelta::days(1),
            user_agent: Some("a browser that says a lot about itself ".repeat(12)),
            created_at: now,
            method: domain::SignInMethod::Link,
            audit: domain::audit::AuditEvent::new(
                domain::audit::AuditKind::LinkRedeemed,
                domain::audit::AuditOutcome::Succeeded,
                now,
                &domain::audit::RequestOrigin::default(),
            ),
        }
    };
    let read_back = session(0);
    database.sessions.create(&read_back).await.expect("a session to read");

    // Readers that never pause, as a busy service's session checks.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (sessions, stop, hash) =
                (std::sync::Arc::clone(&database.sessions), stop.clone(), read_back.token_hash.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    sessions.find(&hash).await.expect("read");
                }
            })
        })
        .collect();
    // Writes for four seconds of load (eight background checkpoint rounds), bounded in count.
    let wal = dir.path().join("busy.sqlite-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let load_until = Instant::now() + Duration::from_secs(4);
    // Sampled as the load goes: the largest WAL, how often it was emptied, and how much it grew
    // in all (about everything written to it).
    let (mut written, mut largest, mut emptied, mut grown, mut last) = (0_u64, 0_u64, 0, 0_u64, 0_u64);
    while Instant::now() < load_until && written < 200_000 {
        written += 1;
        database.sessions.create(&session(written)).await.expect("a write");
        if written % 25 == 0 {
            let size = wal_size();
            largest = largest.max(size);
            if size < last {
                emptied += 1;
            }
            grown += size.saturating_sub(last);
            last = size;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.await.expect("a reader");
    }
    database.close().await;

    // Unbounded, the WAL only grew (400 MB in these four seconds against a 12 MB database).
    assert!(emptied >= 2, "the WAL was emptied {emptied} times in {written} writes");
    assert!(
        largest * 2 < grown,
        "the WAL reached {largest} bytes of the {grown} written to it in {written} writes: it was not kept bounded"
    );
}
