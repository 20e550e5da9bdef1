//! Passwords, the optional second way in, over the real wiring (argon2id, zxcvbn, the real
//! stores): setting one after a link sign-in, signing in with it, sudo mode, the limits that
//! never block links, the JSON twins, and the claim that a wrong password and an unknown
//! address cost the same (checked statistically, medians reported, no timed assertion).
//! The flows run on SQLite, PostgreSQL and MariaDB; the ones that change more settings on
//! SQLite only.

use chrono::TimeDelta;
use poem::http::StatusCode;
use ports::Clock as _;
use system_tests::TestApp;
use xtask::settings::Settings;

/// Passwords on, at the cheapest argon2id cost OWASP accepts, so the flows stay quick.
fn with_passwords(settings: &mut Settings) {
    settings.password.enabled = true;
    settings.password.memory_kib = 7_168;
    settings.password.iterations = 5;
}

const GOOD: &str = "violet kestrel under a tin roof";

/// Signs `email` in by link and sets `password` on the account page.
async fn sign_up_with_password(app: &TestApp, email: &str, password: &str) {
    app.sign_in(email, "/account").await;
    let csrf = app.csrf_token().await;
    let set = app
        .post_form(
            "/account/password",
            &[("csrfToken", &csrf), ("password", password), ("signOutOtherSessions", "on")],
            None,
        )
        .await;
    assert_eq!((set.status, set.location()), (StatusCode::SEE_OTHER, "/account?done=password"), "{}", set.body);
}

/// Posts the sign-in page's password form.
async fn password_form(app: &TestApp, email: &str, password: &str) -> system_tests::Reply {
    let csrf = app.csrf_token().await;
    app.post_form(
        "/api/auth/callback/password",
        &[("csrfToken", &csrf), ("email", email), ("password", password), ("callbackUrl", "/welcome")],
        None,
    )
    .await
}

async fn a_person_sets_a_password_after_a_link_and_signs_in_with_it(app: TestApp) {
    app.sign_in("ada@example.com", "/account").await;
    let page = app.get("/account").await;
    let csrf = app.csrf_token().await;
    let other_browser = app.swap_cookies(Default::default());
    app.sign_in("ada@example.com", "/").await;
    let second_browser = app.swap_cookies(other_browser);

    let forged = app.post_form("/account/password", &[("password", GOOD)], None).await;
    let short = app.post_form("/account/password", &[("csrfToken", &csrf), ("password", "short one")], None).await;
    let common =
        app.post_form("/account/password", &[("csrfToken", &csrf), ("password", "password1234567890")], None).await;
    let own =
        app.post_form("/account/password", &[("csrfToken", &csrf), ("password", "ada@example.com is me")], None).await;
    let set = app
        .post_form(
            "/account/password",
            &[("csrfToken", &csrf), ("password", GOOD), ("signOutOtherSessions", "on")],
            None,
        )
        .await;
    let after = app.get("/account?done=password-others").await;
    let second_after = {
        let mine = app.swap_cookies(second_browser);
        let session = app.get_json("/api/auth/session").await.body;
        app.swap_cookies(mine);
        session
    };

    assert!(page.body.contains("id=\"set-password\"") && page.body.contains("autocomplete=\"new-password\""));
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert!(short.body.contains("at least 15 characters"), "{}", short.body);
    assert_eq!(common.status, StatusCode::BAD_REQUEST);
    assert!(common.body.contains("too common"), "{}", common.body);
    assert_eq!(own.status, StatusCode::BAD_REQUEST);
    assert!(own.body.contains("cannot contain your email address"), "{}", own.body);
    assert_eq!((set.status, set.location()), (StatusCode::SEE_OTHER, "/account?done=password-others"));
    assert!(after.body.contains("You have a password."), "{}", after.body);
    assert_eq!(second_after, "null", "setting the password signed the other browser out");

    // Signed out, back in with the password.
    let csrf = app.csrf_token().await;
    app.post_form("/api/auth/signout", &[("csrfToken", &csrf)], None).await;
    let sign_in_page = app.get("/signin").await;
    let wrong = password_form(&app, "ada@example.com", "violet kestrel under a tin roof!").await;
    let unknown = password_form(&app, "nobody@example.com", GOOD).await;
    let right = password_form(&app, "ADA@example.com", GOOD).await;
    let session = app.get_json("/api/auth/session").await.json();

    assert!(sign_in_page.body.contains("id=\"password-sign-in\""), "{}", sign_in_page.body);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong email address or password."), "{}", wrong.body);
    assert_eq!(
        wrong.body.replace("ada@example.com", "ADDRESS"),
        unknown.body.replace("nobody@example.com", "ADDRESS"),
        "an unknown address gets the very page a wrong password gets"
    );
    assert!(!wrong.body.contains("tin roof"), "the password is never shown again");
    assert_eq!((right.status, right.location()), (StatusCode::SEE_OTHER, "/welcome"));
    assert_eq!(session["user"]["email"], "ada@example.com");
}

