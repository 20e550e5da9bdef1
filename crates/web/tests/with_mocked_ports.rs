//! The web layer against mocked ports: what it does when the ports fail, and what exists only
//! with the development mailer. The happy paths run over the real wiring in `tests/`.

mod support;

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use domain::{LinkPolicy, ServerSecret, SessionPolicy};
use poem::http::StatusCode;
use poem::test::TestClient;
use ports::clock::MockClock;
use ports::outbox::MockDeliveryQueue;
use ports::stores::{MockLinkStore, MockSessionStore, MockStoreHealth, MockUserStore};
use ports::{SignIn, SignInSettings};
use url::Url;
use web::AppState;

#[derive(Default)]
struct Mocks {
    links: MockLinkStore,
    sessions: MockSessionStore,
    delivery: MockDeliveryQueue,
    health: MockStoreHealth,
}

fn app(mocks: Mocks) -> TestClient<impl poem::Endpoint> {
    let secret = ServerSecret::new(*b"web-test-secret-web-test-secret!");
    let mut clock = MockClock::new();
    clock.expect_now().returning(Utc::now);
    let clock: Arc<dyn ports::Clock> = Arc::new(clock);
    // Refusals are recorded on their own; the tests here do not look at them.
    let mut audit = ports::audit::MockAuditLog::new();
    audit.expect_record().returning(|_| Ok(()));
    let sessions = Arc::new(ports::Sessions::new(
        Arc::new(mocks.sessions),
        Arc::new(audit),
        Arc::clone(&clock),
        ports::SessionSettings { policy: SessionPolicy::new(86_400, 3_600), recent_sign_in: TimeDelta::minutes(10) },
    ));
    let sign_in = SignIn::new(
        Arc::new(mocks.links),
        Arc::new(MockUserStore::new()),
        Arc::clone(&sessions),
        Arc::new(mocks.delivery),
        Arc::new(ports::rate_limit::MockRateLimiter::new()),
        clock,
        SignInSettings {
            secrets: domain::SecretRing::single(secret.clone()),
            link_policy: LinkPolicy::new(600),
            callback_endpoint: Url::parse("http://127.0.0.1:3000/api/auth/callback/email").expect("valid"),
            confirm_address_endpoint: Url::parse("http://127.0.0.1:3000/account/email/confirm").expect("valid"),
            link_retention: TimeDelta::days(1),
            limits: ports::SignInLimits::default(),
            sign_up: ports::SignUpPolicy::Open,
            notify_address_change: true,
        },
    );
    TestClient::new(web::build_app(AppState {
        sign_in: Arc::new(sign_in),
        sessions,
        passwords: None,
        passkeys: None,
        oidc: None,
        health: vec![web::Dependency { name: "database", probe: Arc::new(mocks.health) }],
        mailbox: None,
        settings: support::web_settings("http://127.0.0.1:3000", secret),
        pages: web::render::Pages::builtin().expect("templates parse"),
    }))
}

const SESSION_COOKIE: &str = "magiclink.session-token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[tokio::test]
async fn the_dev_mailbox_does_not_exist_without_the_dev_mailer() {
    let client = app(Mocks::default());

    client.get("/dev/mailbox").send().await.assert_status(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_store_outage_is_a_500_with_a_fixed_message_never_signed_out() {
    let mut mocks = Mocks::default();
    mocks.sessions.expect_find().returning(|_| Err(anyhow::anyhow!("database is locked: secret detail")));
    let client = app(mocks);

    let page = client.get("/").header("cookie", SESSION_COOKIE).send().await;
    page.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    let body = page.0.into_body().into_string().await.expect("text");
    assert!(body.contains("Something went wrong on our side") && !body.contains("secret detail"), "{body}");

    let json = client.get("/api/auth/session").header("cookie", SESSION_COOKIE).send().await;
    json.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    json.assert_content_type("application/problem+json");
}

#[tokio::test]
async fn a_storage_failure_while_queueing_a_link_is_a_500_and_wakes_no_worker() {
    let mut mocks = Mocks::default();
    mocks.links.expect_insert_with_email().returning(|_, _, _| Err(anyhow::anyhow!("disk I/O error")));
    mocks.delivery.expect_lease_for_new().return_const(None);
    mocks.delivery.expect_hand_over().never();
    mocks.delivery.expect_wake().never();
    let client = app(mocks);
    let csrf = client.get("/api/auth/csrf").send().await;
    let cookie = csrf.0.headers().get("set-cookie").and_then(|v| v.to_str().ok()).expect("csrf cookie").to_owned();
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let token = csrf.0.into_body().into_json::<serde_json::Value>().await.expect("json")["csrfToken"]
        .as_str()
        .expect("token")
        .to_owned();

    let reply = client
        .post("/api/auth/signin/email")
        .header("cookie", pair)
        .header("accept", "application/json")
        .content_type("application/x-www-form-urlencoded")
        .body(format!("email=a%40example.com&csrfToken={token}"))
        .send()
        .await;

    reply.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    reply.assert_content_type("application/problem+json");
    let body = reply.0.into_body().into_string().await.expect("text");
    assert!(!body.contains("disk I/O error"), "internal detail leaked: {body}");
}

#[tokio::test]
async fn healthz_is_503_when_the_store_does_not_answer() {
    let mut mocks = Mocks::default();
    mocks.health.expect_ping().returning(|| Err(anyhow::anyhow!("unreachable")));

    app(mocks).get("/healthz").send().await.assert_status(StatusCode::SERVICE_UNAVAILABLE);
}
