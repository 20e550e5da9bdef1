//! The real-browser tests: headless Chromium, driven through chromedriver, signs in with a
//! magic link and signs out; once with the "Sign in" button of the email's preview on the
//! development mailbox page, once with the link from a message delivered by SMTP to a real
//! server. Another test opens every page at a phone's width. Screenshots of every step are kept
//! under `target/browser-screenshots/` for people to look at.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use adapters::clock::ManualClock;

use system_tests::nginx::{self, Nginx};
use system_tests::smtp::SmtpServer;
use system_tests::webdriver::{Browser, Driver};
use system_tests::{require, RunningServer};
use xtask::wiring::Parts;

/// The longest a page may take to appear after a click.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// A fresh headless Chromium with its own profile, driven through chromedriver (keep the
/// driver and the profile folder alive as long as the browser), or `None` after saying which
/// program is missing.
pub(crate) async fn chromium() -> Option<(Browser, Driver, tempfile::TempDir)> {
    let chromium = require(&xtask::tasks::CHROMIUM)?;
    let chromedriver = require(&xtask::tasks::CHROMEDRIVER)?;
    let profile = tempfile::tempdir().expect("browser profile folder");
    let driver = Driver::start(&chromedriver).expect("chromedriver starts");
    let browser = driver.session(&chromium, profile.path()).await.expect("browser starts");
    Some((browser, driver, profile))
}

pub(crate) fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-screenshots")
}

/// A server with passwords on (and argon2id cheap enough for a test), so that the sign-in and
/// account pages show their password forms.
async fn with_passwords() -> RunningServer {
    RunningServer::start_with(
        |settings| {
            settings.password.enabled = true;
            settings.password.memory_kib = 7_168;
            settings.password.iterations = 5;
        },
        Parts::default(),
    )
    .await
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
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = RunningServer::start().await;
    let base = &server.base_url;

    request_a_link(&browser, base, "browser@example.com", "dev").await;

    // Once the worker has delivered, press "Sign in" in the email's preview on the mailbox page,
    // as a developer would: it must open the real page at the top level and sign in there.
    let mut delivered = server.mailbox.as_ref().expect("the dev mailer is configured").subscribe();
    tokio::time::timeout(Duration::from_secs(30), delivered.wait_for(|count| *count >= 1))
        .await
        .expect("delivered within 30 s")
        .expect("the mailbox is alive");
    browser.goto(&format!("{base}/dev/mailbox")).await.expect("mailbox");
    let to = browser.text(&browser.find(".message .to").await.expect("a message")).await.expect("text");
    assert_eq!(to, "browser@example.com");
    let badge = browser.text(&browser.find(".message .badge").await.expect("a badge")).await.expect("text");
    assert_eq!(badge, "Not used yet");
    browser.screenshot(&screenshots(), "dev-3-mailbox").await.expect("screenshot");
    browser.enter_frame(&browser.find(".message iframe").await.expect("the preview")).await.expect("in the frame");
    let button = browser.find("a[style*='background']").await.expect("the email's Sign in button");
    assert_eq!(browser.text(&button).await.expect("text"), "Sign in");
    browser.click(&button).await.expect("clicked");
    browser.leave_frames().await.expect("back at the top");

    signed_in_then_out(&browser, base, "browser@example.com", "dev").await;
    browser.goto(&format!("{base}/dev/mailbox")).await.expect("mailbox");
    let badge = browser.text(&browser.find(".message .badge").await.expect("a badge")).await.expect("text");
    assert_eq!(badge, "Used", "the mailbox marks the link it used");
    browser.quit().await.expect("browser closes");
}

