//! Passkeys over the real wiring and stores, driven through the JSON ceremonies with a software
//! authenticator ([`system_tests::authenticator`], not the service's verifier): adding one after
//! a link sign-in, signing in with it and no email, and every refusal with its status and
//! problem type (a stale or reused challenge, another browser, a phishing origin, another
//! relying party, an unknown credential, a counter that went backwards, another person's
//! passkey). The flow runs on SQLite, PostgreSQL and MariaDB; the refusals on SQLite. The real
//! browser (Chromium's virtual authenticator) is in `browser.rs`.

use chrono::TimeDelta;
use poem::http::{Method, StatusCode};
use serde_json::{json, Value};
use system_tests::authenticator::SoftAuthenticator;
use system_tests::{cookie_header, keep_cookies, Reply, RunningServer, TestApp};
use xtask::wiring::Parts;

/// The origin pages are served from in these tests: a host name, since browsers refuse an IP
/// address as a relying party id (and magiclink turns passkeys off for one).
const ORIGIN: &str = "http://localhost:3000";

/// Settings for a service at [`ORIGIN`].
fn at_localhost(settings: &mut xtask::settings::Settings) {
    settings.server.base_url = ORIGIN.to_owned();
}

/// The `type` of a problem document, without its URN prefix.
fn problem(reply: &Reply) -> String {
    let kind = reply.json()["type"].as_str().unwrap_or_default().to_owned();
    kind.trim_start_matches("urn:magiclink:problem:").to_owned()
}

/// A JSON call with the page's CSRF token in `X-CSRF-Token`, as the script makes it.
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Reply {
    let csrf = app.csrf_token().await;
    let header = [("x-csrf-token", csrf.as_str())];
    match body {
        Some(body) if method == Method::POST => app.post_json(path, &body, &header).await,
        Some(body) => {
            let text = body.to_string();
            let length = text.len().to_string();
            let headers =
                [("x-csrf-token", csrf.as_str()), ("content-type", "application/json"), ("content-length", &length)];
            app.send_body(method, path, &headers, text).await
        }
        None => app.send(method, path, &header).await,
    }
}

/// Adds `authenticator`'s passkey to the signed-in person's account, returning the reply.
async fn register(app: &TestApp, authenticator: &mut SoftAuthenticator) -> Reply {
    let options = call(app, Method::POST, "/api/auth/passkeys/registration", None).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    let credential = authenticator.register(&options.json());
    call(app, Method::POST, "/api/auth/passkeys", Some(json!({ "credential": credential }))).await
}

/// Begins a sign-in in this browser, returning the options.
async fn begin_sign_in(app: &TestApp) -> Value {
    let options = call(app, Method::POST, "/api/auth/signin/passkey", None).await;
    assert_eq!(options.status, StatusCode::OK, "{}", options.body);
    options.json()
}

/// Posts an assertion to finish a sign-in.
async fn finish_sign_in(app: &TestApp, assertion: Value) -> Reply {
    let body = json!({ "credential": assertion, "callbackUrl": "/welcome" });
    call(app, Method::POST, "/api/auth/callback/passkey", Some(body)).await
}

/// A whole passkey sign-in with `authenticator` in this browser.
async fn sign_in_with(app: &TestApp, authenticator: &mut SoftAuthenticator) -> Reply {
    let options = begin_sign_in(app).await;
    finish_sign_in(app, authenticator.assert(&options)).await
}

async fn signed_in_email(app: &TestApp) -> Value {
    app.get_json("/api/auth/session").await.json()["user"]["email"].clone()
}

