//! What the web layer counts for Prometheus, when `metrics.bind` turns the metrics listener on:
//! requests by route, method and status with their latency, links requested, rate-limit
//! refusals, sign-ins by outcome, sessions created and revoked. Every metric name the web layer
//! records is here. With metrics off nothing is recorded at all (not even a label built), so
//! the session check pays nothing for them.
//!
//! Routes are labelled by their pattern (`/api/auth/sessions/:param0`), never by the raw path,
//! which would let anyone grow the label set without bound; requests no route answered are
//! `unmatched`.

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

/// The `route` label of a request that no route answered: a path that is no route, or a request
/// refused before it reached one (a body over the limit, a timeout).
pub const UNMATCHED: &str = "unmatched";

/// One request answered; `route` is the pattern of the route that answered it (poem's
/// [`poem::PathPattern`], so every route is labelled without a list to keep in step), if any.
pub fn request(settings: &WebSettings, route: Option<&str>, method: &str, status: u16, seconds: f64) {
    if settings.metrics {
        let route = route.unwrap_or(UNMATCHED).to_owned();
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
