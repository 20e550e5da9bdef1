//! Rate limits: the limiter contract run against a real Redis (the database stores run it in
//! the conformance suite), and the limits through the real server: 429 with `Retry-After`, no email queued,
//! the message on the page, and client addresses that cannot be spoofed.

use std::sync::Arc;
use std::time::Instant;

use chrono::TimeDelta;

use system_tests::{require, RunningServer, TestApp};
use xtask::settings::{RateLimitSettings, Settings};
use xtask::wiring::Parts;

#[tokio::test]
async fn the_redis_limiter_keeps_the_contract() {
    if require(&xtask::tasks::REDIS).is_none() {
        return;
    }
    let redis = adapters::redis::RedisRateLimiter::connect(
        "redis://127.0.0.1:6379",
        "redis://127.0.0.1:6379",
        adapters::redis::OnStoreError::Refuse,
    )
    .await
    .expect("Redis answers");

    system_tests::limiter_contract::check_limiter(Arc::new(redis)).await;
}

/// Limits as shipped, on top of the test settings (which turn them off).
fn default_limits(settings: &mut Settings) {
    settings.rate_limit = RateLimitSettings::default();
}

#[tokio::test]
async fn over_a_limit_people_see_the_form_with_the_wait_and_programs_a_problem() {
    let app = TestApp::spawn_with(default_limits).await;
    app.request_link("hurry@example.com", "/").await;
    let token = app.csrf_token().await;

    let page =
        app.post_form("/api/auth/signin/email", &[("email", "hurry@example.com"), ("csrfToken", &token)], None).await;
    let json = app
        .post_form(
            "/api/auth/signin/email",
            &[("email", "hurry@example.com"), ("csrfToken", &token)],
            Some("application/json"),
        )
        .await;

    assert_eq!(page.status, poem::http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(page.header("retry-after"), "60");
    assert!(page.body.contains("Too many sign-in emails for this address. Try again in 1 minute."), "{}", page.body);
    assert!(page.body.contains("value=\"hurry@example.com\""), "what was typed is kept");
    assert_eq!(json.json()["type"], "urn:magiclink:problem:rate-limited-address");
    assert_eq!(json.json()["retryAfter"], 60);
    assert_eq!(app.deliver().await.claimed, 1, "only the first link was queued");
}

#[tokio::test]
async fn tagged_and_dotted_variants_of_one_mailbox_share_its_limit() {
    let app = TestApp::spawn_with(default_limits).await;
    let token = app.csrf_token().await;
    let ask = |email: &'static str| {
        let token = token.clone();
        let app = &app;
        async move { app.post_form("/api/auth/signin/email", &[("email", email), ("csrfToken", &token)], None).await }
    };

    let first = ask("ada.lovelace+1@gmail.com").await;
    let tagged = ask("adalovelace+2@gmail.com").await;
    let dotted = ask("a.da.lovelace@gmail.com").await;
    let other = ask("grace@gmail.com").await;

    assert_eq!(first.status, poem::http::StatusCode::SEE_OTHER);
    assert_eq!(tagged.status, poem::http::StatusCode::TOO_MANY_REQUESTS, "one mailbox, one gap between links");
    assert_eq!(dotted.status, poem::http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(other.status, poem::http::StatusCode::SEE_OTHER);
    assert_eq!(app.deliver().await.claimed, 2);
}

#[tokio::test]
async fn limits_apply_the_same_to_addresses_with_and_without_an_account() {
    let app = TestApp::spawn_with(default_limits).await;
    app.sign_in("member@example.com", "/").await;
    app.clock.advance(TimeDelta::minutes(2));
    let token = app.csrf_token().await;
    let ask = |email: &'static str| {
        let token = token.clone();
        let app = &app;
        async move { app.post_form("/api/auth/signin/email", &[("email", email), ("csrfToken", &token)], None).await }
    };

    let (member_first, stranger_first) = (ask("member@example.com").await, ask("stranger@example.com").await);
    let (member_again, stranger_again) = (ask("member@example.com").await, ask("stranger@example.com").await);

    assert_eq!(member_first.status, stranger_first.status);
    assert_eq!(member_again.status, poem::http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(member_again.status, stranger_again.status);
    assert_eq!(member_again.header("retry-after"), stranger_again.header("retry-after"));
    assert_eq!(member_again.body.replace("member", "X"), stranger_again.body.replace("stranger", "X"));
}

/// Sends `count` sign-in requests over real HTTP from one connection pool (one client) and
/// returns (admitted, refused with 429 and Retry-After).
async fn flood(server: &RunningServer, addresses: impl Fn(usize) -> String, count: usize) -> (usize, usize) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let csrf = http.get(format!("{}/api/auth/csrf", server.base_url)).send().await.expect("csrf");
    let cookie = csrf.headers()["set-cookie"].to_str().expect("text").split(';').next().unwrap_or_default().to_owned();
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    let (mut admitted, mut refused) = (0, 0);
    for i in 0..count {
        let reply = http
            .post(format!("{}/api/auth/signin/email", server.base_url))
            .header("cookie", &cookie)
            .header("accept", "application/json")
            .form(&[("email", addresses(i).as_str()), ("csrfToken", token.as_str())])
            .send()
            .await
            .expect("answers");
        match reply.status().as_u16() {
            200 => admitted += 1,
            429 if reply.headers().contains_key("retry-after") => refused += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    (admitted, refused)
}

#[tokio::test]
async fn two_hundred_requests_for_one_address_or_from_one_client_queue_a_handful_of_emails() {
    let one_address = RunningServer::start_with(default_limits, Parts::default()).await;
    let one_client = RunningServer::start_with(default_limits, Parts::default()).await;

    let started = Instant::now();
    let same_address = flood(&one_address, |_| "target@example.com".to_owned(), 200).await;
    let many_addresses = flood(&one_client, |i| format!("user{i}@example.com"), 200).await;
    let elapsed = started.elapsed();

    println!(
        "200 requests for one address: {} queued, {} answered 429; 200 addresses from one client: {} queued, {} answered 429; {:.2} s in all",
        same_address.0, same_address.1, many_addresses.0, many_addresses.1, elapsed.as_secs_f64()
    );
    assert_eq!(same_address, (1, 199), "one link per minute per address");
    assert_eq!(many_addresses, (30, 170), "30 link requests per hour per client");
}

#[tokio::test]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    let one_per_client = |settings: &mut Settings, trusted: Vec<String>| {
        settings.rate_limit.client_per_hour = 1;
        settings.server.trusted_proxies = trusted;
    };
    let direct = RunningServer::start_with(|s| one_per_client(s, Vec::new()), Parts::default()).await;
    let proxied =
        RunningServer::start_with(|s| one_per_client(s, vec!["127.0.0.1".to_owned()]), Parts::default()).await;
    let http = reqwest::Client::new();
    let ask = |server: &RunningServer, claimed: &'static str, email: &'static str| {
        let request = http
            .post(format!("{}/api/auth/signin/email", server.base_url))
            .header("x-forwarded-for", claimed)
            .header("accept", "application/json");
        let base = server.base_url.clone();
        let http = http.clone();
        async move {
            let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf");
            let cookie =
                csrf.headers()["set-cookie"].to_str().expect("text").split(';').next().unwrap_or_default().to_owned();
            let token =
                csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("t").to_owned();
            request
                .header("cookie", cookie)
                .form(&[("email", email), ("csrfToken", &token)])
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }
    };

    // From an untrusted peer the header is a lie that changes nothing: one client, one request.
    assert_eq!(ask(&direct, "198.51.100.1", "a@example.com").await, 200);
    assert_eq!(ask(&direct, "198.51.100.2", "b@example.com").await, 429, "a spoofed header is ignored");
    // Behind a trusted proxy, each forwarded client has its own count.
    assert_eq!(ask(&proxied, "198.51.100.1", "a@example.com").await, 200);
    assert_eq!(ask(&proxied, "198.51.100.2", "b@example.com").await, 200);
    assert_eq!(ask(&proxied, "198.51.100.1", "c@example.com").await, 429);
}