async fn a_person_adds_a_passkey_after_a_link_and_signs_in_with_it_without_an_email(app: TestApp) {
    let providers = app.get_json("/api/auth/providers").await.json();
    app.sign_in("ada@example.com", "/account").await;
    let mut phone = SoftAuthenticator::new(1, ORIGIN);
    let added = register(&app, &mut phone).await;
    let listed = call(&app, Method::GET, "/api/auth/passkeys", None).await;
    let account = app.get("/account").await;
    let signed_out = call(&app, Method::POST, "/api/auth/signout", Some(json!({}))).await;
    app.swap_cookies(Default::default());
    let links_before = app.stop_delivery().await;

    let signed_in = sign_in_with(&app, &mut phone).await;
    let who = signed_in_email(&app).await;
    let links_after = app.stop_delivery().await;
    let user = app.database.users.find_by_email(&domain::EmailAddress::parse("ada@example.com").expect("valid")).await;
    let user = user.expect("read").expect("ada");
    let sessions = app.database.sessions.list_for_user(&user.id, chrono::Utc::now() - TimeDelta::days(365)).await;
    let methods: Vec<_> = sessions.expect("listed").iter().map(|session| session.method).collect();

    assert_eq!(providers["passkey"]["type"], "webauthn", "{providers}");
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let added = added.json();
    assert_eq!(added["name"], "Unknown browser", "the browser and system when none is given: {added}");
    assert_eq!(added["lastUsedAt"], Value::Null);
    assert_eq!(listed.json()["passkeys"][0]["id"], added["id"]);
    assert!(account.body.contains("data-passkey-id=\"") && account.body.contains("Unknown browser"));
    assert_eq!(signed_out.status, StatusCode::OK);
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.json()["url"], format!("{ORIGIN}/welcome"));
    assert_eq!(who, "ada@example.com");
    assert_eq!((links_before, links_after), (0, 0), "no email was queued for the passkey sign-in");
    assert!(methods.contains(&domain::SignInMethod::Passkey), "{methods:?}");
    let listed = call(&app, Method::GET, "/api/auth/passkeys", None).await.json();
    assert!(listed["passkeys"][0]["lastUsedAt"].is_string(), "{listed}");
}

