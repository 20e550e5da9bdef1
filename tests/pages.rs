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
async fn every_duration_is_said_with_its_own_plural_and_rounding_on_pages_and_in_emails() {
    // A 5-second link, a one-minute recent sign-in and a one-day session cap: none of them
    // "1 minute" for five seconds, "the last 1 minutes" or "1 days".
    let odd = TestApp::spawn_with(|s| {
        s.magic_link.max_age = 5;
        s.session.recent_sign_in = 60;
        s.session.update_age = 3_600;
        s.session.absolute_max_age = 86_400;
    })
    .await;
    let ten = TestApp::spawn().await;
    let german = TestApp::spawn_with(|s| s.magic_link.max_age = 90).await;

    let odd_page = odd.get("/signin").await.body;
    let ten_page = ten.get("/signin").await.body;
    let german_page = german.get("/signin?lang=de").await.body;
    odd.sign_in("odd@example.com", "/").await;
    // Past the recent sign-in: the page says how recent a sign-in must be.
    odd.clock.advance(chrono::TimeDelta::minutes(2));
    let account = odd.get("/account").await.body;
    odd.request_link("odd@example.com", "/").await;
    odd.deliver().await;
    let email = odd.get("/dev/mailbox?to=odd@example.com").await.body;

    assert!(odd_page.contains("expires in 5 seconds."), "{odd_page}");
    assert!(ten_page.contains("expires in 10 minutes."), "{ten_page}");
    assert!(german_page.contains("läuft in 90 Sekunden ab."), "{german_page}");
    assert!(account.contains("needs a sign-in within the last 1 minute."), "{account}");
    assert!(account.contains("A session ends 1 day after its sign-in"), "{account}");
    assert!(!account.contains("1 minutes") && !account.contains("1 days"), "{account}");
    assert!(email.contains("expires in 5 seconds."), "{email}");
}

#[tokio::test]
async fn the_api_docs_page_is_cached_and_revalidated_and_every_operation_has_a_plain_summary() {
    let app = TestApp::spawn().await;

    let docs = app.get("/api/auth/docs").await;
    let etag = docs.header("etag").to_owned();
    let again = app.send(poem::http::Method::GET, "/api/auth/docs", &[("if-none-match", &etag)]).await;
    let stale = app.send(poem::http::Method::GET, "/api/auth/docs", &[("if-none-match", "\"other\"")]).await;
    let posted = app.send(poem::http::Method::POST, "/api/auth/docs", &[("if-none-match", &etag)]).await;
    let document = app.get_json("/api/auth/openapi.json").await.json();

    assert_eq!(docs.status, StatusCode::OK);
    assert_eq!(docs.header("cache-control"), "public, max-age=86400", "it changes only with the API");
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    assert_eq!(again.status, StatusCode::NOT_MODIFIED, "revalidated, not sent again");
    assert!(again.body.is_empty());
    assert_eq!(stale.status, StatusCode::OK);
    assert_ne!(posted.status, StatusCode::NOT_MODIFIED, "only a read is answered \"not modified\"");
    assert_eq!(app.get("/signin").await.header("cache-control"), "no-store", "pages are never cached");
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let summary = operation["summary"].as_str().unwrap_or_default();
            assert!(
                !summary.is_empty() && summary.len() <= 40 && !summary.contains(['`', '\n', '.']),
                "{method} {path}: a summary is a short plain phrase: {summary:?}"
            );
        }
    }
}
#[tokio::test]
async fn the_mailbox_marks_used_expired_and_replaced_links() {
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
        pairs(&[("user@example.com", "unused"), ("user@example.com", "replaced"), ("late@example.com", "expired")])
    );
    assert_eq!(
        states(&after),
        pairs(&[("user@example.com", "used"), ("user@example.com", "replaced"), ("late@example.com", "expired")]),
        "the used link, the one the newer request replaced, the one whose time ran out"
    );
    let page = app.get("/dev/mailbox").await.body;
    assert!(page.contains("class=\"badge used\">Used<") && page.contains("class=\"badge expired\">Expired<"), "{page}");
    assert!(page.contains("class=\"badge replaced\">Replaced by a newer link<"), "{page}");
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
