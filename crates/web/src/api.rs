//! The JSON API under the auth base path, described with poem-openapi: Auth.js's
//! `GET {base}/csrf`, `GET {base}/providers` and `GET {base}/session` (same shapes, so clients
//! written for it work unchanged); the JSON twins of the sign-in forms, `POST
//! {base}/signin/email`, `POST {base}/callback/email` (a link's token, or the code) and `POST
//! {base}/signout`, which the route table sends here when the body is JSON (forms go to
//! [`crate::auth`]); and the signed-in person's sessions: `GET {base}/sessions`, `DELETE
//! {base}/sessions/{id}`, `POST {base}/sessions/revoke-others`; and changing the sign-in
//! address, `POST {base}/email` (signed in) and `POST {base}/email/confirm` (with the emailed
//! link's token), the twins of the account page's forms; and, when `password.enabled` is on,
//! `POST {base}/callback/password` (sign in with address and password), `POST {base}/password`
//! (set or change it) and `POST {base}/reauthenticate` (confirm it is you before a sensitive
//! change).
//!
//! Every state change needs the CSRF token (`csrfToken` in the body or the `X-CSRF-Token`
//! header, from `GET {base}/csrf`) and a same-origin request, as every form does
//! ([`crate::csrf`]). Every failure is an RFC 9457 problem document made by the one mapping in
//! [`crate::errors`]; [`Problem`] lists each operation's statuses in the OpenAPI document, which
//! is served at `{base}/openapi.json`.

use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::SessionId;
use poem::{IntoResponse, Request, Response};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type as _;
use poem_openapi::{ApiResponse, Object, OpenApi};
use ports::ActiveSession;

use crate::auth::{LinkSentBody, UrlBody};
use crate::client::request_origin;
use crate::errors::{Format, WebError};
use crate::forms::{CallbackForm, CallbackQuery, SignInForm};
use crate::{auth, csrf, telemetry, AppState};

/// The JSON API; it shares the application state with the page handlers.
pub struct AuthApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A CSRF token to send back as `csrfToken` with state-changing requests.
#[derive(Debug, Object)]
pub struct CsrfBody {
    /// The token; its cookie is set on the same response.
    #[oai(rename = "csrfToken")]
    pub csrf_token: String,
}

/// One sign-in provider.
#[derive(Debug, Object)]
pub struct ProviderBody {
    /// Provider id (`email`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Provider type (`email`).
    #[oai(rename = "type")]
    pub kind: String,
    /// Where to POST the sign-in form.
    #[oai(rename = "signinUrl")]
    pub signin_url: String,
    /// Where the emailed link points.
    #[oai(rename = "callbackUrl")]
    pub callback_url: String,
}

/// The providers this service offers, keyed by id (Auth.js's shape): `email` today; an OAuth
/// provider would be one more entry.
pub type ProvidersBody = std::collections::BTreeMap<String, ProviderBody>;

/// The signed-in user as the session endpoint shows it.
#[derive(Debug, Object)]
pub struct SessionUser {
    /// Stable user id (UUIDv7).
    pub id: String,
    /// The address the user signs in with.
    pub email: String,
    /// Display name, or `null` when none is set.
    #[oai(nullable)]
    pub name: Option<String>,
    /// Avatar URL, or `null` when none is known.
    #[oai(nullable)]
    pub image: Option<String>,
}

/// A JSON body that is a `T` or `null`, and says so in the OpenAPI document (poem-openapi
/// describes a top-level `Option<T>` as `T` alone, which a `null` then breaks).
pub struct OrNull<T>(pub Option<T>);