#[tokio::test]
async fn every_refusal_has_its_status_and_problem_type_and_signs_nobody_in() {
    let app = TestApp::spawn_with(at_localhost).await;
    app.sign_in("ada@example.com", "/account").await;
    let mut ada = SoftAuthenticator::new(1, ORIGIN);
    ada.counter = 10;
    assert_eq!(register(&app, &mut ada).await.status, StatusCode::CREATED);
    let same_key_for_bob = {
        let ada_browser = app.swap_cookies(Default::default());
        app.sign_in("bob@example.com", "/account").await;
        let reply = register(&app, &mut SoftAuthenticator::new(1, ORIGIN)).await;
        app.swap_cookies(ada_browser);
        reply
    };
    let again = register(&app, &mut SoftAuthenticator::new(1, ORIGIN)).await;
    let mut wrong_origin = SoftAuthenticator::new(2, "http://localhost.evil.example");
    let phished = register(&app, &mut wrong_origin).await;
    let finished_without_beginning = call(
        &app,
        Method::POST,
        "/api/auth/passkeys",
        Some(json!({ "credential": SoftAuthenticator::new(3, ORIGIN).register(&json!({
            "challenge": "AAAA", "rp": { "id": "localhost" }, "user": { "id": "AAAA" }
        })) })),
    )
    .await;
    app.swap_cookies(Default::default());

    // Signing in.
    let no_ceremony = finish_sign_in(&app, ada.assert(&json!({ "challenge": "AAAA", "rpId": "localhost" }))).await;
    let options = begin_sign_in(&app).await;
    let old_assertion = ada.assert(&options);
    let _ = begin_sign_in(&app).await; // a newer ceremony replaces this browser's cookie
    let other_challenge = finish_sign_in(&app, old_assertion).await;

    let options = begin_sign_in(&app).await;
    let mut phishing = SoftAuthenticator::new(1, "http://evil.example");
    phishing.user_handle = ada.user_handle.clone();
    phishing.counter = 100;
    let wrong_origin_sign_in = finish_sign_in(&app, phishing.assert(&options)).await;

    let options = begin_sign_in(&app).await;
    let mut other_rp = SoftAuthenticator::new(1, ORIGIN);
    other_rp.user_handle = ada.user_handle.clone();
    other_rp.counter = 100;
    other_rp.rp_id = "evil.example".to_owned();
    let wrong_rp = finish_sign_in(&app, other_rp.assert(&options)).await;

    let unknown = sign_in_with(&app, &mut SoftAuthenticator::new(9, ORIGIN)).await;

    let options = begin_sign_in(&app).await;
    let assertion = ada.assert(&options);
    let first = finish_sign_in(&app, assertion.clone()).await;
    let replayed = finish_sign_in(&app, assertion).await;
    app.swap_cookies(Default::default());

    let mut clone = SoftAuthenticator::new(1, ORIGIN);
    clone.user_handle = ada.user_handle.clone();
    clone.counter = 5; // behind the 11 the real key reached
    let cloned = sign_in_with(&app, &mut clone).await;

    let options = begin_sign_in(&app).await;
    app.clock.advance(TimeDelta::minutes(6));
    let stale = finish_sign_in(&app, ada.assert(&options)).await;

    let malformed = {
        let _ = begin_sign_in(&app).await;
        finish_sign_in(&app, json!({ "id": "x" })).await
    };

    assert_eq!(
        (same_key_for_bob.status, problem(&same_key_for_bob)),
        (StatusCode::CONFLICT, "passkey-already-registered".into()),
        "one credential, one account"
    );
    assert_eq!(
        (again.status, problem(&again)),
        (StatusCode::BAD_REQUEST, "passkey-registration-refused".into()),
        "a key the account has is excluded"
    );
    assert_eq!((phished.status, problem(&phished)), (StatusCode::BAD_REQUEST, "passkey-registration-refused".into()));
    assert_eq!(
        (finished_without_beginning.status, problem(&finished_without_beginning)),
        (StatusCode::BAD_REQUEST, "passkey-ceremony-expired".into())
    );
    for (what, reply, status, kind) in [
        ("no ceremony in this browser", &no_ceremony, StatusCode::BAD_REQUEST, "passkey-ceremony-expired"),
        ("an older challenge", &other_challenge, StatusCode::UNAUTHORIZED, "passkey-refused"),
        ("a phishing origin", &wrong_origin_sign_in, StatusCode::UNAUTHORIZED, "passkey-refused"),
        ("another relying party", &wrong_rp, StatusCode::UNAUTHORIZED, "passkey-refused"),
        ("an unknown credential", &unknown, StatusCode::UNAUTHORIZED, "passkey-unknown"),
        ("a replayed assertion", &replayed, StatusCode::BAD_REQUEST, "passkey-ceremony-expired"),
        ("a counter behind", &cloned, StatusCode::UNAUTHORIZED, "passkey-counter-regressed"),
        ("a stale ceremony", &stale, StatusCode::BAD_REQUEST, "passkey-ceremony-expired"),
        ("not an assertion", &malformed, StatusCode::BAD_REQUEST, "passkey-malformed"),
    ] {
        assert_eq!((reply.status, problem(reply)), (status, kind.to_owned()), "{what}: {}", reply.body);
        assert!(
            reply.set_cookie("magiclink.session-token").is_empty()
                || reply.set_cookie("magiclink.session-token").contains("Max-Age=0"),
            "{what}"
        );
    }
    assert_eq!(first.status, StatusCode::OK, "the genuine assertion signs in: {}", first.body);
    assert_eq!(signed_in_email(&app).await, Value::Null, "signed out: every refusal signed nobody in");
}

