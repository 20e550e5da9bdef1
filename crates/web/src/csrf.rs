//! CSRF protection: a double-submit token bound to the server secret.
//!
//! The cookie holds `token.mac` where `mac = HMAC(csrf key, token)`; forms and the JSON API
//! carry the bare `token`. A state-changing request is accepted only if the cookie's MAC is
//! ours and the submitted token equals the cookie's, both compared in constant time. An
//! attacker's page can neither read our cookie (to copy the token) nor forge a cookie that
//! verifies (it lacks the secret), and `SameSite=Lax` keeps the cookie off cross-site POSTs
//! in the first place.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::secret::KeyPurpose;
use poem::web::cookie::CookieJar;
use ports::random::os_random;
use subtle::ConstantTimeEq;

use crate::cookies;
use crate::settings::WebSettings;

/// The token of a valid CSRF cookie on this request, or a fresh one set on the response.
///
/// # Errors
/// Fails only if the OS CSPRNG fails.
pub fn token_for_form(jar: &CookieJar, settings: &WebSettings) -> anyhow::Result<String> {
    if let Some(token) = valid_cookie_token(jar, settings) {
        return Ok(token);
    }
    let token = URL_SAFE_NO_PAD.encode(os_random::<32>()?);
    let value = format!("{token}.{}", mac(settings, &token));
    cookies::set(jar, settings, cookies::Kind::Csrf, &value, None);
    Ok(token)
}

/// Whether `submitted` matches this request's valid CSRF cookie.
pub fn verify(jar: &CookieJar, settings: &WebSettings, submitted: Option<&str>) -> bool {
    match (valid_cookie_token(jar, settings), submitted) {
        (Some(expected), Some(submitted)) => expected.as_bytes().ct_eq(submitted.as_bytes()).into(),
        _ => false,
    }
}

fn valid_cookie_token(jar: &CookieJar, settings: &WebSettings) -> Option<String> {
    let value = cookies::read(jar, settings, cookies::Kind::Csrf)?;
    let (token, their_mac) = value.split_once('.')?;
    let ours = mac(settings, token);
    bool::from(ours.as_bytes().ct_eq(their_mac.as_bytes())).then(|| token.to_owned())
}

fn mac(settings: &WebSettings, token: &str) -> String {
    URL_SAFE_NO_PAD.encode(settings.secret.mac(KeyPurpose::Csrf, token.as_bytes()))
}
