//! The SMTP mailer against a real SMTP server process on loopback (aiosmtpd), reading back
//! what it stored.

use std::sync::Arc;
use std::time::Duration;

use adapters::mail::{parse_from, SmtpMailer, SmtpSettings, StartTls, TemplateRenderer};
use domain::EmailAddress;
use lettre::message::Mailbox;
use mailparse::MailHeaderMap as _;
use ports::{Email, EmailContent, EmailRenderer as _, MailError, Mailer, OutgoingEmail};
use system_tests::smtp::{ServerTls, SmtpServer, TestCertificates};

fn settings(port: u16, starttls: StartTls, ca: Option<&TestCertificates>) -> SmtpSettings {
    SmtpSettings {
        url: domain::SecretText::new(format!("smtp://127.0.0.1:{port}")),
        username: None,
        password: None,
        starttls,
        timeout: Duration::from_secs(10),
        pool_size: 2,
        extra_root_pem: ca.map(|ca| ca.ca_pem.clone().into_bytes()),
    }
}

fn mailer(settings: &SmtpSettings, from: Mailbox) -> SmtpMailer {
    SmtpMailer::new(settings, from).expect("mailer builds")
}

/// A link long enough that a careless encoder would wrap it, with every character that
/// quoted-printable treats specially.
fn email_to(to: &str) -> OutgoingEmail {
    let callback = format!("/after/{}?a=1&b=2", "x".repeat(120));
    let link = url::Url::parse_with_params(
        "http://127.0.0.1:3000/api/auth/callback/email",
        [("callbackUrl", callback.as_str()), ("token", "AbC-_123=456"), ("email", to)],
    )
    .expect("valid link");
    let email = Email {
        to: EmailAddress::parse(to).expect("valid"),
        lang: "en".to_owned(),
        content: EmailContent::SignIn { link, code: Some("0123-WXYZ".to_owned()) },
        expires_in_seconds: 600,
        site_name: "magiclink".to_owned(),
        host: "127.0.0.1".to_owned(),
    };
    let rendered = TemplateRenderer::builtin().expect("templates parse").render(&email).expect("renders");
    OutgoingEmail { to: email.to, content: email.content, rendered }
}

/// The decoded text of the part with `mime` type.
fn part_body(message: &mailparse::ParsedMail<'_>, mime: &str) -> String {
    message
        .subparts
        .iter()
        .find(|part| part.ctype.mimetype == mime)
        .unwrap_or_else(|| panic!("no {mime} part"))
        .get_body()
        .expect("decodable body")
}

#[tokio::test]
async fn a_sign_in_email_arrives_as_multipart_alternative_with_the_link_intact() {
    let Some(mut server) = SmtpServer::start(None) else { return };
    let mailer = mailer(
        &settings(server.port, StartTls::Off, None),
        parse_from("magiclink <no-reply@example.com>").expect("valid"),
    );
    let email = email_to("alice@example.com");

    let receipt = mailer.send(&email, "0190-row").await.expect("sent");

    assert_eq!(server.next_delivery().await, "alice@example.com");
    assert_eq!(receipt.provider_message_id.as_deref(), Some("<0190-row@example.com>"));
    let raw = &server.messages()[0];
    let message = mailparse::parse_mail(raw).expect("a MIME message");
    let headers = &message.headers;
    assert_eq!(headers.get_first_value("From").as_deref(), Some("magiclink <no-reply@example.com>"));
    assert_eq!(headers.get_first_value("To").as_deref(), Some("alice@example.com"));
    assert_eq!(headers.get_first_value("Subject").as_deref(), Some("Sign in to magiclink"));
    assert_eq!(headers.get_first_value("Message-ID").as_deref(), Some("<0190-row@example.com>"));
    assert_eq!(message.ctype.mimetype, "multipart/alternative");
    assert_eq!(message.subparts.len(), 2);
    let text = part_body(&message, "text/plain");
    let html = part_body(&message, "text/html");
    let link = email.content.link().expect("a link").as_str();
    assert!(text.contains(link), "text part carries the exact link:\n{text}");
    let html_link = link.replace('&', "&amp;").replace('/', "&#x2F;");
    assert!(html.contains(&html_link), "html part carries the link (HTML-escaped):\n{html}");
    assert!(html.contains("expires in 10 minutes"));
}

