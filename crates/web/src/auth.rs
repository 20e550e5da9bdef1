//! The Auth.js-style state-changing routes: request a link, open it (confirming first when it
//! was not asked for in this browser), sign in with the code, sign out.
//!
//! These answer with redirects and cookies, so they are plain poem handlers; the read-only JSON
//! endpoints are in [`crate::api`].

use std::sync::Arc;
use std::time::Duration;

use domain::{CallbackPath, EmailAddress, SessionToken, SignInCode};
use poem::http::{header, StatusCode};
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use poem_openapi::payload::Json;
use poem_openapi::Object;
use ports::{ActiveSession, LinkState, RedeemCode, RedeemLink, SignedIn};

use crate::client::{client_ip, request_origin};
use crate::errors::{link_refusal, respond, CodeProblem, Format, LinkRefusal, WebError};
use crate::forms::{self, CallbackForm, CallbackQuery, CsrfProtected, SignInForm, SignOutForm};
use crate::pending::{self, PendingSignIn};
use crate::render::page;
use crate::{cookies, csrf, telemetry, AppState};

/// A link was sent (or, for an address that may not sign in, nothing was: the answer is the
/// same). The answer also sets the pending-sign-in cookie, which lets this client sign in with
/// the emailed code.
#[derive(Debug, Object)]
pub struct LinkSentBody {
    /// The "check your email" page.
    pub url: String,
    /// How long the link and code last.
    #[oai(rename = "expiresInMinutes")]
    pub expires_in_minutes: i64,
}

/// Where to go next, as an absolute URL.
#[derive(Debug, Object)]
pub struct UrlBody {
    /// After signing in, the callback; after signing out, the site's root.
    pub url: String,
}

/// `POST {base}/signin/email` with a form: checks CSRF, parses the address, sends the link,
/// sets the pending-sign-in cookie, and redirects to "check your email" (or answers JSON). The
/// answer never depends on whether the address has an account. A JSON body goes to the JSON
/// twin in [`crate::api`] instead.
#[handler]
pub async fn sign_in_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<SignInForm>>,
) -> Response {
    let result = async {
        let form = checked_form(req, &state, form)?;
        let sent = send_link(req, &state, &form).await?;
        // No address in the URL: the page reads the masked one from the pending cookie.
        Ok(match Format::of(req) {
            Format::Json => Json(sent).into_response(),
            Format::Html => Redirect::see_other(&state.settings.pages.verify_request).into_response(),
        })
    };
    respond(req, &state, result.await)
}

/// Requests a link for a CSRF-checked sign-in form (or JSON body) and sets the pending-sign-in
/// cookie that lets this client sign in at once or with the code.
///
/// # Errors
/// [`WebError::InvalidEmail`], [`WebError::RateLimited`] or [`WebError::Unexpected`].
pub(crate) async fn send_link(req: &Request, state: &AppState, form: &SignInForm) -> Result<LinkSentBody, WebError> {
    let client = client_ip(req, &state.settings.trusted_proxies);
    let origin = request_origin(req, &state.settings);
    let request = form.to_request(&state.settings, client, &crate::lang::of(req), origin).map_err(|reason| {
        WebError::InvalidEmail { typed: form.email.clone(), callback_url: form.callback_url.clone(), reason }
    })?;
    let callback = request.callback.as_str().to_owned();
    // The link is stored and its email queued; delivery happens in the background, so the
    // answer never waits on a mail provider.
    let queued = state
        .sign_in
        .request_link(request)
        .await
        .map_err(|error| WebError::from_link_request(error, &form.email, form.callback_url.as_deref()))?;
    let pending = PendingSignIn {
        link: queued.link,
        masked_email: queued.email.masked(),
        callback,
        expires: queued.expires,
        // Links are always issued under the current secret.
        issued_under: 0,
    };
    pending::set(req.cookie(), &state.settings, &pending, state.sign_in.now());
    telemetry::link_requested(&state.settings);
    Ok(LinkSentBody {
        url: state.settings.absolute(&state.settings.pages.verify_request),
        expires_in_minutes: queued.expires_in_minutes,
    })
}

/// `GET {base}/callback/email`: opening a link. In the browser that asked for it (the
/// pending-sign-in cookie names this link) it signs in at once. Anywhere else, a `GET` (or
/// `HEAD`) changes nothing: a live link shows a confirm page whose button posts to
/// [`callback_email_post`], and a dead one leads to the error page saying which case it is.
#[handler]
pub async fn callback_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    query: poem::Result<Query<CallbackQuery>>,
) -> Response {
    let result = open_link(req, &state, query).await;
    respond(req, &state, result)
}