impl<T: poem_openapi::types::Type> poem_openapi::types::Type for OrNull<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        // OpenAPI 3.0 ignores a `nullable` beside a `$ref`: wrap the reference in `allOf`.
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(poem_openapi::registry::MetaSchema {
            nullable: true,
            all_of: vec![T::schema_ref()],
            ..poem_openapi::registry::MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl<T: poem_openapi::types::ToJSON> poem_openapi::types::ToJSON for OrNull<T> {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(self.0.as_ref().and_then(poem_openapi::types::ToJSON::to_json).unwrap_or(serde_json::Value::Null))
    }
}

/// A live session.
#[derive(Debug, Object)]
pub struct SessionBody {
    /// Who is signed in.
    pub user: SessionUser,
    /// When the session expires, RFC 3339.
    pub expires: String,
}

/// One of the signed-in person's sessions. Never its token.
#[derive(Debug, Object)]
pub struct SessionItem {
    /// The session's id, to revoke it.
    pub id: String,
    /// When it was created (the sign-in), RFC 3339.
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// When it was last seen in use, RFC 3339: recorded when a use extends the session (at
    /// most once per `session.update_age`), so it is exact to within that.
    #[oai(rename = "lastUsedAt")]
    pub last_used_at: String,
    /// When it ends unless used again, RFC 3339.
    pub expires: String,
    /// The browser's `User-Agent` at sign-in, if it sent one.
    #[oai(rename = "userAgent", nullable)]
    pub user_agent: Option<String>,
    /// Whether it is the session making this request.
    pub current: bool,
}

/// The signed-in person's live sessions, most recently used first.
#[derive(Debug, Object)]
pub struct SessionsBody {
    /// The sessions.
    pub sessions: Vec<SessionItem>,
}

/// How many sessions were ended.
#[derive(Debug, Object)]
pub struct RevokedBody {
    /// Sessions ended.
    pub revoked: u64,
}

/// `POST {base}/signin/email` as JSON: ask for a sign-in link.
#[derive(Debug, Object)]
pub struct LinkRequestBody {
    /// The address to send the link to.
    pub email: String,
    /// Where to land after signing in: a path here, or a URL on an allowed app origin.
    #[oai(rename = "callbackUrl", nullable)]
    pub callback_url: Option<String>,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// `POST {base}/callback/email` as JSON: sign in with a link's `token` and `email`, or with the
/// `code` from the email (in the client that asked for the link, which holds the
/// pending-sign-in cookie).
#[derive(Debug, Object)]
pub struct RedeemBody {
    /// The link's `token` parameter.
    #[oai(nullable)]
    pub token: Option<String>,
    /// The link's `email` parameter.
    #[oai(nullable)]
    pub email: Option<String>,
    /// The link's `callbackUrl` parameter.
    #[oai(rename = "callbackUrl", nullable)]
    pub callback_url: Option<String>,
    /// The short code from the email, instead of the link.
    #[oai(nullable)]
    pub code: Option<String>,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// `POST {base}/signout` as JSON.
#[derive(Debug, Object)]
pub struct SignOutBody {
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// `POST {base}/email`: the address to sign in with from now on.
#[derive(Debug, Object)]
pub struct ChangeEmailBody {
    /// The new address; a confirmation link is emailed to it.
    pub email: String,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// A confirmation link is on its way (or, for an address that belongs to another account, the
/// same answer and no email).
#[derive(Debug, Object)]
pub struct ConfirmationSentBody {
    /// Whole minutes until the link expires.
    #[oai(rename = "expiresInMinutes")]
    pub expires_in_minutes: i64,
}

/// `POST {base}/email/confirm`: the token from the confirmation link (`?token=`).
#[derive(Debug, Object)]
pub struct ConfirmEmailBody {
    /// The token.
    pub token: String,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// The account's sign-in address after the change.
#[derive(Debug, Object)]
pub struct EmailChangedBody {
    /// The address the account signs in with now.
    pub email: String,
}

/// `POST {base}/callback/password` as JSON: sign in with address and password.
#[derive(Object)]
pub struct PasswordSignInBody {
    /// The address.
    pub email: String,
    /// The password.
    #[oai(write_only)]
    pub password: String,
    /// Where to land after signing in: a path here, or a URL on an allowed app origin.
    #[oai(rename = "callbackUrl", nullable)]
    pub callback_url: Option<String>,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// `POST {base}/password`: the signed-in person's new password.
#[derive(Object)]
pub struct SetPasswordBody {
    /// The new password: at least `password.min_length` characters (15 by default), at most
    /// 256, any Unicode, not a common one, not the address.
    #[oai(write_only)]
    pub password: String,
    /// End the person's other sessions (default `true`).
    #[oai(rename = "signOutOtherSessions", nullable)]
    pub sign_out_other_sessions: Option<bool>,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

crate::forms::debug_showing_only!(PasswordSignInBody { callback_url });
crate::forms::debug_showing_only!(SetPasswordBody { sign_out_other_sessions });
crate::forms::debug_showing_only!(ReauthenticateBody {});

/// The password was set.
#[derive(Debug, Object)]
pub struct PasswordSetBody {
    /// How many other sessions were ended.
    #[oai(rename = "otherSessionsEnded")]
    pub other_sessions_ended: u64,
}

/// `POST {base}/reauthenticate`: the current password, confirming it is the person.
#[derive(Object)]
pub struct ReauthenticateBody {
    /// The current password.
    #[oai(write_only)]
    pub password: String,
    /// The CSRF token (or send it in `X-CSRF-Token`).
    #[oai(rename = "csrfToken", nullable)]
    pub csrf_token: Option<String>,
}

/// An RFC 9457 problem document: how every failure of the API is answered
/// (`application/problem+json`).
#[derive(Debug, Object)]
pub struct ProblemBody {
    /// What went wrong, as a URN: `urn:magiclink:problem:<kind>` (`csrf`, `invalid-email`,
    /// `signed-out`, `link-used`, `rate-limited-address`, ...).
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What to do about it, safe to show anyone.
    pub detail: String,
    /// With 429: seconds until the limit admits again (also in `Retry-After`).
    #[oai(rename = "retryAfter")]
    pub retry_after: Option<u64>,
    /// With a wrong code: tries left for this link.
    #[oai(rename = "attemptsLeft")]
    pub attempts_left: Option<u32>,
}

/// The problem statuses one operation can answer, for its OpenAPI description.
pub trait ProblemStatuses: Send + Sync + 'static {
    /// Each status with what it means for the operation.
    const STATUSES: &'static [(u16, &'static str)];
}

/// A failure of a JSON operation: the problem document [`WebError`]'s one mapping made, described
/// in the OpenAPI document with the statuses `S` lists.
pub struct Problem<S> {
    response: Response,
    statuses: PhantomData<fn() -> S>,
}

impl<S> Problem<S> {
    pub(crate) fn new(req: &Request, state: &AppState, error: WebError) -> Self {
        Self { response: error.into_response(Format::Json, req, state), statuses: PhantomData }
    }
}

impl<S: ProblemStatuses> ApiResponse for Problem<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: "application/problem+json",
                        schema: ProblemBody::schema_ref(),
                    }],
                    headers: Vec::new(),
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ProblemBody::register(registry);
    }
}

impl<S: Send> IntoResponse for Problem<S> {
    fn into_response(self) -> Response {
        self.response
    }
}

impl<S> From<Problem<S>> for poem::Error {
    fn from(problem: Problem<S>) -> Self {
        poem::Error::from_response(problem.response)
    }
}

pub(crate) const INTERNAL: (u16, &str) = (500, "Something failed on the server's side (logged); try again.");
pub(crate) const UNAVAILABLE: (u16, &str) =
    (503, "The database or the rate-limit store cannot be reached (`unavailable`); nothing was done. See Retry-After.");
pub(crate) const SIGNED_OUT: (u16, &str) = (401, "No live session: sign in first.");
pub(crate) const FORBIDDEN: (u16, &str) =
    (403, "The CSRF token is missing or wrong, or the request came from another site.");
const RATE_LIMITED: (u16, &str) = (429, "A rate limit is reached; nothing was done. See Retry-After.");
const PASSWORDS_DISABLED: (u16, &str) = (404, "Passwords are not enabled here (`passwords-disabled`).");
/// Every operation that reads a JSON body: one it cannot read.
const UNREADABLE: (u16, &str) =
    (400, "The body is not JSON this operation reads, or names a key twice (`bad-request`); nothing was done.");
/// Every operation that reads a JSON body: a body of another kind.
pub(crate) const NOT_JSON: (u16, &str) = (
    415,
    "The body is not `application/json` (nor, where the path also takes the form, \
     `application/x-www-form-urlencoded`) (`bad-request`); nothing was done.",
);
/// Added to an operation's own 400: the body could not be read at all.
macro_rules! or_unreadable {
    ($own:literal) => {
        concat!($own, " Or the body is not JSON this operation reads, or names a key twice (`bad-request`).")
    };
}

/// Reading: only the server can fail.
pub struct ReadProblems;
impl ProblemStatuses for ReadProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[INTERNAL, UNAVAILABLE];
}

