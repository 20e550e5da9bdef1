//! The web layer's settings: where things live and how cookies are named.

use domain::{CallbackPath, SecretRing};
use url::{Origin, Url};

/// Where the person-facing pages live, as Auth.js's `pages` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePaths {
    /// The sign-in form (default `/signin`).
    pub sign_in: String,
    /// "Check your email" (Auth.js's `verifyRequest`, default `/check-your-email`).
    pub verify_request: String,
    /// The sign-in error page (default `/auth-error`).
    pub error: String,
    /// The signed-in person's account page (default `/account`).
    pub account: String,
}

/// The cookies' base names, before the `__Host-` prefix that https adds. Configurable so that
/// two environments on one domain (staging and production, say) do not share cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieNames {
    /// The session cookie (default `magiclink.session-token`).
    pub session: String,
    /// The CSRF cookie (default `magiclink.csrf-token`).
    pub csrf: String,
    /// The pending-sign-in cookie (the session cookie's name with `.pending`).
    pub pending: String,
    /// The chosen-language cookie (the session cookie's name with `.lang`).
    pub lang: String,
    /// The passkey-ceremony cookie (the session cookie's name with `.passkey`).
    pub passkey: String,
}

impl CookieNames {
    /// The names for a session and a CSRF cookie name; the pending-sign-in cookie's name is
    /// the session cookie's with `.pending` added, so environments kept apart stay apart.
    pub fn new(session: &str, csrf: &str) -> Self {
        Self {
            session: session.to_owned(),
            csrf: csrf.to_owned(),
            pending: format!("{session}.pending"),
            lang: format!("{session}.lang"),
            passkey: format!("{session}.passkey"),
        }
    }
}

impl Default for CookieNames {
    fn default() -> Self {
        Self::new("magiclink.session-token", "magiclink.csrf-token")
    }
}

/// Limits on each request, enforced before and around the handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Bytes allowed in a body; a larger declared length is refused before reading.
    pub max_body_bytes: u64,
    /// Time allowed for a whole request, body included.
    pub request_timeout: std::time::Duration,
    /// `Strict-Transport-Security` max-age in seconds, sent over https; 0 for none.
    pub hsts_max_age: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 * 1024,
            request_timeout: std::time::Duration::from_secs(30),
            hsts_max_age: 31_536_000,
        }
    }
}

/// What `{base}/forward-auth` answers a request without a live session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardAuthMode {
    /// 401, for nginx's `auth_request` (whose `error_page 401` sends the person on).
    #[default]
    Status,
    /// 302 to the sign-in page with a return URL, for Traefik's `ForwardAuth` and Caddy's
    /// `forward_auth`, which pass the answer to the browser as it is.
    Redirect,
}

impl ForwardAuthMode {
    /// The mode a `mode` query parameter or setting names (`status` or `redirect`).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "status" => Some(Self::Status),
            "redirect" => Some(Self::Redirect),
            _ => None,
        }
    }
}

/// Forward auth for reverse proxies (`{base}/forward-auth`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardAuth {
    /// The exact origins of the apps behind the proxy: the only other sites a sign-in may
    /// return to.
    pub allowed_origins: Vec<Origin>,
    /// The answer without a session, unless the request asks for the other.
    pub mode: ForwardAuthMode,
}

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The public base URL (`AUTH_URL`); its scheme decides whether cookies are `Secure`.
    pub base_url: Url,
    /// The base path of the Auth.js-style routes (default `/api/auth`).
    pub auth_base_path: String,
    /// The page paths.
    pub pages: PagePaths,
    /// The product name shown on pages.
    pub site_name: String,
    /// Keys the CSRF tokens and pending-sign-in cookies; those of the secrets rotated out are
    /// still honoured.
    pub secrets: SecretRing,
    /// The cookies' names.
    pub cookie_names: CookieNames,
    /// Body size and time limits.
    pub limits: RequestLimits,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How much of a client's address the audit log keeps (`audit.client_address`).
    pub audit_client_address: domain::audit::ClientAddressPolicy,
    /// Accept addresses whose local part is not ASCII (SMTPUTF8 set-ups).
    pub allow_unicode_local_part: bool,
    /// The session cookie's `Domain`, so apps on sibling subdomains see it (forward auth);
    /// `None` keeps it host-only, with the `__Host-` prefix over https.
    pub session_cookie_domain: Option<String>,
    /// Forward auth for reverse proxies.
    pub forward_auth: ForwardAuth,
    /// Record Prometheus metrics ([`crate::telemetry`]); off unless `metrics.bind` is set.
    pub metrics: bool,
    /// The secret was generated at start-up (development without `AUTH_SECRET`), so links,
    /// codes and forms from before a restart no longer verify: the pages that refuse them say
    /// so, since a restart is then the likeliest cause.
    pub restart_forgets_links: bool,
    /// Log one `request` line per request at info (`log.access`).
    pub access_log: bool,
    /// Whether passkeys are on (`passkey.enabled`): the pages show their controls and the
    /// script is served.
    pub passkeys: bool,
    /// Whether the OpenID Provider is on (`oidc.enabled`): its endpoints are served.
    pub oidc: bool,
}

impl WebSettings {
    /// Whether the site is served over https, so cookies get `Secure` and `__Host-`.
    pub fn is_https(&self) -> bool {
        self.base_url.scheme() == "https"
    }

    /// An absolute path under the auth base path, e.g. `auth_path("/signin/email")`.
    pub fn auth_path(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.auth_base_path.trim_end_matches('/'))
    }

    /// The absolute URL of a path on this site.
    pub fn absolute(&self, path: &str) -> String {
        format!("{}{path}", self.base_url.as_str().trim_end_matches('/'))
    }

    /// Where a sign-in may return to: `raw` reduced to a path here, or kept whole when it is on
    /// one of `forward_auth.allowed_origins`; anything else is the site root.
    pub fn callback(&self, raw: Option<&str>) -> CallbackPath {
        raw.and_then(|raw| self.accepted_callback(raw)).unwrap_or_else(CallbackPath::root)
    }

    /// As [`WebSettings::callback`], with `None` for a refused URL.
    pub fn accepted_callback(&self, raw: &str) -> Option<CallbackPath> {
        CallbackPath::accept_among(raw, &self.base_url, &self.forward_auth.allowed_origins)
    }

    /// A callback as an absolute URL (for JSON answers, which clients follow from anywhere).
    pub fn callback_url(&self, callback: &CallbackPath) -> String {
        if callback.is_absolute() {
            callback.as_str().to_owned()
        } else {
            self.absolute(callback.as_str())
        }
    }
}