async fn open_link(
    req: &Request,
    state: &AppState,
    query: poem::Result<Query<CallbackQuery>>,
) -> Result<Response, WebError> {
    let Ok(Query(query)) = query else {
        return Err(link_refusal(ports::RedeemLinkError::Invalid));
    };
    let client = client_ip(req, &state.settings.trusted_proxies);
    let Ok(request) = query.to_request(req.header(header::USER_AGENT), client, request_origin(req, &state.settings))
    else {
        return Err(link_refusal(ports::RedeemLinkError::Invalid));
    };
    let hashes = state.sign_in.link_hashes(&request.token);
    let asked_here =
        pending::read(req.cookie(), &state.settings, state.sign_in.now()).is_some_and(|p| p.is_for(&hashes));
    // Only a real navigation uses the link up: a `HEAD`, or a prefetch the browser or mail app
    // makes on its own, gets the page with the button, which changes nothing.
    if asked_here && !is_speculative(req) {
        sign_in_with_link(req, state, request).await?;
        let destination = state.settings.callback(query.callback_url.as_deref());
        return Ok(signed_in_response(req, state, destination));
    }
    let refusal = match state.sign_in.link_state(&request.token, &request.email).await? {
        LinkState::Unused => return confirm_page(req, state, &request.email, &query).await,
        LinkState::Used => LinkRefusal::Used,
        LinkState::Replaced => LinkRefusal::Replaced,
        LinkState::Expired => LinkRefusal::Expired,
        LinkState::Unknown => LinkRefusal::Invalid,
    };
    match signed_in_already(req, state, &request.email, refusal, query.callback_url.as_deref()).await? {
        Some(page) => Ok(page),
        None => Err(WebError::Link(refusal)),
    }
}

/// A dead link of the person this browser is signed in as (used, replaced or expired: they
/// clicked an old email, or the same one twice) needs no new link: the page says they are
/// signed in, and goes on to where the link was going. `None` for anyone else, for programs,
/// and for a link that was never valid.
async fn signed_in_already(
    req: &Request,
    state: &AppState,
    email: &EmailAddress,
    refusal: LinkRefusal,
    callback_url: Option<&str>,
) -> Result<Option<Response>, WebError> {
    if refusal == LinkRefusal::Invalid || Format::of(req) != Format::Html {
        return Ok(None);
    }
    let Some(session) = current_session(req, state).await? else { return Ok(None) };
    if session.user.email != *email {
        return Ok(None);
    }
    let mut context = tera::Context::new();
    context.insert("masked", &email.masked());
    context.insert("why", refusal.reason());
    context.insert("continue_to", state.settings.callback(callback_url).as_str());
    Ok(Some(page(req, state, StatusCode::OK, "signed_in_already.html", context)?))
}

/// Whether the request is one a browser or a mail app makes without the person asking for the
/// page: a `HEAD`, or a prefetch or prerender (`Sec-Purpose: prefetch...`, the older
/// `Purpose: prefetch`, Chrome's `X-Moz`/`X-Purpose` spellings).
fn is_speculative(req: &Request) -> bool {
    let says_prefetch = |name: &str| {
        req.headers().get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                let value = value.to_ascii_lowercase();
                value.contains("prefetch") || value.contains("prerender") || value.contains("preview")
            })
        })
    };
    req.method() == poem::http::Method::HEAD
        || ["sec-purpose", "purpose", "x-purpose", "x-moz"].into_iter().any(says_prefetch)
}

/// "Sign in as a***@example.com on this device?", with a button that posts the link back.
async fn confirm_page(
    req: &Request,
    state: &AppState,
    email: &EmailAddress,
    query: &CallbackQuery,
) -> Result<Response, WebError> {
    let mut context = tera::Context::new();
    context.insert("masked", &email.masked());
    if let Some(session) = current_session(req, state).await? {
        context.insert("current_user", &session.user.email.masked());
        context.insert("same_user", &(session.user.email == *email));
    }
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    context.insert("token", query.token.as_deref().unwrap_or_default());
    context.insert("email", email.as_str());
    let callback = state.settings.callback(query.callback_url.as_deref());
    context.insert("callback_url", callback.as_str());
    Ok(page(req, state, StatusCode::OK, "confirm.html", context)?)
}

/// `POST {base}/callback/email` with a form: signs in with a link confirmed on the confirm page
/// (fields `token`, `email`, `callbackUrl`), or with the short code from the email typed in the
/// browser that asked for the link (field `code`). CSRF-checked either way. A JSON body goes to
/// the JSON twin in [`crate::api`] instead.
#[handler]
pub async fn callback_email_post(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<CallbackForm>>,
) -> Response {
    let result = async {
        let form = checked_form(req, &state, form)?;
        let link = (form.code.is_none()).then(|| form.link.clone());
        match redeem(req, &state, form).await {
            Ok(signed_in) => Ok(signed_in_response(req, &state, signed_in)),
            // The confirm button pressed twice, or an old confirm page sent again.
            Err(WebError::Link(refusal)) => {
                let already = match &link {
                    Some(link) => already_for_form(req, &state, link, refusal).await?,
                    None => None,
                };
                already.ok_or(WebError::Link(refusal))
            }
            Err(other) => Err(other),
        }
    };
    respond(req, &state, result.await)
}

