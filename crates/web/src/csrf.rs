//! CSRF protection: a double-submit token bound to the server secret.
//!
//! The cookie holds `token.mac` where `mac = HMAC(csrf key, token)`; forms and the JSON API
//! carry the bare `token`. A state-changing request is accepted only if the cookie's MAC is
//! ours and the submitted token equals the cookie's, both compared in constant time. An
//! attacker's page can neither read our cookie (to copy the token) nor forge a cookie that
//! verifies (it lacks the secret), and `SameSite=Lax` keeps the cookie off cross-site POSTs
//! in the first place.
//!
//! Browsers also say where a request comes from, and when they do, that is checked too: a
//! state-changing request whose `Origin` is not this site's, or whose `Sec-Fetch-Site` is
//! anything but `same-origin` or `none` (typed or bookmarked), is refused whatever its token.
//! A sibling subdomain counts as another site here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use domain::secret::KeyPurpose;
use domain::ServerSecret;
use poem::http::header;
use poem::web::cookie::CookieJar;
use poem::Request;
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
    let value = format!("{token}.{}", mac(settings.secrets.current(), &token));
    cookies::set(jar, settings, cookies::Kind::Csrf, &value, None);
    Ok(token)
}

/// Whether the request comes from this site (as far as the browser says) and `submitted`
/// matches its valid CSRF cookie.
pub fn verify(req: &Request, settings: &WebSettings, submitted: Option<&str>) -> bool {
    if !same_origin(req, settings) {
        return false;
    }
    match (valid_cookie_token(req.cookie(), settings), submitted) {
        (Some(expected), Some(submitted)) => expected.as_bytes().ct_eq(submitted.as_bytes()).into(),
        _ => false,
    }
}

/// `false` when the browser says the request comes from another origin. Programs that send
/// neither header are judged by the token alone.
fn same_origin(req: &Request, settings: &WebSettings) -> bool {
    if let Some(site) = req.header("sec-fetch-site") {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match req.header(header::ORIGIN) {
        // Browsers send `null` for a same-origin form post when the page's referrer policy is
        // `no-referrer`, as ours is: it says nothing, and `Sec-Fetch-Site` (above) and the token
        // decide.
        None | Some("null") => true,
        // Otherwise the site's own origin: scheme, host and port exactly as configured.
        Some(origin) => origin == settings.base_url.origin().ascii_serialization(),
    }
}

/// The token of this request's CSRF cookie, if its MAC is ours under the current secret or one
/// rotated out (so open forms survive a rotation).
fn valid_cookie_token(jar: &CookieJar, settings: &WebSettings) -> Option<String> {
    let value = cookies::read(jar, settings, cookies::Kind::Csrf)?;
    let (token, their_mac) = value.split_once('.')?;
    let verifies = |secret: &ServerSecret| bool::from(mac(secret, token).as_bytes().ct_eq(their_mac.as_bytes()));
    settings.secrets.all().any(verifies).then(|| token.to_owned())
}

fn mac(secret: &ServerSecret, token: &str) -> String {
    URL_SAFE_NO_PAD.encode(secret.mac(KeyPurpose::Csrf, token.as_bytes()))
}
