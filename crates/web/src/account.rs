//! The account page (`pages.account`, default `/account`): the signed-in person's address (and
//! a form to change it), a display name to edit, and their sessions (browser and system,
//! created, last used, "this device"), each revocable, with "sign out everywhere else". Every
//! change is a CSRF-checked form post that comes back to the page. Signed out, the page sends
//! the person to sign in and back.
//!
//! Changing the address emails a link to the new one; the link opens
//! `{account}/email/confirm`, which shows what would change and a button (a scanner opening the
//! link changes nothing), and the button's post makes the change. That page needs no session:
//! the link is the proof, as strong as a sign-in link.
//!
//! The JSON API's twins of the session changes are in [`crate::api`]; both call the same use
//! cases.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::{DisplayName, InvalidDisplayName, LinkToken, SessionId};
use i18n::Sentence;
use poem::http::StatusCode;
use poem::web::{Data, Form, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use ports::{ActiveSession, ChangeAddress, ConfirmAddress};
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::auth::{self, checked_form};
use crate::client::client_ip;
use crate::client::request_origin;
use crate::errors::{respond, FieldError, WebError};
use crate::forms::CsrfProtected;
use crate::render::{page, say};
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

/// `POST {account}/delete`.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The account's address, typed again to confirm.
    #[serde(default)]
    pub email: String,
}

impl CsrfProtected for DeleteForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
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

/// `POST {account}/email`.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeEmailForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The new address typed.
    #[serde(default)]
    pub email: String,
}

/// `GET` and `POST {account}/email/confirm`: the token from the confirmation link.
#[derive(Debug, Default, Deserialize)]
pub struct ConfirmEmailForm {
    /// The double-submit CSRF token (post only).
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The link's token.
    #[serde(default)]
    pub token: String,
}

impl CsrfProtected for ChangeEmailForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfProtected for ConfirmEmailForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
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

/// `POST {account}/apps/revoke`: withdraws an app's access.
#[derive(Debug, Default, Deserialize)]
pub struct AppForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The app's client id.
    #[serde(default)]
    pub client_id: String,
}

impl CsrfProtected for AppForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// `?done=` after a change: what the page confirms.
#[derive(Debug, Default, Deserialize)]
pub struct AccountQuery {
    /// `renamed`, `revoked`, `others`, `confirm-sent`, `email-changed`, `password`,
    /// `password-others`, `confirmed` or `app-revoked`.
    #[serde(default)]
    pub done: Option<String>,
    /// Show the security activity older than the event with this id (the next page).
    #[serde(default)]
    pub activity_before: Option<String>,
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
            // Message ids: the template says them in the page's language.
            Some("renamed") => Some("account-done-renamed"),
            Some("revoked") => Some("account-done-revoked"),
            Some("others") => Some("account-done-others"),
            Some("confirm-sent") => Some("account-done-confirm-sent"),
            Some("email-changed") => Some("account-done-email-changed"),
            Some("password") => Some("account-done-password"),
            Some("password-others") => Some("account-done-password-others"),
            Some("confirmed") => Some("account-done-confirmed"),
            Some("app-revoked") => Some("account-done-app-revoked"),
            _ => None,
        };
        let view = PageView { done, error: FieldError::None, activity_before: query.0.activity_before };
        account_page_with(req, &state, &active, StatusCode::OK, view).await
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
                let sentence = match reason {
                    InvalidDisplayName::TooLong => {
                        Sentence::new("name-too-long").arg("max", domain::user::MAX_DISPLAY_NAME as u64)
                    }
                    InvalidDisplayName::ControlCharacter => Sentence::new("name-control-character"),
                };
                account_page(req, &state, &active, StatusCode::BAD_REQUEST, None, FieldError::Name(sentence)).await
            }
        }
    };
    respond(req, &state, result.await)
}