/// Every way a link stops working, in Chromium, says what happened: a second request replaces
/// the first link at once (and its page says so, in the very browser that asked); a person
/// signed in who opens their own old link is told they are signed in and taken on; a link used
/// already says so once signed out; a code typed after its link expired says that, offering a
/// new link.
#[tokio::test]
async fn each_dead_link_says_what_happened_and_an_own_old_link_takes_a_signed_in_person_on() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let clock = Arc::new(ManualClock::starting_at(chrono::Utc::now()));
    let server = RunningServer::start_with(|_| {}, Parts { clock: clock.clone(), ..Parts::default() }).await;
    let base = &server.base_url;
    let address = "twice@example.com";

    request_a_link(&browser, base, address, "dead-1").await;
    let (first, _) = newest_message(&server, address, 1).await;
    request_a_link(&browser, base, address, "dead-2").await;
    let (second, _) = newest_message(&server, address, 2).await;
    browser.goto(&first).await.expect("first link opened");
    browser
        .wait_for_text("#error-title", "This link was replaced by a newer one", WAIT)
        .await
        .expect("the older link says a newer one replaced it");
    browser.screenshot(&screenshots(), "dead-3-replaced").await.expect("screenshot");

    browser.goto(&second).await.expect("second link opened");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("the newer one signs in");
    for (link, state, shot) in [
        (&second, "The link you opened was used already; you don't need it any more.", "dead-4-used-signed-in"),
        (
            &first,
            "The link you opened was replaced by a newer one; you don't need it any more.",
            "dead-5-old-signed-in",
        ),
    ] {
        browser.goto(link).await.expect("opened again");
        browser.wait_for_text("#signed-in-already", "You are already signed in", WAIT).await.expect("told");
        browser.wait_for_text("#link-state", state, WAIT).await.expect("what became of the link");
        browser.screenshot(&screenshots(), shot).await.expect("screenshot");
    }
    browser.click(&browser.find("#continue").await.expect("continue")).await.expect("clicked");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("taken on, signed in");
    assert_eq!(browser.url().await.expect("url"), format!("{base}/"), "where the link was going");
    browser.click(&browser.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    browser.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    browser.goto(&second).await.expect("opened signed out");
    browser.wait_for_text("#error-title", "This link was already used", WAIT).await.expect("used, signed out");
    // A link no secret of this service made (as after a restart in development, where no
    // AUTH_SECRET is set and each start makes its own): not valid, and the restart is named.
    let token = second.split("token=").nth(1).and_then(|rest| rest.split('&').next()).expect("a token");
    let forged = second.replace(token, &"A".repeat(token.len()));
    browser.goto(&forged).await.expect("opened");
    browser.wait_for_text("#error-title", "This link is not valid", WAIT).await.expect("not valid");
    browser
        .wait_for_text(
            "#dev-restart",
            "In development: the service was restarted with a generated secret (no AUTH_SECRET set), and links sent before a restart no longer work.",
            WAIT,
        )
        .await
        .expect("the restart named");

    request_a_link(&browser, base, address, "dead-6").await;
    let (_, code) = newest_message(&server, address, 3).await;
    clock.advance(chrono::TimeDelta::minutes(11));
    browser.type_into(&browser.find("#code").await.expect("code field"), &code).await.expect("typed");
    browser.click(&browser.find("#submit-code").await.expect("code button")).await.expect("submitted");
    browser
        .wait_for_text(
            "#code-error",
            "This code has expired, with the link it came with. Ask for a new link, and use the code or link from that email.",
            WAIT,
        )
        .await
        .expect("the late code is told it expired");
    let offered = browser.find("#new-link").await.expect("a new link is offered");
    browser.screenshot(&screenshots(), "dead-7-code-expired").await.expect("screenshot");
    browser.click(&offered).await.expect("clicked");
    browser.wait_for_text("#submit", "Email me a sign-in link", WAIT).await.expect("the sign-in form");
    browser.quit().await.expect("browser closes");
}

/// The processes whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| name.bytes().all(|b| b.is_ascii_digit())))
        .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
        .map(|command| String::from_utf8_lossy(&command).replace('\0', " "))
        .filter(|command| command.contains(text))
        .collect()
}

/// A test that fails before `quit` drops its browser without ending the session: the driver
/// closes that browser when it is dropped, so no Chromium outlives the test.
#[tokio::test]
async fn a_browser_never_quit_is_closed_with_its_driver() {
    let Some((browser, driver, profile)) = chromium().await else { return };
    let profile_path = profile.path().display().to_string();
    browser.goto("about:blank").await.expect("a page");
    assert!(!processes_mentioning(&profile_path).is_empty(), "Chromium runs with its profile folder");

    drop(browser);
    drop(driver);

    // The driver waited for the browser to quit; its helper processes may take a moment more.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut left = processes_mentioning(&profile_path);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_mentioning(&profile_path);
    }
    assert_eq!(left, Vec::<String>::new(), "Chromium outlived its driver");
}

/// The width a phone shows pages at (an iPhone 12 to 15, in CSS pixels).
const PHONE_WIDTH: u32 = 390;

/// Measures the page: the window's width, the content's width, and the card's left and right
/// edges, in CSS pixels.
const MEASURE: &str = "const card = document.querySelector('main').getBoundingClientRect(); \
     return [window.innerWidth, document.documentElement.scrollWidth, card.left, card.right];";

/// The text of every button whose words are broken across lines inside a word (a one-word
/// label on two lines, "Abmel-den").
const BROKEN_BUTTONS: &str = "return Array.from(document.querySelectorAll('button, .button-link')).filter(b => { \
       const words = b.textContent.trim().split(/\\s+/); const range = document.createRange(); \
       range.selectNodeContents(b); \
       const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size; \
       return b.offsetParent !== null && lines > words.length; }).map(b => b.textContent.trim());";