async fn sensitive_changes_need_a_recent_sign_in_confirmed_by_password_or_link(app: TestApp) {
    sign_up_with_password(&app, "grace@example.com", GOOD).await;
    app.clock.advance(TimeDelta::minutes(11));
    let csrf = app.csrf_token().await;
    let cookie_before = app.cookies.lock().expect("jar")["magiclink.session-token"].clone();

    let page = app.get("/account").await;
    let set = app.post_form("/account/password", &[("csrfToken", &csrf), ("password", GOOD)], None).await;
    let change = app.post_form("/account/email", &[("csrfToken", &csrf), ("email", "grace2@example.com")], None).await;
    let wrong =
        app.post_form("/account/reauthenticate", &[("csrfToken", &csrf), ("password", "not it at all")], None).await;
    let confirmed = app.post_form("/account/reauthenticate", &[("csrfToken", &csrf), ("password", GOOD)], None).await;
    let cookie_after = app.cookies.lock().expect("jar")["magiclink.session-token"].clone();
    let page_after = app.get("/account").await;
    let set_now = app
        .post_form("/account/password", &[("csrfToken", &csrf), ("password", "a brand new passphrase here")], None)
        .await;

    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"reauth-password\"") && page.body.contains("id=\"reauth-with-link\""));
    assert!(!page.body.contains("id=\"set-password\"") && !page.body.contains("id=\"change-email\""));
    assert_eq!(set.status, StatusCode::FORBIDDEN, "{}", set.body);
    assert_eq!(change.status, StatusCode::FORBIDDEN, "{}", change.body);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("That password is not right."), "{}", wrong.body);
    assert_eq!((confirmed.status, confirmed.location()), (StatusCode::SEE_OTHER, "/account?done=confirmed"));
    assert_ne!(cookie_before, cookie_after, "confirming replaces the session");
    let old = domain::SessionToken::parse(&cookie_before).expect("a token").hash();
    assert!(app.database.sessions.find(&old).await.expect("read").is_none(), "the old session ended");
    assert!(page_after.body.contains("id=\"set-password\""), "{}", page_after.body);
    assert_eq!((set_now.status, set_now.location()), (StatusCode::SEE_OTHER, "/account?done=password"));

    // Later again, confirming with a fresh link instead.
    app.clock.advance(TimeDelta::minutes(11));
    let asked = app.post_form("/account/reauthenticate/link", &[("csrfToken", &csrf)], None).await;
    let link = app.latest_link("grace@example.com").await;
    let opened = app.get(&link).await;
    let change_now =
        app.post_form("/account/email", &[("csrfToken", &csrf), ("email", "grace2@example.com")], None).await;

    assert_eq!((asked.status, asked.location()), (StatusCode::SEE_OTHER, "/check-your-email"));
    assert_eq!((opened.status, opened.location()), (StatusCode::SEE_OTHER, "/account?done=confirmed"));
    assert_eq!((change_now.status, change_now.location()), (StatusCode::SEE_OTHER, "/account?done=confirm-sent"));
}