/// `POST {account}/email`: emails a confirmation link to the new address. Nothing changes until
/// it is opened.
#[handler]
pub async fn change_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<ChangeEmailForm>>,
) -> Response {
    let result = async {
        let Some((form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        let new_email = match crate::forms::typed_address(&state.settings, &form.email) {
            Ok(email) => email,
            Err(reason) => {
                let error = WebError::InvalidEmail { typed: form.email.clone(), callback_url: None, reason };
                return account_refusal(req, &state, &active, error, FieldError::Email).await;
            }
        };
        let request = ChangeAddress {
            new_email,
            client: client_ip(req, &state.settings.trusted_proxies),
            lang: crate::lang::of(req),
            origin: request_origin(req, &state.settings),
        };
        match state.sign_in.request_address_change(&active, request).await {
            Ok(_) => Ok(back(&state, "confirm-sent")),
            Err(error) => account_refusal(req, &state, &active, error.into(), FieldError::Email).await,
        }
    };
    respond(req, &state, result.await)
}

/// `GET {account}/email/confirm?token=`: what the link would change, and a button to do it.
/// Opening the link changes nothing.
#[handler]
pub async fn confirm_email_page(
    req: &Request,
    state: Data<&Arc<AppState>>,
    query: Query<ConfirmEmailForm>,
) -> Response {
    let result = async {
        let token = LinkToken::parse(&query.token).map_err(|_| WebError::from(ports::ConfirmAddressError::Invalid))?;
        let signed_in = auth::current_session(req, &state).await?;
        let preview = state.sign_in.preview_address_change(&token, signed_in.as_ref()).await?;
        let mut context = Context::new();
        context.insert("new_email", preview.new_email.as_str());
        context.insert("token", &query.token);
        context.insert("confirm_action", &format!("{}/email/confirm", state.settings.pages.account));
        context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
        Ok(page(req, &state, StatusCode::OK, "confirm_email.html", context)?)
    };
    respond(req, &state, result.await)
}

/// `POST {account}/email/confirm`: makes the change, tells the old address, and goes to the
/// account page.
#[handler]
pub async fn confirm_email(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<ConfirmEmailForm>>,
) -> Response {
    let result = async {
        let form = checked_form(req, &state, form)?;
        let token = LinkToken::parse(&form.token).map_err(|_| WebError::from(ports::ConfirmAddressError::Invalid))?;
        let request = ConfirmAddress {
            token,
            client: client_ip(req, &state.settings.trusted_proxies),
            lang: crate::lang::of(req),
            signed_in: auth::current_session(req, &state).await?,
            origin: request_origin(req, &state.settings),
        };
        state.sign_in.confirm_address_change(request).await?;
        Ok(back(&state, "email-changed"))
    };
    respond(req, &state, result.await)
}

/// `POST {account}/delete`: deletes the account, once the person typed its address, and goes
/// to the home page, signed out.
#[handler]
pub async fn delete(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<DeleteForm>>) -> Response {
    let result = async {
        let Some((form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        match delete_account(req, &state, &active, &form.email).await {
            Ok(()) => Ok(Redirect::see_other("/?deleted=1").into_response()),
            Err(error) => account_refusal(req, &state, &active, error, FieldError::Delete).await,
        }
    };
    respond(req, &state, result.await)
}

/// Deletes `active`'s account when `confirmation` is its address, and clears the session cookie:
/// for the JSON operation and the account page's form alike.
pub(crate) async fn delete_account(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    confirmation: &str,
) -> Result<(), WebError> {
    let request = ports::DeleteAccount {
        confirmation: confirmation.to_owned(),
        lang: crate::lang::of(req),
        origin: request_origin(req, &state.settings),
    };
    state.sign_in.delete_account(active, request).await?;
    crate::cookies::clear(req.cookie(), &state.settings, crate::cookies::Kind::Session);
    Ok(())
}

/// `POST {account}/sessions/revoke`: ends one of the person's sessions (this one signs out).
#[handler]
pub async fn revoke(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<SessionForm>>) -> Response {
    let result = async {
        let Some((form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        let id = form.session.as_deref().and_then(|id| SessionId::parse(id).ok()).ok_or(WebError::NoSuchSession)?;
        state.sessions.revoke(&active, &id, &request_origin(req, &state.settings)).await?;
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
        let revoked = state.sessions.revoke_others(&active, &request_origin(req, &state.settings)).await?;
        telemetry::sessions_revoked(&state.settings, "revoke-others", revoked);
        Ok(back(&state, "others"))
    };
    respond(req, &state, result.await)
}

/// `POST {account}/apps/revoke`: "Apps you have signed in to", remove one: its consent is
/// forgotten and its refresh tokens stop working (its next sign-in asks again).
#[handler]
pub async fn revoke_app(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<AppForm>>) -> Response {
    let result = async {
        let Some((form, active)) = signed_in_form(req, &state, form).await? else {
            return Ok(sign_in_first(&state));
        };
        let oidc = state.oidc.as_ref().ok_or(WebError::NotFound)?;
        oidc.revoke_app(&active.user.id, &form.client_id).await?;
        Ok(back(&state, "app-revoked"))
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
pub(crate) fn sign_in_first(state: &AppState) -> Response {
    let settings = &state.settings;
    let back = url::form_urlencoded::byte_serialize(settings.pages.account.as_bytes()).collect::<String>();
    Redirect::see_other(format!("{}?callbackUrl={back}", settings.pages.sign_in)).into_response()
}

/// Back to the page after a change, saying what was done.
pub(crate) fn back(state: &AppState, done: &str) -> Response {
    Redirect::see_other(format!("{}?done={done}", state.settings.pages.account)).into_response()
}

/// An error met by one of the account page's forms: the page again, with the status and the
/// sentence the one error map gives it under `field` (or the "confirm it is you" forms), and
/// the map's metric and `Retry-After`. An error the page does not show goes to the map whole.
pub(crate) async fn account_refusal(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    error: WebError,
    field: fn(Sentence) -> FieldError,
) -> Result<Response, WebError> {
    let Some((status, shown)) = error.on_account_page() else { return Err(error) };
    let mut response = account_page(req, state, active, status, None, shown.map_or(FieldError::None, field)).await?;
    error.finish(&mut response, state);
    Ok(response)
}

/// The account page, with `done` confirmed at the top and `error` under its field.
pub(crate) async fn account_page(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    status: StatusCode,
    done: Option<&str>,
    error: FieldError,
) -> Result<Response, WebError> {
    account_page_with(req, state, active, status, PageView { done, error, activity_before: None }).await
}

/// What the account page says besides the account itself.
struct PageView<'a> {
    /// The change just made, to confirm at the top.
    done: Option<&'a str>,
    /// A refusal, under its field.
    error: FieldError,
    /// The activity page to show: older than this event.
    activity_before: Option<String>,
}

/// The account page as `view` asks.
async fn account_page_with(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    status: StatusCode,
    view: PageView<'_>,
) -> Result<Response, WebError> {
    let PageView { done, error, activity_before } = view;
    let said = |sentence: Sentence| Some(say(req, state, &sentence));
    let (mut name_error, mut email_error, mut password_error, mut reauth_error) = (None, None, None, None);
    let mut delete_error = None;
    match error {
        FieldError::None => {}
        FieldError::Name(sentence) => name_error = said(sentence),
        FieldError::Email(sentence) => email_error = said(sentence),
        FieldError::Password(sentence) => password_error = said(sentence),
        FieldError::Reauthenticate(sentence) => reauth_error = said(sentence),
        FieldError::Delete(sentence) => delete_error = said(sentence),
    }
    let recent_seconds = state.sessions.settings().recent_sign_in.num_seconds().max(0);
    let sessions = state.sessions.list(active).await?;
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
    context.insert("name", active.user.name.as_ref().map_or("", DisplayName::as_str));
    context.insert("sessions", &rows);
    context.insert("absolute_seconds", &state.sessions.settings().policy.absolute_max_age_seconds());
    context.insert("others", &rows.iter().any(|row| !row.current));
    context.insert("done", &done);
    context.insert("name_error", &name_error);
    context.insert("email_error", &email_error);
    context.insert("password_error", &password_error);
    context.insert("reauth_error", &reauth_error);
    context.insert("delete_error", &delete_error);
    context.insert("delete_action", &format!("{page_path}/delete"));
    context.insert("export_url", &state.settings.auth_path("/account/export"));
    // Sensitive changes (address, password) need a recent sign-in; otherwise the page offers
    // to confirm it is the person first.
    context.insert("recent", &state.sessions.is_recent(active));
    context.insert("recent_seconds", &recent_seconds);
    context.insert("password_enabled", &state.passwords.is_some());
    let has_password = match &state.passwords {
        Some(passwords) => passwords.has_password(active).await?,
        None => false,
    };
    context.insert("has_password", &has_password);
    let min_length = state.passwords.as_ref().map_or(0, |passwords| passwords.rules().min_length());
    context.insert("min_password_length", &min_length);
    context.insert("set_password_action", &format!("{page_path}/password"));
    context.insert("reauth_action", &format!("{page_path}/reauthenticate"));
    context.insert("reauth_link_action", &format!("{page_path}/reauthenticate/link"));
    context.insert("change_email_action", &format!("{page_path}/email"));
    context.insert("max_name", &domain::user::MAX_DISPLAY_NAME);
    context.insert("rename_action", &format!("{page_path}/name"));
    context.insert("revoke_action", &format!("{page_path}/sessions/revoke"));
    context.insert("revoke_others_action", &format!("{page_path}/sessions/revoke-others"));
    let passkeys = match &state.passkeys {
        Some(passkeys) => passkeys.list(active).await?,
        None => Vec::new(),
    };
    let passkey_rows: Vec<PasskeyRow> = passkeys
        .into_iter()
        .map(|passkey| PasskeyRow {
            id: passkey.id.as_str().to_owned(),
            name: passkey.name.as_str().to_owned(),
            created: when(passkey.created_at),
            last_used: passkey.last_used_at.map(when),
            backed_up: passkey.backed_up,
        })
        .collect();
    context.insert("passkeys", &passkey_rows);
    let apps: Vec<AppRow> = match &state.oidc {
        Some(oidc) => oidc
            .apps(&active.user.id)
            .await?
            .into_iter()
            .map(|consent| AppRow {
                client_id: consent.client_id.as_str().to_owned(),
                name: consent.client_name,
                scopes: consent.scopes.iter().filter_map(scope_sentence).collect(),
                granted: when(consent.granted_at),
            })
            .collect(),
        None => Vec::new(),
    };
    context.insert("apps", &apps);
    context.insert("revoke_app_action", &format!("{page_path}/apps/revoke"));
    context.insert("max_passkey_name", &domain::passkey::MAX_PASSKEY_NAME);
    let (activity, activity_next) = crate::activity::activity_rows(state, active, activity_before).await?;
    context.insert("activity", &activity);
    context.insert("activity_next", &activity_next.map(|id| format!("{page_path}?activity_before={id}#activity")));
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    Ok(page(req, state, status, "account.html", context)?)
}

/// An app the person let in, as the account page lists it.
#[derive(Debug, Serialize)]
struct AppRow {
    client_id: String,
    name: String,
    /// Message ids of what it receives.
    scopes: Vec<&'static str>,
    granted: String,
}

/// The message id saying what an app receives with `scope` (`openid` says nothing of its own).
pub(crate) fn scope_sentence(scope: domain::oidc::Scope) -> Option<&'static str> {
    match scope {
        domain::oidc::Scope::OpenId => None,
        domain::oidc::Scope::Email => Some("consent-scope-email"),
        domain::oidc::Scope::Profile => Some("consent-scope-profile"),
        domain::oidc::Scope::OfflineAccess => Some("consent-scope-offline"),
    }
}

/// A passkey as the account page lists it.
#[derive(Debug, Serialize)]
struct PasskeyRow {
    id: String,
    name: String,
    created: String,
    last_used: Option<String>,
    backed_up: bool,
}

/// An instant as the page shows it (UTC, to the minute).
fn when(instant: DateTime<Utc>) -> String {
    instant.format("%Y-%m-%d %H:%M UTC").to_string()
}