/// [`signed_in_already`] for a confirm form whose link was refused.
async fn already_for_form(
    req: &Request,
    state: &AppState,
    link: &CallbackQuery,
    refusal: LinkRefusal,
) -> Result<Option<Response>, WebError> {
    match link.email.as_deref().and_then(|raw| EmailAddress::parse(raw).ok()) {
        Some(email) => signed_in_already(req, state, &email, refusal, link.callback_url.as_deref()).await,
        None => Ok(None),
    }
}

/// Signs in with a CSRF-checked link confirmation or code, returning where to go next.
///
/// # Errors
/// [`WebError::Link`], [`WebError::Code`], [`WebError::RateLimited`] or [`WebError::Unexpected`].
pub(crate) async fn redeem(req: &Request, state: &AppState, form: CallbackForm) -> Result<CallbackPath, WebError> {
    let user_agent = req.header(header::USER_AGENT);
    if let Some(code) = form.code.as_deref() {
        return sign_in_with_code(req, state, code, user_agent).await;
    }
    let query = form.link;
    let client = client_ip(req, &state.settings.trusted_proxies);
    let Ok(request) = query.to_request(user_agent, client, request_origin(req, &state.settings)) else {
        return Err(link_refusal(ports::RedeemLinkError::Invalid));
    };
    sign_in_with_link(req, state, request).await?;
    Ok(state.settings.callback(query.callback_url.as_deref()))
}

async fn sign_in_with_link(req: &Request, state: &AppState, request: RedeemLink) -> Result<(), WebError> {
    let signed_in = state.sign_in.redeem_link(request).await.map_err(link_refusal)?;
    finish_sign_in(req, state, &signed_in).await
}

async fn sign_in_with_code(
    req: &Request,
    state: &AppState,
    typed: &str,
    user_agent: Option<&str>,
) -> Result<CallbackPath, WebError> {
    let Some(pending) = pending::read(req.cookie(), &state.settings, state.sign_in.now()) else {
        return Err(WebError::Code(CodeProblem::NotThisBrowser));
    };
    let code = SignInCode::parse(typed).map_err(|_| WebError::Code(CodeProblem::Malformed))?;
    let request = RedeemCode {
        link: pending.link.clone(),
        issued_under: pending.issued_under,
        code,
        user_agent: user_agent.map(forms::user_agent),
        client: client_ip(req, &state.settings.trusted_proxies),
        origin: request_origin(req, &state.settings),
    };
    let signed_in = state.sign_in.redeem_code(request).await?;
    finish_sign_in(req, state, &signed_in).await?;
    Ok(pending::callback(&pending, &state.settings))
}

/// After a link or code was redeemed: ends the browser's previous session, sets the new
/// session cookie and drops the pending-sign-in cookie.
pub(crate) async fn finish_sign_in(req: &Request, state: &AppState, signed_in: &SignedIn) -> Result<(), WebError> {
    // A browser holds one session: end the one it had, if any, before replacing its cookie.
    if let Some(previous) = session_token(req, state) {
        state.sessions.end(&previous, &request_origin(req, &state.settings)).await?;
    }
    set_session_cookie(req, state, &signed_in.session_token, signed_in.expires);
    pending::clear(req.cookie(), &state.settings);
    telemetry::sign_in(&state.settings, "signed-in");
    telemetry::session_created(&state.settings);
    Ok(())
}

/// Signed in: on to the callback (a redirect for people, `{"url"}` for programs).
pub(crate) fn signed_in_response(req: &Request, state: &AppState, destination: CallbackPath) -> Response {
    match Format::of(req) {
        Format::Json => Json(UrlBody { url: state.settings.callback_url(&destination) }).into_response(),
        Format::Html => Redirect::see_other(destination.as_str()).into_response(),
    }
}

/// `POST {base}/signout` with a form: checks CSRF, ends the session in the database, clears the
/// cookie, and goes home (or answers `{"url"}`). A JSON body goes to the JSON twin in
/// [`crate::api`] instead.
#[handler]
pub async fn sign_out(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<SignOutForm>>) -> Response {
    let result = async {
        // Only the check matters: the form carries nothing else.
        checked_form(req, &state, form)?;
        end_session(req, &state).await?;
        Ok(match Format::of(req) {
            Format::Json => Json(UrlBody { url: state.settings.absolute("/") }).into_response(),
            Format::Html => Redirect::see_other("/").into_response(),
        })
    };
    respond(req, &state, result.await)
}