/// Reading what needs a session.
pub struct SignedInProblems;
impl ProblemStatuses for SignedInProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[SIGNED_OUT, INTERNAL, UNAVAILABLE];
}

/// Ending every other session of the signed-in person.
pub struct RevokeOthersProblems;
impl ProblemStatuses for RevokeOthersProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[SIGNED_OUT, FORBIDDEN, INTERNAL, UNAVAILABLE];
}

/// A change to the signed-in person's sessions.
pub struct SessionChangeProblems;
impl ProblemStatuses for SessionChangeProblems {
    const STATUSES: &'static [(u16, &'static str)] =
        &[SIGNED_OUT, FORBIDDEN, (404, "The person has no session with that id."), INTERNAL, UNAVAILABLE];
}

/// Asking for a link.
pub struct LinkRequestProblems;
impl ProblemStatuses for LinkRequestProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, or_unreadable!("The address is not one a link can be sent to (`invalid-email`).")),
        FORBIDDEN,
        RATE_LIMITED,
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// Signing in with a link or code.
pub struct RedeemProblems;
impl ProblemStatuses for RedeemProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, or_unreadable!("The link is not valid (`link-invalid`), or the code is malformed, wrong (`attemptsLeft`) or not for this client.")),
        FORBIDDEN,
        (410, "The link was used already (`link-used`) or has expired (`link-expired`), or the code has."),
        RATE_LIMITED,
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// Signing out.
pub struct SignOutProblems;
impl ProblemStatuses for SignOutProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[UNREADABLE, FORBIDDEN, INTERNAL, UNAVAILABLE, NOT_JSON];
}

