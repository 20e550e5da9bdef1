//! Hostile input through the real wiring: oversized fields, and what the answers echo back.
//! (Connection-level limits, which need a real socket and a process to measure, are in
//! `xtask/tests/limits.rs`.)

use poem::http::StatusCode;
use system_tests::TestApp;

#[tokio::test]
async fn an_oversized_callback_url_is_not_carried_into_the_link() {
    let app = TestApp::spawn().await;
    let long_callback = format!("/{}", "a".repeat(10_000));

    app.request_link("long@example.com", &long_callback).await;
    let link = app.latest_link("long@example.com").await;

    assert!(link.len() < 300, "the link is {} bytes", link.len());
    assert!(link.contains("callbackUrl=%2F&"), "{link}");
}

#[tokio::test]
async fn a_refused_address_is_echoed_only_as_a_short_excerpt() {
    let app = TestApp::spawn().await;
    let token = app.csrf_token().await;
    let huge = format!("{}@example.com", "x".repeat(12_000));

    let page = app.post_form("/api/auth/signin/email", &[("email", &huge), ("csrfToken", &token)], None).await;

    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.len() < 8_000, "the page is {} bytes", page.body.len());
    assert!(page.body.contains(&format!("value=\"{}…\"", "x".repeat(320))), "an excerpt ending in an ellipsis");
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_and_queues_nothing() {
    let app = TestApp::spawn_with(|s| s.server.max_body_bytes = 4096).await;
    let token = app.csrf_token().await;
    let padding = "p".repeat(5000);

    let json = app
        .post_form(
            "/api/auth/signin/email",
            &[("email", "big@example.com"), ("csrfToken", &token), ("pad", &padding)],
            Some("application/json"),
        )
        .await;
    let page = app
        .post_form(
            "/api/auth/signin/email",
            &[("email", "big@example.com"), ("csrfToken", &token), ("pad", &padding)],
            None,
        )
        .await;

    assert_eq!(json.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json.json()["type"], "urn:magiclink:problem:payload-too-large");
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(page.body.contains("Request too large") && page.body.contains("<meta name=\"viewport\""));
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(app.deliver().await.claimed, 0, "nothing was queued");
}
