//! The workloads: closed loops of simulated clients, each sending its next request as soon as
//! the previous answer is read and checked, and the latencies they record.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::Method;

use crate::http::{Connection, CookieJar};

/// Latencies recorded by the clients of one phase, per step, in microseconds.
#[derive(Default)]
pub struct Recorded {
    /// Completed units of work (requests, or whole sign-in flows).
    pub completed: u64,
    /// Latency per step name ("flow" for a whole sign-in).
    pub steps: BTreeMap<&'static str, Vec<u32>>,
    /// Answers that failed their check, and the first such failure.
    pub failures: u64,
    /// The first failure, to print.
    pub first_failure: Option<String>,
    /// Sign-ins whose link was in the mailbox at the first look.
    pub link_at_first_poll: u64,
}

impl Recorded {
    fn record(&mut self, step: &'static str, took: Duration) {
        let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
        self.steps.entry(step).or_default().push(micros);
    }

    fn fail(&mut self, error: &anyhow::Error) {
        self.failures += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(format!("{error:#}"));
        }
    }

    fn merge(&mut self, other: Recorded) {
        self.completed += other.completed;
        self.failures += other.failures;
        self.link_at_first_poll += other.link_at_first_poll;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
        for (step, mut latencies) in other.steps {
            self.steps.entry(step).or_default().append(&mut latencies);
        }
    }

    /// The `p`-th percentile (0..=100) of a step, in milliseconds.
    pub fn percentile(&mut self, step: &str, p: f64) -> Option<f64> {
        let latencies = self.steps.get_mut(step)?;
        if latencies.is_empty() {
            return None;
        }
        latencies.sort_unstable();
        let rank = ((p / 100.0) * (latencies.len() - 1) as f64).round() as usize;
        Some(f64::from(latencies[rank.min(latencies.len() - 1)]) / 1000.0)
    }
}

/// Runs `clients` copies of `client` until `duration` has passed, and merges what they
/// recorded. Each client gets its index and the deadline.
pub async fn closed_loop<F, Fut>(clients: usize, duration: Duration, client: F) -> anyhow::Result<(Recorded, Duration)>
where
    F: Fn(usize, Instant) -> Fut,
    Fut: Future<Output = anyhow::Result<Recorded>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..clients).map(|i| tokio::spawn(client(i, deadline))).collect();
    let mut all = Recorded::default();
    for task in tasks {
        all.merge(task.await.context("a client panicked")??);
    }
    Ok((all, started.elapsed()))
}

/// One read request and what its answer must contain.
#[derive(Clone)]
pub struct Read {
    /// Path and query.
    pub path: String,
    /// Headers to send (the session cookie).
    pub headers: Vec<(String, String)>,
    /// Text the body must contain.
    pub expected: String,
    /// Recorded under this step as well as "request" (e.g. "extending"), when set.
    pub also: Option<&'static str>,
}