#[tokio::test]
async fn every_page_fits_a_phone_screen_with_room_at_the_edges_in_english_and_german() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = with_passwords().await;
    browser.set_window_size(PHONE_WIDTH, 844).await.expect("resized");
    let base = &server.base_url;
    // A used link with a long address in the mailbox, the widest thing it shows, and a second
    // session (another device) for the account page's table.
    server.sign_in_over_http("phone-with-a-rather-long-address@example.com").await;
    let address = "phone@example.com";
    server.sign_in_over_http(address).await;
    request_a_link(&browser, base, address, "phone-sign-in").await;
    let (link, _) = newest_message(&server, address, 3).await;
    browser.goto(&link).await.expect("link opened");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in");

    let pages = [
        "/signin",
        "/check-your-email?to=p***%40example.com",
        "/auth-error?error=Verification&reason=expired",
        "/auth-error?error=Verification&reason=replaced",
        "/account",
        "/dev/mailbox",
        "/nope",
        "/api/auth/signout",
    ];
    // English first; `?lang=de` then chooses German for the rest of the visit (its cookie).
    for lang in ["en", "de"] {
        for path in pages {
            let separator = if path.contains('?') { '&' } else { '?' };
            browser.goto(&format!("{base}{path}{separator}lang={lang}")).await.expect("page");
            let measured = browser.execute(MEASURE, vec![]).await.expect("measured");
            let [viewport, content, left, right] =
                [0, 1, 2, 3].map(|i| measured[i].as_f64().unwrap_or_else(|| panic!("{path}: {measured}")));
            let shot =
                format!("phone-{lang}-{}", path.trim_start_matches('/').split(['?', '/']).next().unwrap_or("home"));
            browser.screenshot(&screenshots(), &shot).await.expect("screenshot");
            assert_eq!(viewport, f64::from(PHONE_WIDTH), "{path}: the window is a phone's width");
            assert!(content <= viewport, "{path} ({lang}): {content} px of content in a {viewport} px screen");
            assert!(left >= 8.0 && right <= viewport - 8.0, "{path} ({lang}): the card spans {left}..{right}");
            let broken = browser.execute(BROKEN_BUTTONS, vec![]).await.expect("script");
            assert_eq!(broken, serde_json::json!([]), "{path} ({lang}): buttons broken inside a word");
        }
    }

    // The account page's password field is a full-width field like the others, not the
    // browser's tiny default box, and the sessions are cards, not a cramped table.
    browser.goto(&format!("{base}/account")).await.expect("account page");
    let widths = "return ['#new-password', '#name'].map(s => document.querySelector(s).getBoundingClientRect().width)";
    let widths = browser.execute(widths, vec![]).await.expect("script");
    assert_eq!(widths[0], widths[1], "the password field is as wide as the name field: {widths}");
    let display = "return getComputedStyle(document.querySelector('#sessions td.when')).display";
    assert_eq!(browser.execute(display, vec![]).await.expect("script"), "block", "sessions as cards on a phone");

    // At a laptop's width the German sessions table keeps "Abmelden" whole.
    browser.set_window_size(1000, 800).await.expect("resized");
    browser.goto(&format!("{base}/account?lang=de")).await.expect("account page");
    browser.screenshot(&screenshots(), "laptop-de-account").await.expect("screenshot");
    let broken = browser.execute(BROKEN_BUTTONS, vec![]).await.expect("script");
    assert_eq!(broken, serde_json::json!([]), "buttons broken inside a word at 1000 px");
    browser.quit().await.expect("browser closes");
}

#[tokio::test]
async fn a_person_signs_in_with_a_link_delivered_by_smtp() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let Some(mut smtp) = SmtpServer::start(None) else { return };
    let smtp_port = smtp.port;
    let server =
        RunningServer::start_with(|settings| system_tests::smtp::send_through(settings, smtp_port), Parts::default())
            .await;
    assert!(server.mailbox.is_none(), "no development mailbox with SMTP");
    let base = &server.base_url;

    request_a_link(&browser, base, "smtp-user@example.com", "smtp").await;

    // The link, as a mail client would read it from the text part of the received message.
    assert_eq!(smtp.next_delivery().await, "smtp-user@example.com");
    let text = system_tests::smtp::text_part(&smtp.messages().pop().expect("a stored message"));
    let link = text.lines().find(|line| line.starts_with(base.as_str())).expect("the link on its own line").trim();
    browser.goto(link).await.expect("link opened");

    signed_in_then_out(&browser, base, "smtp-user@example.com", "smtp").await;
    browser.quit().await.expect("browser closes");
}

/// The account page in Chromium: reached from the home page, it names this browser, saves a
/// name, and signs out the session another device holds.
#[tokio::test]
async fn a_person_renames_themselves_and_signs_out_another_device_on_the_account_page() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = RunningServer::start().await;
    let base = &server.base_url;
    let address = "account@example.com";
    // Another device, signed in first (over plain HTTP, no User-Agent).
    server.sign_in_over_http(address).await;

    request_a_link(&browser, base, address, "account").await;
    let (link, _code) = newest_message(&server, address, 2).await;
    browser.goto(&link).await.expect("link opened");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in");
    browser.click(&browser.find("#account-link").await.expect("account link")).await.expect("clicked");
    browser.wait_for_text("#email", address, WAIT).await.expect("the account page");
    let rows =
        "return Array.from(document.querySelectorAll('tr.session td:first-child')).map(td => td.textContent.trim())";
    let devices = browser.execute(rows, Vec::new()).await.expect("script");
    browser.screenshot(&screenshots(), "account-1-page").await.expect("screenshot");
    assert_eq!(devices, serde_json::json!(["Chrome on Linux (this device)", "Unknown browser"]), "most recent first");

    browser.type_into(&browser.find("#name").await.expect("name field"), "Ada Lovelace").await.expect("typed");
    browser.click(&browser.find("#save-name").await.expect("save")).await.expect("saved");
    browser.wait_for_text("#done", "Your name was saved.", WAIT).await.expect("saved notice");
    let name = browser.execute("return document.querySelector('#name').value", Vec::new()).await.expect("script");
    assert_eq!(name, "Ada Lovelace");
    browser.click(&browser.find("#revoke-others").await.expect("sign out elsewhere")).await.expect("clicked");
    browser.wait_for_text("#done", "Every other session was signed out.", WAIT).await.expect("done notice");
    let devices = browser.execute(rows, Vec::new()).await.expect("script");
    browser.screenshot(&screenshots(), "account-2-others-signed-out").await.expect("screenshot");
    assert_eq!(devices, serde_json::json!(["Chrome on Linux (this device)"]));
    browser.quit().await.expect("browser closes");
}

