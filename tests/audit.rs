//! The audit log through the real server: a person asks for a link, signs in with it, opens a
//! link that signs nobody in, and signs out; every step is in the log with where it came from,
//! and a refusal with its reason.

use std::collections::BTreeMap;

use domain::audit::AuditKind;
use reqwest::StatusCode;
use system_tests::{cookie_header, keep_cookies, RunningServer};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_step_of_a_sign_in_and_a_sign_out_is_audited_with_where_it_came_from() {
    let server = RunningServer::start().await;
    let base = &server.base_url;
    let session_cookie = server.sign_in_over_http("audited@example.com").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    let mut jar = BTreeMap::new();
    let (name, value) = session_cookie.split_once('=').expect("name=value");
    jar.insert(name.to_owned(), value.to_owned());
    let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf answers");
    keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();

    // A link this service never sent, confirmed from the scanner-safe page.
    let forged = domain::LinkToken::from_random_bytes([9; 32]).encode();
    let refused = http
        .post(format!("{base}/api/auth/callback/email"))
        .header("cookie", cookie_header(&jar))
        .header("user-agent", FIREFOX)
        .form(&[("token", forged.as_str()), ("email", "audited@example.com"), ("csrfToken", token.as_str())])
        .send()
        .await
        .expect("callback answers");
    assert!(refused.status().is_redirection() || refused.status().is_client_error(), "{}", refused.status());

    // Sign out, from Firefox, through the form's CSRF check.
    let out = http
        .post(format!("{base}/api/auth/signout"))
        .header("cookie", cookie_header(&jar))
        .header("user-agent", FIREFOX)
        .form(&[("csrfToken", token.as_str())])
        .send()
        .await
        .expect("sign-out answers");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);

    let user = server
        .database
        .users
        .find_by_email(&domain::EmailAddress::parse("audited@example.com").expect("address"))
        .await
        .expect("read")
        .expect("the user");
    let query = ports::AuditQuery { user_id: Some(user.id.clone()), limit: 50, ..ports::AuditQuery::default() };
    let events: Vec<_> = server.database.audit.list(&query).await.expect("read").into_iter().map(|r| r.event).collect();
    let kinds: Vec<AuditKind> = events.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, vec![AuditKind::SignedOut, AuditKind::LinkRedeemed, AuditKind::UserCreated], "{events:#?}");
    let signed_out = &events[0];
    assert_eq!(signed_out.origin.user_agent.as_deref(), Some("Firefox on Linux"));
    assert_eq!(signed_out.origin.client_address.as_deref(), Some("127.0.0.0/24"), "truncated by default");
    assert!(signed_out.origin.request_id.as_deref().is_some_and(|id| !id.is_empty()));
    let redeemed = &events[1];
    assert_eq!(redeemed.method, Some(domain::SignInMethod::Link));
    assert_eq!(redeemed.session_id, signed_out.session_id, "the session it opened is the one that ended");
    // The link was asked for before the account existed: that event names no one, only the
    // address, masked.
    let requests =
        ports::AuditQuery { kind: Some(AuditKind::LinkRequested), limit: 50, ..ports::AuditQuery::default() };
    let requested = server.database.audit.list(&requests).await.expect("read");
    assert_eq!(requested.len(), 1);
    assert_eq!(requested[0].event.user_id, None);
    assert_eq!(requested[0].event.detail.as_deref(), Some("a***@example.com"), "the address masked, never in full");

    let refusals = ports::AuditQuery { kind: Some(AuditKind::LinkRedeemed), limit: 50, ..ports::AuditQuery::default() };
    let refusal = server
        .database
        .audit
        .list(&refusals)
        .await
        .expect("read")
        .into_iter()
        .map(|recorded| recorded.event)
        .find(|event| event.outcome.reason().is_some())
        .expect("the forged link's refusal");
    assert_eq!(refusal.outcome.reason(), Some("unknown"));
    assert_eq!(refusal.origin.user_agent.as_deref(), Some("Firefox on Linux"));
    let stored =
        format!("{:?}", server.database.audit.list(&ports::AuditQuery { limit: 100, ..Default::default() }).await);
    assert!(!stored.contains(&forged) && !stored.contains(value), "no token or cookie is ever kept");
}
