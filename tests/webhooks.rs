//! Webhooks through the real server, received by a real HTTP server that verifies every
//! delivery with `standardwebhooks` (the Standard Webhooks reference library; not written here):
//! an account's events arrive signed, in order, after the receiver was down for a while, and
//! keep verifying while the endpoint's secret is rotated.

use std::process::{Command, Stdio};

use serde_json::Value;
use system_tests::child::{lines_of, next_line, StopOnDrop};
use system_tests::RunningServer;
use xtask::settings::WebhookSettings;
use xtask::tasks::require;

/// Two endpoint secrets, `whsec_` + base64 of 32 bytes: the one in use, and its successor.
const OLD: &str = "whsec_b2xkLXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE=";
const NEW: &str = "whsec_bmV3LXNlY3JldC1vZi10aGlydHktdHdvLWJ5dGVzISE=";

/// Starts the receiver, down for the first `down_for` deliveries, verifying with both secrets;
/// returns it, its lines, and its URL.
fn receiver(python: &std::path::Path, down_for: u32) -> (StopOnDrop, std::sync::mpsc::Receiver<Value>, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("support/webhooks/receiver.py");
    let mut child = StopOnDrop(
        Command::new(python)
            .arg(script)
            .args([down_for.to_string(), format!("old={OLD}"), format!("new={NEW}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts"),
    );
    let lines = lines_of(child.0.stdout.take().expect("stdout"));
    let port = next_line(&lines, "its port")["port"].as_u64().expect("a port");
    (child, lines, format!("http://127.0.0.1:{port}/hooks"))
}

/// A server whose webhooks go to `url`, signed with `secret` (and `previous`), retried a
/// second apart.
async fn server(url: &str, secret: &str, previous: &[&str]) -> RunningServer {
    let webhook = WebhookSettings {
        url: url.to_owned(),
        events: ["user.created", "user.signed_in", "user.signed_out", "user.updated", "user.deleted"]
            .map(str::to_owned)
            .to_vec(),
        secret: secret.to_owned().into(),
        previous_secrets: previous.iter().map(|s| (*s).to_owned().into()).collect(),
    };
    RunningServer::start_with(
        move |settings| {
            settings.outbox.base_delay = 1;
            settings.outbox.max_delay = 2;
            settings.webhooks = vec![webhook];
        },
        xtask::wiring::Parts::default(),
    )
    .await
}

/// The next delivery the receiver verified (skipping none): its payload and who verified it.
fn delivery(lines: &std::sync::mpsc::Receiver<Value>, waiting_for: &str) -> (Value, Vec<String>) {
    let line = next_line(lines, waiting_for);
    let verified: Vec<String> = line["verified_with"]
        .as_array()
        .unwrap_or_else(|| panic!("a delivery, not {line}"))
        .iter()
        .map(|name| name.as_str().expect("a name").to_owned())
        .collect();
    assert!(line["id"].as_str().is_some_and(|id| id.starts_with("msg_")), "{line}");
    (line["payload"].clone(), verified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_events_arrive_signed_and_in_order_after_the_receiver_was_down() {
    let Some(python) = require(&xtask::tasks::STANDARDWEBHOOKS) else { return };
    let (_receiver, lines, url) = receiver(&python, 2);
    let server = server(&url, OLD, &[]).await;

    // A first sign-in makes the account and signs in; then the person signs out. The receiver
    // refuses the first two deliveries; the outbox retries.
    let cookie = server.sign_in_over_http("hooked@example.com").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut jar = std::collections::BTreeMap::new();
    let (name, value) = cookie.split_once('=').expect("name=value");
    jar.insert(name.to_owned(), value.to_owned());
    let csrf = http.get(format!("{}/api/auth/csrf", server.base_url)).send().await.expect("csrf answers");
    system_tests::keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    let out = http
        .post(format!("{}/api/auth/signout", server.base_url))
        .header("cookie", system_tests::cookie_header(&jar))
        .form(&[("csrfToken", token.as_str())])
        .send()
        .await
        .expect("signs out");
    assert!(out.status().is_success() || out.status().is_redirection(), "{}", out.status());
    assert_eq!(next_line(&lines, "the first attempt"), serde_json::json!({ "refused": 503 }));
    assert_eq!(next_line(&lines, "the second attempt"), serde_json::json!({ "refused": 503 }));

    let mut types = Vec::new();
    for waiting_for in ["user.created", "user.signed_in", "user.signed_out"] {
        let (payload, verified) = delivery(&lines, waiting_for);
        assert_eq!(verified, ["old"], "signed with the configured secret only: {payload}");
        assert_eq!(payload["data"]["email"], "hooked@example.com");
        assert!(payload["data"]["user_id"].as_str().is_some_and(|id| !id.is_empty()));
        types.push(payload["type"].as_str().expect("a type").to_owned());
    }
    assert_eq!(types, ["user.created", "user.signed_in", "user.signed_out"], "one person's events, in order");

    // Deleted: the last event names the person by id only.
    let event = domain::audit::AuditEvent::new(
        domain::audit::AuditKind::UserDeleted,
        domain::audit::AuditOutcome::Succeeded,
        chrono::Utc::now(),
        &domain::audit::RequestOrigin::default(),
    );
    let address = domain::EmailAddress::parse("hooked@example.com").expect("address");
    server.database.users.remove(&address, None, &event).await.expect("deleted").expect("there was one");
    let (payload, _) = delivery(&lines, "user.deleted");
    assert_eq!(payload["type"], "user.deleted");
    assert!(payload["data"]["email"].is_null(), "the address is gone with the person: {payload}");

    // The receiver answered before the worker recorded it: wait (a minute at most) for the
    // records, which `magiclink outbox` lists.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let rows = loop {
        let rows = server.database.outbox.list(Some(ports::DeliveryState::Sent), 20).await.expect("listed");
        if rows.iter().filter(|row| row.kind == ports::MessageKind::Webhook).count() == 4 {
            break rows;
        }
        assert!(tokio::time::Instant::now() < deadline, "the deliveries were never recorded: {rows:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let webhooks: Vec<_> = rows.iter().filter(|row| row.kind == ports::MessageKind::Webhook).collect();
    assert!(webhooks.iter().all(|row| row.recipient == ports::Addressee::Endpoint(url.clone())));
    assert!(webhooks.iter().any(|row| row.attempts == 3), "the first was tried three times: {webhooks:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_verify_before_during_and_after_a_secret_rotation() {
    let Some(python) = require(&xtask::tasks::STANDARDWEBHOOKS) else { return };
    let (_receiver, lines, url) = receiver(&python, 0);
    // Before: the old secret. During: the new one, the old still signing too, so a receiver
    // that has not been given the new secret yet keeps verifying. After: the new one alone.
    for (phase, secret, previous, expected) in [
        ("before", OLD, vec![], vec!["old"]),
        ("during", NEW, vec![OLD], vec!["old", "new"]),
        ("after", NEW, vec![], vec!["new"]),
    ] {
        let server = server(&url, secret, &previous).await;
        server.sign_in_over_http(&format!("{phase}@example.com")).await;
        for waiting_for in ["user.created", "user.signed_in"] {
            let (payload, verified) = delivery(&lines, waiting_for);
            assert_eq!(payload["type"], waiting_for, "{phase}");
            assert_eq!(verified, expected, "{phase}: {payload}");
        }
    }
}
