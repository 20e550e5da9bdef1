//! The pages a person meets, through the real wiring: the router's own errors as the site's
//! pages (or problems for programs), Auth.js's `{base}/signin` and `{base}/signout`, plural
//! forms, the development mailbox's link states and preview, and configurable cookie names.

use poem::http::StatusCode;
use system_tests::TestApp;

#[tokio::test]
async fn an_unknown_path_is_the_sites_404_page_with_its_headers() {
    let app = TestApp::spawn().await;

    let page = app.get("/nope").await;

    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").starts_with("text/html"), "{}", page.header("content-type"));
    assert!(page.body.contains("<meta name=\"viewport\""), "styled like every page: {}", page.body);
    assert!(page.body.contains("id=\"error-title\">Page not found</h1>"), "{}", page.body);
    assert!(page.header("content-security-policy").contains("default-src 'none'"));
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("cache-control"), "no-store");
}

#[tokio::test]
async fn json_clients_get_problem_documents_for_404_and_405() {
    let app = TestApp::spawn().await;

    let missing = app.get_json("/api/auth/nope").await;
    let wrong_method = app.post_form("/healthz", &[], Some("application/json")).await;

    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("content-type"), "application/problem+json");
    assert_eq!(missing.json()["type"], "urn:magiclink:problem:not-found");
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.json()["type"], "urn:magiclink:problem:method-not-allowed");
    assert_eq!(wrong_method.json()["status"], 405);
    assert_eq!(wrong_method.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn a_wrong_method_on_a_page_is_the_sites_405_page() {
    let app = TestApp::spawn().await;

    let page = app.post_form("/check-your-email", &[], None).await;

    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(page.body.contains("Method not allowed"), "{}", page.body);
    assert!(page.header("content-security-policy").contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn authjs_sign_in_route_shows_the_sign_in_form() {
    let app = TestApp::spawn().await;

    let page = app.get("/api/auth/signin?callbackUrl=%2Fdashboard").await;

    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("action=\"&#x2F;api&#x2F;auth&#x2F;signin&#x2F;email\""), "{}", page.body);
    assert!(page.body.contains("name=\"callbackUrl\" value=\"&#x2F;dashboard\""), "{}", page.body);
}

#[tokio::test]
async fn authjs_sign_out_route_asks_before_signing_out() {
    let app = TestApp::spawn().await;
    let anonymous = app.get("/api/auth/signout").await;
    app.sign_in("leaving@example.com", "/").await;

    let confirm = app.get("/api/auth/signout").await;
    let still_signed_in = app.get_json("/api/auth/session").await.json();
    let token = confirm.body.split("name=\"csrfToken\" value=\"").nth(1).and_then(|rest| rest.split('"').next());
    let signed_out = app.post_form("/api/auth/signout", &[("csrfToken", token.expect("a CSRF field"))], None).await;

    assert!(anonymous.body.contains("You are not signed in."), "{}", anonymous.body);
    assert!(confirm.body.contains("signed in as <strong>leaving@example.com</strong>"), "{}", confirm.body);
    assert!(confirm.body.contains("id=\"signout\""), "{}", confirm.body);
    assert_eq!(still_signed_in["user"]["email"], "leaving@example.com", "a GET signs nobody out");
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(app.get_json("/api/auth/session").await.body, "null");
}

#[tokio::test]
async fn lifetimes_of_one_minute_are_singular() {
    let one = TestApp::spawn_with(|s| s.magic_link.max_age = 60).await;
    let ten = TestApp::spawn().await;

    let one_page = one.get("/signin").await.body;
    let ten_page = ten.get("/signin").await.body;
    one.request_link("one@example.com", "/").await;
    one.deliver().await;
    let email = one.get("/dev/mailbox?to=one@example.com").await.body;

    assert!(one_page.contains("expires in 1 minute."), "{one_page}");
    assert!(ten_page.contains("expires in 10 minutes."), "{ten_page}");
    assert!(email.contains("expires in 1 minute.") && !email.contains("1 minutes"), "{email}");
}

#[tokio::test]
async fn the_mailbox_marks_used_expired_and_retired_links() {
    let app = TestApp::spawn_with(|s| s.magic_link.max_age = 600).await;
    app.request_link("late@example.com", "/").await;
    app.deliver().await;
    app.clock.advance(chrono::TimeDelta::minutes(11));
    app.request_link("user@example.com", "/").await;
    app.request_link("user@example.com", "/").await;
    let newest = app.latest_link("user@example.com").await;
    let fresh = app.get_json("/dev/mailbox").await.json();

    app.get(&newest).await;
    let after = app.get_json("/dev/mailbox").await.json();

    let states = |mail: &serde_json::Value| -> Vec<(String, String)> {
        mail.as_array()
            .expect("array")
            .iter()
            .map(|m| {
                (m["to"].as_str().unwrap_or_default().to_owned(), m["state"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|(to, state)| ((*to).to_owned(), (*state).to_owned())).collect()
    };
    assert_eq!(
        states(&fresh),
        pairs(&[("user@example.com", "unused"), ("user@example.com", "unused"), ("late@example.com", "expired")])
    );
    assert_eq!(
        states(&after),
        pairs(&[("user@example.com", "used"), ("user@example.com", "unknown"), ("late@example.com", "expired")]),
        "the used link, the one its use retired, the one whose time ran out"
    );
    let page = app.get("/dev/mailbox").await.body;
    assert!(page.contains("class=\"badge used\">Used<") && page.contains("class=\"badge expired\">Expired<"), "{page}");
}

#[tokio::test]
async fn links_in_the_mailbox_preview_open_at_the_top_level() {
    let app = TestApp::spawn().await;
    app.request_link("preview@example.com", "/").await;
    app.deliver().await;

    let page = app.get("/dev/mailbox").await.body;

    assert!(page.contains("sandbox=\"allow-top-navigation-by-user-activation\""), "{page}");
    // The email's HTML sits escaped in srcdoc; its <head> now starts with <base target="_top">.
    assert!(page.contains("&lt;head&gt;&lt;base target=&quot;_top&quot;&gt;"), "{page}");
}

#[tokio::test]
async fn cookie_names_come_from_configuration_and_keep_the_host_prefix_over_https() {
    let staging = TestApp::spawn_with(|s| {
        s.session.cookie_name = "staging.session".to_owned();
        s.csrf.cookie_name = "staging.csrf".to_owned();
    })
    .await;
    let secure = TestApp::spawn_with(|s| {
        s.server.base_url = "https://auth.example.test".to_owned();
        s.session.cookie_name = "prod.session".to_owned();
    })
    .await;

    let opened = staging.sign_in("names@example.com", "/").await;
    let session = staging.get_json("/api/auth/session").await.json();
    let csrf = secure.get_json("/api/auth/csrf").await;
    secure.request_link("secure@example.com", "/").await;
    secure.deliver().await;
    let link = secure.get_json("/dev/mailbox").await.json()[0]["link"].as_str().expect("a link").to_owned();
    let link = url::Url::parse(&link).expect("absolute");
    let secure_opened = secure.get(&format!("{}?{}", link.path(), link.query().unwrap_or_default())).await;

    assert!(!opened.set_cookie("staging.session").is_empty(), "{}", opened.header("set-cookie"));
    assert!(staging.cookies.lock().expect("jar").contains_key("staging.csrf"));
    assert_eq!(session["user"]["email"], "names@example.com", "the renamed cookie signs in");
    assert!(csrf.header("set-cookie").starts_with("__Host-magiclink.csrf-token="), "{}", csrf.header("set-cookie"));
    let secure_cookie = secure_opened.set_cookie("__Host-prod.session");
    assert!(secure_cookie.contains("Secure"), "{}", secure_opened.header("set-cookie"));
}
