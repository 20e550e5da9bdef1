//! The real-browser tests: headless Chromium, driven through chromedriver, signs in with a
//! magic link and signs out; once with the link read from the development mailbox page, once
//! with the link from a message delivered by SMTP to a real server. Screenshots of every step
//! are kept under `target/browser-screenshots/` for people to look at.

use std::path::{Path, PathBuf};
use std::time::Duration;

use system_tests::smtp::SmtpServer;
use system_tests::webdriver::{Browser, Driver};
use system_tests::{require, RunningServer};
use xtask::settings::{MailerKind, StartTlsSetting};
use xtask::wiring::Parts;

/// The longest a page may take to appear after a click.
const WAIT: Duration = Duration::from_secs(10);

/// Chromium and chromedriver, or `None` after saying which is missing.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = require(&xtask::tasks::CHROMIUM)?;
    let chromedriver = require(&xtask::tasks::CHROMEDRIVER)?;
    Some((chromium, chromedriver))
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots")
}

/// Types `address` into the sign-in form and submits it.
async fn request_a_link(browser: &Browser, base: &str, address: &str, shot: &str) {
    browser.goto(&format!("{base}/signin")).await.expect("sign-in page");
    browser.screenshot(&screenshots(), &format!("{shot}-1-signin")).await.expect("screenshot");
    browser.type_into(&browser.find("#email").await.expect("email field"), address).await.expect("typed");
    browser.click(&browser.find("#submit").await.expect("submit button")).await.expect("submitted");
    let masked = format!("{}***@example.com", &address[..1]);
    let expected = format!("We sent a sign-in link to {masked}. It expires in 10 minutes.");
    browser.wait_for_text("#sent-to", &expected, WAIT).await.expect("confirmation page");
    assert!(browser.url().await.expect("url").starts_with(&format!("{base}/check-your-email")));
    browser.screenshot(&screenshots(), &format!("{shot}-2-check-your-email")).await.expect("screenshot");
}

/// Once the link has been opened: signed in, then signed out with the button.
async fn signed_in_then_out(browser: &Browser, base: &str, address: &str, shot: &str) {
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in");
    assert_eq!(browser.url().await.expect("url"), format!("{base}/"));
    browser.screenshot(&screenshots(), &format!("{shot}-4-signed-in")).await.expect("screenshot");
    browser.click(&browser.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    browser.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    browser.screenshot(&screenshots(), &format!("{shot}-5-signed-out")).await.expect("screenshot");
}

#[tokio::test]
async fn a_person_signs_in_with_a_link_from_the_development_mailbox() {
    let Some((chromium, chromedriver)) = browser_programs() else { return };
    let profile = tempfile::tempdir().expect("browser profile folder");
    let server = RunningServer::start().await;
    let driver = Driver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.session(&chromium, profile.path()).await.expect("browser starts");
    let base = &server.base_url;

    request_a_link(&browser, base, "browser@example.com", "dev").await;

    // Once the worker has delivered, open the link from the newest message on the mailbox page.
    let mut delivered = server.mailbox.as_ref().expect("the dev mailer is configured").subscribe();
    tokio::time::timeout(Duration::from_secs(30), delivered.wait_for(|count| *count >= 1))
        .await
        .expect("delivered within 30 s")
        .expect("the mailbox is alive");
    browser.goto(&format!("{base}/dev/mailbox")).await.expect("mailbox");
    let to = browser.text(&browser.find(".message .to").await.expect("a message")).await.expect("text");
    assert_eq!(to, "browser@example.com");
    browser.screenshot(&screenshots(), "dev-3-mailbox").await.expect("screenshot");
    browser.click(&browser.find(".message a.link").await.expect("the link")).await.expect("link opened");

    signed_in_then_out(&browser, base, "browser@example.com", "dev").await;
    browser.quit().await.expect("browser closes");
}

#[tokio::test]
async fn a_person_signs_in_with_a_link_delivered_by_smtp() {
    let Some((chromium, chromedriver)) = browser_programs() else { return };
    let Some(mut smtp) = SmtpServer::start(None) else { return };
    let profile = tempfile::tempdir().expect("browser profile folder");
    let smtp_port = smtp.port;
    let server = RunningServer::start_with(
        |settings| {
            settings.mailer.kind = MailerKind::Smtp;
            settings.mailer.from = "magiclink <no-reply@example.com>".to_owned();
            settings.mailer.smtp.url = format!("smtp://127.0.0.1:{smtp_port}").into();
            settings.mailer.smtp.starttls = StartTlsSetting::Off;
        },
        Parts::default(),
    )
    .await;
    assert!(server.mailbox.is_none(), "no development mailbox with SMTP");
    let driver = Driver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.session(&chromium, profile.path()).await.expect("browser starts");
    let base = &server.base_url;

    request_a_link(&browser, base, "smtp-user@example.com", "smtp").await;

    // The link, as a mail client would read it from the text part of the received message.
    assert_eq!(smtp.next_delivery().await, "smtp-user@example.com");
    let raw = smtp.messages().pop().expect("a stored message");
    let message = mailparse::parse_mail(&raw).expect("a MIME message");
    let text = message
        .subparts
        .iter()
        .find(|part| part.ctype.mimetype == "text/plain")
        .expect("a text part")
        .get_body()
        .expect("decodable");
    let link = text.lines().find(|line| line.starts_with(base.as_str())).expect("the link on its own line").trim();
    browser.goto(link).await.expect("link opened");

    signed_in_then_out(&browser, base, "smtp-user@example.com", "smtp").await;
    browser.quit().await.expect("browser closes");
}
