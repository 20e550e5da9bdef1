//! The password routes, when `password.enabled` is on: the sign-in page's "email and
//! password" form (`POST {base}/callback/password`, the `/callback/{provider}` shape the link
//! has too), the account page's "set a password" form (`POST {account}/password`), and its
//! "confirm it is you" forms (`POST {account}/reauthenticate` with the password,
//! `POST {account}/reauthenticate/link` for a fresh link). Every one is a CSRF-checked post.
//!
//! The JSON twins are in [`crate::api`] and call the functions here that do the work.

use std::sync::Arc;

use domain::{CallbackPath, Password};
use poem::http::header;
use poem::web::{Data, Form, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use ports::{ActiveSession, PasswordSignIn, Passwords, SetPassword};
use serde::Deserialize;

use crate::auth::{self, checked_form};
use crate::client::{client_ip, request_origin};
use crate::errors::{respond, Format, WebError};
use crate::forms::{self, CsrfProtected, SignInForm};
use crate::AppState;

/// `POST {base}/callback/password`.
#[derive(Default, Deserialize)]
pub struct PasswordSignInForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The typed address.
    #[serde(default)]
    pub email: String,
    /// The typed password.
    #[serde(default)]
    pub password: String,
    /// Where to land after sign-in.
    #[serde(default, rename = "callbackUrl")]
    pub callback_url: Option<String>,
}

/// `POST {account}/password`.
#[derive(Default, Deserialize)]
pub struct SetPasswordForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The new password.
    #[serde(default)]
    pub password: String,
    /// `on` when "sign out my other sessions" is ticked (it is, unless the person unticks it).
    #[serde(default, rename = "signOutOtherSessions")]
    pub sign_out_other_sessions: Option<String>,
}

/// `POST {account}/reauthenticate` (with `password`) and `POST {account}/reauthenticate/link`.
#[derive(Default, Deserialize)]
pub struct ReauthenticateForm {
    /// The double-submit CSRF token.
    #[serde(default, rename = "csrfToken")]
    pub csrf_token: Option<String>,
    /// The current password (the password form only).
    #[serde(default)]
    pub password: String,
}

crate::forms::debug_showing_only!(PasswordSignInForm { callback_url });
crate::forms::debug_showing_only!(SetPasswordForm { sign_out_other_sessions });
crate::forms::debug_showing_only!(ReauthenticateForm {});

impl CsrfProtected for PasswordSignInForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfProtected for SetPasswordForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

impl CsrfProtected for ReauthenticateForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

/// `POST {base}/callback/password` with a form: signs in and goes on to the callback. A wrong
/// address or password shows the sign-in page again, saying only that one of them is wrong.
/// A JSON body goes to the JSON twin in [`crate::api`] instead.
#[handler]
pub async fn sign_in(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<PasswordSignInForm>>,
) -> Response {
    let result = async {
        let form = checked_form(req, &state, form)?;
        let destination = sign_in_with_password(req, &state, &form).await?;
        Ok(auth::signed_in_response(req, &state, destination))
    };
    respond(req, &state, result.await)
}

/// Signs in with a CSRF-checked address and password, setting the session cookie; returns
/// where to go next.
///
/// # Errors
/// [`WebError::PasswordRejected`] for any wrong combination (a malformed address or an
/// over-long password included, so the answer never says which part was wrong),
/// [`WebError::PasswordsDisabled`], [`WebError::RateLimited`] or [`WebError::Unexpected`].
pub(crate) async fn sign_in_with_password(
    req: &Request,
    state: &AppState,
    form: &PasswordSignInForm,
) -> Result<CallbackPath, WebError> {
    let map = |error| WebError::from_password_sign_in(error, &form.email, form.callback_url.as_deref());
    let passwords = enabled(state)?;
    let (Ok(email), Ok(password)) =
        (forms::typed_address(&state.settings, &form.email), Password::typed(&form.password))
    else {
        return Err(map(ports::PasswordSignInError::Rejected));
    };
    let request = PasswordSignIn {
        email,
        password,
        user_agent: req.header(header::USER_AGENT).map(forms::user_agent),
        client: client_ip(req, &state.settings.trusted_proxies),
        origin: request_origin(req, &state.settings),
    };
    let signed_in = passwords.sign_in_with_password(request).await.map_err(map)?;
    auth::finish_sign_in(req, state, &signed_in).await?;
    Ok(state.settings.callback(form.callback_url.as_deref()))
}

/// `POST {account}/password`: sets or changes the signed-in person's password (a recent
/// sign-in needed), signing out their other sessions unless unticked.
#[handler]
pub async fn set(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<SetPasswordForm>>) -> Response {
    let result = async {
        let form = checked_form(req, &state, form)?;
        let Some(active) = auth::current_session(req, &state).await? else {
            return Ok(crate::account::sign_in_first(&state));
        };
        let sign_out_others = form.sign_out_other_sessions.as_deref() == Some("on");
        match set_password(req, &state, &active, &form.password, sign_out_others).await {
            Ok(ended) if ended > 0 => Ok(crate::account::back(&state, "password-others")),
            Ok(_) => Ok(crate::account::back(&state, "password")),
            Err(error) => {
                crate::account::account_refusal(req, &state, &active, error, crate::errors::FieldError::Password).await
            }
        }
    };
    respond(req, &state, result.await)
}