/// The account page's own-data section in Chromium: the person reads their activity, fetches
/// their data, mistypes the address to delete the account (nothing happens), types it right,
/// and lands on the home page signed out, told it is done.
#[tokio::test]
async fn a_person_reads_their_activity_downloads_their_data_and_deletes_their_account() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = RunningServer::start().await;
    let base = &server.base_url;
    let address = "closing@example.com";
    request_a_link(&browser, base, address, "closing").await;
    let (link, _code) = newest_message(&server, address, 1).await;
    browser.goto(&link).await.expect("link opened");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in");
    browser.goto(&format!("{base}/account")).await.expect("account page");
    let activity = "return Array.from(document.querySelectorAll('#activity-list tr.event td:first-child'))\
                    .map(td => td.textContent.trim())";
    let rows = browser.execute(activity, Vec::new()).await.expect("script");
    browser.screenshot(&screenshots(), "closing-3-account").await.expect("screenshot");
    assert_eq!(
        rows,
        serde_json::json!(["Signed in with a link (in this session)", "Account created"]),
        "newest first (the link was asked for before there was an account to name)"
    );
    // The download link saves the export (its content is `account_data.rs`'s to check).
    let export =
        "const a = document.querySelector('#export'); return [a.getAttribute('href'), a.hasAttribute('download')]";
    let export = browser.execute(export, Vec::new()).await.expect("script");
    assert_eq!(export, serde_json::json!(["/api/auth/account/export", true]));

    browser
        .type_into(&browser.find("#delete-email").await.expect("field"), "someone@example.com")
        .await
        .expect("typed");
    browser.click(&browser.find("#delete-account-button").await.expect("button")).await.expect("clicked");
    browser
        .wait_for_text("#delete-error", "That is not your sign-in address; nothing was deleted.", WAIT)
        .await
        .expect("refused");
    browser.screenshot(&screenshots(), "closing-4-mismatch").await.expect("screenshot");
    browser.type_into(&browser.find("#delete-email").await.expect("field"), address).await.expect("typed");
    browser.click(&browser.find("#delete-account-button").await.expect("button")).await.expect("clicked");
    browser
        .wait_for_text("#done", "Your account was deleted. We sent a last email to confirm it.", WAIT)
        .await
        .expect("deleted");
    browser.screenshot(&screenshots(), "closing-5-deleted").await.expect("screenshot");
    assert_eq!(
        browser.execute("return document.querySelector('#status').textContent", Vec::new()).await.expect("script"),
        "You are not signed in."
    );
    let gone = server.database.users.find_by_email(&domain::EmailAddress::parse(address).expect("valid")).await;
    assert!(gone.expect("read").is_none());
    browser.quit().await.expect("browser closes");
}

/// The account page in German (chosen with `?lang=de`, remembered by its cookie): a person asks
/// to sign in with another address, opens the confirmation link from the new mailbox, confirms
/// on the page it opens, and is back on the account page under the new address.
#[tokio::test]
async fn a_person_changes_their_address_in_german_by_confirming_the_emailed_link() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = RunningServer::start().await;
    let base = &server.base_url;
    let (old, new) = ("alt@example.com", "neu@example.com");
    request_a_link(&browser, base, old, "address").await;
    let (link, _code) = newest_message(&server, old, 1).await;
    browser.goto(&link).await.expect("link opened");
    browser.wait_for_text("#status", &format!("Signed in as {old}"), WAIT).await.expect("signed in");

    browser.goto(&format!("{base}/account?lang=de")).await.expect("account page");
    browser.wait_for_text("h1", "Ihr Konto", WAIT).await.expect("the account page in German");
    browser.type_into(&browser.find("#new-email").await.expect("new address field"), new).await.expect("typed");
    browser.click(&browser.find("#change-email").await.expect("change button")).await.expect("clicked");
    let sent =
        "Wir haben einen Link an die neue Adresse gesendet. Ihre Anmeldeadresse ändert sich, wenn Sie ihn öffnen.";
    browser.wait_for_text("#done", sent, WAIT).await.expect("sent");
    browser.wait_for_text("#email", old, WAIT).await.expect("nothing changed yet");
    let mut delivered = server.mailbox.as_ref().expect("the dev mailer").subscribe();
    let mail = server.mail_after(&mut delivered, 1, new).await;
    assert_eq!(mail[0]["kind"], "confirm_address");
    assert_eq!(mail[0]["subject"], "Bestätigen Sie Ihre neue Anmeldeadresse für magiclink");
    browser.goto(mail[0]["link"].as_str().expect("a link")).await.expect("confirmation link opened");
    browser.wait_for_text("#confirm-title", &format!("Ab jetzt mit {new} anmelden?"), WAIT).await.expect("asked");
    browser.screenshot(&screenshots(), "address-1-confirm").await.expect("screenshot");
    browser.click(&browser.find("#confirm-email").await.expect("confirm button")).await.expect("clicked");

    browser.wait_for_text("#done", "Ihre Anmeldeadresse wurde geändert.", WAIT).await.expect("changed");
    browser.wait_for_text("#email", new, WAIT).await.expect("the new address");
    browser.screenshot(&screenshots(), "address-2-changed").await.expect("screenshot");
    let notice = server.mail_after(&mut delivered, 2, old).await;
    assert_eq!(notice[0]["kind"], "address_changed");
    assert_eq!(notice[0]["subject"], "Ihre Anmeldeadresse bei magiclink wurde geändert");
    browser.quit().await.expect("browser closes");
}

