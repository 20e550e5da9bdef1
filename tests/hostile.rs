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

#[tokio::test]
async fn look_alike_domains_are_one_account_when_they_fold_and_visibly_another_when_they_do_not() {
    let app = TestApp::spawn().await;

    app.sign_in("user@\u{ff45}\u{ff58}\u{ff41}\u{ff4d}\u{ff50}\u{ff4c}\u{ff45}.com", "/").await;
    let fullwidth = app.get_json("/api/auth/session").await.json();
    app.sign_in("user@example.com", "/").await;
    let ascii = app.get_json("/api/auth/session").await.json();
    app.sign_in("user@ex\u{0430}mple.com", "/").await;
    let cyrillic = app.get_json("/api/auth/session").await.json();
    let home = app.get("/").await;

    assert_eq!(fullwidth["user"]["email"], "user@example.com");
    assert_eq!(fullwidth["user"]["id"], ascii["user"]["id"], "fullwidth letters are the same account");
    assert_eq!(cyrillic["user"]["email"], "user@xn--exmple-4nf.com");
    assert_ne!(cyrillic["user"]["id"], ascii["user"]["id"], "another script is another account");
    assert!(home.body.contains("Signed in as <strong>user@xn--exmple-4nf.com</strong>"), "{}", home.body);
    let mail = app.get_json("/dev/mailbox?to=user@xn--exmple-4nf.com").await.json();
    assert_eq!(mail[0]["to"], "user@xn--exmple-4nf.com", "sent to the A-label");
}

async fn ask(app: &TestApp, email: &str) -> system_tests::Reply {
    let token = app.csrf_token().await;
    app.post_form("/api/auth/signin/email", &[("email", email), ("csrfToken", &token)], None).await
}

#[tokio::test]
async fn unicode_local_parts_need_the_setting_and_encoded_words_never_pass() {
    let strict = TestApp::spawn().await;
    let lenient = TestApp::spawn_with(|s| s.email.allow_unicode_local_part = true).await;
    let refused = ask(&strict, "\u{fc}ser@example.com").await;
    let accepted = ask(&lenient, "\u{fc}ser@example.com").await;
    let encoded = ask(&lenient, "=?utf-8?q?admin?=@example.com").await;

    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("may use only plain letters, digits"), "{}", refused.body);
    assert_eq!(accepted.status, StatusCode::SEE_OTHER);
    assert_eq!(encoded.status, StatusCode::BAD_REQUEST);
    assert!(encoded.body.contains("That is an encoded address"), "{}", encoded.body);
}

#[tokio::test]
async fn a_closed_sign_up_answers_refused_addresses_exactly_as_allowed_ones_and_sends_nothing() {
    let app = TestApp::spawn_with(|s| {
        s.sign_up.mode = xtask::settings::SignUpMode::Allowlist;
        s.sign_up.allowed_domains = vec!["Corp.Example".to_owned()];
    })
    .await;

    let allowed = app.request_link("staff@corp.example", "/").await;
    let refused = app.request_link("stranger@elsewhere.example", "/").await;
    let check_allowed = app.get("/check-your-email").await;

    assert_eq!(allowed.status, refused.status);
    assert_eq!(allowed.location(), refused.location());
    assert_eq!(allowed.body, refused.body);
    let cookie_names = |reply: &system_tests::Reply| -> Vec<String> {
        reply.header("set-cookie").lines().map(|l| l.split('=').next().unwrap_or_default().to_owned()).collect()
    };
    assert_eq!(cookie_names(&allowed), cookie_names(&refused), "the same cookies too");
    assert!(check_allowed.body.contains("s***@elsewhere.example"), "the page looks the same: {}", check_allowed.body);
    assert_eq!(app.deliver().await.sent, 1, "only the allowed address was sent a link");
    let mail = app.get_json("/dev/mailbox").await.json();
    assert_eq!(mail[0]["to"], "staff@corp.example");
}

#[tokio::test]
async fn existing_mode_sends_links_only_to_users_that_exist() {
    let app = TestApp::spawn_with(|s| s.sign_up.mode = xtask::settings::SignUpMode::Existing).await;
    app.database
        .users
        .add(&domain::EmailAddress::parse("member@example.com").expect("valid"), system_tests::test_start())
        .await
        .expect("added");

    app.request_link("nobody@example.com", "/").await;
    app.request_link("member@example.com", "/").await;

    assert_eq!(app.deliver().await.sent, 1);
    let link = app.latest_link("member@example.com").await;
    assert_eq!(app.get(&link).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "member@example.com");
}

#[tokio::test]
async fn a_json_body_naming_a_key_twice_is_refused_and_queues_nothing() {
    let app = TestApp::spawn().await;
    let token = app.csrf_token().await;
    let body = format!(
        r#"{{"email":"first@example.com","email":"second@example.com","csrfToken":"{token}","callbackUrl":"/"}}"#
    );

    for path in ["/api/auth/signin/email", "/api/auth/session"] {
        let reply = app.post_json_text(path, body.clone(), &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), "application/problem+json");
        assert_eq!(reply.json()["type"], "urn:magiclink:problem:bad-request");
    }
    let once = format!(r#"{{"email":"first@example.com","csrfToken":"{token}"}}"#);
    assert_eq!(app.post_json_text("/api/auth/signin/email", once, &[]).await.status, StatusCode::OK);
    assert_eq!(app.deliver().await.claimed, 1, "only the body without a repeated key asked for a link");
}
