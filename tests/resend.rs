//! The Resend mailer against a local HTTP server (wiremock) standing in for the API.

use std::time::Duration;

use adapters::mail::{parse_from, ResendMailer, ResendSettings, TemplateRenderer};
use domain::EmailAddress;
use ports::{Email, EmailContent, EmailRenderer as _, MailError, Mailer, OutgoingEmail};
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const LINK: &str = "http://127.0.0.1:3000/api/auth/callback/email?callbackUrl=%2F&token=T0k&email=alice%40example.com";

/// A sign-in email rendered from the built-in templates, as delivery hands it to a mailer.
fn email() -> OutgoingEmail {
    let email = Email {
        to: EmailAddress::parse("alice@example.com").expect("valid"),
        lang: "en".to_owned(),
        content: EmailContent::SignIn {
            link: url::Url::parse(LINK).expect("valid"),
            code: Some("0123-WXYZ".to_owned()),
        },
        expires_in_seconds: 600,
        site_name: "magiclink".to_owned(),
        host: "127.0.0.1".to_owned(),
    };
    let rendered = TemplateRenderer::builtin().expect("templates parse").render(&email).expect("renders");
    OutgoingEmail { to: email.to, content: email.content, rendered }
}

fn mailer(server: &MockServer) -> ResendMailer {
    let settings = ResendSettings {
        api_key: domain::SecretText::new("re_test_key"),
        base_url: server.uri(),
        timeout: Duration::from_secs(5),
    };
    ResendMailer::new(&settings, &parse_from("magiclink <no-reply@example.com>").expect("valid"))
        .expect("mailer builds")
}

#[tokio::test]
async fn a_sent_email_is_the_exact_request_resend_documents_and_keeps_the_id() {
    let server = MockServer::start().await;
    let rendered = email().rendered;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .and(header("authorization", "Bearer re_test_key"))
        .and(header("content-type", "application/json"))
        .and(header("idempotency-key", "0190-row"))
        .and(body_json(json!({
            "from": "magiclink <no-reply@example.com>",
            "to": ["alice@example.com"],
            "subject": "Sign in to magiclink",
            "html": rendered.html,
            "text": rendered.text,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "id": "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794" })))
        .expect(1)
        .mount(&server)
        .await;

    let receipt = mailer(&server).send(&email(), "0190-row").await.expect("sent");

    assert_eq!(receipt.provider_message_id.as_deref(), Some("49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"));
    assert!(rendered.text.contains(LINK));
}

#[tokio::test]
async fn a_validation_error_is_permanent_and_carries_resends_message() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/emails"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "statusCode": 422, "name": "validation_error", "message": "The `from` domain is not verified."
        })))
        .mount(&server)
        .await;

    let result = mailer(&server).send(&email(), "row").await;

    match result {
        Err(MailError::Permanent(error)) => {
            assert!(format!("{error:#}").contains("The `from` domain is not verified."), "{error:#}")
        }
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorised_and_forbidden_are_permanent() {
    for status in [401, 403] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({ "message": "API key is invalid" })))
            .mount(&server)
            .await;
        let result = mailer(&server).send(&email(), "row").await;
        assert!(matches!(result, Err(MailError::Permanent(_))), "{status}: {result:?}");
    }
}

#[tokio::test]
async fn rate_limiting_is_transient_and_honours_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(json!({ "message": "Too many requests" })),
        )
        .mount(&server)
        .await;

    let result = mailer(&server).send(&email(), "row").await;

    match result {
        Err(MailError::Transient { retry_after, .. }) => assert_eq!(retry_after, Some(Duration::from_secs(7))),
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_error_is_transient() {
    let server = MockServer::start().await;
    Mock::given(method("POST")).respond_with(ResponseTemplate::new(500)).mount(&server).await;

    let result = mailer(&server).send(&email(), "row").await;

    assert!(matches!(result, Err(MailError::Transient { retry_after: None, .. })), "{result:?}");
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("probe").local_addr().expect("addr").port();
    let settings = ResendSettings {
        api_key: domain::SecretText::new("re_test_key"),
        base_url: format!("http://127.0.0.1:{port}"),
        timeout: Duration::from_secs(5),
    };
    let mailer = ResendMailer::new(&settings, &parse_from("no-reply@example.com").expect("valid")).expect("builds");

    let result = mailer.send(&email(), "row").await;

    assert!(matches!(result, Err(MailError::Transient { .. })), "{result:?}");
}

#[test]
fn a_missing_api_key_is_refused_naming_the_setting() {
    let settings = ResendSettings {
        api_key: domain::SecretText::default(),
        base_url: "https://api.resend.com".to_owned(),
        timeout: Duration::from_secs(5),
    };
    let error =
        ResendMailer::new(&settings, &parse_from("no-reply@example.com").expect("valid")).err().expect("refused");
    assert!(error.to_string().contains("AUTH_RESEND_KEY"), "{error}");
}

#[tokio::test]
async fn the_start_up_check_accepts_a_key_resend_answers_and_says_what_is_wrong_otherwise() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/domains"))
        .and(header("authorization", "Bearer re_test_key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "data": [] })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/domains"))
        .and(header("authorization", "Bearer re_sending_only"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "statusCode": 401, "name": "restricted_api_key", "message": "This API key is restricted to only send emails"
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/domains"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "statusCode": 401, "name": "validation_error", "message": "API key is invalid"
        })))
        .mount(&server)
        .await;
    let with_key = |key: &str, base_url: String| {
        let settings =
            ResendSettings { api_key: domain::SecretText::new(key), base_url, timeout: Duration::from_secs(5) };
        ResendMailer::new(&settings, &parse_from("magiclink <no-reply@example.com>").expect("valid")).expect("builds")
    };
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("address");

    let good = with_key("re_test_key", server.uri()).check().await;
    let sending_only = with_key("re_sending_only", server.uri()).check().await;
    let refused = with_key("re_revoked_key", server.uri()).check().await;
    let misshapen = with_key("sk_live_0123", server.uri()).check().await;
    let unreachable = with_key("re_test_key", format!("http://{closed}")).check().await;

    good.expect("a key Resend answers passes");
    sending_only.expect("a sending-only key passes: Resend names it");
    let said = |result: anyhow::Result<()>| format!("{:#}", result.expect_err("refused"));
    let refused = said(refused);
    assert!(
        refused.contains("Resend refused mailer.resend.api_key") && refused.contains("API key is invalid"),
        "{refused}"
    );
    assert!(!refused.contains("re_revoked_key"), "the key is never repeated: {refused}");
    assert!(said(misshapen).contains("they start with `re_`"));
    assert!(said(unreachable).starts_with(&format!("cannot reach Resend at http://{closed}")));
}