async fn a_program_uses_passwords_through_the_json_api(app: TestApp) {
    let providers = app.get_json("/api/auth/providers").await.json();
    app.sign_in("lin@example.com", "/").await;
    let csrf = app.csrf_token().await;
    let header = [("x-csrf-token", csrf.as_str())];

    let common =
        app.post_json("/api/auth/password", &serde_json::json!({ "password": "qwertyuiopasdfgh" }), &header).await;
    let set = app
        .post_json(
            "/api/auth/password",
            &serde_json::json!({ "password": GOOD, "signOutOtherSessions": false }),
            &header,
        )
        .await;
    app.clock.advance(TimeDelta::minutes(11));
    let stale = app.post_json("/api/auth/password", &serde_json::json!({ "password": GOOD }), &header).await;
    let reauth_wrong =
        app.post_json("/api/auth/reauthenticate", &serde_json::json!({ "password": "nope nope nope" }), &header).await;
    let reauth = app.post_json("/api/auth/reauthenticate", &serde_json::json!({ "password": GOOD }), &header).await;
    let fresh = app.post_json("/api/auth/password", &serde_json::json!({ "password": GOOD }), &header).await;
    app.swap_cookies(Default::default());
    let csrf = app.csrf_token().await;
    let header = [("x-csrf-token", csrf.as_str())];
    let body =
        |email: &str, password: &str| serde_json::json!({ "email": email, "password": password, "callbackUrl": "/x" });
    let rejected =
        app.post_json("/api/auth/callback/password", &body("lin@example.com", "wrong wrong wrong"), &header).await;
    let forged = app.post_json("/api/auth/callback/password", &body("lin@example.com", GOOD), &[]).await;
    let signed_in = app.post_json("/api/auth/callback/password", &body("lin@example.com", GOOD), &header).await;

    assert_eq!(providers["password"]["type"], "credentials", "{providers}");
    assert_eq!(providers["password"]["signinUrl"], "http://127.0.0.1:3000/api/auth/callback/password");
    assert_eq!(common.status, StatusCode::BAD_REQUEST);
    assert_eq!(common.json()["type"], "urn:magiclink:problem:password-common");
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.json()["otherSessionsEnded"], 0);
    assert_eq!(stale.status, StatusCode::FORBIDDEN);
    assert_eq!(stale.json()["type"], "urn:magiclink:problem:reauthentication-required");
    assert_eq!(reauth_wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reauth_wrong.json()["type"], "urn:magiclink:problem:password-rejected");
    assert_eq!(reauth.status, StatusCode::NO_CONTENT, "{}", reauth.body);
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rejected.json()["type"], "urn:magiclink:problem:password-rejected");
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.json()["url"], "http://127.0.0.1:3000/x");
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "lin@example.com");
}

#[tokio::test]
async fn guessing_locks_out_password_sign_in_for_that_address_but_never_its_links() {
    let app = TestApp::spawn_with(|settings| {
        with_passwords(settings);
        settings.password.failed_per_address_per_hour = 3;
        settings.rate_limit.address_min_gap = 60;
        settings.rate_limit.address_per_hour = 5;
    })
    .await;
    sign_up_with_password(&app, "target@example.com", GOOD).await;
    app.swap_cookies(Default::default());

    let mut statuses = Vec::new();
    for guess in ["guess one one one", "guess two two two", "guess three three", "guess four four four"] {
        statuses.push(password_form(&app, "target@example.com", guess).await.status);
    }
    let right_but_locked = password_form(&app, "target@example.com", GOOD).await;
    let other_address = password_form(&app, "someone@example.com", "guess one one one").await;
    // The owner's magic link still works (its own counters; the gap since the last link passed).
    app.clock.advance(TimeDelta::seconds(61));
    let link = app.sign_in("target@example.com", "/").await;

    assert_eq!(statuses[..3], [StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(right_but_locked.status, StatusCode::TOO_MANY_REQUESTS, "not even the right password is checked");
    assert!(right_but_locked.header("retry-after").parse::<u64>().is_ok_and(|s| s > 0));
    assert!(right_but_locked.body.contains("You can still sign in with an emailed link."), "{}", right_but_locked.body);
    assert_eq!(other_address.status, StatusCode::UNAUTHORIZED, "another address has its own counter");
    assert_eq!(link.status, StatusCode::SEE_OTHER, "{}", link.body);
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], "target@example.com");
}

