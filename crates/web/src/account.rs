//! The account page (`pages.account`, default `/account`): the signed-in person's address, a
//! display name to edit, and their sessions (browser and system, created, last used, "this
//! device"), each revocable, with "sign out everywhere else". Every change is a CSRF-checked
//! form post that comes back to the page. Signed out, the page sends the person to sign in and
//! back.
//!
//! The JSON API's twins of the session changes are in [`crate::api`]; both call the same use
//! cases.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{DisplayName, SessionId};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use ports::ActiveSession;
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::auth::{self, checked_form};
use crate::errors::{respond, WebError};
use crate::forms::CsrfProtected;
use crate::render::page;
use crate::{csrf, telemetry, user_agent, AppState};

/// `POST {account}/name`.
#[derive(Debug, Default, Deserialize)]
pub struct RenameForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The name typed; blank removes it.
    #[serde(default)]
    pub name: String,
}

/// `POST {account}/sessions/revoke` and `POST {account}/sessions/revoke-others`.
#[derive(Debug, Default, Deserialize)]
pub struct SessionForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The session to end (revoke only).
    #[serde(default)]
    pub session: Option<String>,
}

impl CsrfProtected for RenameForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfProtected for SessionForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// `?done=` after a change: what the page confirms.
#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    /// `renamed`, `revoked` or `others`.
    #[serde(default)]
    pub done: Option<String>,
}

/// One session as the page lists it.
#[derive(Debug, Serialize)]
struct SessionRow {
    id: String,
    device: String,
    created: String,
    last_used: String,
    current: bool,
}

/// `GET {account}`.
#[handler]
pub async fn show(req: &Request, state: Data<&Arc<AppState>>, query: Query<AccountQuery>) -> Response {
    let result = async {
        let Some(active) = auth::current_session(req, &state).await? else {
            return Ok(sign_in_first(&state));
        };
        let done = match query.done.as_deref() {
            Some("renamed") => Some("Your name was saved."),
            Some("revoked") => Some("That session was signed out."),
            Some("others") => Some("Every other session was signed out."),
            _ => None,
        };
        account_page(req, &state, &active, StatusCode::OK, done, None).await
    };
    respond(req, &state, result.await)
}

/// `POST {account}/name`: sets or removes the display name.
#[handler]
pub async fn rename(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<RenameForm>>) -> Response {
    let result = async {
        let Some((form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        match DisplayName::parse(&form.name) {
            Ok(name) => {
                state.sign_in.rename(&active, name).await?;
                Ok(back(&state, "renamed"))
            }
            Err(reason) => {
                let message = reason.to_string();
                account_page(req, &state, &active, StatusCode::BAD_REQUEST, None, Some(&message)).await
            }
        }
    };
    respond(req, &state, result.await)
}

/// `POST {account}/sessions/revoke`: ends one of the person's sessions (this one signs out).
#[handler]
pub async fn revoke(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<SessionForm>>) -> Response {
    let result = async {
        let Some((form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        let id = form.session.as_deref().and_then(|id| SessionId::parse(id).ok()).ok_or(WebError::NoSuchSession)?;
        state.sign_in.revoke_session(&active, &id).await?;
        telemetry::sessions_revoked(&state.settings, "revoke", 1);
        if id == active.session_id {
            crate::cookies::clear(req.cookie(), &state.settings, crate::cookies::Kind::Session);
            return Ok(Redirect::see_other("/").into_response());
        }
        Ok(back(&state, "revoked"))
    };
    respond(req, &state, result.await)
}

/// `POST {account}/sessions/revoke-others`: "sign out everywhere else".
#[handler]
pub async fn revoke_others(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<SessionForm>>,
) -> Response {
    let result = async {
        let Some((_form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        let revoked = state.sign_in.revoke_other_sessions(&active).await?;
        telemetry::sessions_revoked(&state.settings, "revoke-others", revoked);
        Ok(back(&state, "others"))
    };
    respond(req, &state, result.await)
}

/// A change posted from the page: the form once its CSRF token checks out, with the session
/// of the person posting it; `None` when nobody is signed in (any more).
///
/// # Errors
/// [`WebError::BadForm`], [`WebError::Csrf`] or [`WebError::Unexpected`].
async fn signed_in_form<F: CsrfProtected>(
    req: &Request,
    state: &AppState,
    form: poem::Result<Form<F>>,
) -> Result<Option<(F, ActiveSession)>, WebError> {
    let form = checked_form(req, state, form)?;
    Ok(auth::current_session(req, state).await?.map(|active| (form, active)))
}

/// To the sign-in page, and back here afterwards.
fn sign_in_first(state: &AppState) -> Response {
    let settings = &state.settings;
    let back = url::form_urlencoded::byte_serialize(settings.pages.account.as_bytes()).collect::<String>();
    Redirect::see_other(format!("{}?callbackUrl={back}", settings.pages.sign_in)).into_response()
}

/// Back to the page after a change, saying what was done.
fn back(state: &AppState, done: &str) -> Response {
    Redirect::see_other(format!("{}?done={done}", state.settings.pages.account)).into_response()
}

async fn account_page(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    status: StatusCode,
    done: Option<&str>,
    name_error: Option<&str>,
) -> Result<Response, WebError> {
    let sessions = state.sign_in.list_sessions(active).await?;
    let rows: Vec<SessionRow> = sessions
        .into_iter()
        .map(|session| SessionRow {
            current: session.id == active.session_id,
            id: session.id.as_str().to_owned(),
            device: user_agent::describe(session.user_agent.as_deref()),
            created: when(session.created_at),
            last_used: when(session.last_used),
        })
        .collect();
    let page_path = &state.settings.pages.account;
    let mut context = Context::new();
    context.insert("email", active.user.email.as_str());
    context.insert("name", active.user.name.as_deref().unwrap_or_default());
    context.insert("sessions", &rows);
    context.insert("others", &rows.iter().any(|row| !row.current));
    context.insert("done", &done);
    context.insert("name_error", &name_error);
    context.insert("max_name", &domain::user::MAX_DISPLAY_NAME);
    context.insert("rename_action", &format!("{page_path}/name"));
    context.insert("revoke_action", &format!("{page_path}/sessions/revoke"));
    context.insert("revoke_others_action", &format!("{page_path}/sessions/revoke-others"));
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    Ok(page(state, status, "account.html", context)?)
}

/// An instant as the page shows it (UTC, to the minute).
fn when(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%d %H:%M UTC").to_string()
}