#[tokio::test]
async fn failed_sign_ins_from_one_client_are_limited() {
    let server = RunningServer::start_with(|s| s.rate_limit.failed_redemptions_per_hour = 2, Parts::default()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let csrf = http.get(format!("{}/api/auth/csrf", server.base_url)).send().await.expect("csrf");
    let cookie = csrf.headers()["set-cookie"].to_str().expect("text").split(';').next().unwrap_or_default().to_owned();
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    let guess = "A".repeat(43);

    let mut answers = Vec::new();
    for _ in 0..3 {
        let reply = http
            .post(format!("{}/api/auth/callback/email", server.base_url))
            .header("cookie", &cookie)
            .form(&[("token", guess.as_str()), ("email", "x@example.com"), ("csrfToken", token.as_str())])
            .send()
            .await
            .expect("answers");
        let status = reply.status().as_u16();
        let location = reply.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        answers.push((status, location, reply.text().await.expect("text")));
    }

    assert_eq!((answers[0].0, answers[0].1.as_str()), (303, "/auth-error?error=Verification&reason=invalid"));
    assert_eq!(answers[1].0, 303);
    assert_eq!(answers[2].0, 429, "the third guess in an hour is not even tried");
    assert!(answers[2].2.contains("Too many failed sign-in attempts from your network."), "{}", answers[2].2);
}