#[tokio::test]
async fn a_ceremony_begun_in_one_browser_cannot_be_finished_in_another() {
    let app = TestApp::spawn_with(at_localhost).await;
    app.sign_in("ada@example.com", "/account").await;
    let mut key = SoftAuthenticator::new(1, ORIGIN);
    assert_eq!(register(&app, &mut key).await.status, StatusCode::CREATED);
    let ada_browser = app.swap_cookies(Default::default());

    let options = begin_sign_in(&app).await;
    let assertion = key.assert(&options);
    let first_browser = app.swap_cookies(Default::default());
    let elsewhere = finish_sign_in(&app, assertion.clone()).await;
    let _ = begin_sign_in(&app).await;
    let elsewhere_with_its_own_ceremony = finish_sign_in(&app, assertion.clone()).await;
    app.swap_cookies(first_browser);
    let here = finish_sign_in(&app, assertion).await;

    // Registration: options fetched by Ada's browser, answered from another signed-in browser.
    app.swap_cookies(ada_browser);
    let options = call(&app, Method::POST, "/api/auth/passkeys/registration", None).await.json();
    let credential = SoftAuthenticator::new(2, ORIGIN).register(&options);
    app.swap_cookies(Default::default());
    app.sign_in("ada@example.com", "/account").await;
    let other_browser = call(&app, Method::POST, "/api/auth/passkeys", Some(json!({ "credential": credential }))).await;

    assert_eq!((elsewhere.status, problem(&elsewhere)), (StatusCode::BAD_REQUEST, "passkey-ceremony-expired".into()));
    assert_eq!(
        (elsewhere_with_its_own_ceremony.status, problem(&elsewhere_with_its_own_ceremony)),
        (StatusCode::UNAUTHORIZED, "passkey-refused".into())
    );
    assert_eq!(here.status, StatusCode::OK, "{}", here.body);
    assert_eq!(
        (other_browser.status, problem(&other_browser)),
        (StatusCode::BAD_REQUEST, "passkey-ceremony-expired".into())
    );
}

#[tokio::test]
async fn renaming_deleting_and_the_sudo_rule_touch_only_your_own_passkeys() {
    let app = TestApp::spawn_with(at_localhost).await;
    app.sign_in("bob@example.com", "/account").await;
    let mut bobs = SoftAuthenticator::new(2, ORIGIN);
    let bob_key = register(&app, &mut bobs).await.json();
    let bob = app.swap_cookies(Default::default());
    app.sign_in("ada@example.com", "/account").await;
    let mut adas = SoftAuthenticator::new(1, ORIGIN);
    let ada_key = register(&app, &mut adas).await.json();
    let id = ada_key["id"].as_str().expect("an id").to_owned();
    let bob_id = bob_key["id"].as_str().expect("an id").to_owned();

    let renamed =
        call(&app, Method::PATCH, &format!("/api/auth/passkeys/{id}"), Some(json!({ "name": " Laptop " }))).await;
    let blank = call(&app, Method::PATCH, &format!("/api/auth/passkeys/{id}"), Some(json!({ "name": "  " }))).await;
    let not_mine =
        call(&app, Method::PATCH, &format!("/api/auth/passkeys/{bob_id}"), Some(json!({ "name": "Mine" }))).await;
    let delete_bobs = call(&app, Method::DELETE, &format!("/api/auth/passkeys/{bob_id}"), None).await;
    let malformed_id = call(&app, Method::DELETE, "/api/auth/passkeys/not-an-id", None).await;
    let forged = app.send(Method::DELETE, &format!("/api/auth/passkeys/{id}"), &[]).await;
    app.clock.advance(TimeDelta::minutes(11));
    let stale_delete = call(&app, Method::DELETE, &format!("/api/auth/passkeys/{id}"), None).await;
    let stale_add = call(&app, Method::POST, "/api/auth/passkeys/registration", None).await;
    app.sign_in("ada@example.com", "/account").await;
    let deleted = call(&app, Method::DELETE, &format!("/api/auth/passkeys/{id}"), None).await;
    let still_signed_in = signed_in_email(&app).await;
    app.swap_cookies(Default::default());
    let with_deleted = sign_in_with(&app, &mut adas).await;
    app.swap_cookies(bob);
    let bob_still = sign_in_with(&app, &mut bobs).await;

    assert_eq!((renamed.status, renamed.json()["name"].clone()), (StatusCode::OK, json!("Laptop")), "{}", renamed.body);
    assert_eq!((blank.status, problem(&blank)), (StatusCode::BAD_REQUEST, "passkey-name-invalid".into()));
    assert_eq!((not_mine.status, problem(&not_mine)), (StatusCode::NOT_FOUND, "no-such-passkey".into()));
    assert_eq!((delete_bobs.status, problem(&delete_bobs)), (StatusCode::NOT_FOUND, "no-such-passkey".into()));
    assert_eq!((malformed_id.status, problem(&malformed_id)), (StatusCode::NOT_FOUND, "no-such-passkey".into()));
    assert_eq!((forged.status, problem(&forged)), (StatusCode::FORBIDDEN, "csrf".into()));
    assert_eq!(
        (stale_delete.status, problem(&stale_delete)),
        (StatusCode::FORBIDDEN, "reauthentication-required".into())
    );
    assert_eq!((stale_add.status, problem(&stale_add)), (StatusCode::FORBIDDEN, "reauthentication-required".into()));
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
    assert_eq!(still_signed_in, "ada@example.com", "deleting a passkey ends no session");
    assert_eq!((with_deleted.status, problem(&with_deleted)), (StatusCode::UNAUTHORIZED, "passkey-unknown".into()));
    assert_eq!(bob_still.status, StatusCode::OK, "Bob's passkey is untouched: {}", bob_still.body);
}

