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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_reads_their_activity_and_a_disabled_account_is_signed_out_and_sent_nothing() {
    let server = RunningServer::start().await;
    let base = &server.base_url;
    let session_cookie = server.sign_in_over_http("reader@example.com").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let get = |path: &str, cookie: Option<&str>| {
        let mut request = http.get(format!("{base}{path}")).header("accept", "application/json");
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };

    // The JSON twin: their sign-in, from this session, newest first; nothing of anyone else.
    server.sign_in_over_http("someone-else@example.com").await;
    let activity = get("/api/auth/activity", Some(&session_cookie)).await.expect("answers");
    assert_eq!(activity.status(), StatusCode::OK);
    let body: serde_json::Value = activity.json().await.expect("JSON");
    let events = body["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().map(|event| event["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["link.redeemed", "user.created"], "{body}");
    assert_eq!(events[0]["thisSession"], true);
    assert_eq!(events[0]["method"], "link");
    assert_eq!(events[0]["clientAddress"], "127.0.0.0/24");
    assert!(body["next"].is_null(), "one page holds it all");
    let paged = get("/api/auth/activity?limit=1", Some(&session_cookie)).await.expect("answers");
    let paged: serde_json::Value = paged.json().await.expect("JSON");
    let next = paged["next"].as_str().expect("a next page");
    let older = get(&format!("/api/auth/activity?limit=1&before={next}"), Some(&session_cookie)).await.expect("ok");
    let older: serde_json::Value = older.json().await.expect("JSON");
    assert_eq!(older["events"][0]["kind"], "user.created");
    let malformed = get("/api/auth/activity?limit=lots", Some(&session_cookie)).await.expect("answers");
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let anonymous = get("/api/auth/activity", None).await.expect("answers");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/problem+json"));

    // The account page shows the same, in words.
    let page = http
        .get(format!("{base}/account"))
        .header("cookie", &session_cookie)
        .header("accept-language", "en")
        .send()
        .await
        .expect("answers");
    let page = page.text().await.expect("text");
    assert!(page.contains("Recent security activity"), "{page}");
    assert!(page.contains("Signed in with a link") && page.contains("Account created"), "{page}");

    // Disabled by an operator: the session stops working at once, and a link asked for the
    // address gets the answer anyone gets and no email.
    let address = domain::EmailAddress::parse("reader@example.com").expect("address");
    let event = domain::audit::AuditEvent::new(
        AuditKind::UserDisabled,
        domain::audit::AuditOutcome::Succeeded,
        chrono::Utc::now(),
        &domain::audit::RequestOrigin::default(),
    );
    let disabled = server.database.users.set_disabled(&address, true, &event, chrono::Utc::now()).await;
    assert!(matches!(disabled.expect("disabled"), ports::AccountStatusChange::Changed { sessions_ended: 1, .. }));
    let session = get("/api/auth/session", Some(&session_cookie)).await.expect("answers");
    assert_eq!(session.text().await.expect("text").trim(), "null", "signed out, as Auth.js says it");

    let mailbox = server.mailbox.as_ref().expect("the dev mailer");
    let mut delivered = mailbox.subscribe();
    let before = *delivered.borrow_and_update();
    let mut answers = Vec::new();
    for email in ["reader@example.com", "nobody-yet@example.com"] {
        let mut jar = BTreeMap::new();
        let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf answers");
        keep_cookies(&mut jar, csrf.headers());
        let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("t").to_owned();
        let posted = http
            .post(format!("{base}/api/auth/signin/email"))
            .header("cookie", cookie_header(&jar))
            .form(&[("email", email), ("csrfToken", &token), ("callbackUrl", "/")])
            .send()
            .await
            .expect("answers");
        let location = posted.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
        answers.push((posted.status(), location.to_owned()));
    }
    assert_eq!(answers[0].0, answers[1].0, "the same answer: {answers:?}");
    assert_eq!(answers[0].1, answers[1].1.replace("nobody-yet", "reader"), "{answers:?}");
    // The allowed address's email arrives; by then the disabled one's would have too.
    server.mail_after(&mut delivered, before, "nobody-yet@example.com").await;
    let to_reader = get("/dev/mailbox?to=reader@example.com", None).await.expect("mailbox");
    let to_reader: serde_json::Value = to_reader.json().await.expect("JSON");
    assert_eq!(to_reader.as_array().map(Vec::len), Some(1), "only the first sign-in's email: {to_reader}");
    let refused = ports::AuditQuery { kind: Some(AuditKind::LinkRequested), limit: 50, ..Default::default() };
    let reasons: Vec<_> = server
        .database
        .audit
        .list(&refused)
        .await
        .expect("read")
        .into_iter()
        .filter_map(|recorded| recorded.event.outcome.reason().map(str::to_owned))
        .collect();
    assert_eq!(reasons, ["account_disabled"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_from_a_browser_new_to_the_account_is_emailed_to_its_owner_once() {
    const CHROME: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    let server = RunningServer::start().await;
    let mailbox = server.mailbox.as_ref().expect("the dev mailer");
    let kinds = || async {
        let mail = server.mail_to("owner@example.com").await;
        mail.as_array()
            .expect("messages")
            .iter()
            .map(|m| (m["kind"].as_str().expect("kind").to_owned(), m["subject"].as_str().expect("s").to_owned()))
            .collect::<Vec<_>>()
    };

    // The first sign-in (Firefox) makes the account: nothing to compare with, no alert.
    server.sign_in_over_http_as("owner@example.com", Some(FIREFOX)).await;
    // Chrome, new to the account: its owner is told, after the link it signed in with.
    let mut delivered = mailbox.subscribe();
    let before = *delivered.borrow_and_update();
    server.sign_in_over_http_as("owner@example.com", Some(CHROME)).await;
    tokio::time::timeout(std::time::Duration::from_secs(30), delivered.wait_for(|sent| *sent >= before + 2))
        .await
        .expect("the link and the alert")
        .expect("mailbox");
    let after_chrome = kinds().await;
    assert_eq!(
        after_chrome[0],
        ("security_alert".to_owned(), "New sign-in to magiclink from Chrome on Linux".to_owned())
    );
    assert_eq!(after_chrome.iter().filter(|(kind, _)| kind == "security_alert").count(), 1, "{after_chrome:?}");

    // Chrome again, and Firefox again: both known, no more alerts. (The next link arriving
    // shows the worker has caught up.)
    server.sign_in_over_http_as("owner@example.com", Some(CHROME)).await;
    server.sign_in_over_http_as("owner@example.com", Some(FIREFOX)).await;
    let all = kinds().await;
    assert_eq!(all.iter().filter(|(kind, _)| kind == "security_alert").count(), 1, "{all:?}");
    assert_eq!(all.iter().filter(|(kind, _)| kind == "sign_in").count(), 4, "{all:?}");
}
