//! One real-browser test: headless Chromium, driven through chromedriver, signs in with a magic
//! link read from the development mailbox, then signs out. Screenshots of every step are kept
//! under `target/browser-screenshots/` for people to look at.

use std::path::{Path, PathBuf};

use system_tests::webdriver::Driver;
use system_tests::{skip_or_fail, RunningServer};

/// The longest a page may take to appear after a click.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|path| path.exists())
}

#[tokio::test]
async fn a_person_signs_in_with_a_magic_link_in_a_real_browser() {
    let Some(chromium) = find_program(&["/usr/bin/chromium", "/usr/bin/chromium-browser"]) else {
        return skip_or_fail("Chromium is not installed (Debian package `chromium`)");
    };
    let Some(chromedriver) = find_program(&["/usr/bin/chromedriver"]) else {
        return skip_or_fail("chromedriver is not installed (Debian package `chromium-driver`)");
    };
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots");
    let profile = tempfile::tempdir().expect("browser profile folder");
    let server = RunningServer::start().await;
    let driver = Driver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.session(&chromium, profile.path()).await.expect("browser starts");
    let base = &server.base_url;

    // The sign-in page: type an address and submit.
    browser.goto(&format!("{base}/signin")).await.expect("sign-in page");
    browser.screenshot(&shots, "1-signin").await.expect("screenshot");
    let field = browser.find("#email").await.expect("email field");
    browser.type_into(&field, "browser@example.com").await.expect("typed");
    browser.click(&browser.find("#submit").await.expect("submit button")).await.expect("submitted");

    browser
        .wait_for_text("#sent-to", "We sent a sign-in link to b***@example.com. It expires in 10 minutes.", WAIT)
        .await
        .expect("confirmation page");
    assert!(browser.url().await.expect("url").starts_with(&format!("{base}/check-your-email")));
    browser.screenshot(&shots, "2-check-your-email").await.expect("screenshot");

    // The development mailbox: once the worker has delivered, open the link from the newest message.
    let mut delivered = server.mailbox.as_ref().expect("the dev mailer is configured").subscribe();
    tokio::time::timeout(std::time::Duration::from_secs(30), delivered.wait_for(|count| *count >= 1))
        .await
        .expect("delivered within 30 s")
        .expect("the mailbox is alive");
    browser.goto(&format!("{base}/dev/mailbox")).await.expect("mailbox");
    let to = browser.text(&browser.find(".message .to").await.expect("a message")).await.expect("text");
    assert_eq!(to, "browser@example.com");
    browser.screenshot(&shots, "3-mailbox").await.expect("screenshot");
    browser.click(&browser.find(".message a.link").await.expect("the link")).await.expect("link opened");

    // Signed in.
    browser.wait_for_text("#status", "Signed in as browser@example.com", WAIT).await.expect("signed in");
    assert_eq!(browser.url().await.expect("url"), format!("{base}/"));
    browser.screenshot(&shots, "4-signed-in").await.expect("screenshot");

    // Sign out.
    browser.click(&browser.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    browser.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    browser.screenshot(&shots, "5-signed-out").await.expect("screenshot");

    browser.quit().await.expect("browser closes");
}
