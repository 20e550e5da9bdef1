//! One real-browser test: headless Chromium, driven through chromedriver, signs in with a magic
//! link read from the development mailbox, then signs out. Screenshots of every step are kept
//! under `target/browser-screenshots/` for people to look at.

use std::path::{Path, PathBuf};

use system_tests::webdriver::Driver;
use system_tests::{skip_or_fail, RunningServer};

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
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
    let browser = driver
        .session(&chromium, profile.path())
        .await
        .expect("browser starts");
    let base = &server.base_url;

    // The sign-in page: type an address and submit.
    browser
        .goto(&format!("{base}/signin"))
        .await
        .expect("sign-in page");
    browser
        .screenshot(&shots, "1-signin")
        .await
        .expect("screenshot");
    let field = browser.find("#email").await.expect("email field");
    browser
        .type_into(&field, "browser@example.com")
        .await
        .expect("typed");
    browser
        .click(&browser.find("#submit").await.expect("submit button"))
        .await
        .expect("submitted");

    assert!(browser
        .url()
        .await
        .expect("url")
        .starts_with(&format!("{base}/check-your-email")));
    let sent = browser
        .text(&browser.find("#sent-to").await.expect("confirmation"))
        .await
        .expect("text");
    assert!(
        sent.contains("We sent a sign-in link to b***@example.com"),
        "{sent}"
    );
    browser
        .screenshot(&shots, "2-check-your-email")
        .await
        .expect("screenshot");

    // The development mailbox: open the link from the newest message.
    browser
        .goto(&format!("{base}/dev/mailbox"))
        .await
        .expect("mailbox");
    let to = browser
        .text(&browser.find(".message .to").await.expect("a message"))
        .await
        .expect("text");
    assert_eq!(to, "browser@example.com");
    browser
        .screenshot(&shots, "3-mailbox")
        .await
        .expect("screenshot");
    browser
        .click(&browser.find(".message a.link").await.expect("the link"))
        .await
        .expect("link opened");

    // Signed in.
    assert_eq!(browser.url().await.expect("url"), format!("{base}/"));
    let status = browser
        .text(&browser.find("#status").await.expect("status"))
        .await
        .expect("text");
    assert_eq!(status, "Signed in as browser@example.com");
    browser
        .screenshot(&shots, "4-signed-in")
        .await
        .expect("screenshot");

    // Sign out.
    browser
        .click(&browser.find("#signout").await.expect("sign-out button"))
        .await
        .expect("signed out");
    let status = browser
        .text(&browser.find("#status").await.expect("status"))
        .await
        .expect("text");
    assert_eq!(status, "You are not signed in.");
    browser
        .screenshot(&shots, "5-signed-out")
        .await
        .expect("screenshot");

    browser.quit().await.expect("browser closes");
}
