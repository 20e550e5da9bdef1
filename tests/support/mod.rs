//! Test harness shared by the system tests: the real wiring on a temporary SQLite database, a
//! hand-driven clock, and a client that keeps cookies like a browser.
//!
//! Every test gets its own database file and secret, so tests run in parallel without sharing
//! state. [`TestApp`] drives the application in process through `poem::test::TestClient`;
//! [`RunningServer`] serves it on a real loopback port for the browser test.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use adapters::clock::ManualClock;
use chrono::{DateTime, TimeZone, Utc};
use domain::ServerSecret;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::test::TestClient;
use poem::Response;
use xtask::cli::Program;
use xtask::settings::Settings;
use xtask::wiring::{self, Parts, Service};

pub mod authenticator;
pub mod cable;
pub mod caddy;
pub mod child;
pub mod limiter_contract;
pub mod nginx;
pub mod scratch;
pub mod smtp;
pub mod stores;
pub mod webdriver;

/// The instant every in-process test starts at.
pub fn test_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).single().expect("valid date")
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers, lower-case names; repeated headers joined with `\n`.
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
}

impl Reply {
    /// A header's value, or `""`.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }

    /// The `Set-Cookie` line that sets the cookie `name`, or `""`.
    pub fn set_cookie(&self, name: &str) -> &str {
        let prefix = format!("{name}=");
        self.header("set-cookie").lines().find(|line| line.starts_with(&prefix)).unwrap_or_default()
    }

    /// The `Location` header.
    pub fn location(&self) -> &str {
        self.header("location")
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// The application over the real wiring, driven in process.
pub struct TestApp {
    /// The in-process client.
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    /// The clock the application reads.
    pub clock: Arc<ManualClock>,
    /// The service's database, through its ports, for tests that look underneath.
    pub database: adapters::database::Database,
    /// The delivery use case; in-process tests run it by hand instead of a background worker.
    pub deliverer: Arc<ports::Deliverer>,
    /// Emails handed to the (absent) background worker, which [`TestApp::deliver`] sends.
    handed_over: Mutex<adapters::handover::HandedOver>,
    /// Cookies the "browser" holds, by name.
    pub cookies: Mutex<BTreeMap<String, String>>,
    /// The configured public base URL (`http://127.0.0.1:3000` unless a test set another).
    pub base_url: String,
    _dir: tempfile::TempDir,
    /// The scratch server database, when the app runs on PostgreSQL or MariaDB; dropped last.
    _scratch: Option<crate::scratch::ScratchDatabase>,
}

/// Default test settings: a temporary SQLite file, development mailer.
pub fn test_settings(dir: &tempfile::TempDir) -> Settings {
    let mut settings = Settings::default();
    settings.database.url = format!("sqlite://{}", dir.path().join("magiclink.sqlite").display()).into();
    settings.database.max_connections = 4;
    settings.server.base_url = "http://127.0.0.1:3000".to_owned();
    // Tests ask for many links quickly; the rate-limit tests turn the limits back on.
    settings.rate_limit = xtask::settings::RateLimitSettings {
        address_min_gap: 0,
        address_per_hour: 0,
        client_per_hour: 0,
        global_per_hour: 0,
        failed_redemptions_per_hour: 0,
        ..Default::default()
    };
    settings
}

/// Builds the real wiring on a migrated temporary database.
pub async fn build_service(settings: &Settings, parts: Parts) -> Service {
    let checked = settings.check("development", Program::CargoXtask).expect("test settings pass the checks");
    let base_url = checked.base_url.expect("test settings set server.base_url");
    // The configured secret when a test sets one (to rotate it), else a fresh random one.
    let secret = match settings.secret.expose() {
        "" => ServerSecret::new(ports::random::os_random::<32>().expect("randomness")),
        configured => ServerSecret::new(configured.as_bytes()),
    };
    let service = wiring::build(settings, base_url, secret, parts).await.expect("service builds");
    service.store.migrate().await.expect("migrations apply");
    service
}

impl TestApp {
    /// The application with default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// The application on a scratch database of `dialect` (SQLite: a temporary file), or `None`
    /// after [`skip_or_fail`] when that server is not reachable.
    pub async fn spawn_on(dialect: adapters::database::Dialect) -> Option<Self> {
        Self::spawn_on_with(dialect, |_| {}).await
    }

    /// As [`TestApp::spawn_on`], with settings adjusted by `configure`.
    pub async fn spawn_on_with(
        dialect: adapters::database::Dialect,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        if dialect == adapters::database::Dialect::Sqlite {
            return Some(Self::spawn_with(configure).await);
        }
        Self::spawn_on_server_via(dialect, |url| url.to_owned(), configure).await
    }

    /// The application on a scratch database of a server `dialect` (PostgreSQL or MariaDB),
    /// reached at the URL `via` makes of the scratch database's (through a [`cable::Cable`],
    /// say), or `None` after [`skip_or_fail`].
    pub async fn spawn_on_server_via(
        dialect: adapters::database::Dialect,
        via: impl FnOnce(&str) -> String,
        configure: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        let scratch = stores::scratch_database(dialect).await?;
        let url = via(scratch.url_text());
        let mut app = Self::spawn_with(|settings| {
            configure(settings);
            settings.database.url = url.into();
        })
        .await;
        app._scratch = Some(scratch);
        Some(app)
    }

    /// The application with settings adjusted by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_embedded(configure, wiring::magiclink_alone).await
    }

    /// An application that embeds magiclink (as `serve` would run it with `embed`), with settings
    /// adjusted by `configure`.
    pub async fn spawn_embedded(configure: impl FnOnce(&mut Settings), embed: wiring::Embed) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut settings = test_settings(&dir);
        configure(&mut settings);
        let clock = Arc::new(ManualClock::starting_at(test_start()));
        let service = build_service(&settings, Parts { clock: clock.clone(), mailer: None, embed }).await;
        TestApp {
            client: TestClient::new(service.app),
            clock,
            database: service.store,
            deliverer: service.deliverer,
            handed_over: Mutex::new(service.handed_over),
            cookies: Mutex::new(BTreeMap::new()),
            base_url: settings.server.base_url.clone(),
            _dir: dir,
            _scratch: None,
        }
    }