/// One passkey sign-in over real HTTP (the per-client limit needs the client's address), in a
/// fresh "browser": CSRF token, options, the authenticator's answer. Returns status and problem.
async fn sign_in_over_http(server: &RunningServer, authenticator: &mut SoftAuthenticator) -> (u16, String, String) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let base = &server.base_url;
    let mut jar = std::collections::BTreeMap::new();
    let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf answers");
    keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<Value>().await.expect("JSON")["csrfToken"].as_str().expect("a token").to_owned();
    let options = http
        .post(format!("{base}/api/auth/signin/passkey"))
        .header("cookie", cookie_header(&jar))
        .header("x-csrf-token", &token)
        .header("accept", "application/json")
        .send()
        .await
        .expect("options");
    keep_cookies(&mut jar, options.headers());
    if options.status() != reqwest::StatusCode::OK {
        return read_problem(options).await;
    }
    let options = options.json::<Value>().await.expect("JSON");
    let answer = http
        .post(format!("{base}/api/auth/callback/passkey"))
        .header("cookie", cookie_header(&jar))
        .header("x-csrf-token", &token)
        .header("accept", "application/json")
        .json(&json!({ "credential": authenticator.assert(&options) }))
        .send()
        .await
        .expect("answer");
    read_problem(answer).await
}

/// An answer's status, problem type (none on success) and `Retry-After`.
async fn read_problem(answer: reqwest::Response) -> (u16, String, String) {
    let status = answer.status().as_u16();
    let retry_after = answer.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = answer.json::<Value>().await.expect("JSON");
    let kind = body["type"].as_str().unwrap_or_default().trim_start_matches("urn:magiclink:problem:").to_owned();
    (status, kind, retry_after)
}

/// A passkey belongs to the person, not their address: after the sign-in address changes, the
/// same passkey signs them in under the new one.
#[tokio::test]
async fn a_passkey_keeps_working_after_the_sign_in_address_changes() {
    let app = TestApp::spawn_with(at_localhost).await;
    app.sign_in("old@example.com", "/account").await;
    let mut key = SoftAuthenticator::new(4, ORIGIN);
    assert_eq!(register(&app, &mut key).await.status, StatusCode::CREATED);
    let asked = call(&app, Method::POST, "/api/auth/email", Some(json!({ "email": "new@example.com" }))).await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    let link = app.latest_link("new@example.com").await;
    let token = link.split("token=").nth(1).expect("a token").to_owned();
    let confirmed = call(&app, Method::POST, "/api/auth/email/confirm", Some(json!({ "token": token }))).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    app.swap_cookies(Default::default());

    let signed_in = sign_in_with(&app, &mut key).await;

    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in_email(&app).await, "new@example.com");
}

