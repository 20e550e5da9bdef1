//! Forward auth for reverse proxies: `{base}/forward-auth` in process (both modes, the return
//! URL rules, the shared cookie domain), and the docs' nginx and Caddy snippets in front of a
//! tiny app with a real nginx and a real Caddy.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use system_tests::caddy::{self, Caddy};
use system_tests::nginx::{self, Nginx};
use system_tests::{cookie_header, keep_cookies, RunningServer, TestApp};
use xtask::wiring::Parts;

const APP: &str = "https://app.example.test";

async fn app_with_forward_auth() -> TestApp {
    TestApp::spawn_with(|s| s.forward_auth.allowed_origins = vec![APP.to_owned()]).await
}

/// The `callbackUrl` a redirect to the sign-in page carries.
fn callback_of(location: &str) -> Option<String> {
    let url = url::Url::parse(location).expect("an absolute Location");
    assert_eq!(url.path(), "/signin", "{location}");
    url.query_pairs().find(|(name, _)| name == "callbackUrl").map(|(_, value)| value.into_owned())
}

#[tokio::test]
async fn without_a_session_the_check_is_401_or_a_redirect_back_to_where_the_person_was_going() {
    let app = app_with_forward_auth().await;
    let traefik = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "app.example.test"),
        ("x-forwarded-uri", "/reports?year=2026&q=a%20b"),
    ];

    let status = app.get("/api/auth/forward-auth").await;
    let status_behind_nginx = app.send(poem::http::Method::GET, "/api/auth/forward-auth", &traefik).await;
    let redirect = app.send(poem::http::Method::GET, "/api/auth/forward-auth?mode=redirect", &traefik).await;
    let with_rd = app.get("/api/auth/forward-auth?mode=redirect&rd=https%3A%2F%2Fapp.example.test%2Fx").await;
    let elsewhere = app
        .send(
            poem::http::Method::GET,
            "/api/auth/forward-auth?mode=redirect",
            &[("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.example"), ("x-forwarded-uri", "/")],
        )
        .await;
    let bad_mode = app.get("/api/auth/forward-auth?mode=maybe").await;

    assert_eq!(status.status, StatusCode::UNAUTHORIZED);
    assert_eq!(status.header("x-auth-request-redirect"), "http://127.0.0.1:3000/signin", "nowhere to return to");
    // The 401 names the sign-in address with the return URL encoded, for nginx to redirect to.
    assert_eq!(status_behind_nginx.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        callback_of(status_behind_nginx.header("x-auth-request-redirect")).as_deref(),
        Some("https://app.example.test/reports?year=2026&q=a%20b")
    );
    assert_eq!(redirect.status, StatusCode::FOUND);
    assert!(redirect.location().starts_with("http://127.0.0.1:3000/signin?"), "{}", redirect.location());
    assert_eq!(callback_of(redirect.location()).as_deref(), Some("https://app.example.test/reports?year=2026&q=a%20b"));
    assert_eq!(callback_of(with_rd.location()).as_deref(), Some("https://app.example.test/x"));
    assert_eq!(elsewhere.status, StatusCode::FOUND);
    assert_eq!(callback_of(elsewhere.location()), None, "a return URL off the list is dropped");
    assert_eq!(bad_mode.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_redirect_mode_can_be_the_default() {
    let app = TestApp::spawn_with(|s| s.forward_auth.mode = xtask::settings::ForwardAuthModeSetting::Redirect).await;

    let default = app.get("/api/auth/forward-auth").await;
    let asked_for_status = app.get("/api/auth/forward-auth?mode=status").await;

    assert_eq!(default.status, StatusCode::FOUND);
    assert_eq!(asked_for_status.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_live_session_passes_with_the_persons_id_and_address_until_sign_out() {
    let app = app_with_forward_auth().await;
    app.sign_in("fa@example.com", "/").await;
    let session = app.get_json("/api/auth/session").await.json();

    let passed = app
        .send(poem::http::Method::GET, "/api/auth/forward-auth", &[("x-auth-request-email", "mallory@example.com")])
        .await;
    let token = app.csrf_token().await;
    app.post_form("/api/auth/signout", &[("csrfToken", &token)], None).await;
    let after = app.get("/api/auth/forward-auth").await;

    assert_eq!(passed.status, StatusCode::OK);
    assert_eq!(passed.header("x-auth-request-email"), "fa@example.com");
    assert_eq!(passed.header("x-auth-request-user"), session["user"]["id"].as_str().expect("user id"));
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_sign_in_returns_to_an_allowed_app_and_to_no_other_site() {
    let app = app_with_forward_auth().await;

    let to_app = app.sign_in("back@example.com", "https://app.example.test/reports?q=1").await;
    let to_evil = app.sign_in("back@example.com", "https://evil.example/reports").await;

    assert_eq!(to_app.status, StatusCode::SEE_OTHER, "{}", to_app.body);
    assert_eq!(to_app.location(), "https://app.example.test/reports?q=1");
    assert_eq!(to_evil.location(), "/");
}

#[tokio::test]
async fn a_cookie_domain_shares_the_session_cookie_with_sibling_subdomains() {
    let app = TestApp::spawn_with(|s| {
        s.server.base_url = "https://auth.example.test".to_owned();
        s.session.cookie_domain = "example.test".to_owned();
    })
    .await;
    let csrf = app.get_json("/api/auth/csrf").await;
    let token = csrf.json()["csrfToken"].as_str().expect("token").to_owned();
    app.post_form("/api/auth/signin/email", &[("email", "sib@example.com"), ("csrfToken", &token)], None).await;
    app.deliver().await;
    let link =
        app.get_json("/dev/mailbox?to=sib@example.com").await.json()[0]["link"].as_str().expect("link").to_owned();
    let url = url::Url::parse(&link).expect("absolute link");
    let opened = app.get(&format!("{}?{}", url.path(), url.query().unwrap_or_default())).await;
    let checked = app.get("/api/auth/forward-auth").await;
    let token = app.csrf_token().await;
    let signed_out = app.post_form("/api/auth/signout", &[("csrfToken", &token)], None).await;

    let session_cookie = opened.set_cookie("__Secure-magiclink.session-token");
    assert!(session_cookie.contains("Domain=example.test"), "{session_cookie}");
    assert!(session_cookie.contains("Secure") && session_cookie.contains("HttpOnly"), "{session_cookie}");
    assert!(csrf.header("set-cookie").starts_with("__Host-magiclink.csrf-token="), "only the session cookie is shared");
    assert_eq!(checked.status, StatusCode::OK);
    let cleared = signed_out.set_cookie("__Secure-magiclink.session-token");
    assert!(cleared.contains("Max-Age=0") && cleared.contains("Domain=example.test"), "{cleared}");
}

#[test]
fn the_deployment_guide_shows_the_tested_nginx_and_caddy_snippets_verbatim() {
    let guide = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deployment.md"))
        .expect("docs/deployment.md");
    assert!(
        guide.contains(&nginx::forward_auth_snippet()),
        "docs/deployment.md must show docs/integration/nginx-forward-auth.conf as it is"
    );
    assert!(
        guide.contains(&caddy::forward_auth_snippet()),
        "docs/deployment.md must show docs/integration/Caddyfile as it is"
    );
}

/// The docs' nginx snippet, with a real nginx in front of a tiny app: see
/// [`a_proxy_protects_the_app_until_sign_out`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_the_documented_snippet_protects_an_app_until_sign_out() {
    let reserved = nginx::reserve_port();
    let port = reserved.port;
    let magiclink = magiclink_for_proxy_on(port).await;
    let upstream = nginx::start_upstream().await;
    let Some(proxy) = Nginx::start_forward_auth(port, &magiclink.base_url, upstream) else { return };
    a_proxy_protects_the_app_until_sign_out(&proxy.origin, &magiclink).await;
}

/// The docs' Caddyfile, with a real Caddy in front of the same tiny app: see
/// [`a_proxy_protects_the_app_until_sign_out`]. Caddy asks in redirect mode and passes the
/// 302 on itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_with_the_documented_snippet_protects_an_app_until_sign_out() {
    let reserved = nginx::reserve_port();
    let port = reserved.port;
    let magiclink = magiclink_for_proxy_on(port).await;
    let upstream = nginx::start_upstream().await;
    let Some(proxy) = Caddy::start_forward_auth(port, &magiclink.base_url, upstream).await else { return };
    a_proxy_protects_the_app_until_sign_out(&proxy.origin, &magiclink).await;
}

/// magiclink, accepting return URLs to a proxy on `port` of loopback.
async fn magiclink_for_proxy_on(port: u16) -> RunningServer {
    let allowed = format!("http://127.0.0.1:{port}");
    RunningServer::start_with(move |s| s.forward_auth.allowed_origins = vec![allowed], Parts::default()).await
}

/// A proxy at `proxy_origin` in front of the tiny app, asking `magiclink`: a visitor without a
/// session ends on the sign-in page, signs in with the emailed link, lands back where they were
/// going and the app sees their address (never a forged one); after sign-out the proxy refuses
/// them again.
async fn a_proxy_protects_the_app_until_sign_out(proxy_origin: &str, magiclink: &RunningServer) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    // One jar for both: browsers send a host's cookies to every port of it.
    let mut jar = BTreeMap::new();
    // A query of several parameters, one holding an encoded `&`: all of it must come back.
    let wanted = format!("{proxy_origin}/private/report?year=2026&team=r%26d");

    // Not signed in (a forged identity header changes nothing): to the sign-in page.
    let refused = http
        .get(&wanted)
        .header("x-auth-request-email", "mallory@example.com")
        .send()
        .await
        .expect("the proxy answers");
    assert_eq!(refused.status(), reqwest::StatusCode::FOUND);
    let sign_in = refused.headers()["location"].to_str().expect("ASCII").to_owned();
    assert!(sign_in.starts_with(&format!("{}/signin?", magiclink.base_url)), "{sign_in}");
    let callback = callback_of(&sign_in).expect("a return URL");
    assert_eq!(callback, wanted);

    // The sign-in page, the form (with the return URL it was given), the emailed link.
    let page = http.get(&sign_in).send().await.expect("sign-in page");
    keep_cookies(&mut jar, page.headers());
    // Tera escapes `&` and `/` in attribute values.
    let escaped = wanted.replace('&', "&amp;").replace('/', "&#x2F;");
    assert!(page.text().await.expect("page").contains(&format!("name=\"callbackUrl\" value=\"{escaped}\"")));
    let csrf = http
        .get(format!("{}/api/auth/csrf", magiclink.base_url))
        .header("cookie", cookie_header(&jar))
        .send()
        .await
        .expect("csrf");
    keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    let mut delivered = magiclink.mailbox.as_ref().expect("dev mailer").subscribe();
    let before = *delivered.borrow_and_update();
    let posted = http
        .post(format!("{}/api/auth/signin/email", magiclink.base_url))
        .header("cookie", cookie_header(&jar))
        .form(&[("email", "proxied@example.com"), ("csrfToken", &token), ("callbackUrl", &callback)])
        .send()
        .await
        .expect("posted");
    assert_eq!(posted.status(), reqwest::StatusCode::SEE_OTHER);
    keep_cookies(&mut jar, posted.headers());
    let mail = magiclink.mail_after(&mut delivered, before, "proxied@example.com").await;
    let link = mail[0]["link"].as_str().expect("a link").to_owned();
    let opened = http.get(&link).header("cookie", cookie_header(&jar)).send().await.expect("link");
    keep_cookies(&mut jar, opened.headers());
    assert_eq!(opened.headers()["location"].to_str().expect("ASCII"), wanted, "back where they were going");

    // Signed in: the proxy passes the request on, naming them (the forged header is replaced).
    let passed = http
        .get(&wanted)
        .header("cookie", cookie_header(&jar))
        .header("x-auth-request-email", "mallory@example.com")
        .send()
        .await
        .expect("the proxy answers");
    assert_eq!(passed.status(), reqwest::StatusCode::OK);
    assert_eq!(passed.text().await.expect("body"), "hello proxied@example.com");

    // Signed out at magiclink: the proxy refuses the same cookie again.
    let old_cookies = cookie_header(&jar);
    let csrf = http
        .get(format!("{}/api/auth/csrf", magiclink.base_url))
        .header("cookie", &old_cookies)
        .send()
        .await
        .expect("csrf");
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    let signed_out = http
        .post(format!("{}/api/auth/signout", magiclink.base_url))
        .header("cookie", &old_cookies)
        .form(&[("csrfToken", token.as_str())])
        .send()
        .await
        .expect("signed out");
    assert_eq!(signed_out.status(), reqwest::StatusCode::SEE_OTHER);
    let again = http.get(&wanted).header("cookie", &old_cookies).send().await.expect("the proxy answers");
    assert_eq!(again.status(), reqwest::StatusCode::FOUND);
}