/// Asking to change the sign-in address.
pub struct ChangeEmailProblems;
impl ProblemStatuses for ChangeEmailProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (
            400,
            or_unreadable!(
                "The address is not acceptable (`invalid-email`), is the current one (`same-address`), or is \
                 outside the allowed domains (`address-not-allowed`)."
            ),
        ),
        SIGNED_OUT,
        (
            403,
            "The CSRF token is missing or wrong, or the request came from another site; or the sign-in is not \
             recent enough (`reauthentication-required`): confirm with `{base}/reauthenticate` or a fresh link.",
        ),
        RATE_LIMITED,
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// Signing in with address and password.
pub struct PasswordSignInProblems;
impl ProblemStatuses for PasswordSignInProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        UNREADABLE,
        (401, "The address has no account, the account no password, or the password is wrong (`password-rejected`): one answer for all."),
        FORBIDDEN,
        PASSWORDS_DISABLED,
        (429, "Too many failed password sign-ins for this address or from this client (`rate-limited-passwords`); links still work. See Retry-After."),
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// Setting a password.
pub struct SetPasswordProblems;
impl ProblemStatuses for SetPasswordProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, or_unreadable!("The password breaks a rule (`password-too-short`, `password-too-long`, `password-common`, `password-contains-address`, `password-control-character`).")),
        SIGNED_OUT,
        (403, "The CSRF token is missing or wrong, or the request came from another site; or the sign-in is not recent enough (`reauthentication-required`)."),
        PASSWORDS_DISABLED,
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// Confirming it is the person with their password.
pub struct ReauthenticateProblems;
impl ProblemStatuses for ReauthenticateProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        UNREADABLE,
        (401, "No live session (`signed-out`), or the password is wrong (`password-rejected`)."),
        FORBIDDEN,
        PASSWORDS_DISABLED,
        (429, "Too many failed password attempts (`rate-limited-passwords`). See Retry-After."),
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// A fresh session replaced the one that asked.
#[derive(Debug, ApiResponse)]
pub enum Reauthenticated {
    /// Confirmed: the new session's cookie is set; sensitive changes are allowed for
    /// `session.recent_sign_in` minutes.
    #[oai(status = 204)]
    Confirmed,
}