/// Passwords in Chromium: after a link sign-in a person sets a password on the account page (a
/// common one is refused first, saying why), signs out, and signs back in with the sign-in
/// page's "email and password" form; a wrong password shows the same form again saying so.
#[tokio::test]
async fn a_person_sets_a_password_and_signs_in_with_it_next_time() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = with_passwords().await;
    let base = &server.base_url;
    let address = "pass@example.com";
    request_a_link(&browser, base, address, "password").await;
    let (link, _code) = newest_message(&server, address, 1).await;
    browser.goto(&link).await.expect("link opened");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in");

    browser.goto(&format!("{base}/account")).await.expect("account page");
    let ticked = "return document.querySelector('#sign-out-others').checked";
    assert_eq!(browser.execute(ticked, Vec::new()).await.expect("script"), true, "ticked unless unticked");
    let field = browser.find("#new-password").await.expect("new password field");
    browser.type_into(&field, "password12345678").await.expect("typed");
    browser.click(&browser.find("#save-password").await.expect("save")).await.expect("clicked");
    browser.wait_for_text(
        "#password-error",
        "That password is too common: it is among the first an attacker would try. Pick something less predictable, such as several unrelated words.",
        WAIT,
    ).await.expect("refused");
    browser.screenshot(&screenshots(), "password-1-too-common").await.expect("screenshot");
    let field = browser.find("#new-password").await.expect("new password field");
    browser.type_into(&field, "violet kestrel under a tin roof").await.expect("typed");
    browser.click(&browser.find("#save-password").await.expect("save")).await.expect("clicked");
    browser.wait_for_text("#done", "Your password was saved.", WAIT).await.expect("saved");

    browser.goto(&format!("{base}/")).await.expect("home");
    browser.click(&browser.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    browser.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    browser.goto(&format!("{base}/signin")).await.expect("sign-in page");
    browser.type_into(&browser.find("#password-email").await.expect("email"), address).await.expect("typed");
    browser
        .type_into(&browser.find("#password").await.expect("password"), "violet kestrel under a tin")
        .await
        .expect("typed");
    browser.click(&browser.find("#password-submit").await.expect("submit")).await.expect("clicked");
    browser.wait_for_text("#password-error", "Wrong email address or password.", WAIT).await.expect("refused");
    browser.screenshot(&screenshots(), "password-2-wrong").await.expect("screenshot");
    browser
        .type_into(&browser.find("#password").await.expect("password"), "violet kestrel under a tin roof")
        .await
        .expect("typed");
    browser.click(&browser.find("#password-submit").await.expect("submit")).await.expect("clicked");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in with it");
    browser.screenshot(&screenshots(), "password-3-signed-in").await.expect("screenshot");
    browser.quit().await.expect("browser closes");
}

/// `docs/integration/spa.html` in Chromium, served by nginx on the same origin as magiclink's
/// routes (as a single-page app is): it asks for a code, signs in with it, and signs out,
/// through the JSON API alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_page_app_snippet_signs_in_with_the_emailed_code_and_out_again() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let reserved = nginx::reserve_port();
    let port = reserved.port;
    let origin = format!("http://127.0.0.1:{port}");
    let public = origin.clone();
    // The public origin is the proxy's, as behind any proxy: links and the origin check use it.
    let server = RunningServer::start_with(move |s| s.server.base_url = public, Parts::default()).await;
    let magiclink = server.bound_address.clone();
    let snippets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integration");
    let site = format!(
        "server {{\n    listen 127.0.0.1:{port} reuseport;\n    \
         location = /app/ {{ root {}; try_files /spa.html =404; default_type text/html; }}\n    \
         location / {{ proxy_pass http://{magiclink}; }}\n}}\n",
        snippets.canonicalize().expect("the snippets' folder").display()
    );
    let Some(_proxy) = Nginx::start(port, &site) else { return };
    let address = "spa@example.com";

    browser.goto(&format!("{origin}/app/")).await.expect("the app");
    browser.wait_for_text("#status", "Not signed in.", WAIT).await.expect("signed out at first");
    browser.type_into(&browser.find("#email").await.expect("email field"), address).await.expect("typed");
    browser.click(&browser.find("#send").await.expect("send")).await.expect("sent");
    browser.wait_for_text("#status", &format!("We emailed a code to {address}."), WAIT).await.expect("asked");
    let (_link, code) = newest_message(&server, address, 1).await;
    browser.type_into(&browser.find("#code").await.expect("code field"), &code).await.expect("typed");
    browser.click(&browser.find("#check").await.expect("sign in")).await.expect("clicked");
    browser.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in");
    browser.screenshot(&screenshots(), "spa-signed-in").await.expect("screenshot");
    browser.click(&browser.find("#signout").await.expect("sign out")).await.expect("clicked");
    browser.wait_for_text("#status", "Not signed in.", WAIT).await.expect("signed out");
    browser.quit().await.expect("browser closes");
}