/// Sets the signed-in person's password; returns how many other sessions ended.
///
/// # Errors
/// [`WebError::PasswordRefused`], [`WebError::ReauthenticationRequired`],
/// [`WebError::PasswordsDisabled`] or [`WebError::Unexpected`].
pub(crate) async fn set_password(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    typed: &str,
    sign_out_other_sessions: bool,
) -> Result<u64, WebError> {
    let passwords = enabled(state)?;
    let password = Password::typed(typed).map_err(WebError::PasswordRefused)?;
    let origin = request_origin(req, &state.settings);
    let done = passwords.set_password(active, SetPassword { password, sign_out_other_sessions, origin }).await?;
    crate::telemetry::sessions_revoked(&state.settings, "password-set", done.other_sessions_ended);
    Ok(done.other_sessions_ended)
}

/// `POST {account}/reauthenticate`: confirms it is the person with their password, replacing
/// the session with a fresh one, and back to the account page.
#[handler]
pub async fn reauthenticate(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<ReauthenticateForm>>,
) -> Response {
    let result = async {
        let form = checked_form(req, &state, form)?;
        let Some(active) = auth::current_session(req, &state).await? else {
            return Ok(crate::account::sign_in_first(&state));
        };
        match confirm_with_password(req, &state, &active, &form.password).await {
            Ok(()) => Ok(crate::account::back(&state, "confirmed")),
            Err(error) if Format::of(req) == Format::Html => {
                let field = crate::errors::FieldError::Reauthenticate;
                crate::account::account_refusal(req, &state, &active, error, field).await
            }
            Err(error) => Err(error),
        }
    };
    respond(req, &state, result.await)
}

/// Confirms the signed-in person with their current password: a fresh session replaces this
/// one (its cookie is set), so the sensitive change that follows is allowed.
///
/// # Errors
/// As [`sign_in_with_password`].
pub(crate) async fn confirm_with_password(
    req: &Request,
    state: &AppState,
    active: &ActiveSession,
    typed: &str,
) -> Result<(), WebError> {
    let passwords = enabled(state)?;
    let email = active.user.email.as_str();
    let map = |error| WebError::from_password_sign_in(error, email, None);
    let Ok(password) = Password::typed(typed) else {
        return Err(map(ports::PasswordSignInError::Rejected));
    };
    let Some(current) = auth::session_token(req, state) else {
        return Err(WebError::SignedOut);
    };
    let user_agent = req.header(header::USER_AGENT).map(forms::user_agent);
    let client = client_ip(req, &state.settings.trusted_proxies);
    let signed_in = passwords
        .confirm_with_password(active, &current, password, user_agent, client, &request_origin(req, &state.settings))
        .await
        .map_err(map)?;
    auth::set_session_cookie(req, state, &signed_in.session_token, signed_in.expires);
    Ok(())
}

/// `POST {account}/reauthenticate/link`: emails the signed-in person a sign-in link that
/// comes back to the account page; signing in with it is a fresh sign-in.
#[handler]
pub async fn reauthenticate_with_link(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<ReauthenticateForm>>,
) -> Response {
    let result = async {
        checked_form(req, &state, form)?;
        let Some(active) = auth::current_session(req, &state).await? else {
            return Ok(crate::account::sign_in_first(&state));
        };
        let form = SignInForm {
            email: active.user.email.as_str().to_owned(),
            csrf_token: None,
            callback_url: Some(format!("{}?done=confirmed", state.settings.pages.account)),
        };
        auth::send_link(req, &state, &form).await?;
        Ok(Redirect::see_other(&state.settings.pages.verify_request).into_response())
    };
    respond(req, &state, result.await)
}

/// The password provider, or [`WebError::PasswordsDisabled`] when `password.enabled` is off.
///
/// # Errors
/// [`WebError::PasswordsDisabled`].
fn enabled(state: &AppState) -> Result<&Passwords, WebError> {
    state.passwords.as_deref().ok_or(WebError::PasswordsDisabled)
}

#[cfg(test)]
mod tests {
    use super::{PasswordSignInForm, ReauthenticateForm, SetPasswordForm};

    #[test]
    fn password_forms_never_show_the_password_address_or_token_in_debug() {
        let sign_in = PasswordSignInForm {
            csrf_token: Some("csrf-secret".to_owned()),
            email: "ada@example.com".to_owned(),
            password: "correct horse battery staple".to_owned(),
            callback_url: Some("/reports".to_owned()),
        };
        let set = SetPasswordForm {
            csrf_token: Some("csrf-secret".to_owned()),
            password: "correct horse battery staple".to_owned(),
            sign_out_other_sessions: None,
        };
        let confirm =
            ReauthenticateForm { csrf_token: Some("csrf-secret".to_owned()), password: "correct horse".to_owned() };

        let shown = format!("{sign_in:?} {set:?} {confirm:?}");

        for secret in ["correct horse", "ada@example.com", "csrf-secret"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("/reports") && shown.contains(".."), "{shown}");
    }
}