/// Confirming a change of sign-in address.
pub struct ConfirmEmailProblems;
impl ProblemStatuses for ConfirmEmailProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, or_unreadable!("The link is not valid, or was replaced by a newer request (`address-change-invalid`).")),
        (
            403,
            "The CSRF token is missing or wrong, or the request came from another site; or the request is not \
             signed in to the account that asked for the change (`address-change-not-requester`): nothing was used up.",
        ),
        (409, "The new address belongs to another account by now (`address-taken`); nothing changed."),
        (410, "The link was used already (`address-change-used`) or has expired (`address-change-expired`)."),
        RATE_LIMITED,
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

/// A session was ended.
#[derive(Debug, ApiResponse)]
pub enum SessionRevoked {
    /// Ended; if it was the current session, its cookie is cleared too.
    #[oai(status = 204)]
    Revoked,
}

impl SessionItem {
    /// `session` as its owner reads it, from the session `reading`.
    pub(crate) fn of(session: domain::SessionSummary, reading: &SessionId) -> Self {
        Self {
            current: session.id == *reading,
            id: session.id.as_str().to_owned(),
            created_at: rfc3339(session.created_at),
            last_used_at: rfc3339(session.last_used),
            expires: rfc3339(session.expires),
            user_agent: session.user_agent,
        }
    }
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[OpenApi]
impl AuthApi {
    /// Get a CSRF token
    ///
    /// A CSRF token (and its cookie) for every state-changing request.
    #[oai(path = "/csrf", method = "get")]
    async fn csrf(&self, req: &Request) -> Result<Json<CsrfBody>, Problem<ReadProblems>> {
        let token =
            csrf::token_for_form(req.cookie(), &self.state.settings).map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(CsrfBody { csrf_token: token }))
    }

    /// List the sign-in providers
    ///
    /// The configured sign-in providers.
    #[oai(path = "/providers", method = "get")]
    async fn providers(&self) -> Json<ProvidersBody> {
        let settings = &self.state.settings;
        let email = ProviderBody {
            id: "email".to_owned(),
            name: "Email".to_owned(),
            kind: "email".to_owned(),
            signin_url: settings.absolute(&settings.auth_path("/signin/email")),
            callback_url: settings.absolute(&settings.auth_path("/callback/email")),
        };
        let mut providers = ProvidersBody::from([(email.id.clone(), email)]);
        if self.state.passwords.is_some() {
            let password_url = settings.absolute(&settings.auth_path("/callback/password"));
            let password = ProviderBody {
                id: "password".to_owned(),
                name: "Password".to_owned(),
                kind: "credentials".to_owned(),
                signin_url: password_url.clone(),
                callback_url: password_url,
            };
            providers.insert(password.id.clone(), password);
        }
        if self.state.passkeys.is_some() {
            let passkey = ProviderBody {
                id: "passkey".to_owned(),
                name: "Passkey".to_owned(),
                kind: "webauthn".to_owned(),
                signin_url: settings.absolute(&settings.auth_path("/signin/passkey")),
                callback_url: settings.absolute(&settings.auth_path("/callback/passkey")),
            };
            providers.insert(passkey.id.clone(), passkey);
        }
        Json(providers)
    }

