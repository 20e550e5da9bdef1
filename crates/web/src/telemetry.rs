//! What the web layer counts for Prometheus, when `metrics.bind` turns the metrics listener on:
//! requests by route, method and status with their latency, links requested, rate-limit
//! refusals, sign-ins by outcome, sessions created and revoked. Every metric name the web layer
//! records is here. With metrics off nothing is recorded at all (not even a label built), so
//! the session check pays nothing for them.
//!
//! Routes are labelled by their pattern (`/api/auth/sessions/{id}`), never by the raw path,
//! which would let anyone grow the label set without bound; paths that are no route are
//! `unmatched`.

use std::collections::HashSet;

use crate::settings::WebSettings;

/// Requests answered, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "magiclink_http_requests_total";
/// Seconds from a request's arrival to its answer, by `route`.
pub const HTTP_DURATION: &str = "magiclink_http_request_duration_seconds";
/// Sign-in links requested and queued (an address that may not sign in counts too: the
/// answer is the same, and so is this).
pub const LINKS_REQUESTED: &str = "magiclink_links_requested_total";
/// Requests refused by a rate limit, by `limit`.
pub const RATE_LIMITED: &str = "magiclink_rate_limited_total";
/// Sign-ins with a link or code, by `outcome` (`signed-in`, `link-used`, `wrong-code`, ...).
pub const SIGN_INS: &str = "magiclink_sign_ins_total";
/// Sessions created.
pub const SESSIONS_CREATED: &str = "magiclink_sessions_created_total";
/// Sessions ended before their time, by `how` (`sign-out`, `revoke`, `revoke-others`).
pub const SESSIONS_REVOKED: &str = "magiclink_sessions_revoked_total";

/// The route patterns requests are labelled with, built once from the settings.
#[derive(Debug, Clone)]
pub struct RouteLabels {
    exact: HashSet<String>,
    sessions_prefix: String,
    session_pattern: String,
    docs: String,
}

impl RouteLabels {
    /// The labels of this deployment's routes.
    pub fn new(settings: &WebSettings) -> Self {
        let base = settings.auth_path("");
        let mut exact: HashSet<String> = [
            "/",
            "/healthz",
            "/dev/mailbox",
            settings.pages.sign_in.as_str(),
            settings.pages.verify_request.as_str(),
            settings.pages.error.as_str(),
            settings.pages.account.as_str(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        for suffix in [
            "/signin",
            "/signout",
            "/signin/email",
            "/callback/email",
            "/csrf",
            "/providers",
            "/session",
            "/sessions",
            "/sessions/revoke-others",
            "/forward-auth",
            "/openapi.json",
        ] {
            exact.insert(format!("{base}{suffix}"));
        }
        for suffix in ["/name", "/sessions/revoke", "/sessions/revoke-others"] {
            exact.insert(format!("{}{suffix}", settings.pages.account));
        }
        Self {
            exact,
            sessions_prefix: format!("{base}/sessions/"),
            session_pattern: format!("{base}/sessions/{{id}}"),
            docs: format!("{base}/docs"),
        }
    }

    /// The label for a request to `path`.
    pub fn of(&self, path: &str) -> String {
        if self.exact.contains(path) {
            path.to_owned()
        } else if path.starts_with(&self.sessions_prefix) {
            self.session_pattern.clone()
        } else if path.starts_with(&self.docs) {
            self.docs.clone()
        } else {
            "unmatched".to_owned()
        }
    }
}

/// One request to `path` answered.
pub fn request(settings: &WebSettings, routes: &RouteLabels, path: &str, method: &str, status: u16, seconds: f64) {
    if settings.metrics {
        let route = routes.of(path);
        metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.to_owned(), "status" => status.to_string())
            .increment(1);
        metrics::histogram!(HTTP_DURATION, "route" => route).record(seconds);
    }
}

/// A link was requested and queued.
pub fn link_requested(settings: &WebSettings) {
    if settings.metrics {
        metrics::counter!(LINKS_REQUESTED).increment(1);
    }
}

/// A rate limit (`limit`, its problem type: `rate-limited-address`, ...) refused a request.
pub fn rate_limited(settings: &WebSettings, limit: &'static str) {
    if settings.metrics {
        metrics::counter!(RATE_LIMITED, "limit" => limit).increment(1);
    }
}

/// A sign-in with a link or code ended with `outcome`.
pub fn sign_in(settings: &WebSettings, outcome: &'static str) {
    if settings.metrics {
        metrics::counter!(SIGN_INS, "outcome" => outcome).increment(1);
    }
}

/// A session was created (by a sign-in).
pub fn session_created(settings: &WebSettings) {
    if settings.metrics {
        metrics::counter!(SESSIONS_CREATED).increment(1);
    }
}

/// `count` sessions were ended before their time, `how`.
pub fn sessions_revoked(settings: &WebSettings, how: &'static str, count: u64) {
    if settings.metrics && count > 0 {
        metrics::counter!(SESSIONS_REVOKED, "how" => how).increment(count);
    }
}
