//! The Auth.js-style state-changing routes: request a link, open it, sign out.
//!
//! These answer with redirects and cookies, so they are plain poem handlers; the read-only JSON
//! endpoints are in [`crate::api`].

use std::sync::Arc;
use std::time::Duration;

use domain::SessionToken;
use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Json, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use ports::ActiveSession;

use crate::errors::{redeem_failure, Format, WebError};
use crate::forms::{CallbackQuery, SignInForm, SignOutForm};
use crate::pages::respond;
use crate::{cookies, csrf, AppState};

/// `POST {base}/signin/email`: checks CSRF, parses the address, sends the link, and redirects
/// to "check your email" (or answers JSON). The answer never depends on whether the address
/// has an account.
#[handler]
pub async fn sign_in_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<SignInForm>>,
) -> Response {
    let result = request_link(req, &state, form).await;
    respond(req, &state, result)
}

async fn request_link(
    req: &Request,
    state: &AppState,
    form: poem::Result<Form<SignInForm>>,
) -> Result<Response, WebError> {
    let Form(form) = form.map_err(|e| WebError::BadForm(e.to_string()))?;
    if !csrf::verify(req.cookie(), &state.settings, form.csrf_token.as_deref()) {
        return Err(WebError::Csrf);
    }
    let request = form.to_request(&state.settings.base_url).map_err(|reason| WebError::InvalidEmail {
        typed: form.email.clone(),
        callback_url: form.callback_url.clone(),
        reason,
    })?;
    // The link is stored and its email queued; delivery happens in the background, so the
    // answer never waits on a mail provider.
    let queued = state.sign_in.request_link(request).await?;
    let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("to", &queued.email.masked()).finish();
    let location = format!("{}?{query}", state.settings.pages.verify_request);
    Ok(match Format::of(req) {
        Format::Json => Json(serde_json::json!({
            "url": state.settings.absolute(&location),
            "expiresInMinutes": queued.expires_in_minutes,
        }))
        .into_response(),
        Format::Html => Redirect::see_other(location).into_response(),
    })
}

/// `GET {base}/callback/email`: redeems the link, sets the session cookie, and redirects to the
/// callback URL, or to the error page saying which case the link is.
#[handler]
pub async fn callback_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    query: poem::Result<Query<CallbackQuery>>,
) -> Response {
    let result = redeem(req, &state, query).await;
    respond(req, &state, result)
}

async fn redeem(
    req: &Request,
    state: &AppState,
    query: poem::Result<Query<CallbackQuery>>,
) -> Result<Response, WebError> {
    let Ok(Query(query)) = query else {
        return redeem_failure(ports::RedeemLinkError::Invalid, state);
    };
    let Ok(request) = query.to_request(req.header(header::USER_AGENT)) else {
        return redeem_failure(ports::RedeemLinkError::Invalid, state);
    };
    let signed_in = match state.sign_in.redeem_link(request).await {
        Ok(signed_in) => signed_in,
        Err(error) => return redeem_failure(error, state),
    };
    // A browser holds one session: end the one it had, if any, before replacing its cookie.
    if let Some(previous) = session_token(req, state) {
        state.sign_in.sign_out(&previous).await?;
    }
    set_session_cookie(req, state, &signed_in.session_token, signed_in.expires);
    let destination = domain::CallbackPath::resolve(query.callback_url.as_deref(), &state.settings.base_url);
    Ok(Redirect::see_other(destination.as_str()).into_response())
}

/// `POST {base}/signout`: checks CSRF, ends the session in the database, clears the cookie.
#[handler]
pub async fn sign_out(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<SignOutForm>>) -> Response {
    let result = end_session(req, &state, form).await;
    respond(req, &state, result)
}

async fn end_session(
    req: &Request,
    state: &AppState,
    form: poem::Result<Form<SignOutForm>>,
) -> Result<Response, WebError> {
    let Form(form) = form.map_err(|e| WebError::BadForm(e.to_string()))?;
    if !csrf::verify(req.cookie(), &state.settings, form.csrf_token.as_deref()) {
        return Err(WebError::Csrf);
    }
    if let Some(token) = session_token(req, state) {
        state.sign_in.sign_out(&token).await?;
    }
    cookies::clear(req.cookie(), &state.settings, cookies::Kind::Session);
    Ok(match Format::of(req) {
        Format::Json => Json(serde_json::json!({ "url": state.settings.absolute("/") })).into_response(),
        Format::Html => Redirect::see_other("/").into_response(),
    })
}

/// The session behind this request's cookie, if live. Re-issues the cookie when the session
/// was extended, and clears a cookie that no longer signs anyone in.
///
/// # Errors
/// [`WebError::Unexpected`] when the store fails.
pub async fn current_session(req: &Request, state: &AppState) -> Result<Option<ActiveSession>, WebError> {
    let Some(token) = session_token(req, state) else {
        return Ok(None);
    };
    let session = state.sign_in.read_session(&token).await?;
    match &session {
        Some(active) if active.extended => set_session_cookie(req, state, &token, active.expires),
        Some(_) => {}
        None => cookies::clear(req.cookie(), &state.settings, cookies::Kind::Session),
    }
    Ok(session)
}

fn session_token(req: &Request, state: &AppState) -> Option<SessionToken> {
    let value = cookies::read(req.cookie(), &state.settings, cookies::Kind::Session)?;
    SessionToken::parse(&value).ok()
}

fn set_session_cookie(req: &Request, state: &AppState, token: &SessionToken, expires: chrono::DateTime<chrono::Utc>) {
    // Rounded up, so a session created a millisecond ago still gets its full Max-Age.
    let seconds = ((expires - state.sign_in.now()).num_milliseconds().max(0) + 999) / 1000;
    let max_age = Duration::from_secs(u64::try_from(seconds).unwrap_or_default());
    cookies::set(req.cookie(), &state.settings, cookies::Kind::Session, &token.encode(), Some(max_age));
}

/// `GET /healthz`: 200 when the database answers, 503 otherwise.
#[handler]
pub async fn healthz(state: Data<&Arc<AppState>>) -> Response {
    match state.health.ping().await {
        Ok(()) => "ok".into_response(),
        Err(error) => {
            tracing::error!(error = ?error, "health check failed");
            "database unavailable".with_status(StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
    }
}
