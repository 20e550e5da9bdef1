//! Rotating the server secret: `secret` signs everything new, `previous_secrets` still verify
//! what the old secret signed. Two apps on one database stand for the service before and after
//! the restart that rotates it; the "browser" (the cookie jar) carries over.

use std::collections::BTreeMap;

use poem::http::StatusCode;
use system_tests::TestApp;

const OLD: &str = "old-secret-old-secret-old-secret-0";
const NEW: &str = "new-secret-new-secret-new-secret-1";

/// The service on the database in `dir`, with `secret` and `previous` secrets.
async fn service(dir: &tempfile::TempDir, secret: &str, previous: &[&str]) -> TestApp {
    let url = format!("sqlite://{}", dir.path().join("shared.sqlite").display());
    let previous: Vec<_> = previous.iter().map(|s| (*s).to_owned().into()).collect();
    let secret = secret.to_owned();
    TestApp::spawn_with(move |s| {
        s.database.url = url.into();
        s.secret = secret.into();
        s.previous_secrets = previous;
    })
    .await
}

/// Moves the browser's cookies from one app to the other.
fn carry_browser(from: &TestApp, to: &TestApp) {
    to.swap_cookies(from.swap_cookies(BTreeMap::new()));
}

#[tokio::test]
async fn a_link_asked_for_before_the_rotation_is_delivered_and_signs_in_after_it() {
    let dir = tempfile::tempdir().expect("folder");
    let before = service(&dir, OLD, &[]).await;
    before.request_link("rotating@example.com", "/after").await;
    let form_token = before.csrf_token().await;
    assert_eq!(before.stop_delivery().await, 1, "the old server stops before sending it");

    let after = service(&dir, NEW, &[OLD]).await;
    carry_browser(&before, &after);
    // The email waited in the outbox, sealed under the old secret.
    assert_eq!(after.deliver().await.sent, 1);
    let link = after.latest_link("rotating@example.com").await;
    let opened = after.get(&link).await;

    assert_eq!(opened.status, StatusCode::SEE_OTHER, "the old pending cookie still names the link");
    assert_eq!(opened.location(), "/after");
    assert_eq!(after.get_json("/api/auth/session").await.json()["user"]["email"], "rotating@example.com");
    let signed_out = after.post_form("/api/auth/signout", &[("csrfToken", &form_token)], None).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER, "a form opened before the rotation still posts");
}

#[tokio::test]
async fn a_code_issued_before_the_rotation_works_after_it() {
    let dir = tempfile::tempdir().expect("folder");
    let before = service(&dir, OLD, &[]).await;
    before.request_link("code-rotating@example.com", "/").await;
    before.deliver().await;
    let code = before.get_json("/dev/mailbox").await.json()[0]["code"].as_str().expect("a code").to_owned();

    let after = service(&dir, NEW, &[OLD]).await;
    carry_browser(&before, &after);
    let token = after.csrf_token().await;
    let signed_in = after.post_form("/api/auth/callback/email", &[("csrfToken", &token), ("code", &code)], None).await;

    assert_eq!(signed_in.status, StatusCode::SEE_OTHER, "{}", signed_in.body);
}

#[tokio::test]
async fn without_the_previous_secret_nothing_old_is_honoured() {
    let dir = tempfile::tempdir().expect("folder");
    let before = service(&dir, OLD, &[]).await;
    before.request_link("forgotten@example.com", "/").await;
    before.deliver().await;
    let link = before.latest_link("forgotten@example.com").await;
    let form_token = before.csrf_token().await;

    let after = service(&dir, NEW, &[]).await;
    carry_browser(&before, &after);
    let opened = after.get(&link).await;
    let posted = after.post_form("/api/auth/signout", &[("csrfToken", &form_token)], None).await;

    assert_eq!(opened.location(), "/auth-error?error=Verification&reason=invalid");
    assert_eq!(posted.status, StatusCode::FORBIDDEN);
    // A configured secret survives restarts: the invalid-link page does not blame one.
    let page = after.get("/auth-error?error=Verification&reason=invalid").await;
    assert!(page.body.contains("This link is not valid") && !page.body.contains("dev-restart"), "{}", page.body);
}