#[test]
fn a_display_name_with_line_breaks_is_refused_at_start_up_not_sent() {
    let hostile = Mailbox::new(
        Some("Evil\r\nBcc: victim@example.com".to_owned()),
        "no-reply@example.com".parse().expect("address"),
    );
    let built = SmtpMailer::new(&settings(2525, StartTls::Off, None), hostile);
    let parsed = parse_from("\"Evil\r\nBcc: victim@example.com\" <no-reply@example.com>");

    let error = built.err().expect("refused");
    assert!(error.to_string().contains("mailer.from"), "{error}");
    assert!(parsed.is_err());
}

#[tokio::test]
async fn an_awkward_display_name_is_encoded_and_adds_no_header_or_recipient() {
    let Some(mut server) = SmtpServer::start(None) else { return };
    let name = "Support, \"Team\" <evil@example.com>; Bcc: victim@example.com";
    let awkward = Mailbox::new(Some(name.to_owned()), "no-reply@example.com".parse().expect("address"));
    let mailer = mailer(&settings(server.port, StartTls::Off, None), awkward);

    mailer.send(&email_to("bob@example.com"), "row").await.expect("sent");

    assert_eq!(server.next_delivery().await, "bob@example.com");
    let raw = &server.messages()[0];
    let message = mailparse::parse_mail(raw).expect("a MIME message");
    assert!(message.headers.get_first_value("Bcc").is_none(), "no Bcc header");
    assert_eq!(message.headers.get_first_value("X-RcptTo").as_deref(), Some("bob@example.com"), "one recipient");
    let from = mailparse::addrparse_header(message.headers.get_first_header("From").expect("From")).expect("parses");
    assert_eq!(from.len(), 1, "one sender: {from:?}");
    match &from[0] {
        mailparse::MailAddr::Single(single) => {
            assert_eq!(single.addr, "no-reply@example.com");
            assert_eq!(single.display_name.as_deref(), Some(name));
        }
        group => panic!("sender parsed as a group: {group:?}"),
    }
}

#[tokio::test]
async fn the_start_up_check_passes_against_a_real_server_and_names_what_fails() {
    let Some(server) = SmtpServer::start(None) else { return };
    let from = || parse_from("no-reply@example.com").expect("valid");
    // A port nothing listens on: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("address").port();
    let plain_server_tls_required = mailer(&settings(server.port, StartTls::Required, None), from());

    mailer(&settings(server.port, StartTls::Off, None), from()).check().await.expect("a real server passes");
    let unreachable = mailer(&settings(closed, StartTls::Off, None), from()).check().await.expect_err("refused");
    let no_tls = plain_server_tls_required.check().await.expect_err("a server without STARTTLS fails `required`");

    let unreachable = format!("{unreachable:#}");
    assert!(unreachable.starts_with("cannot reach the SMTP server with mailer.smtp's settings: "), "{unreachable}");
    assert!(unreachable.to_lowercase().contains("connection refused"), "{unreachable}");
    assert!(format!("{no_tls:#}").starts_with("cannot reach the SMTP server"), "{no_tls:#}");
    assert_eq!(server.messages().len(), 0, "a check sends nothing");
}

#[tokio::test]
async fn starttls_required_delivers_over_tls_to_a_trusted_certificate() {
    let certificates = TestCertificates::generate();
    let Some(mut server) = SmtpServer::start(Some(&certificates)) else { return };
    let from = parse_from("no-reply@example.com").expect("valid");
    let mailer = mailer(&settings(server.port, StartTls::Required, Some(&certificates)), from);

    mailer.send(&email_to("tls@example.com"), "row").await.expect("sent over STARTTLS");

    assert_eq!(server.next_delivery().await, "tls@example.com");
}

#[tokio::test]
async fn smtps_delivers_with_tls_from_the_first_byte() {
    let certificates = TestCertificates::generate();
    let Some(mut server) = SmtpServer::start_with(Some((&certificates, ServerTls::Implicit)), None) else { return };
    let mut smtps = settings(server.port, StartTls::Required, Some(&certificates));
    smtps.url = domain::SecretText::new(format!("smtps://127.0.0.1:{}", server.port));
    let mailer = mailer(&smtps, parse_from("no-reply@example.com").expect("valid"));

    mailer.send(&email_to("smtps@example.com"), "row").await.expect("sent over SMTPS");

    assert_eq!(server.next_delivery().await, "smtps@example.com");
}