/// One simulated client reading sessions: each of `requests` in turn, until `deadline`.
pub async fn reads(server: SocketAddr, requests: Vec<Read>, deadline: Instant) -> anyhow::Result<Recorded> {
    let mut recorded = Recorded::default();
    let mut connection = Connection::open(server).await?;
    for Read { path, headers, expected, also } in requests.iter().cycle() {
        if Instant::now() >= deadline {
            break;
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let started = Instant::now();
        let outcome = connection.send(Method::GET, path, &headers, None).await.and_then(|answer| {
            anyhow::ensure!(
                answer.status == 200 && answer.text().contains(expected.as_str()),
                "GET {path}: {} {}",
                answer.status,
                answer.text()
            );
            Ok(())
        });
        match outcome {
            Ok(()) => {
                let took = started.elapsed();
                recorded.record("request", took);
                if let Some(step) = also {
                    recorded.record(step, took);
                }
                recorded.completed += 1;
            }
            Err(error) => {
                recorded.fail(&error);
                connection = Connection::open(server).await?;
            }
        }
    }
    Ok(recorded)
}

/// Where the service's routes are, as the sign-in flow needs them.
#[derive(Clone)]
pub struct Routes {
    /// The service's address.
    pub server: SocketAddr,
    /// Its public origin (`http://localhost:PORT`: passkeys need a host name), which the
    /// same-origin check of every state change compares `Origin` with.
    pub origin: String,
    /// `/api/auth` by default.
    pub auth_base: String,
    /// The session cookie's name.
    pub session_cookie: String,
}

/// One simulated client signing in again and again until `deadline`, each time as a new person
/// in a new browser (a fresh cookie jar): CSRF token, sign-in POST, the link from the
/// development mailbox (asked again until it is there), the link opened, the session read.
pub async fn sign_ins(routes: Routes, client: usize, deadline: Instant) -> anyhow::Result<Recorded> {
    let mut recorded = Recorded::default();
    let mut connection = Connection::open(routes.server).await?;
    while Instant::now() < deadline {
        // A new address for every sign-in of the run, so no per-address limit is ever reached.
        let flow = NEXT_FLOW.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let address = format!("c{client}-{flow}@bench.example.com");
        let started = Instant::now();
        match sign_in(&routes, &mut connection, &address, &mut recorded).await {
            Ok(_) => {
                recorded.record("flow", started.elapsed());
                recorded.completed += 1;
            }
            Err(error) => {
                recorded.fail(&error.context(format!("signing in {address}")));
                connection = Connection::open(routes.server).await?;
            }
        }
    }
    Ok(recorded)
}

/// Numbers the sign-ins of a run.
static NEXT_FLOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long a sign-in waits for its link before the flow counts as failed.
const LINK_PATIENCE: Duration = Duration::from_secs(10);

/// A whole link sign-in of `address` in a new browser; returns that browser's cookies.
async fn sign_in(
    routes: &Routes,
    connection: &mut Connection,
    address: &str,
    recorded: &mut Recorded,
) -> anyhow::Result<CookieJar> {
    let base = &routes.auth_base;
    let origin = routes.origin.clone();
    let mut jar = CookieJar::default();
    let json = ("accept", "application/json");

    let step = Instant::now();
    let csrf = csrf_token(routes, connection, &mut jar).await?;
    recorded.record("1 csrf", step.elapsed());

    let step = Instant::now();
    let form = format!("email={}&csrfToken={csrf}&callbackUrl=%2F", address.replace('@', "%40"));
    let cookies = jar.header();
    let headers = [
        json,
        ("content-type", "application/x-www-form-urlencoded"),
        ("origin", origin.as_str()),
        ("cookie", cookies.as_str()),
    ];
    let answer = connection.send(Method::POST, &format!("{base}/signin/email"), &headers, Some(form)).await?;
    anyhow::ensure!(answer.status == 200, "sign-in POST: {} {}", answer.status, answer.text());
    anyhow::ensure!(answer.text().contains("\"url\""), "sign-in POST: {}", answer.text());
    jar.absorb(&answer.headers);
    recorded.record("2 sign-in POST", step.elapsed());

    let asked = Instant::now();
    let mailbox = format!("/dev/mailbox?to={}&limit=1", address.replace('@', "%40"));
    let mut polls = 0;
    let link = loop {
        let poll_started = Instant::now();
        let answer = connection.send(Method::GET, &mailbox, &[json], None).await?;
        anyhow::ensure!(answer.status == 200, "mailbox: {} {}", answer.status, answer.text());
        polls += 1;
        let messages: serde_json::Value = serde_json::from_slice(&answer.body).context("mailbox: not JSON")?;
        if let Some(link) = messages[0]["link"].as_str() {
            recorded.record("link wait", poll_started - asked);
            break link.to_owned();
        }
        anyhow::ensure!(asked.elapsed() < LINK_PATIENCE, "no link in the mailbox after {polls} looks");
    };
    if polls == 1 {
        recorded.link_at_first_poll += 1;
    }
    recorded.record("3 link from mailbox", asked.elapsed());

    let step = Instant::now();
    let url = url::Url::parse(&link).context("the link is not a URL")?;
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let cookies = jar.header();
    let answer = connection.send(Method::GET, &path, &[json, ("cookie", cookies.as_str())], None).await?;
    jar.absorb(&answer.headers);
    anyhow::ensure!(
        answer.status.is_success() || answer.status.is_redirection(),
        "open link: {} {}",
        answer.status,
        answer.text()
    );
    anyhow::ensure!(jar.has(&routes.session_cookie), "open link: no session cookie ({})", answer.text());
    recorded.record("4 open link", step.elapsed());

    let step = Instant::now();
    let cookies = jar.header();
    let answer =
        connection.send(Method::GET, &format!("{base}/session"), &[json, ("cookie", cookies.as_str())], None).await?;
    anyhow::ensure!(
        answer.status == 200 && answer.text().contains(&format!("\"email\":\"{address}\"")),
        "session: {} {}",
        answer.status,
        answer.text()
    );
    recorded.record("5 session", step.elapsed());
    Ok(jar)
}

/// A CSRF token for the browser whose cookies are `jar` (setting its cookie when it has none).
async fn csrf_token(routes: &Routes, connection: &mut Connection, jar: &mut CookieJar) -> anyhow::Result<String> {
    let cookies = jar.header();
    let headers = [("accept", "application/json"), ("cookie", cookies.as_str())];
    let answer = connection.send(Method::GET, &format!("{}/csrf", routes.auth_base), &headers, None).await?;
    anyhow::ensure!(answer.status == 200, "csrf: {} {}", answer.status, answer.text());
    jar.absorb(&answer.headers);
    let body: serde_json::Value = serde_json::from_slice(&answer.body).context("csrf: not JSON")?;
    Ok(body["csrfToken"].as_str().context("csrf: no csrfToken")?.to_owned())
}

/// A JSON POST of a passkey ceremony, as the pages' script sends it; returns the JSON answer.
async fn ceremony_post(
    routes: &Routes,
    connection: &mut Connection,
    jar: &mut CookieJar,
    csrf: &str,
    path: &str,
    body: Option<serde_json::Value>,
    expected: u16,
) -> anyhow::Result<serde_json::Value> {
    let cookies = jar.header();
    let headers = [
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("origin", routes.origin.as_str()),
        ("x-csrf-token", csrf),
        ("cookie", cookies.as_str()),
    ];
    let path = format!("{}{path}", routes.auth_base);
    let answer = connection.send(Method::POST, &path, &headers, body.map(|body| body.to_string())).await?;
    anyhow::ensure!(answer.status == expected, "POST {path}: {} {}", answer.status, answer.text());
    jar.absorb(&answer.headers);
    serde_json::from_slice(&answer.body).with_context(|| format!("POST {path}: not JSON"))
}

/// One simulated person coming back with a passkey until `deadline`: signed in once by link,
/// they add a passkey (the software authenticator of the system tests), then sign in again and
/// again in a new browser each time: CSRF token, sign-in options, the authenticator's
/// assertion posted, the session read. No email.
pub async fn passkey_sign_ins(routes: Routes, client: usize, deadline: Instant) -> anyhow::Result<Recorded> {
    let mut recorded = Recorded::default();
    let mut connection = Connection::open(routes.server).await?;
    let address = format!("passkey-{client}@bench.example.com");
    let mut setup = Recorded::default();
    let mut jar = sign_in(&routes, &mut connection, &address, &mut setup).await.context("the first link sign-in")?;
    let csrf = csrf_token(&routes, &mut connection, &mut jar).await?;
    let mut authenticator = crate::authenticator::SoftAuthenticator::new(client as u8 + 1, &routes.origin);
    authenticator.counter = 1;
    let options = ceremony_post(&routes, &mut connection, &mut jar, &csrf, "/passkeys/registration", None, 200).await?;
    let credential = serde_json::json!({ "credential": authenticator.register(&options) });
    ceremony_post(&routes, &mut connection, &mut jar, &csrf, "/passkeys", Some(credential), 201).await?;
    while Instant::now() < deadline {
        let started = Instant::now();
        match passkey_sign_in(&routes, &mut connection, &address, &mut authenticator, &mut recorded).await {
            Ok(()) => {
                recorded.record("flow", started.elapsed());
                recorded.completed += 1;
            }
            Err(error) => {
                recorded.fail(&error.context(format!("signing in {address} with a passkey")));
                connection = Connection::open(routes.server).await?;
            }
        }
    }
    Ok(recorded)
}

async fn passkey_sign_in(
    routes: &Routes,
    connection: &mut Connection,
    address: &str,
    authenticator: &mut crate::authenticator::SoftAuthenticator,
    recorded: &mut Recorded,
) -> anyhow::Result<()> {
    let mut jar = CookieJar::default();
    let step = Instant::now();
    let csrf = csrf_token(routes, connection, &mut jar).await?;
    recorded.record("1 csrf", step.elapsed());

    let step = Instant::now();
    let options = ceremony_post(routes, connection, &mut jar, &csrf, "/signin/passkey", None, 200).await?;
    recorded.record("2 sign-in options", step.elapsed());

    let step = Instant::now();
    let assertion = serde_json::json!({ "credential": authenticator.assert(&options), "callbackUrl": "/" });
    let answer = ceremony_post(routes, connection, &mut jar, &csrf, "/callback/passkey", Some(assertion), 200).await?;
    anyhow::ensure!(answer["url"].is_string(), "callback: {answer}");
    anyhow::ensure!(jar.has(&routes.session_cookie), "callback: no session cookie");
    recorded.record("3 assertion", step.elapsed());

    let step = Instant::now();
    let cookies = jar.header();
    let headers = [("accept", "application/json"), ("cookie", cookies.as_str())];
    let answer = connection.send(Method::GET, &format!("{}/session", routes.auth_base), &headers, None).await?;
    anyhow::ensure!(
        answer.status == 200 && answer.text().contains(&format!("\"email\":\"{address}\"")),
        "session: {} {}",
        answer.status,
        answer.text()
    );
    recorded.record("4 session", step.elapsed());
    Ok(())
}

/// One simulated attacker guessing passwords until `deadline`: a CSRF token once, then wrong
/// passwords for seeded addresses as fast as the answers come (each answer must be the 401
/// `password-rejected` problem). Each attempt makes the service verify an argon2id hash.
pub async fn password_guesses(routes: Routes, client: usize, deadline: Instant) -> anyhow::Result<Recorded> {
    let mut recorded = Recorded::default();
    let mut connection = Connection::open(routes.server).await?;
    let base = &routes.auth_base;
    let origin = routes.origin.clone();
    let json = ("accept", "application/json");
    let mut jar = CookieJar::default();
    let csrf = csrf_token(&routes, &mut connection, &mut jar).await?;
    let cookies = jar.header();
    let headers =
        [json, ("content-type", "application/json"), ("origin", origin.as_str()), ("cookie", cookies.as_str())];
    let path = format!("{base}/callback/password");
    let mut guess = 0_u64;
    while Instant::now() < deadline {
        guess += 1;
        let body = serde_json::json!({
            "email": format!("seed-{}@seed.example.com", (client as u64 * 7919 + guess) % 1000),
            "password": format!("guess number {guess} from client {client}"),
            "csrfToken": csrf,
        })
        .to_string();
        let started = Instant::now();
        let outcome = connection.send(Method::POST, &path, &headers, Some(body)).await.and_then(|answer| {
            anyhow::ensure!(
                answer.status == 401 && answer.text().contains("password-rejected"),
                "POST {path}: {} {}",
                answer.status,
                answer.text()
            );
            Ok(())
        });
        match outcome {
            Ok(()) => {
                recorded.record("request", started.elapsed());
                recorded.completed += 1;
            }
            Err(error) => {
                recorded.fail(&error);
                connection = Connection::open(routes.server).await?;
            }
        }
    }
    Ok(recorded)
}

/// A registered OpenID Connect client the OIDC phase signs in to.
#[derive(Clone)]
pub struct OidcClient {
    /// Its client id.
    pub id: String,
    /// Its secret (`client_secret_basic`).
    pub secret: String,
    /// Its registered redirect URI.
    pub redirect_uri: String,
}

/// One simulated app signing its person in through magiclink again and again until `deadline`:
/// the person signed in to magiclink once (by link); then each flow is what an app's sign-in
/// costs magiclink when the person already has a session: the authorization request (a code,
/// PKCE S256), the token request (code, verifier, client secret: an ID token signed RS256),
/// and userinfo with the access token.
pub async fn oidc_sign_ins(
    routes: Routes,
    app: OidcClient,
    client: usize,
    deadline: Instant,
) -> anyhow::Result<Recorded> {
    let mut recorded = Recorded::default();
    let mut connection = Connection::open(routes.server).await?;
    // A new address for each phase's person: the 1- and 16-client phases follow each other
    // within the per-address minimum gap between links.
    let address =
        format!("oidc-{client}-{}@bench.example.com", NEXT_FLOW.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut setup = Recorded::default();
    let jar = sign_in(&routes, &mut connection, &address, &mut setup).await.context("the first link sign-in")?;
    while Instant::now() < deadline {
        let started = Instant::now();
        match oidc_sign_in(&routes, &app, &mut connection, &jar, &address, &mut recorded).await {
            Ok(()) => {
                recorded.record("flow", started.elapsed());
                recorded.completed += 1;
            }
            Err(error) => {
                recorded.fail(&error.context(format!("signing {address} in to an app")));
                connection = Connection::open(routes.server).await?;
            }
        }
    }
    Ok(recorded)
}

/// RFC 7636's example verifier and its challenge: the benchmark measures the server, and a
/// fixed pair exercises the same S256 check as a fresh one.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

async fn oidc_sign_in(
    routes: &Routes,
    app: &OidcClient,
    connection: &mut Connection,
    jar: &CookieJar,
    address: &str,
    recorded: &mut Recorded,
) -> anyhow::Result<()> {
    let base = &routes.auth_base;
    let step = Instant::now();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("client_id", app.id.as_str()),
            ("redirect_uri", app.redirect_uri.as_str()),
            ("response_type", "code"),
            ("scope", "openid email"),
            ("state", "bench"),
            ("nonce", "bench"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    let cookies = jar.header();
    let answer = connection
        .send(Method::GET, &format!("{base}/oidc/authorize?{query}"), &[("cookie", cookies.as_str())], None)
        .await?;
    anyhow::ensure!(answer.status == 303, "authorize: {} {}", answer.status, answer.text());
    let location = answer.headers.get("location").and_then(|v| v.to_str().ok()).context("authorize: no location")?;
    let location = url::Url::parse(location).context("authorize: the redirect is not a URL")?;
    let code = location.query_pairs().find(|(name, _)| name == "code").map(|(_, code)| code.into_owned());
    let code = code.with_context(|| format!("authorize: no code in {location}"))?;
    recorded.record("1 authorize", step.elapsed());

    let step = Instant::now();
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", app.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .finish();
    let basic = {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", app.id, app.secret)))
    };
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("authorization", basic.as_str())];
    let answer = connection.send(Method::POST, &format!("{base}/oidc/token"), &headers, Some(form)).await?;
    anyhow::ensure!(answer.status == 200, "token: {} {}", answer.status, answer.text());
    let tokens: serde_json::Value = serde_json::from_slice(&answer.body).context("token: not JSON")?;
    anyhow::ensure!(tokens["id_token"].as_str().is_some_and(|t| t.split('.').count() == 3), "token: no ID token");
    let access = tokens["access_token"].as_str().context("token: no access token")?.to_owned();
    recorded.record("2 token", step.elapsed());

    let step = Instant::now();
    let bearer = format!("Bearer {access}");
    let answer = connection
        .send(Method::GET, &format!("{base}/oidc/userinfo"), &[("authorization", bearer.as_str())], None)
        .await?;
    anyhow::ensure!(
        answer.status == 200 && answer.text().contains(&format!("\"email\":\"{address}\"")),
        "userinfo: {} {}",
        answer.status,
        answer.text()
    );
    recorded.record("3 userinfo", step.elapsed());
    Ok(())
}
