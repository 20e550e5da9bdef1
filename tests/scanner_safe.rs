//! Scanner-safe links, login-CSRF protection and the cross-device code, through the real
//! wiring. A "browser" is the app's cookie jar; another browser, or a mail scanner, is the same
//! app with another jar.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use system_tests::{Reply, TestApp};

/// The value of a hidden form field on a page.
fn field<'a>(page: &'a Reply, name: &str) -> &'a str {
    let marker = format!("name=\"{name}\" value=\"");
    page.body
        .split(&marker)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} field in {}", page.body))
}

/// Undoes the HTML escaping Tera applies to attribute values.
fn unescape(value: &str) -> String {
    value.replace("&#x2F;", "/").replace("&amp;", "&").replace("&#x3D;", "=").replace("&quot;", "\"")
}

/// The newest message's link state and code, from the development mailbox.
async fn newest_mail(app: &TestApp, to: &str) -> (String, String) {
    app.deliver().await;
    let mail = app.get_json(&format!("/dev/mailbox?to={to}")).await.json();
    (mail[0]["state"].as_str().expect("a state").to_owned(), mail[0]["code"].as_str().expect("a code").to_owned())
}

#[tokio::test]
async fn a_scanner_fetching_the_link_changes_nothing_and_the_browser_that_asked_still_signs_in() {
    let app = TestApp::spawn().await;
    app.request_link("scanned@example.com", "/inbox").await;
    let link = app.latest_link("scanned@example.com").await;
    let browser = app.swap_cookies(BTreeMap::new());

    // Microsoft Safe Links and friends: GET and HEAD, no cookies, again and again.
    for _ in 0..3 {
        let fetched = app.get(&link).await;
        assert_eq!(fetched.status, StatusCode::OK, "a confirm page, not a redirect to follow");
        assert!(fetched.body.contains("Sign in as s***@example.com on this device?"), "{}", fetched.body);
        assert!(fetched.set_cookie("magiclink.session-token").is_empty());
        assert_eq!(app.head(&link).await.status, StatusCode::OK);
        app.swap_cookies(BTreeMap::new());
    }
    assert_eq!(newest_mail(&app, "scanned@example.com").await.0, "unused", "so no session was opened with it");

    app.swap_cookies(browser);
    let opened = app.get(&link).await;

    assert_eq!(opened.status, StatusCode::SEE_OTHER, "one click in the browser that asked");
    assert_eq!(opened.location(), "/inbox");
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "scanned@example.com");
    assert!(opened.set_cookie("magiclink.session-token.pending").contains("Max-Age=0"), "the pending cookie goes");
}

#[tokio::test]
async fn the_browser_that_asked_uses_the_link_only_when_it_really_opens_it() {
    let app = TestApp::spawn().await;
    app.request_link("prefetched@example.com", "/inbox").await;
    let link = app.latest_link("prefetched@example.com").await;

    // The browser that asked (its pending-sign-in cookie sent) looks ahead on its own: a HEAD,
    // a speculative prefetch, an older prefetch header, a prerender.
    let head = app.head(&link).await;
    let speculative = [
        ("sec-purpose", "prefetch"),
        ("sec-purpose", "prefetch;prerender"),
        ("purpose", "prefetch"),
        ("x-purpose", "preview"),
    ];
    for (name, value) in speculative {
        let looked = app.get_with(&link, &[(name, value)]).await;
        assert_eq!(looked.status, StatusCode::OK, "{name}: {value} gets the page with the button");
        assert!(looked.set_cookie("magiclink.session-token").is_empty(), "{name}: {value} signs nobody in");
    }
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.set_cookie("magiclink.session-token").is_empty());
    assert_eq!(newest_mail(&app, "prefetched@example.com").await.0, "unused");

    let opened = app.get(&link).await;

    assert_eq!(opened.status, StatusCode::SEE_OTHER, "the real navigation signs in");
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "prefetched@example.com");
}

#[tokio::test]
async fn another_browser_signs_in_only_after_pressing_the_button() {
    let app = TestApp::spawn().await;
    app.request_link("laptop@example.com", "/after").await;
    let link = app.latest_link("laptop@example.com").await;
    let asking_browser = app.swap_cookies(BTreeMap::new());

    let confirm = app.get(&link).await;
    let forged = app
        .post_form(
            "/api/auth/callback/email",
            &[("token", field(&confirm, "token")), ("email", field(&confirm, "email")), ("csrfToken", "forged")],
            None,
        )
        .await;
    let confirmed = app
        .post_form(
            "/api/auth/callback/email",
            &[
                ("csrfToken", field(&confirm, "csrfToken")),
                ("token", field(&confirm, "token")),
                ("email", field(&confirm, "email")),
                ("callbackUrl", &unescape(field(&confirm, "callbackUrl"))),
            ],
            None,
        )
        .await;

    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(confirmed.status, StatusCode::SEE_OTHER);
    assert_eq!(confirmed.location(), "/after");
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "laptop@example.com");
    app.swap_cookies(asking_browser);
    assert_eq!(app.get(&link).await.location(), "/auth-error?error=Verification&reason=used");
}

