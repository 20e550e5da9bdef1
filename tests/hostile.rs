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

#[tokio::test]
async fn https_deployments_send_hsts_on_every_response_http_ones_do_not() {
    let secure = TestApp::spawn_with(|s| s.server.base_url = "https://auth.example.test".to_owned()).await;
    let plain = TestApp::spawn().await;
    let quiet = TestApp::spawn_with(|s| {
        s.server.base_url = "https://auth.example.test".to_owned();
        s.server.hsts_max_age = 0;
    })
    .await;

    for path in ["/signin", "/nope", "/api/auth/session"] {
        assert_eq!(secure.get(path).await.header("strict-transport-security"), "max-age=31536000", "{path}");
        assert_eq!(plain.get(path).await.header("strict-transport-security"), "", "{path}");
        assert_eq!(quiet.get(path).await.header("strict-transport-security"), "", "{path}");
    }
}

#[tokio::test]
async fn a_cross_site_post_is_refused_even_with_a_valid_token() {
    let app = TestApp::spawn().await;
    let token = app.csrf_token().await;
    let post = |origin: Option<&'static str>, fetch_site: Option<&'static str>| {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("email", "x@example.com"), ("csrfToken", token.as_str())])
            .finish();
        let mut request = app
            .client
            .post("/api/auth/signin/email")
            .header(
                "cookie",
                app.cookies.lock().expect("jar").iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; "),
            )
            .content_type("application/x-www-form-urlencoded")
            .header("content-length", body.len())
            .body(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(site) = fetch_site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };

    let cases = [
        (Some("https://evil.example"), None, StatusCode::FORBIDDEN),
        (Some("null"), Some("cross-site"), StatusCode::FORBIDDEN),
        // What Chromium sends for our own forms, whose pages have `Referrer-Policy: no-referrer`.
        (Some("null"), Some("same-origin"), StatusCode::SEE_OTHER),
        (Some("http://127.0.0.1:3000.evil.example"), None, StatusCode::FORBIDDEN),
        (None, Some("cross-site"), StatusCode::FORBIDDEN),
        (None, Some("same-site"), StatusCode::FORBIDDEN),
        (Some("http://127.0.0.1:3000"), Some("same-origin"), StatusCode::SEE_OTHER),
        (None, Some("none"), StatusCode::SEE_OTHER),
        (None, None, StatusCode::SEE_OTHER),
    ];
    for (origin, fetch_site, expected) in cases {
        let reply = post(origin, fetch_site).await;
        assert_eq!(reply.0.status(), expected, "Origin {origin:?}, Sec-Fetch-Site {fetch_site:?}");
    }
}