#[tokio::test]
async fn percent_encoded_credentials_in_the_url_log_in() {
    let certificates = TestCertificates::generate();
    let login = Some(("mailer", "p@ss word"));
    let Some(mut server) = SmtpServer::start_with(Some((&certificates, ServerTls::StartTls)), login) else { return };
    let mut with_credentials = settings(server.port, StartTls::Required, Some(&certificates));
    with_credentials.url = domain::SecretText::new(format!("smtp://mailer:p%40ss%20word@127.0.0.1:{}", server.port));
    let mailer = mailer(&with_credentials, parse_from("no-reply@example.com").expect("valid"));

    let sent = mailer.send(&email_to("auth@example.com"), "r1").await;

    assert!(sent.is_ok(), "{sent:?}");
    assert_eq!(server.next_delivery().await, "auth@example.com");
}

#[tokio::test]
async fn starttls_required_refuses_a_certificate_it_does_not_trust() {
    let certificates = TestCertificates::generate();
    let Some(server) = SmtpServer::start(Some(&certificates)) else { return };
    let from = parse_from("no-reply@example.com").expect("valid");
    let mailer = mailer(&settings(server.port, StartTls::Required, None), from);

    let result = mailer.send(&email_to("tls@example.com"), "row").await;

    assert!(result.is_err(), "sent to an untrusted server");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_refused_recipient_is_permanent_and_a_deferred_one_transient() {
    let Some(server) = SmtpServer::start(None) else { return };
    let mailer =
        mailer(&settings(server.port, StartTls::Off, None), parse_from("no-reply@example.com").expect("valid"));

    let refused = mailer.send(&email_to("reject@example.com"), "r1").await;
    let deferred = mailer.send(&email_to("defer@example.com"), "r2").await;

    assert!(matches!(refused, Err(MailError::Permanent(_))), "550 is permanent: {refused:?}");
    assert!(matches!(deferred, Err(MailError::Transient { .. })), "451 is transient: {deferred:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_port_with_nothing_listening_is_a_transient_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("probe").local_addr().expect("addr").port();
    let mailer = mailer(&settings(port, StartTls::Off, None), parse_from("no-reply@example.com").expect("valid"));

    let result = mailer.send(&email_to("a@example.com"), "row").await;

    assert!(matches!(result, Err(MailError::Transient { .. })), "{result:?}");
}

#[test]
fn a_malformed_sender_is_refused_naming_the_key() {
    let error = parse_from("not an address").expect_err("refused");
    assert!(error.to_string().contains("mailer.from"), "{error}");
}

#[test]
fn mailer_settings_keep_credentials_out_of_debug_output() {
    let mut smtp = settings(25, StartTls::Off, None);
    smtp.url = domain::SecretText::new("smtp://mailer:hunter2@mail.example.com");
    smtp.password = Some(domain::SecretText::new("s3cr3t-password"));
    let resend = adapters::mail::ResendSettings {
        api_key: domain::SecretText::new("re_live_key"),
        base_url: "https://api.resend.com".to_owned(),
        timeout: Duration::from_secs(5),
    };

    let shown = format!("{smtp:?} {resend:?}");

    for secret in ["hunter2", "s3cr3t-password", "re_live_key"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

/// A log writer that keeps every line in memory, for reading a whole run's output.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A whole run through the real server and a real SMTP server, with the process's own JSON log
/// subscriber at the default level (access lines on): a link sign-in, setting a password and signing
/// in with it, changing the sign-in address by its emailed link, and an email the SMTP server
/// refuses. Every line is JSON with plain field values, the requests' ids (echoed in
/// `X-Request-Id`) are in their lines, the refusal is an ERROR saying its reason once, and no line holds a link's token, the code, a session cookie, the CSRF token, the
/// password, or any address (masked `a***@example.com` is how they appear). (A
/// current-thread test: the subscriber set here sees the server's tasks too.)
#[tokio::test]
async fn a_whole_run_logs_json_with_request_ids_and_never_a_secret_or_an_address() {
    use system_tests::{cookie_header, keep_cookies, RunningServer};
    use xtask::settings::{LogFormat, LogSettings};

    let Some(mut smtp) = SmtpServer::start(None) else { return };
    let captured = CapturedLog::default();
    let writer = captured.clone();
    let log = LogSettings { filter: "info,sqlx=warn".to_owned(), format: LogFormat::Json, access: true };
    let _logging = tracing::subscriber::set_default(xtask::cli::log_subscriber(&log, false, move || writer.clone()));
    let smtp_port = smtp.port;
    let server = RunningServer::start_with(
        |settings| {
            system_tests::smtp::send_through(settings, smtp_port);
            settings.password.enabled = true;
        },
        xtask::wiring::Parts::default(),
    )
    .await;
    // tracing caches, per call site, whether anyone listens. Other tests' servers, running at
    // the same moment with no subscriber, may have first hit the request span's call site while
    // this subscriber was being registered, caching "nobody": ask again now that it is.
    tracing::callsite::rebuild_interest_cache();
    let base = &server.base_url;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut jar = std::collections::BTreeMap::new();
    let mut ids = Vec::new();
    let address = "Logged.Person@Example.com";

    let csrf = http.get(format!("{base}/api/auth/csrf")).send().await.expect("csrf");
    keep_cookies(&mut jar, csrf.headers());
    let token = csrf.json::<serde_json::Value>().await.expect("JSON")["csrfToken"].as_str().expect("token").to_owned();
    let posted = http
        .post(format!("{base}/api/auth/signin/email"))
        .header("cookie", cookie_header(&jar))
        .header("x-request-id", "from-the-proxy.42")
        .form(&[("email", address), ("csrfToken", &token), ("callbackUrl", "/")])
        .send()
        .await
        .expect("sign-in form");
    keep_cookies(&mut jar, posted.headers());
    ids.push(posted.headers()["x-request-id"].to_str().expect("ascii").to_owned());
    assert_eq!(ids[0], "from-the-proxy.42", "a well-formed id from a proxy is kept");
    assert_eq!(smtp.next_delivery().await, "logged.person@example.com");
    let text = system_tests::smtp::text_part(&smtp.messages().pop().expect("a stored message"));
    let link = text.lines().find(|line| line.starts_with(base.as_str())).expect("the link").trim().to_owned();
    let link_token =
        url::Url::parse(&link).expect("a URL").query_pairs().find(|(k, _)| k == "token").expect("token").1.into_owned();
    let code = text
        .lines()
        .map(str::trim)
        .find(|line| line.len() == 9 && line.as_bytes()[4] == b'-')
        .expect("the code")
        .to_owned();
    let opened = http
        .get(&link)
        .header("cookie", cookie_header(&jar))
        .header("x-request-id", "not an id: {\"level\":\"ERROR\"}")
        .send()
        .await
        .expect("link");
    keep_cookies(&mut jar, opened.headers());
    let opened_id = opened.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(opened_id.len() == 24 && opened_id.bytes().all(|b| b.is_ascii_hexdigit()), "a malformed id is replaced");
    ids.push(opened_id);
    let session = jar.iter().find(|(name, _)| name.contains("session-token")).expect("signed in").1.clone();
    let post = |path: &str, fields: Vec<(&str, String)>, jar: &std::collections::BTreeMap<String, String>| {
        http.post(format!("{base}{path}")).header("cookie", cookie_header(jar)).form(&fields).send()
    };

    // A password, set within the recent sign-in, then used to sign in again.
    let password = "logged correct horse battery staple";
    let set = post("/account/password", vec![("password", password.to_owned()), ("csrfToken", token.clone())], &jar)
        .await
        .expect("set password");
    assert_eq!(set.status(), reqwest::StatusCode::SEE_OTHER);
    keep_cookies(&mut jar, set.headers());
    assert_eq!(smtp.next_delivery().await, "logged.person@example.com", "the password-changed alert");
    let out = post("/api/auth/signout", vec![("csrfToken", token.clone())], &jar).await.expect("sign-out");
    assert_eq!(out.status(), reqwest::StatusCode::SEE_OTHER);
    keep_cookies(&mut jar, out.headers());
    let with_password = post(
        "/api/auth/callback/password",
        vec![("email", address.to_owned()), ("password", password.to_owned()), ("csrfToken", token.clone())],
        &jar,
    )
    .await
    .expect("password sign-in");
    assert_eq!(with_password.status(), reqwest::StatusCode::SEE_OTHER, "signed in with the password");
    keep_cookies(&mut jar, with_password.headers());
    let second_session = jar.iter().find(|(name, _)| name.contains("session-token")).expect("signed in").1.clone();

    // The sign-in address changed by the link emailed to the new address.
    let new_address = "Moved.Person@Example.org";
    let asked = post("/account/email", vec![("email", new_address.to_owned()), ("csrfToken", token.clone())], &jar)
        .await
        .expect("address change");
    assert_eq!(asked.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(smtp.next_delivery().await, "moved.person@example.org");
    // The maildir does not keep the order messages came in: find the confirmation by its link.
    let confirm_link = smtp
        .messages()
        .iter()
        .map(|raw| system_tests::smtp::text_part(raw))
        .find_map(|text| text.lines().find(|line| line.contains("/account/email/confirm")).map(str::to_owned))
        .expect("the confirmation link")
        .trim()
        .to_owned();
    let confirm_token = url::Url::parse(&confirm_link)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "token")
        .expect("token")
        .1
        .into_owned();
    let confirmed =
        post("/account/email/confirm", vec![("token", confirm_token.clone()), ("csrfToken", token.clone())], &jar)
            .await
            .expect("confirmation");
    assert_eq!(confirmed.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(smtp.next_delivery().await, "logged.person@example.com", "the old address is told");

    // An email the SMTP server refuses for good (550): its failure is logged and recorded.
    let refused_address = "reject.me@example.net";
    let refused =
        post("/api/auth/signin/email", vec![("email", refused_address.to_owned()), ("csrfToken", token.clone())], &jar)
            .await
            .expect("a link request");
    assert_eq!(refused.status(), reqwest::StatusCode::SEE_OTHER);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !String::from_utf8_lossy(&captured.0.lock().expect("log")).contains("email refused for good") {
        assert!(std::time::Instant::now() < deadline, "the refusal was never logged");
        // Waiting for the delivery worker to meet the refusal; the log is the only sign of it.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(server);

    let output = String::from_utf8(captured.0.lock().expect("log").clone()).expect("UTF-8 log");
    let lines: Vec<serde_json::Value> =
        output.lines().map(|line| serde_json::from_str(line).expect("every line is one JSON object")).collect();
    assert!(lines.len() >= 5, "the run logged: {output}");
    assert!(output.contains("r***@example.net"), "the refusal names its recipient masked: {output}");
    for line in &lines {
        let fields = line["fields"].as_object().expect("fields");
        for (name, value) in fields {
            let plain = match value {
                serde_json::Value::String(text) => !text.starts_with("Some(") && !text.contains("Error {"),
                serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
                _ => false,
            };
            assert!(plain, "field {name} is not a plain value: {line}");
        }
    }
    let refusal = lines
        .iter()
        .find(|line| line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("email refused for good")))
        .expect("the refusal's line");
    assert_eq!(refusal["level"], "ERROR", "an email not sent is an error: {refusal}");
    let reason = refusal["fields"]["reason"].as_str().expect("a reason");
    let first_half = &reason[..reason.len() / 2];
    assert!(reason.matches(first_half.trim()).count() == 1, "the reason says its cause once: {reason}");
    for id in &ids {
        assert!(
            lines.iter().any(|line| line.to_string().contains(&format!("\"request_id\":\"{id}\""))),
            "request {id} has its lines: {output}"
        );
    }
    for (what, secret) in [
        ("the link's token", link_token.as_str()),
        ("the code", code.as_str()),
        ("the session cookie", session.as_str()),
        ("the password sign-in's session cookie", second_session.as_str()),
        ("the CSRF token", token.as_str()),
        ("the password", password),
        ("the confirmation link's token", confirm_token.as_str()),
        ("the address", "logged.person@example.com"),
        ("the address as typed", address),
        ("the new address", "moved.person@example.org"),
        ("the refused address", refused_address),
    ] {
        assert!(!output.to_lowercase().contains(&secret.to_lowercase()), "{what} is in the log: {output}");
    }
}