/// An app behind the docs' nginx snippet: a visitor is sent to sign in, and the link brings them
/// back to the page they asked for, signed in; once signed out, nginx sends them to sign in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_sends_a_visitor_to_sign_in_and_the_link_brings_them_back_to_the_app() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let reserved = nginx::reserve_port();
    let port = reserved.port;
    let allowed = format!("http://127.0.0.1:{port}");
    let server =
        RunningServer::start_with(move |s| s.forward_auth.allowed_origins = vec![allowed], Parts::default()).await;
    let upstream = nginx::start_upstream().await;
    let Some(proxy) = Nginx::start_forward_auth(port, &server.base_url, upstream) else { return };
    let base = &server.base_url;
    let wanted = format!("{}/private/report?year=2026&team=r%26d", proxy.origin);
    let address = "proxied@example.com";

    browser.goto(&wanted).await.expect("the app");
    assert!(browser.url().await.expect("url").starts_with(&format!("{base}/signin?callbackUrl=")));
    browser.screenshot(&screenshots(), "forward-auth-1-signin").await.expect("screenshot");
    browser.type_into(&browser.find("#email").await.expect("email field"), address).await.expect("typed");
    browser.click(&browser.find("#submit").await.expect("submit button")).await.expect("submitted");
    browser
        .wait_for_text("#sent-to", "We sent a sign-in link to p***@example.com. It expires in 10 minutes.", WAIT)
        .await
        .expect("confirmation page");
    let (link, _code) = newest_message(&server, address, 1).await;
    browser.goto(&link).await.expect("link opened");

    browser.wait_for_text("pre", &format!("hello {address}"), WAIT).await.expect("the app, signed in");
    assert_eq!(browser.url().await.expect("url"), wanted, "back on the page first asked for");
    browser.screenshot(&screenshots(), "forward-auth-2-app").await.expect("screenshot");

    browser.goto(&format!("{base}/")).await.expect("home");
    browser.click(&browser.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    browser.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    browser.goto(&wanted).await.expect("the app again");
    assert!(browser.url().await.expect("url").starts_with(&format!("{base}/signin?")), "sent to sign in again");
    browser.quit().await.expect("browser closes");
}

/// The newest message to `to` once the mailbox has sent `count` in all: its link and code.
async fn newest_message(server: &RunningServer, to: &str, count: u64) -> (String, String) {
    let mut delivered = server.mailbox.as_ref().expect("the dev mailer is configured").subscribe();
    let mail = server.mail_after(&mut delivered, count - 1, to).await;
    (mail[0]["link"].as_str().expect("link").to_owned(), mail[0]["code"].as_str().expect("code").to_owned())
}

#[tokio::test]
async fn a_scanned_link_opened_on_another_device_asks_first_and_the_code_signs_in_where_it_was_asked() {
    let Some((laptop, driver, _laptop_profile)) = chromium().await else { return };
    let Some(chromium_program) = require(&xtask::tasks::CHROMIUM) else { return };
    let phone_profile = tempfile::tempdir().expect("browser profile folder");
    let server = RunningServer::start().await;
    let phone = driver.session(&chromium_program, phone_profile.path()).await.expect("browser starts");
    let base = &server.base_url;
    let address = "devices@example.com";

    // Asked on the laptop; a mail scanner fetches the link three times; opened on the phone.
    request_a_link(&laptop, base, address, "devices").await;
    let (link, _) = newest_message(&server, address, 1).await;
    let scanner = reqwest::Client::builder().redirect(reqwest::redirect::Policy::limited(5)).build().expect("client");
    for _ in 0..3 {
        let fetched = scanner.get(&link).send().await.expect("the scanner fetches");
        assert_eq!(fetched.status(), reqwest::StatusCode::OK);
    }
    phone.goto(&link).await.expect("link opened");
    phone.wait_for_text("#confirm-title", "Sign in as d***@example.com on this device?", WAIT).await.expect("asked");
    phone.screenshot(&screenshots(), "devices-3-confirm-on-phone").await.expect("screenshot");
    phone.click(&phone.find("#confirm").await.expect("the button")).await.expect("confirmed");
    phone.wait_for_text("#status", &format!("Signed in as {address}"), WAIT).await.expect("signed in on the phone");

    // Asked again on the laptop; this time the code from the email is typed there.
    request_a_link(&laptop, base, address, "devices-code").await;
    let (_, code) = newest_message(&server, address, 2).await;
    laptop.type_into(&laptop.find("#code").await.expect("the code field"), &code.to_lowercase()).await.expect("typed");
    laptop.screenshot(&screenshots(), "devices-4-code-on-laptop").await.expect("screenshot");
    laptop.click(&laptop.find("#submit-code").await.expect("the code button")).await.expect("submitted");
    signed_in_then_out(&laptop, base, address, "devices").await;

    laptop.quit().await.expect("browser closes");
    phone.quit().await.expect("browser closes");
}

