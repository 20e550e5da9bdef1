//! The pending-sign-in cookie: proof that this browser is the one that asked for a link.
//!
//! Asking for a link sets it (short-lived, `HttpOnly`, `SameSite=Lax`), naming the link by its
//! token hash, with the masked address for "check your email" and the callback path for the
//! code form. Its MAC, under a key derived for this purpose alone, makes it unforgeable.
//!
//! It decides what opening a link does. In the browser that holds it, the link signs in at
//! once, as people expect. Anywhere else (a mail scanner that fetches every link, a preview, a
//! second device) opening the link changes nothing: a confirm page asks first, so a scanner
//! cannot use the link up and nobody can be signed into someone else's account by a link
//! they were sent (login CSRF). The short code works only where this cookie is.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::secret::KeyPurpose;
use domain::{CallbackPath, LinkTokenHash, ServerSecret};
use poem::web::cookie::CookieJar;
use subtle::ConstantTimeEq;

use crate::cookies;
use crate::settings::WebSettings;

/// What the cookie says about the link this browser asked for.
#[derive(Debug, Clone)]
pub struct PendingSignIn {
    /// The link, by its token hash.
    pub link: LinkTokenHash,
    /// The address it went to, masked (`a***@example.com`).
    pub masked_email: String,
    /// Where to land after signing in with the code.
    pub callback: String,
    /// When the link, and so this cookie, expires.
    pub expires: DateTime<Utc>,
    /// Which secret signed the cookie (and issued the link): 0 for the current one, then the
    /// previous ones in order.
    pub issued_under: usize,
}

impl PendingSignIn {
    /// Whether the link (and its code) expired by `now`: the cookie is kept a while longer, to
    /// say so.
    pub fn link_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires <= now
    }

    /// Whether this cookie names the link stored under any of `hashes`.
    pub fn is_for(&self, hashes: &[LinkTokenHash]) -> bool {
        hashes.iter().any(|hash| self.link.matches(hash))
    }
}

/// How long the cookie outlives its link: a code typed a little late is then told it expired
/// (and to ask for a new link), rather than that this is not the browser that asked.
const OUTLIVES_ITS_LINK_BY: TimeDelta = TimeDelta::hours(1);

/// Sets the cookie for a link just asked for, replacing any earlier one: the newest request
/// is the one this browser is waiting for.
pub fn set(jar: &CookieJar, settings: &WebSettings, pending: &PendingSignIn, now: DateTime<Utc>) {
    let body = [
        URL_SAFE_NO_PAD.encode(pending.link.as_bytes()),
        URL_SAFE_NO_PAD.encode(pending.masked_email.as_bytes()),
        URL_SAFE_NO_PAD.encode(pending.callback.as_bytes()),
        pending.expires.timestamp().to_string(),
    ]
    .join(".");
    let value = format!("{body}.{}", mac(settings.secrets.current(), &body));
    let lifetime = (pending.expires + OUTLIVES_ITS_LINK_BY - now).to_std().unwrap_or_default();
    cookies::set(jar, settings, cookies::Kind::PendingSignIn, &value, Some(lifetime));
}

/// The cookie on this request, if it is ours (its MAC verifies) and its link expired no longer
/// than [`OUTLIVES_ITS_LINK_BY`] before `now` (see [`PendingSignIn::link_expired`]).
pub fn read(jar: &CookieJar, settings: &WebSettings, now: DateTime<Utc>) -> Option<PendingSignIn> {
    let value = cookies::read(jar, settings, cookies::Kind::PendingSignIn)?;
    let (body, their_mac) = value.rsplit_once('.')?;
    let issued_under = settings
        .secrets
        .all()
        .position(|secret| bool::from(mac(secret, body).as_bytes().ct_eq(their_mac.as_bytes())))?;
    let mut parts = body.split('.');
    let (Some(link), Some(masked), Some(callback), Some(expires), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let link: [u8; 32] = URL_SAFE_NO_PAD.decode(link).ok()?.try_into().ok()?;
    let masked_email = String::from_utf8(URL_SAFE_NO_PAD.decode(masked).ok()?).ok()?;
    let callback = String::from_utf8(URL_SAFE_NO_PAD.decode(callback).ok()?).ok()?;
    let expires = DateTime::from_timestamp(expires.parse().ok()?, 0)?;
    (now < expires + OUTLIVES_ITS_LINK_BY).then(|| PendingSignIn {
        link: LinkTokenHash::from_bytes(link),
        masked_email,
        callback,
        expires,
        issued_under,
    })
}

/// Clears the cookie once its link has been used.
pub fn clear(jar: &CookieJar, settings: &WebSettings) {
    cookies::clear(jar, settings, cookies::Kind::PendingSignIn);
}

/// The callback path the cookie carries, checked again as any callback is.
pub fn callback(pending: &PendingSignIn, settings: &WebSettings) -> CallbackPath {
    settings.callback(Some(&pending.callback))
}

fn mac(secret: &ServerSecret, body: &str) -> String {
    URL_SAFE_NO_PAD.encode(secret.mac(KeyPurpose::PendingSignIn, body.as_bytes()))
}
