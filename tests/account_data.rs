//! A person's own data through the real server: the export holds everything kept about them,
//! and deleting the account (behind a recent sign-in and the address typed again) removes it,
//! signs them out everywhere, emails them goodbye, and leaves only their audit events.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::Value;
use system_tests::{cookie_header, keep_cookies, RunningServer};

/// A client signed in as `email`, with its cookie jar and CSRF token.
async fn signed_in(server: &RunningServer, email: &str) -> (reqwest::Client, BTreeMap<String, String>, String) {
    let session = server.sign_in_over_http(email).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut jar = BTreeMap::new();
    let (name, value) = session.split_once('=').expect("name=value");
    jar.insert(name.to_owned(), value.to_owned());
    let csrf = http.get(format!("{}/api/auth/csrf", server.base_url)).send().await.expect("csrf");
    keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    (http, jar, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_everything_kept_and_deleting_leaves_only_the_audit_trail() {
    let server = RunningServer::start().await;
    let base = &server.base_url;
    let (http, jar, token) = signed_in(&server, "leaving@example.com").await;
    let user = server
        .database
        .users
        .find_by_email(&domain::EmailAddress::parse("leaving@example.com").expect("address"))
        .await
        .expect("read")
        .expect("the user");

    let export = http
        .get(format!("{base}/api/auth/account/export"))
        .header("cookie", cookie_header(&jar))
        .send()
        .await
        .expect("export answers");
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(
        export.headers()["content-disposition"].to_str().expect("ascii"),
        "attachment; filename=\"magiclink-account.json\""
    );
    let document: Value = export.json().await.expect("JSON");
    assert_eq!(document["user"]["id"], user.id.as_str());
    assert_eq!(document["user"]["email"], "leaving@example.com");
    assert_eq!(document["user"]["hasPassword"], false);
    assert_eq!(document["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(document["sessions"][0]["current"], true);
    let kinds: Vec<&str> =
        document["activity"].as_array().expect("activity").iter().map(|e| e["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["link.redeemed", "user.created"], "{document}");
    let anonymous = http.get(format!("{base}/api/auth/account/export")).send().await.expect("answers");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Deleting: a wrong address deletes nothing; without the CSRF header, nothing either.
    let delete = |confirm: &str, with_token: bool| {
        let mut request = http
            .delete(format!("{base}/api/auth/account"))
            .header("cookie", cookie_header(&jar))
            .json(&serde_json::json!({ "confirmEmail": confirm }));
        if with_token {
            request = request.header("x-csrf-token", &token);
        }
        request.send()
    };
    let wrong = delete("someone.else@example.com", true).await.expect("answers");
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert!(wrong.text().await.expect("text").contains("confirmation-mismatch"));
    assert_eq!(delete("leaving@example.com", false).await.expect("answers").status(), StatusCode::FORBIDDEN);
    assert!(server.database.users.find(&user.id).await.expect("read").is_some(), "still there");

    let mut delivered = server.mailbox.as_ref().expect("dev mailer").subscribe();
    let before = *delivered.borrow_and_update();
    let deleted = delete(" Leaving@Example.com ", true).await.expect("answers");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let cleared = deleted.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>();
    assert!(cleared.iter().any(|c| c.contains("session-token=") && c.contains("Max-Age=0")), "{cleared:?}");

    // Gone: the session no longer works, the account is not found, a goodbye email went out.
    let session = http
        .get(format!("{base}/api/auth/session"))
        .header("cookie", cookie_header(&jar))
        .send()
        .await
        .expect("answers");
    assert_eq!(session.text().await.expect("text").trim(), "null");
    assert!(server.database.users.find(&user.id).await.expect("read").is_none());
    let mail = server.mail_after(&mut delivered, before, "leaving@example.com").await;
    assert_eq!(mail[0]["kind"], "security_alert");
    assert_eq!(mail[0]["subject"], "Your magiclink account was deleted");
    // What stays: the audit trail, by id, with no address in it.
    let query = ports::AuditQuery { user_id: Some(user.id.clone()), limit: 50, ..Default::default() };
    let events = server.database.audit.list(&query).await.expect("read");
    assert_eq!(events[0].event.kind, domain::audit::AuditKind::UserDeleted);
    assert!(!format!("{events:?}").contains("leaving@example.com"), "{events:#?}");
}