/// The API docs page runs Swagger UI's inline script under the page's own Content-Security-
/// Policy (and nothing else on the site may run script): the operations are drawn.
#[tokio::test]
async fn the_api_docs_page_draws_every_operation() {
    let Some((browser, _driver, _profile)) = chromium().await else { return };
    let server = RunningServer::start().await;

    // Every operation of the checked-in document (which a test holds equal to the served one).
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).expect("the document"),
    )
    .expect("JSON");
    let operations = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|path| path.as_object().map_or(0, |p| p.len()))
        .sum::<usize>() as u64;
    browser.goto(&format!("{}/api/auth/docs", server.base_url)).await.expect("docs page");
    let count = "return document.querySelectorAll('.opblock').length";
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut drawn = 0;
    while drawn < operations && tokio::time::Instant::now() < deadline {
        drawn = browser.execute(count, Vec::new()).await.expect("script").as_u64().unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    browser.screenshot(&screenshots(), "api-docs").await.expect("screenshot");

    // csrf, providers, session; request a link, redeem it, sign out; list sessions, revoke one,
    // revoke the others; change the address, confirm it; sign in with a password, set one,
    // confirm it is you; list passkeys, begin adding one, add it, rename one, delete one, begin
    // signing in with one, sign in with it; read your activity; download your data, delete your
    // account.
    assert_eq!(operations, 24);
    assert_eq!(drawn, operations, "Swagger UI drew every operation");
    let title = browser.execute("return document.querySelector('.info .title').textContent", Vec::new()).await;
    assert!(title.expect("script").as_str().is_some_and(|t| t.starts_with("magiclink")));
}

/// A server whose public origin is `http://localhost:PORT`: browsers refuse an IP address as a
/// WebAuthn relying party id, and `localhost` is a secure context over plain http.
async fn on_localhost() -> RunningServer {
    RunningServer::start_with(
        |settings| settings.server.base_url = settings.server.base_url.replace("127.0.0.1", "localhost"),
        Parts::default(),
    )
    .await
}

/// The passkeys the account page lists, as (name, last-used) pairs.
const LISTED_PASSKEYS: &str = "return Array.from(document.querySelectorAll('[data-passkey-id]'))\
    .map(row => row.querySelector('input').value)";

