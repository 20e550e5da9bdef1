//! The service's cookies: names, attributes, and how they are set and cleared.
//!
//! Every cookie is `HttpOnly`, `SameSite=Lax` and `Path=/`. Over https they are also `Secure`
//! and carry the `__Host-` prefix, which browsers honour only for secure, host-only, `Path=/`
//! cookies: a sibling subdomain cannot plant or overwrite them.
//!
//! The one exception is the session cookie when `session.cookie_domain` is set, so that apps on
//! sibling subdomains behind forward auth see it: a cookie with a `Domain` cannot be `__Host-`,
//! so it gets `__Secure-` (still https-only) and any host under that domain can set or
//! overwrite it (session fixation by a compromised sibling). `docs/security.md` says so.

use std::time::Duration;

use poem::web::cookie::{Cookie, CookieJar, SameSite};

use crate::settings::WebSettings;

/// The service's cookies; their base names come from [`crate::settings::CookieNames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The session token.
    Session,
    /// The CSRF double-submit token.
    Csrf,
    /// The link this browser asked for (see [`crate::pending`]).
    PendingSignIn,
    /// The language chosen with `?lang=` (see [`crate::lang`]).
    Lang,
    /// The passkey ceremony this browser began (see [`crate::passkey`]).
    PasskeyCeremony,
}

/// The cookie name as sent: the configured base name, with `__Host-` over https.
pub fn name(settings: &WebSettings, kind: Kind) -> String {
    let base = match kind {
        Kind::Session => &settings.cookie_names.session,
        Kind::Csrf => &settings.cookie_names.csrf,
        Kind::PendingSignIn => &settings.cookie_names.pending,
        Kind::Lang => &settings.cookie_names.lang,
        Kind::PasskeyCeremony => &settings.cookie_names.passkey,
    };
    match (settings.is_https(), domain_of(settings, kind)) {
        (true, None) => format!("__Host-{base}"),
        (true, Some(_)) => format!("__Secure-{base}"),
        (false, _) => base.clone(),
    }
}

/// The `Domain` a cookie is set for: only the session cookie, and only when configured.
fn domain_of(settings: &WebSettings, kind: Kind) -> Option<&str> {
    match kind {
        Kind::Session => settings.session_cookie_domain.as_deref(),
        Kind::Csrf | Kind::PendingSignIn | Kind::Lang | Kind::PasskeyCeremony => None,
    }
}

/// Reads a cookie's value from the request.
pub fn read(jar: &CookieJar, settings: &WebSettings, kind: Kind) -> Option<String> {
    jar.get(&name(settings, kind)).map(|cookie| cookie.value_str().to_owned())
}

/// Queues a cookie on the response. `max_age` of `None` makes a browser-session cookie.
pub fn set(jar: &CookieJar, settings: &WebSettings, kind: Kind, value: &str, max_age: Option<Duration>) {
    let mut cookie = Cookie::new_with_str(name(settings, kind), value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_path("/");
    cookie.set_secure(settings.is_https());
    if let Some(domain) = domain_of(settings, kind) {
        cookie.set_domain(domain);
    }
    if let Some(max_age) = max_age {
        cookie.set_max_age(max_age);
    }
    jar.add(cookie);
}

/// Queues the removal of a cookie (same name and attributes, empty, `Max-Age=0`).
pub fn clear(jar: &CookieJar, settings: &WebSettings, kind: Kind) {
    set(jar, settings, kind, "", Some(Duration::ZERO));
}