#[tokio::test]
async fn failed_passkey_sign_ins_are_limited_per_client_and_never_hold_up_a_link() {
    let server = RunningServer::start_with(
        |s| {
            s.rate_limit.failed_redemptions_per_hour = 2;
            s.server.base_url = s.server.base_url.replace("127.0.0.1", "localhost");
        },
        Parts::default(),
    )
    .await;
    let mut stranger = SoftAuthenticator::new(7, &server.base_url);
    let first = sign_in_over_http(&server, &mut stranger).await;
    let second = sign_in_over_http(&server, &mut stranger).await;
    let third = sign_in_over_http(&server, &mut stranger).await;
    let session = server.sign_in_over_http("ada@example.com").await;

    assert_eq!((first.0, first.1.as_str()), (401, "passkey-unknown"));
    assert_eq!((second.0, second.1.as_str()), (401, "passkey-unknown"));
    assert_eq!(
        (third.0, third.1.as_str()),
        (429, "rate-limited-passkeys"),
        "the third failure in an hour is not tried"
    );
    assert!(!third.2.is_empty(), "with Retry-After");
    assert!(!session.is_empty(), "a link still signs in from the same client");
}

#[tokio::test]
async fn a_client_may_begin_only_so_many_passkey_sign_ins_an_hour() {
    let server = RunningServer::start_with(
        |s| {
            s.passkey.sign_ins_per_client_per_hour = 2;
            s.server.base_url = s.server.base_url.replace("127.0.0.1", "localhost");
        },
        Parts::default(),
    )
    .await;
    let mut key = SoftAuthenticator::new(8, &server.base_url);
    let first = sign_in_over_http(&server, &mut key).await;
    let second = sign_in_over_http(&server, &mut key).await;
    let third = sign_in_over_http(&server, &mut key).await;

    assert_eq!((first.0, second.0), (401, 401), "begun, then refused as unknown");
    assert_eq!((third.0, third.1.as_str()), (429, "rate-limited-passkey-ceremonies"), "the third is not even begun");
    assert!(!third.2.is_empty(), "with Retry-After");
}

#[tokio::test]
async fn with_passkeys_off_the_ceremonies_answer_404_and_the_pages_show_no_control() {
    // On an IP address (browsers refuse one as a relying party id) they are off as well.
    let on_an_ip_address = TestApp::spawn().await;
    let providers_on_ip = on_an_ip_address.get_json("/api/auth/providers").await.json();
    assert!(providers_on_ip.get("passkey").is_none(), "{providers_on_ip}");
    let app = TestApp::spawn_with(|settings| {
        at_localhost(settings);
        settings.passkey.enabled = false;
    })
    .await;
    let providers = app.get_json("/api/auth/providers").await.json();
    let begun = call(&app, Method::POST, "/api/auth/signin/passkey", None).await;
    let page = app.get("/signin").await;
    let script = app.get("/api/auth/passkey.js").await;

    assert!(providers.get("passkey").is_none(), "{providers}");
    assert_eq!((begun.status, problem(&begun)), (StatusCode::NOT_FOUND, "passkeys-disabled".into()));
    assert!(!page.body.contains("passkey-sign-in") && !page.body.contains("passkey.js"), "{}", page.body);
    assert!(page.body.contains("autocomplete=\"email\""), "no passkey autofill either");
    assert!(!page.header("content-security-policy").contains("script-src"));
    assert_eq!(script.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_pages_load_the_script_from_this_site_only_and_offer_passkeys_in_autofill() {
    let app = TestApp::spawn_with(at_localhost).await;
    let page = app.get("/signin").await;
    let script = app.get("/api/auth/passkey.js").await;
    let home = app.get("/").await;

    assert!(page.body.contains("autocomplete=\"email webauthn\""), "{}", page.body);
    assert!(page.body.contains("passkey.js\" defer></script>"), "{}", page.body);
    let policy = page.header("content-security-policy");
    assert!(policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline'; script") && !policy.contains("script-src 'unsafe"), "{policy}");
    assert!(!home.header("content-security-policy").contains("script-src"), "other pages run no script");
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.header("content-type").starts_with("text/javascript"));
    assert!(script.body.contains("parseRequestOptionsFromJSON"));
}

// The flow on each backend over its scratch database.
system_tests::flows_on_every_backend!(super::at_localhost;
    a_person_adds_a_passkey_after_a_link_and_signs_in_with_it_without_an_email,
);