/// Passkeys in Chromium with its virtual authenticator (CTAP2, internal transport, resident
/// keys, user verification): after a link sign-in the account page offers and adds one; signed
/// out, the sign-in page's autofill request (conditional mediation, which Chromium's virtual
/// authenticator answers by itself) signs in with no email. Another profile, with an
/// authenticator of its own, cannot use the first one's credential ("Sign in with a passkey"
/// says no passkey was used); once the credential is synced to it, the button signs in. Renamed
/// and deleted on the account page, the passkey then signs nobody in, and the email form stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_adds_a_passkey_signs_in_with_it_renames_and_deletes_it() {
    let Some((browser, driver, _profile)) = chromium().await else { return };
    let server = on_localhost().await;
    let base = &server.base_url;
    let address = "passkey@example.com";
    let signed_in = format!("Signed in as {address}");
    let authenticator = browser.add_virtual_authenticator().await.expect("a virtual authenticator");

    request_a_link(&browser, base, address, "passkey").await;
    let (link, _code) = newest_message(&server, address, 1).await;
    browser.goto(&link).await.expect("link opened");
    browser.wait_for_text("#status", &signed_in, WAIT).await.expect("signed in");
    browser.goto(&format!("{base}/account")).await.expect("account page");
    browser.wait_until("return !document.getElementById('passkeys').hidden", WAIT).await.expect("controls shown");
    browser.wait_until("return !document.getElementById('passkey-offer').hidden", WAIT).await.expect("offered once");
    browser.screenshot(&screenshots(), "passkey-1-offer").await.expect("screenshot");
    // "Not now" is remembered by this browser: the offer does not come back.
    browser.click(&browser.find("[data-passkey-dismiss]").await.expect("not now")).await.expect("clicked");
    browser.goto(&format!("{base}/account")).await.expect("account page again");
    browser.wait_until("return !document.getElementById('passkeys').hidden", WAIT).await.expect("controls shown");
    let remembered = "return localStorage.getItem('magiclink.passkey-offer-dismissed') === '1' \
        && document.getElementById('passkey-offer').hidden";
    let offered = browser.execute(remembered, Vec::new()).await;
    assert_eq!(offered.expect("script"), true, "dismissed once (remembered by the browser), not offered again");
    browser.click(&browser.find("#add-passkey").await.expect("add button")).await.expect("clicked");
    browser.wait_until(&format!("{LISTED_PASSKEYS}.length === 1"), WAIT).await.expect("one passkey listed");
    let listed = browser.execute(LISTED_PASSKEYS, Vec::new()).await.expect("script");
    assert_eq!(listed, serde_json::json!(["Chrome on Linux"]), "named after the browser and system");
    let held = browser.virtual_credentials(&authenticator).await.expect("credentials");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["isResidentCredential"], true, "a discoverable credential: no address needed");
    browser.screenshot(&screenshots(), "passkey-2-added").await.expect("screenshot");

    // Signed out, the sign-in page's autofill request signs in with the passkey: no email.
    browser.goto(&format!("{base}/")).await.expect("home");
    browser.click(&browser.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    browser.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    browser.goto(&format!("{base}/signin")).await.expect("sign-in page");
    browser.wait_for_text("#status", &signed_in, WAIT).await.expect("signed in through autofill");
    // Emailed: the first link, and the alert that a passkey was added; the passkey sign-in
    // itself, from a browser the account knows, sends nothing.
    let mut delivered = server.mailbox.as_ref().expect("dev mailer").subscribe();
    tokio::time::timeout(WAIT, delivered.wait_for(|sent| *sent >= 2)).await.expect("the alert").expect("mailbox");
    let mail = server.mail_to(address).await;
    let kinds: Vec<&str> =
        mail.as_array().expect("messages").iter().map(|message| message["kind"].as_str().expect("kind")).collect();
    assert_eq!(kinds, ["security_alert", "sign_in"], "newest first: {mail}");
    assert_eq!(mail[0]["subject"], "A passkey was added to your magiclink account", "{mail}");
    browser.screenshot(&screenshots(), "passkey-3-signed-in").await.expect("screenshot");

    // A second profile, with an authenticator of its own, has no credential for this site.
    let chromium_program = require(&xtask::tasks::CHROMIUM).expect("chromium");
    let other_profile = tempfile::tempdir().expect("browser profile folder");
    let other = driver.session(&chromium_program, other_profile.path()).await.expect("second browser");
    let other_authenticator = other.add_virtual_authenticator().await.expect("its own authenticator");
    other.goto(&format!("{base}/signin")).await.expect("sign-in page");
    let autocomplete = other.execute("return document.getElementById('email').autocomplete", Vec::new()).await;
    assert_eq!(autocomplete.expect("script"), "email webauthn", "passkeys offered in the address field's autofill");
    other.wait_until("return !document.getElementById('passkey-sign-in').hidden", WAIT).await.expect("button");
    other.click(&other.find("#passkey-button").await.expect("passkey button")).await.expect("clicked");
    other.wait_until("return !document.getElementById('passkey-message').hidden", WAIT).await.expect("message");
    let said = other.text(&other.find("#passkey-message").await.expect("message")).await.expect("text");
    assert_eq!(said, "No passkey was used. You can try again, or get an email link.");
    other.screenshot(&screenshots(), "passkey-4-other-profile").await.expect("screenshot");
    // Synced to it (the same private key, and the counter as it is now: an older copy's counter
    // would be refused as a clone's), the button signs in.
    let synced = browser.virtual_credentials(&authenticator).await.expect("credentials");
    other.add_virtual_credential(&other_authenticator, &synced[0]).await.expect("credential synced");
    other.click(&other.find("#passkey-button").await.expect("passkey button")).await.expect("clicked");
    other.wait_for_text("#status", &signed_in, WAIT).await.expect("signed in with the button");

    // Renamed, then deleted, on the account page.
    browser.goto(&format!("{base}/account")).await.expect("account page");
    browser.wait_until("return !document.getElementById('passkeys').hidden", WAIT).await.expect("controls shown");
    let no_offer = browser.execute("return document.getElementById('passkey-offer') === null", Vec::new()).await;
    assert_eq!(no_offer.expect("script"), true, "no offer once the person has a passkey");
    browser
        .execute("document.querySelector('[data-passkey-id] input').value = 'Work laptop'", Vec::new())
        .await
        .expect("typed");
    // The name typed is in the field already: what shows the rename was saved is the page the
    // script reloads after it, which no longer carries this mark.
    browser.execute("window.beforeRename = true", Vec::new()).await.expect("marked");
    browser.click(&browser.find("[data-passkey-rename]").await.expect("rename")).await.expect("clicked");
    let reloaded_with_new_name = "return window.beforeRename === undefined \
        && document.querySelector('[data-passkey-id] input')?.value === 'Work laptop' \
        && document.querySelector('[data-passkey-delete]') !== null";
    browser.wait_until(reloaded_with_new_name, WAIT).await.expect("renamed");
    browser.click(&browser.find("[data-passkey-delete]").await.expect("delete")).await.expect("clicked");
    browser.wait_until(&format!("{LISTED_PASSKEYS}.length === 0"), WAIT).await.expect("deleted");
    browser.screenshot(&screenshots(), "passkey-5-deleted").await.expect("screenshot");
    browser.quit().await.expect("browser closes");

    // The second profile's authenticator still holds the key, but it signs nobody in now; the
    // email form stays as it was.
    other.goto(&format!("{base}/")).await.expect("home");
    other.click(&other.find("#signout").await.expect("sign-out button")).await.expect("signed out");
    other.wait_for_text("#status", "You are not signed in.", WAIT).await.expect("signed out");
    other.goto(&format!("{base}/signin")).await.expect("sign-in page");
    other.wait_until("return !document.getElementById('passkey-message').hidden", WAIT).await.expect("message");
    let said = other.text(&other.find("#passkey-message").await.expect("message")).await.expect("text");
    assert_eq!(said, "That passkey did not sign you in. Use the email link instead, or try again.");
    other.type_into(&other.find("#email").await.expect("the email field"), address).await.expect("typed");
    other.click(&other.find("#submit").await.expect("submit button")).await.expect("submitted");
    other
        .wait_for_text("#sent-to", "We sent a sign-in link to p***@example.com. It expires in 10 minutes.", WAIT)
        .await
        .expect("the link still works");
    other.screenshot(&screenshots(), "passkey-6-deleted-refused").await.expect("screenshot");
    other.quit().await.expect("second browser closes");
}
