//! The web layer's parsers of outside input under property tests: forms, the callback query,
//! the pending-sign-in and CSRF cookies. Nothing panics; only what we signed is believed.

use chrono::{TimeZone, Utc};
use domain::ServerSecret;
use poem::web::cookie::{Cookie, CookieJar};
use proptest::prelude::*;
use web::forms::{CallbackQuery, SignInForm};
use web::{pending, WebSettings};

mod support;

fn settings() -> WebSettings {
    support::web_settings("https://auth.example.com", ServerSecret::new(*b"parser-test-secret-parser-test-s"))
}

fn jar_with(name: &str, value: &str) -> CookieJar {
    let jar = CookieJar::default();
    jar.add(Cookie::new_with_str(name, value));
    jar
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn sign_in_forms_parse_or_refuse_without_panicking(email in ".{0,300}", callback in proptest::option::of(".{0,300}")) {
        let form = SignInForm { email, csrf_token: None, callback_url: callback };
        if let Ok(request) = form.to_request(&settings(), None, "en", domain::audit::RequestOrigin::default()) {
            prop_assert!(request.email.has_ascii_local_part());
            prop_assert!(request.callback.as_str().starts_with('/'));
        }
    }

    #[test]
    fn callback_queries_parse_or_refuse_without_panicking(
        token in proptest::option::of("[A-Za-z0-9_=-]{0,60}"),
        email in proptest::option::of(".{0,100}"),
    ) {
        let query = CallbackQuery { token, email, callback_url: None };
        let _ = query.to_request(Some("agent"), None, domain::audit::RequestOrigin::default());
    }

    #[test]
    fn a_pending_cookie_we_did_not_sign_is_never_believed(value in "[ -~]{0,400}") {
        let settings = settings();
        let jar = jar_with(&web::cookies::name(&settings, web::cookies::Kind::PendingSignIn), &value);
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date");
        prop_assert!(pending::read(&jar, &settings, now).is_none());
    }

    #[test]
    fn a_csrf_cookie_we_did_not_sign_is_replaced(value in "[ -~]{0,200}") {
        let settings = settings();
        let jar = jar_with(&web::cookies::name(&settings, web::cookies::Kind::Csrf), &value);
        let token = web::csrf::token_for_form(&jar, &settings).expect("a token");
        prop_assert!(!value.starts_with(&format!("{token}.")), "a forged cookie's token was reused");
    }
}

#[test]
fn a_pending_cookie_we_signed_is_read_back_until_an_hour_after_its_link_expired() {
    let settings = settings();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date");
    let link = domain::LinkToken::from_random_bytes([3; 32]).hash(settings.secrets.current());
    let jar = CookieJar::default();
    let written = pending::PendingSignIn {
        link: link.clone(),
        masked_email: "a***@example.com".to_owned(),
        callback: "/next".to_owned(),
        expires: now + chrono::TimeDelta::minutes(10),
        issued_under: 0,
    };
    pending::set(&jar, &settings, &written, now);
    let name = web::cookies::name(&settings, web::cookies::Kind::PendingSignIn);
    assert!(name.starts_with("__Host-"), "https: {name}");
    let value = jar.get(&name).expect("set").value_str().to_owned();
    let read_jar = jar_with(&name, &value);

    let read = pending::read(&read_jar, &settings, now).expect("ours");
    let (body, mac) = value.rsplit_once('.').expect("body.mac");
    let tampered = jar_with(&name, &format!("{}.{mac}", body.replacen("a", "b", 1).replacen("A", "B", 1)));

    assert!(read.is_for(&[link]));
    assert_eq!((read.masked_email.as_str(), read.callback.as_str()), ("a***@example.com", "/next"));
    let link_expired = now + chrono::TimeDelta::minutes(10);
    assert!(!read.link_expired(now));
    // Kept past the link's expiry, so that a late code is told it expired, and then dropped.
    let late = pending::read(&read_jar, &settings, link_expired).expect("kept to say the link expired");
    assert!(late.link_expired(link_expired));
    let an_hour_on = link_expired + chrono::TimeDelta::hours(1);
    assert!(pending::read(&read_jar, &settings, an_hour_on - chrono::TimeDelta::seconds(1)).is_some());
    assert!(pending::read(&read_jar, &settings, an_hour_on).is_none(), "gone an hour after its link");
    assert!(pending::read(&tampered, &settings, now).is_none(), "tampered");
}