/// Ends this request's session, if any, and clears its cookie (after the caller's CSRF check).
///
/// # Errors
/// [`WebError::Unexpected`] when the store fails.
pub(crate) async fn end_session(req: &Request, state: &AppState) -> Result<(), WebError> {
    if let Some(token) = session_token(req, state) {
        state.sessions.end(&token, &request_origin(req, &state.settings)).await?;
        telemetry::sessions_revoked(&state.settings, "sign-out", 1);
    }
    cookies::clear(req.cookie(), &state.settings, cookies::Kind::Session);
    Ok(())
}

/// A form body, accepted only when it could be read and carries this request's CSRF token
/// (checked with the browser's `Origin` / `Sec-Fetch-Site`, in [`csrf::verify`]).
///
/// # Errors
/// [`WebError::BadForm`] or [`WebError::Csrf`].
pub(crate) fn checked_form<F: CsrfProtected>(
    req: &Request,
    state: &AppState,
    form: poem::Result<Form<F>>,
) -> Result<F, WebError> {
    let Form(form) = form.map_err(|e| WebError::BadForm(e.to_string()))?;
    check_csrf(req, state, form.csrf_token())?;
    Ok(form)
}

/// The double-submit check for a state change: `token` (a form's or JSON body's `csrfToken`),
/// else the `X-CSRF-Token` header, must match the CSRF cookie, and the browser must not say the
/// request comes from another site.
///
/// # Errors
/// [`WebError::Csrf`].
pub(crate) fn check_csrf(req: &Request, state: &AppState, token: Option<&str>) -> Result<(), WebError> {
    let token = token.or_else(|| req.header("x-csrf-token"));
    if csrf::verify(req, &state.settings, token) {
        Ok(())
    } else {
        Err(WebError::Csrf)
    }
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
    let session = state.sessions.read(&token).await?;
    match &session {
        Some(active) if active.extended => set_session_cookie(req, state, &token, active.expires),
        Some(_) => {}
        None => cookies::clear(req.cookie(), &state.settings, cookies::Kind::Session),
    }
    Ok(session)
}

pub(crate) fn session_token(req: &Request, state: &AppState) -> Option<SessionToken> {
    let value = cookies::read(req.cookie(), &state.settings, cookies::Kind::Session)?;
    SessionToken::parse(&value).ok()
}

pub(crate) fn set_session_cookie(
    req: &Request,
    state: &AppState,
    token: &SessionToken,
    expires: chrono::DateTime<chrono::Utc>,
) {
    // Rounded up, so a session created a millisecond ago still gets its full Max-Age.
    let seconds = ((expires - state.sign_in.now()).num_milliseconds().max(0) + 999) / 1000;
    let max_age = Duration::from_secs(u64::try_from(seconds).unwrap_or_default());
    cookies::set(req.cookie(), &state.settings, cookies::Kind::Session, &token.encode(), Some(max_age));
}

/// How long `/healthz` waits for each dependency: a load balancer's probe must get its answer
/// well within two seconds, whatever state the network is in.
const HEALTH_DEADLINE: Duration = Duration::from_millis(1500);

/// `GET /healthz`: 200 when every dependency answers within [`HEALTH_DEADLINE`], 503 (with
/// `Retry-After`) naming those that do not. The dependencies are asked at once, so the answer
/// takes at most the deadline. The body is one `name: ok` or `name: unavailable` line each.
#[handler]
pub async fn healthz(state: Data<&Arc<AppState>>) -> Response {
    let probes = state.health.iter().map(|dependency| async move {
        let answer = tokio::time::timeout(HEALTH_DEADLINE, dependency.probe.ping()).await;
        let healthy = match answer {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                tracing::warn!(dependency = dependency.name, error = %format!("{error:#}"), "health check failed");
                false
            }
            Err(_) => {
                tracing::warn!(
                    dependency = dependency.name,
                    deadline_ms = HEALTH_DEADLINE.as_millis() as u64,
                    "health check failed: no answer in time"
                );
                false
            }
        };
        (dependency.name, healthy)
    });
    let answers = futures_util::future::join_all(probes).await;
    let body: String = answers
        .iter()
        .map(|(name, healthy)| format!("{name}: {}\n", if *healthy { "ok" } else { "unavailable" }))
        .collect();
    if answers.iter().all(|(_, healthy)| *healthy) {
        body.into_response()
    } else {
        let mut response = body.with_status(StatusCode::SERVICE_UNAVAILABLE).into_response();
        crate::errors::set_retry_after(&mut response, crate::errors::RETRY_AFTER_OUTAGE);
        response
    }
}