    /// Read the current session
    ///
    /// The current session, or `null` when signed out.
    #[oai(path = "/session", method = "get")]
    async fn session(&self, req: &Request) -> Result<Json<OrNull<SessionBody>>, Problem<ReadProblems>> {
        let session = auth::current_session(req, &self.state).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(OrNull(session.map(|active| SessionBody {
            user: SessionUser {
                id: active.user.id.as_str().to_owned(),
                email: active.user.email.as_str().to_owned(),
                name: active.user.name.map(|name| name.as_str().to_owned()),
                image: active.user.image,
            },
            expires: rfc3339(active.expires),
        }))))
    }

    /// Email a sign-in link
    ///
    /// Emails a sign-in link (and code) to the address. The answer is the same whether or not
    /// the address may sign in. Also accepts the sign-in form
    /// (`application/x-www-form-urlencoded`, fields `email`, `callbackUrl`, `csrfToken`).
    #[oai(path = "/signin/email", method = "post")]
    async fn request_link(
        &self,
        req: &Request,
        body: Json<LinkRequestBody>,
    ) -> Result<Json<LinkSentBody>, Problem<LinkRequestProblems>> {
        let Json(body) = body;
        auth::check_csrf(req, &self.state, body.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let form = SignInForm { email: body.email, csrf_token: None, callback_url: body.callback_url };
        let sent = auth::send_link(req, &self.state, &form).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(sent))
    }

    /// Sign in with a link or code
    ///
    /// Signs in with a link (`token`, `email`, `callbackUrl` from its URL) or with the emailed
    /// `code` (only in the client that asked for the link), setting the session cookie. Also
    /// accepts the confirm page's and the code page's forms.
    #[oai(path = "/callback/email", method = "post")]
    async fn redeem(&self, req: &Request, body: Json<RedeemBody>) -> Result<Json<UrlBody>, Problem<RedeemProblems>> {
        let Json(body) = body;
        auth::check_csrf(req, &self.state, body.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let form = CallbackForm {
            csrf_token: None,
            link: CallbackQuery { token: body.token, email: body.email, callback_url: body.callback_url },
            code: body.code,
        };
        let destination = auth::redeem(req, &self.state, form).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(UrlBody { url: self.state.settings.callback_url(&destination) }))
    }

    /// Sign out
    ///
    /// Ends this session and clears its cookie (signed out already is fine). Also accepts the
    /// sign-out form.
    #[oai(path = "/signout", method = "post")]
    async fn sign_out(
        &self,
        req: &Request,
        body: Json<SignOutBody>,
    ) -> Result<Json<UrlBody>, Problem<SignOutProblems>> {
        auth::check_csrf(req, &self.state, body.0.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        auth::end_session(req, &self.state).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(UrlBody { url: self.state.settings.absolute("/") }))
    }

    /// List your sessions
    ///
    /// The signed-in person's live sessions, most recently used first.
    #[oai(path = "/sessions", method = "get")]
    async fn sessions(&self, req: &Request) -> Result<Json<SessionsBody>, Problem<SignedInProblems>> {
        let active = self.signed_in(req).await?;
        let listed = self.state.sessions.list(&active).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(SessionsBody {
            sessions: listed.into_iter().map(|session| SessionItem::of(session, &active.session_id)).collect(),
        }))
    }

    /// End one session
    ///
    /// Ends one of the signed-in person's sessions (this one included, which signs this client
    /// out). Needs the `X-CSRF-Token` header.
    #[oai(path = "/sessions/:id", method = "delete")]
    async fn revoke_session(
        &self,
        req: &Request,
        id: Path<String>,
    ) -> Result<SessionRevoked, Problem<SessionChangeProblems>> {
        let active = self.signed_in_to_change(req).await?;
        // A malformed id names none of the person's sessions, like an unknown one.
        let session_id = SessionId::parse(&id.0).map_err(|_| self.problem(req, WebError::NoSuchSession))?;
        self.state
            .sessions
            .revoke(&active, &session_id, &request_origin(req, &self.state.settings))
            .await
            .map_err(|e| self.problem(req, e.into()))?;
        telemetry::sessions_revoked(&self.state.settings, "revoke", 1);
        if session_id == active.session_id {
            crate::cookies::clear(req.cookie(), &self.state.settings, crate::cookies::Kind::Session);
        }
        Ok(SessionRevoked::Revoked)
    }

    /// Change the sign-in address
    ///
    /// Emails a confirmation link to a new sign-in address; the address changes only when the
    /// link's token is posted to `{base}/email/confirm`. An address that belongs to another
    /// account gets the same answer and no email.
    #[oai(path = "/email", method = "post")]
    async fn change_email(
        &self,
        req: &Request,
        body: Json<ChangeEmailBody>,
    ) -> Result<Json<ConfirmationSentBody>, Problem<ChangeEmailProblems>> {
        Ok(Json(self.change_email_op(req, body.0).await?))
    }

    /// Confirm a new sign-in address
    ///
    /// Confirms a change of sign-in address with the token from the emailed link, signed in to
    /// the account that asked for it (the link alone is not enough: it would let anyone who
    /// asked to move their account to your address take it over when you press the button).
    /// The account's other sessions end; the old address is told.
    #[oai(path = "/email/confirm", method = "post")]
    async fn confirm_email(
        &self,
        req: &Request,
        body: Json<ConfirmEmailBody>,
    ) -> Result<Json<EmailChangedBody>, Problem<ConfirmEmailProblems>> {
        auth::check_csrf(req, &self.state, body.0.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let token = domain::LinkToken::parse(&body.0.token)
            .map_err(|_| self.problem(req, ports::ConfirmAddressError::Invalid.into()))?;
        let signed_in = auth::current_session(req, &self.state).await.map_err(|e| self.problem(req, e))?;
        let request = ports::ConfirmAddress {
            token,
            client: crate::client::client_ip(req, &self.state.settings.trusted_proxies),
            lang: crate::lang::of(req),
            signed_in,
            origin: request_origin(req, &self.state.settings),
        };
        let user = self.state.sign_in.confirm_address_change(request).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(EmailChangedBody { email: user.email.as_str().to_owned() }))
    }

    /// Sign in with a password
    ///
    /// Signs in with address and password (when `password.enabled` is on), setting the session
    /// cookie. A wrong password and an unknown address get the same answer. Also accepts the
    /// sign-in page's password form.
    #[oai(path = "/callback/password", method = "post")]
    async fn sign_in_with_password(
        &self,
        req: &Request,
        body: Json<PasswordSignInBody>,
    ) -> Result<Json<UrlBody>, Problem<PasswordSignInProblems>> {
        let Json(body) = body;
        auth::check_csrf(req, &self.state, body.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let form = crate::password::PasswordSignInForm {
            csrf_token: None,
            email: body.email,
            password: body.password,
            callback_url: body.callback_url,
        };
        let destination =
            crate::password::sign_in_with_password(req, &self.state, &form).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(UrlBody { url: self.state.settings.callback_url(&destination) }))
    }

    /// Set your password
    ///
    /// Sets or changes the signed-in person's password. Needs a recent sign-in (else 403
    /// `reauthentication-required`); ends the person's other sessions unless
    /// `signOutOtherSessions` is `false`.
    #[oai(path = "/password", method = "post")]
    async fn set_password(
        &self,
        req: &Request,
        body: Json<SetPasswordBody>,
    ) -> Result<Json<PasswordSetBody>, Problem<SetPasswordProblems>> {
        let Json(body) = body;
        auth::check_csrf(req, &self.state, body.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let active = self.signed_in(req).await?;
        let sign_out_others = body.sign_out_other_sessions.unwrap_or(true);
        let ended = crate::password::set_password(req, &self.state, &active, &body.password, sign_out_others)
            .await
            .map_err(|e| self.problem(req, e))?;
        Ok(Json(PasswordSetBody { other_sessions_ended: ended }))
    }

    /// Confirm it is you with your password
    ///
    /// Confirms it is the signed-in person with their current password, before a sensitive
    /// change: a fresh session replaces this one (a new cookie). Without a password, sign in
    /// again with a link instead.
    #[oai(path = "/reauthenticate", method = "post")]
    async fn reauthenticate(
        &self,
        req: &Request,
        body: Json<ReauthenticateBody>,
    ) -> Result<Reauthenticated, Problem<ReauthenticateProblems>> {
        let Json(body) = body;
        auth::check_csrf(req, &self.state, body.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let active = self.signed_in(req).await?;
        crate::password::confirm_with_password(req, &self.state, &active, &body.password)
            .await
            .map_err(|e| self.problem(req, e))?;
        Ok(Reauthenticated::Confirmed)
    }

    /// Sign out everywhere else
    ///
    /// Ends every session of the signed-in person but this one ("sign out everywhere else").
    /// Needs the `X-CSRF-Token` header.
    #[oai(path = "/sessions/revoke-others", method = "post")]
    async fn revoke_other_sessions(&self, req: &Request) -> Result<Json<RevokedBody>, Problem<RevokeOthersProblems>> {
        let active = self.signed_in_to_change(req).await?;
        let revoked = self
            .state
            .sessions
            .revoke_others(&active, &request_origin(req, &self.state.settings))
            .await
            .map_err(|e| self.problem(req, e.into()))?;
        telemetry::sessions_revoked(&self.state.settings, "revoke-others", revoked);
        Ok(Json(RevokedBody { revoked }))
    }
}

impl AuthApi {
    /// Emails a confirmation link to a new sign-in address; nothing changes until it is used.
    /// The account page's form does the same.
    async fn change_email_op(
        &self,
        req: &Request,
        body: ChangeEmailBody,
    ) -> Result<ConfirmationSentBody, Problem<ChangeEmailProblems>> {
        auth::check_csrf(req, &self.state, body.csrf_token.as_deref()).map_err(|e| self.problem(req, e))?;
        let active = self.signed_in(req).await?;
        let new_email = crate::forms::typed_address(&self.state.settings, &body.email).map_err(|reason| {
            self.problem(req, WebError::InvalidEmail { typed: body.email.clone(), callback_url: None, reason })
        })?;
        let request = ports::ChangeAddress {
            new_email,
            client: crate::client::client_ip(req, &self.state.settings.trusted_proxies),
            lang: crate::lang::of(req),
            origin: request_origin(req, &self.state.settings),
        };
        let queued = self
            .state
            .sign_in
            .request_address_change(&active, request)
            .await
            .map_err(|e| self.problem(req, e.into()))?;
        Ok(ConfirmationSentBody { expires_in_minutes: queued.expires_in_minutes })
    }

    async fn signed_in<S>(&self, req: &Request) -> Result<ActiveSession, Problem<S>> {
        signed_in(req, &self.state).await
    }

    async fn signed_in_to_change<S>(&self, req: &Request) -> Result<ActiveSession, Problem<S>> {
        signed_in_to_change(req, &self.state).await
    }

    /// Routes a failure through the one mapping, as a problem document.
    fn problem<S>(&self, req: &Request, error: WebError) -> Problem<S> {
        Problem::new(req, &self.state, error)
    }
}

/// The session making this request, or a 401 problem: every JSON operation that needs one.
pub(crate) async fn signed_in<S>(req: &Request, state: &AppState) -> Result<ActiveSession, Problem<S>> {
    match auth::current_session(req, state).await {
        Ok(Some(active)) => Ok(active),
        Ok(None) => Err(Problem::new(req, state, WebError::SignedOut)),
        Err(error) => Err(Problem::new(req, state, error)),
    }
}

/// The session making a state-changing request, once its CSRF token and origin check out
/// (checked first: a forged request learns nothing, not even whether anyone is signed in).
pub(crate) async fn signed_in_to_change<S>(req: &Request, state: &AppState) -> Result<ActiveSession, Problem<S>> {
    auth::check_csrf(req, state, None).map_err(|e| Problem::new(req, state, e))?;
    signed_in(req, state).await
}