    /// Replaces the cookies the "browser" holds, returning the old ones: a second browser (or a
    /// mail scanner) is the same app with another jar.
    pub fn swap_cookies(&self, other: BTreeMap<String, String>) -> BTreeMap<String, String> {
        std::mem::replace(&mut *self.cookies.lock().unwrap_or_else(PoisonError::into_inner), other)
    }

    fn cookie_header(&self) -> String {
        let jar = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    async fn read(&self, response: poem::test::TestResponse) -> Reply {
        let response = response.0;
        let status = response.status();
        let mut headers = BTreeMap::<String, String>::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or_default().to_owned();
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|v| {
                    v.push('\n');
                    v.push_str(&value)
                })
                .or_insert(value);
        }
        // Keep cookies as a browser would: a cookie with Max-Age=0 is removed.
        if let Some(set_cookies) = headers.get("set-cookie") {
            let mut jar = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
            for line in set_cookies.lines() {
                let pair = line.split(';').next().unwrap_or_default();
                if let Some((name, value)) = pair.split_once('=') {
                    if line.contains("Max-Age=0") {
                        jar.remove(name);
                    } else {
                        jar.insert(name.to_owned(), value.to_owned());
                    }
                }
            }
        }
        let body = response.into_body().into_string().await.expect("body is text");
        Reply { status, headers, body }
    }

    /// `GET path` with the jar's cookies.
    pub async fn get(&self, path: &str) -> Reply {
        let response = self.client.get(path).header("cookie", self.cookie_header()).send().await;
        self.read(response).await
    }

    /// `GET path` with the jar's cookies and `headers` added (as a browser sends them).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.client.get(path).header("cookie", self.cookie_header());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.read(request.send().await).await
    }

    /// `HEAD path` with the jar's cookies.
    pub async fn head(&self, path: &str) -> Reply {
        let response = self.client.head(path).header("cookie", self.cookie_header()).send().await;
        self.read(response).await
    }

    /// `GET path` asking for JSON.
    pub async fn get_json(&self, path: &str) -> Reply {
        let response = self
            .client
            .get(path)
            .header("cookie", self.cookie_header())
            .header("accept", "application/json")
            .send()
            .await;
        self.read(response).await
    }

    /// `method path` with the jar's cookies, asking for JSON, with `headers` added.
    pub async fn send(&self, method: poem::http::Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .client
            .request(method, path)
            .header("cookie", self.cookie_header())
            .header("accept", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.read(request.send().await).await
    }

    /// `method path` with `body` as it is, the jar's cookies, asking for JSON, with `headers`.
    pub async fn send_body(
        &self,
        method: poem::http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Reply {
        let mut request = self
            .client
            .request(method, path)
            .header("cookie", self.cookie_header())
            .header("accept", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.read(request.send().await).await
    }

    /// `POST path` with a form body; `accept` sets the `Accept` header when given.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)], accept: Option<&str>) -> Reply {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        // As a browser does, with the length declared (the body-size limit reads it).
        let mut request = self
            .client
            .post(path)
            .header("cookie", self.cookie_header())
            .content_type("application/x-www-form-urlencoded")
            .header("content-length", body.len())
            .body(body);
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        self.read(request.send().await).await
    }

    /// `POST path` with a JSON body, asking for JSON, with `headers` added.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value, headers: &[(&str, &str)]) -> Reply {
        self.post_json_text(path, body.to_string(), headers).await
    }

    /// `POST path` with `body` sent as it is, as JSON (for bodies a `Value` cannot hold).
    pub async fn post_json_text(&self, path: &str, body: String, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .client
            .post(path)
            .header("cookie", self.cookie_header())
            .header("accept", "application/json")
            .content_type("application/json")
            .header("content-length", body.len())
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.read(request.send().await).await
    }

    /// A CSRF token from `GET /api/auth/csrf` (which also sets its cookie).
    pub async fn csrf_token(&self) -> String {
        let reply = self.get_json("/api/auth/csrf").await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.json()["csrfToken"].as_str().expect("csrfToken is a string").to_owned()
    }

    /// Asks for a link for `email` with `callback_url`, asserting the redirect to "check your email".
    pub async fn request_link(&self, email: &str, callback_url: &str) -> Reply {
        let token = self.csrf_token().await;
        let reply = self
            .post_form(
                "/api/auth/signin/email",
                &[("email", email), ("csrfToken", &token), ("callbackUrl", callback_url)],
                None,
            )
            .await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        reply
    }

    /// What a stopping server does with emails handed to its worker and not yet sent: gives
    /// them back to the outbox.
    pub async fn stop_delivery(&self) -> u64 {
        let handed = self.handed_over.lock().unwrap_or_else(PoisonError::into_inner).drain();
        self.deliverer.release(handed).await.expect("released")
    }

    /// Delivers what was handed over and whatever the outbox holds due, as the background
    /// worker would.
    pub async fn deliver(&self) -> ports::BatchReport {
        let handed = self.handed_over.lock().unwrap_or_else(PoisonError::into_inner).drain();
        let mut report = self.deliverer.deliver_handed_over(handed).await;
        report.add(self.deliverer.deliver_due().await.expect("delivery runs"));
        report
    }

    /// The newest link the development mailbox holds for `email`, as a path with query, after
    /// delivering whatever the outbox holds.
    pub async fn latest_link(&self, email: &str) -> String {
        self.deliver().await;
        let reply = self.get_json(&format!("/dev/mailbox?to={email}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        // Newest first; alerts (a password changed, say) carry no link.
        let messages = reply.json();
        let link = messages
            .as_array()
            .and_then(|messages| messages.iter().find_map(|message| message["link"].as_str()))
            .expect("a message with a link")
            .to_owned();
        let url = url::Url::parse(&link).expect("the link is an absolute URL");
        let configured = url::Url::parse(&self.base_url).expect("the base URL is a URL");
        assert_eq!(url.host_str(), configured.host_str(), "links point at the configured base URL");
        format!("{}?{}", url.path(), url.query().unwrap_or_default())
    }

    /// Requests and opens a link, returning the callback's reply.
    pub async fn sign_in(&self, email: &str, callback_url: &str) -> Reply {
        self.request_link(email, callback_url).await;
        let link = self.latest_link(email).await;
        self.get(&link).await
    }
}

/// The application served on a real loopback port, stopped when dropped.
pub struct RunningServer {
    /// The public base URL: `http://127.0.0.1:PORT` unless the test configured another.
    pub base_url: String,
    /// The address it listens on, `127.0.0.1:PORT`.
    pub bound_address: String,
    /// The development mailbox, when that mailer is configured.
    pub mailbox: Option<Arc<adapters::mail::DevMailer>>,
    /// Where the metrics listener listens, when `metrics.bind` is set (port 0 chooses one).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// The service's database, through its ports, for tests that set things up underneath.
    pub database: adapters::database::Database,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl RunningServer {
    /// Serves the application on port 0 of loopback, with the base URL set to the bound port.
    pub async fn start() -> Self {
        Self::start_with(|_| {}, Parts::default()).await
    }

    /// As [`RunningServer::start`], with settings adjusted by `configure` and parts replaced.
    pub async fn start_with(configure: impl FnOnce(&mut Settings), parts: Parts) -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let bound = wiring::bind("127.0.0.1:0").await.expect("binds");
        let mut settings = test_settings(&dir);
        settings.server.base_url = format!("http://{}", bound.local_addr);
        configure(&mut settings);
        let service = build_service(&settings, parts).await;
        let mailbox = service.mailbox.clone();
        let metrics_address = service.metrics.as_ref().and_then(|(listener, _)| listener.local_addr().ok());
        let database = service.store.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bound_address = bound.local_addr.to_string();
        tokio::spawn(wiring::run(service, bound, async move {
            let _ = stopped.await;
        }));
        RunningServer {
            base_url: settings.server.base_url,
            bound_address,
            mailbox,
            metrics_address,
            database,
            stop: Some(stop),
            _dir: dir,
        }
    }
}

impl RunningServer {
    /// Signs `email` in over real HTTP, as a browser would (CSRF token, form post, the link from
    /// the development mailbox), and returns the `Cookie` header value that carries the session.
    pub async fn sign_in_over_http(&self, email: &str) -> String {
        self.sign_in_over_http_as(email, None).await
    }

    /// As [`RunningServer::sign_in_over_http`], from a browser that sends `user_agent`.
    pub async fn sign_in_over_http_as(&self, email: &str, user_agent: Option<&str>) -> String {
        let mut http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if let Some(agent) = user_agent {
            http = http.user_agent(agent);
        }
        let http = http.build().expect("client");
        let base = &self.base_url;
        let mut jar = BTreeMap::new();
        let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf answers");
        keep_cookies(&mut jar, csrf.headers());
        let token =
            csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("csrfToken").to_owned();
        let mut delivered = self.mailbox.as_ref().expect("the dev mailer is configured").subscribe();
        let before = *delivered.borrow_and_update();
        let posted = http
            .post(format!("{base}/api/auth/signin/email"))
            .header("cookie", cookie_header(&jar))
            .form(&[("email", email), ("csrfToken", &token), ("callbackUrl", "/")])
            .send()
            .await
            .expect("sign-in form answers");
        assert_eq!(posted.status(), StatusCode::SEE_OTHER);
        // The pending-sign-in cookie: this "browser" asked, so the link signs in at once.
        keep_cookies(&mut jar, posted.headers());
        let mailbox = self.mail_after(&mut delivered, before, email).await;
        let link = mailbox[0]["link"].as_str().expect("a link");
        let opened = http.get(link).header("cookie", cookie_header(&jar)).send().await.expect("link answers");
        assert_eq!(opened.status(), StatusCode::SEE_OTHER);
        let session = opened
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|cookie| cookie.contains("session-token="))
            .expect("a session cookie");
        session.split(';').next().unwrap_or_default().to_owned()
    }
}

impl RunningServer {
    /// Waits until the development mailbox has sent more than `sent_before` messages, then
    /// returns its messages to `to`, newest first, as the mailbox's JSON.
    pub async fn mail_after(
        &self,
        delivered: &mut tokio::sync::watch::Receiver<u64>,
        sent_before: u64,
        to: &str,
    ) -> serde_json::Value {
        tokio::time::timeout(std::time::Duration::from_secs(30), delivered.wait_for(|sent| *sent > sent_before))
            .await
            .expect("delivered within 30 s")
            .expect("the mailbox is alive");
        self.mail_to(to).await
    }

    /// The development mailbox's messages to `to`, newest first, as its JSON.
    pub async fn mail_to(&self, to: &str) -> serde_json::Value {
        reqwest::Client::new()
            .get(format!("{}/dev/mailbox?to={to}", self.base_url))
            .header("accept", "application/json")
            .send()
            .await
            .expect("mailbox answers")
            .json()
            .await
            .expect("JSON")
    }
}

/// Keeps the `Set-Cookie`s of a response in a jar, as a browser would (`Max-Age=0` removes).
pub fn keep_cookies(jar: &mut BTreeMap<String, String>, headers: &reqwest::header::HeaderMap) {
    for line in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
        if let Some((name, value)) = line.split(';').next().unwrap_or_default().split_once('=') {
            if line.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }
}

/// The jar as one `Cookie` header value.
pub fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub use xtask::tasks::{require, skip_or_fail};

/// Runs each flow (an `async fn(TestApp)` beside the call) as a test on every backend: modules
/// `sqlite`, `postgres` and `mysql` with one test per flow, each on a fresh app whose settings
/// `configure` (a path or closure, seen from inside those modules) adjusts.
#[macro_export]
macro_rules! flows_on_every_backend {
    ($configure:expr; $($flow:ident),+ $(,)?) => {
        $crate::flows_on_every_backend!(@on sqlite, Sqlite, $configure; $($flow),+);
        $crate::flows_on_every_backend!(@on postgres, Postgres, $configure; $($flow),+);
        $crate::flows_on_every_backend!(@on mysql, MySql, $configure; $($flow),+);
    };
    (@on $module:ident, $dialect:ident, $configure:expr; $($flow:ident),+) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $flow() {
                    let dialect = adapters::database::Dialect::$dialect;
                    let Some(app) = $crate::TestApp::spawn_on_with(dialect, $configure).await else { return };
                    super::$flow(app).await;
                }
            )+
        }
    };
}