#[tokio::test]
async fn with_passwords_off_the_routes_say_so_and_the_pages_offer_links_only() {
    let app = TestApp::spawn().await;
    let csrf = app.csrf_token().await;
    let header = [("x-csrf-token", csrf.as_str())];

    let signin = app.get("/signin").await;
    let providers = app.get_json("/api/auth/providers").await.json();
    let json = app
        .post_json(
            "/api/auth/callback/password",
            &serde_json::json!({ "email": "a@example.com", "password": GOOD }),
            &header,
        )
        .await;
    let form = password_form(&app, "a@example.com", GOOD).await;
    app.sign_in("a@example.com", "/").await;
    let account = app.get("/account").await;
    let set = app.post_json("/api/auth/password", &serde_json::json!({ "password": GOOD }), &header).await;

    assert!(!signin.body.contains("id=\"password-sign-in\""), "{}", signin.body);
    assert!(providers.get("password").is_none(), "{providers}");
    assert_eq!(json.status, StatusCode::NOT_FOUND);
    assert_eq!(json.json()["type"], "urn:magiclink:problem:passwords-disabled");
    assert_eq!(form.status, StatusCode::NOT_FOUND);
    assert!(!account.body.contains("id=\"set-password\""), "{}", account.body);
    assert_eq!(set.json()["type"], "urn:magiclink:problem:passwords-disabled");
}

#[tokio::test]
async fn a_hash_made_with_a_weaker_cost_is_replaced_at_the_next_sign_in() {
    let app = TestApp::spawn_with(|settings| {
        with_passwords(settings);
        settings.password.memory_kib = 9_216;
        settings.password.iterations = 4;
    })
    .await;
    let user = app
        .database
        .users
        .find_or_create_verified(&domain::EmailAddress::parse("old@example.com").expect("valid"), app.clock.now())
        .await
        .expect("user");
    let weaker = adapters::password::Argon2Hasher::new(
        adapters::password::Argon2Cost { memory_kib: 7_168, iterations: 5, parallelism: 1 },
        1,
    )
    .expect("valid cost");
    let old =
        ports::PasswordHasher::hash(&weaker, &domain::Password::typed(GOOD).expect("typed")).await.expect("hashed");
    app.database
        .passwords
        .set_password(
            &user.id,
            &old,
            &domain::audit::AuditEvent::new(
                domain::audit::AuditKind::PasswordSet,
                domain::audit::AuditOutcome::Succeeded,
                app.clock.now(),
                &domain::audit::RequestOrigin::default(),
            ),
            app.clock.now(),
        )
        .await
        .expect("stored");

    let signed_in = password_form(&app, "old@example.com", GOOD).await;
    let stored = app.database.passwords.password_of(&user.id).await.expect("read").expect("a hash");

    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
    assert!(old.as_phc().contains("m=7168,t=5"), "{}", old.as_phc());
    assert!(stored.as_phc().starts_with("$argon2id$v=19$m=9216,t=4,p=1$"), "{}", stored.as_phc());
}

#[tokio::test]
async fn under_an_allowlist_the_address_can_change_only_within_it() {
    let app = TestApp::spawn_with(|settings| {
        settings.sign_up.mode = xtask::settings::SignUpMode::Allowlist;
        settings.sign_up.allowed_domains = vec!["example.com".to_owned()];
    })
    .await;
    app.sign_in("staff@example.com", "/account").await;
    let csrf = app.csrf_token().await;
    let header = [("x-csrf-token", csrf.as_str())];

    let page = app.post_form("/account/email", &[("csrfToken", &csrf), ("email", "me@gmail.com")], None).await;
    let json = app.post_json("/api/auth/email", &serde_json::json!({ "email": "me@gmail.com" }), &header).await;
    let inside = app.post_json("/api/auth/email", &serde_json::json!({ "email": "me@example.com" }), &header).await;

    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("Addresses at that domain cannot sign in here."), "{}", page.body);
    assert_eq!(json.status, StatusCode::BAD_REQUEST);
    assert_eq!(json.json()["type"], "urn:magiclink:problem:address-not-allowed");
    assert_eq!(inside.status, StatusCode::OK, "{}", inside.body);
}

// Each flow above, a test on each backend over its scratch database, passwords on.
system_tests::flows_on_every_backend!(super::with_passwords;
    a_person_sets_a_password_after_a_link_and_signs_in_with_it,
    sensitive_changes_need_a_recent_sign_in_confirmed_by_password_or_link,
    a_program_uses_passwords_through_the_json_api,
);