#[tokio::test]
async fn a_browser_signed_in_as_someone_else_is_told_before_anything_changes() {
    let app = TestApp::spawn().await;
    app.request_link("victim@example.com", "/").await;
    let victims_link = app.latest_link("victim@example.com").await;
    app.swap_cookies(BTreeMap::new());
    app.sign_in("bob@example.com", "/").await;

    let confirm = app.get(&victims_link).await;

    assert!(
        confirm.body.contains("This browser is signed in as <strong>b***@example.com</strong>"),
        "{}",
        confirm.body
    );
    assert!(confirm.body.contains("signs you out of that account and in as <strong>v***@example.com</strong>"));
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "bob@example.com", "nothing changed");
}

#[tokio::test]
async fn a_dead_link_opened_elsewhere_says_so_instead_of_asking() {
    let app = TestApp::spawn().await;
    app.request_link("dead@example.com", "/").await;
    let link = app.latest_link("dead@example.com").await;
    app.get(&link).await;
    app.swap_cookies(BTreeMap::new());

    assert_eq!(app.get(&link).await.location(), "/auth-error?error=Verification&reason=used");
    assert_eq!(
        app.get(&link.replace("token=", "token=x")).await.location(),
        "/auth-error?error=Verification&reason=invalid"
    );
}

#[tokio::test]
async fn the_code_signs_in_the_browser_that_asked_and_uses_up_the_link() {
    let app = TestApp::spawn().await;
    app.request_link("phone@example.com", "/from-code").await;
    let (_, code) = newest_mail(&app, "phone@example.com").await;
    let page = app.get("/check-your-email").await;
    assert!(page.body.contains("We sent a sign-in link to <strong>p***@example.com</strong>"), "{}", page.body);
    assert!(page.body.contains("name=\"code\""), "{}", page.body);

    let typed = code.to_lowercase().replace('-', " ");
    let signed_in = app
        .post_form("/api/auth/callback/email", &[("csrfToken", field(&page, "csrfToken")), ("code", &typed)], None)
        .await;

    assert_eq!(code.len(), 9, "{code}");
    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    assert_eq!(signed_in.location(), "/from-code");
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "phone@example.com");
    assert_eq!(newest_mail(&app, "phone@example.com").await.0, "used", "the link is used up with its code");
}

#[tokio::test]
async fn the_code_does_nothing_in_a_browser_that_did_not_ask() {
    let app = TestApp::spawn().await;
    app.request_link("mine@example.com", "/").await;
    let (_, code) = newest_mail(&app, "mine@example.com").await;
    app.swap_cookies(BTreeMap::new());
    let token = app.csrf_token().await;

    let refused = app.post_form("/api/auth/callback/email", &[("csrfToken", &token), ("code", &code)], None).await;

    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("works only in the browser where you asked for the link"), "{}", refused.body);
    assert_eq!(newest_mail(&app, "mine@example.com").await.0, "unused");
}

#[tokio::test]
async fn five_wrong_codes_and_the_code_is_dead_as_the_page_says() {
    let app = TestApp::spawn().await;
    app.request_link("typo@example.com", "/").await;
    let (_, code) = newest_mail(&app, "typo@example.com").await;
    let token = app.csrf_token().await;
    let wrong = if code.starts_with('A') { "BBBB-BBBB" } else { "AAAA-AAAA" };

    let mut messages = Vec::new();
    for _ in 0..5 {
        let reply = app.post_form("/api/auth/callback/email", &[("csrfToken", &token), ("code", wrong)], None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        messages.push(reply.body);
    }
    let too_late = app
        .post_form("/api/auth/callback/email", &[("csrfToken", &token), ("code", &code)], Some("application/json"))
        .await;

    assert!(messages[0].contains("That code is not right. You can try 4 more times."), "{}", messages[0]);
    assert!(messages[3].contains("You can try 1 more time."), "{}", messages[3]);
    assert!(messages[4].contains("it was the last try: this code no longer works"), "{}", messages[4]);
    assert_eq!(too_late.json()["type"], "urn:magiclink:problem:code-exhausted");
    assert_eq!(app.get_json("/api/auth/session").await.body, "null");
}

#[tokio::test]
async fn json_clients_send_the_code_and_get_json_back() {
    let app = TestApp::spawn().await;
    app.request_link("api@example.com", "/dashboard").await;
    let (_, code) = newest_mail(&app, "api@example.com").await;
    let token = app.csrf_token().await;

    let wrong = app
        .post_form(
            "/api/auth/callback/email",
            &[("csrfToken", &token), ("code", "ZZZZ-ZZZ0")],
            Some("application/json"),
        )
        .await;
    let right = app
        .post_form("/api/auth/callback/email", &[("csrfToken", &token), ("code", &code)], Some("application/json"))
        .await;

    assert_eq!(wrong.json()["type"], "urn:magiclink:problem:wrong-code");
    assert_eq!(wrong.json()["attemptsLeft"], 4);
    assert_eq!(right.status, StatusCode::OK);
    assert_eq!(right.json()["url"], "http://127.0.0.1:3000/dashboard");
}

#[tokio::test]
async fn no_url_but_the_link_itself_carries_the_address() {
    let app = TestApp::spawn().await;
    app.clock.advance(chrono::TimeDelta::seconds(1));

    let sent = app.request_link("private@example.com", "/").await;
    let link = app.latest_link("private@example.com").await;
    app.clock.advance(chrono::TimeDelta::minutes(11));
    let expired = app.get(&link).await;

    for location in [sent.location(), expired.location()] {
        assert!(!location.contains('@') && !location.contains("%40") && !location.contains("private"), "{location}");
    }
}
