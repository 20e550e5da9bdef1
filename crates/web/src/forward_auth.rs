//! `GET {base}/forward-auth`: the check a reverse proxy makes before passing a request to an
//! app behind it (nginx `auth_request`, Traefik `ForwardAuth`, Caddy `forward_auth`).
//!
//! The proxy forwards the browser's cookies; a live session answers 200 with the person in
//! `X-Auth-Request-User` (their id) and `X-Auth-Request-Email`, which the proxy copies onto the
//! request it passes on. Without one the answer is 401 (nginx, whose `error_page 401` redirects)
//! or a 302 to the sign-in page (Traefik and Caddy, which hand the answer to the browser),
//! chosen by `forward_auth.mode` or the request's `?mode=status|redirect`.
//!
//! The 302 (and, for nginx, the 401's `X-Auth-Request-Redirect`) carries a return URL so that
//! the person lands where they were going: `?rd=` if the proxy gives one, else the
//! `X-Forwarded-Proto`, `-Host` and `-Uri` that Traefik and Caddy send (and the nginx snippet
//! sets). It is accepted only on this site or an origin in `forward_auth.allowed_origins`
//! ([`crate::WebSettings::callback`]), like every callback: anything else signs in to `/`.

use std::sync::Arc;

use poem::http::{header, HeaderValue, StatusCode};
use poem::web::{Data, Query};
use poem::{handler, IntoResponse, Request, Response};
use serde::Deserialize;
use url::Url;

use crate::errors::{respond, WebError};
use crate::settings::ForwardAuthMode;
use crate::{auth, AppState};

/// The header naming the signed-in user's id.
pub const USER_HEADER: &str = "x-auth-request-user";
/// The header naming the signed-in user's address.
pub const EMAIL_HEADER: &str = "x-auth-request-email";
/// On a 401, the header naming the sign-in page's absolute URL with the return URL encoded in
/// it (nginx's `auth_request_set` reads it for the redirect).
pub const REDIRECT_HEADER: &str = "x-auth-request-redirect";

/// `?mode=` and `?rd=`.
#[derive(Debug, Default, Deserialize)]
pub struct ForwardAuthQuery {
    /// `status` or `redirect`; the setting when absent.
    #[serde(default)]
    pub mode: Option<String>,
    /// Where to return after sign-in (an absolute URL on an allowed origin).
    #[serde(default)]
    pub rd: Option<String>,
}

/// `GET {base}/forward-auth`.
#[handler]
pub async fn forward_auth(
    req: &Request,
    state: Data<&Arc<AppState>>,
    query: poem::Result<Query<ForwardAuthQuery>>,
) -> Response {
    let result = check(req, &state, query).await;
    respond(req, &state, result)
}

async fn check(
    req: &Request,
    state: &AppState,
    query: poem::Result<Query<ForwardAuthQuery>>,
) -> Result<Response, WebError> {
    let Query(query) = query.map_err(|_| WebError::BadQuery("the query string is malformed".to_owned()))?;
    let mode = match query.mode.as_deref() {
        None => state.settings.forward_auth.mode,
        Some(raw) => ForwardAuthMode::parse(raw)
            .ok_or_else(|| WebError::BadQuery("`mode` must be `status` or `redirect`".to_owned()))?,
    };
    // Reads (and, once per update interval, extends) the session; an extension's Set-Cookie
    // rides on the answer, which the proxy may pass on (docs/deployment.md shows how).
    if let Some(active) = auth::current_session(req, state).await? {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        // Ids and addresses are ASCII (addresses are stored with punycode domains); a
        // non-ASCII local part (SMTPUTF8) still makes a valid header value as opaque bytes.
        if let Ok(user) = HeaderValue::from_str(active.user.id.as_str()) {
            headers.insert(USER_HEADER, user);
        }
        if let Ok(email) = HeaderValue::from_bytes(active.user.email.as_str().as_bytes()) {
            headers.insert(EMAIL_HEADER, email);
        }
        return Ok(response);
    }
    Ok(match mode {
        // nginx cannot URL-encode the URL it was asked for: the 401 names the sign-in address
        // with it encoded, which the snippet's `error_page` redirects to.
        ForwardAuthMode::Status => {
            let mut response = "sign-in required".with_status(StatusCode::UNAUTHORIZED).into_response();
            if let Ok(value) = HeaderValue::from_str(&sign_in_url(req, state, query.rd.as_deref())) {
                response.headers_mut().insert(REDIRECT_HEADER, value);
            }
            response
        }
        // 302 (not 307): whatever the method of the request the proxy checked, the browser
        // follows it with a GET of the sign-in page.
        ForwardAuthMode::Redirect => Response::builder()
            .status(StatusCode::FOUND)
            .header(header::LOCATION, sign_in_url(req, state, query.rd.as_deref()))
            .finish(),
    })
}

/// The sign-in page's absolute URL, with the return URL as `callbackUrl` when it is accepted.
fn sign_in_url(req: &Request, state: &AppState, rd: Option<&str>) -> String {
    let settings = &state.settings;
    let sign_in = settings.absolute(&settings.pages.sign_in);
    let wanted = rd.map(str::to_owned).or_else(|| forwarded_url(req));
    let Some(wanted) = wanted else { return sign_in };
    let Some(target) = settings.accepted_callback(&wanted) else {
        // The operator wants to know: an app's origin missing from the list looks like "sign-in
        // forgets where I was". The URL itself is not logged (its query may hold anything).
        tracing::warn!(
            "forward-auth: a return URL was refused; add its app's origin to forward_auth.allowed_origins if it is yours"
        );
        return sign_in;
    };
    match Url::parse(&sign_in) {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair("callbackUrl", target.as_str());
            url.into()
        }
        Err(_) => sign_in,
    }
}

/// The URL the proxy was asked for, from the `X-Forwarded-*` headers (Traefik and Caddy send
/// them; the nginx snippet sets them).
fn forwarded_url(req: &Request) -> Option<String> {
    let proto = req.header("x-forwarded-proto")?;
    let host = req.header("x-forwarded-host")?;
    let uri = req.header("x-forwarded-uri").unwrap_or("/");
    uri.starts_with('/').then(|| format!("{proto}://{host}{uri}"))
}
