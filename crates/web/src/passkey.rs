//! Passkeys on the web: the JSON ceremonies the small same-origin script
//! (`{base}/passkey.js`, [`SCRIPT`]) drives from the sign-in and account pages, described in the
//! OpenAPI document beside the rest of the API:
//!
//! - `POST {base}/passkeys/registration` (options to create a passkey) and `POST
//!   {base}/passkeys` (the browser's answer; 201 with the passkey), `GET {base}/passkeys`,
//!   `PATCH {base}/passkeys/{id}` (rename), `DELETE {base}/passkeys/{id}`;
//! - `POST {base}/signin/passkey` (options to sign in) and `POST {base}/callback/passkey` (the
//!   assertion; the session cookie on success).
//!
//! Every one of them changes or reveals state, so every one needs the CSRF token
//! (`X-CSRF-Token`) and a same-origin request, as the forms do. The ceremony's token travels in
//! its own short-lived cookie ([`crate::cookies::Kind::PasskeyCeremony`]): the answer must come
//! from the browser that asked. With `passkey.enabled` off, each answers 404
//! `passkeys-disabled`, and the pages show no passkey controls.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::{CeremonyToken, Passkey, PasskeyId, PasskeyName};
use poem::http::header;
use poem::{handler, Request, Response};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use ports::{AddPasskey, PasskeySignIn, Passkeys};

use crate::api::{Problem, ProblemStatuses, FORBIDDEN, INTERNAL, SIGNED_OUT, UNAVAILABLE};
use crate::auth::{self, UrlBody};
use crate::errors::{PasskeyRefusal, WebError};
use crate::{client, cookies, forms, AppState};

/// The script behind the pages' passkey controls, served from this service only.
pub const SCRIPT: &str = include_str!("../assets/passkey.js");

/// `GET {base}/passkey.js`: the script, cached for an hour (it changes only with a release).
#[handler]
pub async fn script() -> Response {
    Response::builder()
        .content_type("text/javascript; charset=utf-8")
        .header(header::CACHE_CONTROL, "public, max-age=3600")
        .body(SCRIPT)
}

/// The passkey JSON API; it shares the application state with the rest.
pub struct PasskeyApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A passkey in its owner's list.
#[derive(Debug, Object)]
pub struct PasskeyItem {
    /// Names it to rename or delete it.
    pub id: String,
    /// What the person calls it.
    pub name: String,
    /// When it was added (RFC 3339).
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// When it last signed someone in, if ever.
    #[oai(rename = "lastUsedAt", nullable)]
    pub last_used_at: Option<String>,
    /// Whether the authenticator said it is backed up or synced (a password manager, iCloud
    /// Keychain, Google Password Manager): losing one device does not lose it.
    #[oai(rename = "backedUp")]
    pub backed_up: bool,
}

impl From<Passkey> for PasskeyItem {
    fn from(passkey: Passkey) -> Self {
        Self {
            id: passkey.id.as_str().to_owned(),
            name: passkey.name.as_str().to_owned(),
            created_at: rfc3339(passkey.created_at),
            last_used_at: passkey.last_used_at.map(rfc3339),
            backed_up: passkey.backed_up,
        }
    }
}

/// The signed-in person's passkeys.
#[derive(Debug, Object)]
pub struct PasskeysBody {
    /// Oldest first.
    pub passkeys: Vec<PasskeyItem>,
}

/// A new passkey: the browser's answer to the registration options.
#[derive(Debug, Object)]
pub struct NewPasskeyBody {
    /// `PublicKeyCredential.toJSON()` of the credential `navigator.credentials.create()` made.
    pub credential: serde_json::Value,
    /// Its name; the browser and system ("Chrome on Linux") when left out.
    #[oai(nullable)]
    pub name: Option<String>,
}

/// A passkey's new name.
#[derive(Debug, Object)]
pub struct RenamePasskeyBody {
    /// The name, 1 to 64 characters.
    pub name: String,
}

/// A passkey sign-in: the browser's answer to the sign-in options.
#[derive(Debug, Object)]
pub struct PasskeySignInBody {
    /// `PublicKeyCredential.toJSON()` of the assertion `navigator.credentials.get()` made.
    pub credential: serde_json::Value,
    /// Where to go once signed in (a path on this site, or an allowed origin).
    #[oai(rename = "callbackUrl", nullable)]
    pub callback_url: Option<String>,
}

/// A passkey was added.
#[derive(Debug, ApiResponse)]
pub enum PasskeyAdded {
    /// Added: the person can sign in with it from now on.
    #[oai(status = 201)]
    Created(Json<PasskeyItem>),
}

/// A passkey was deleted.
#[derive(Debug, ApiResponse)]
pub enum PasskeyDeleted {
    /// Deleted; nothing else changed (sessions, other passkeys, links).
    #[oai(status = 204)]
    Deleted,
}

const DISABLED: (u16, &str) = (404, "Passkeys are not enabled here (`passkeys-disabled`).");
const NOT_JSON: (u16, &str) = (415, "The body is not `application/json` (`bad-request`); nothing was done.");

/// Listing needs a session.
pub struct ListProblems;
impl ProblemStatuses for ListProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[SIGNED_OUT, DISABLED, INTERNAL, UNAVAILABLE];
}

/// Beginning a registration.
pub struct BeginRegistrationProblems;
impl ProblemStatuses for BeginRegistrationProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        SIGNED_OUT,
        (
            403,
            "The CSRF token is missing or wrong, or the request came from another site; or the sign-in is not \
             recent enough (`reauthentication-required`): sign in again first.",
        ),
        DISABLED,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Finishing a registration.
pub struct AddProblems;
impl ProblemStatuses for AddProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (
            400,
            "No registration was begun in this browser, or it expired or was finished (`passkey-ceremony-expired`); \
             the answer is not a WebAuthn credential (`passkey-malformed`) or does not check out \
             (`passkey-registration-refused`: another challenge, origin or relying party); \
             the name is blank, too long or holds control characters (`passkey-name-invalid`); or the body is not \
             JSON this operation reads (`bad-request`).",
        ),
        SIGNED_OUT,
        (
            403,
            "The CSRF token is missing or wrong, or the request came from another site; or the sign-in is not \
             recent enough (`reauthentication-required`).",
        ),
        DISABLED,
        (409, "This authenticator's passkey is registered already (`passkey-already-registered`)."),
        NOT_JSON,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Renaming.
pub struct RenameProblems;
impl ProblemStatuses for RenameProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (
            400,
            "The name is blank, too long or holds control characters (`passkey-name-invalid`), or the body is not \
             JSON this operation reads (`bad-request`).",
        ),
        SIGNED_OUT,
        FORBIDDEN,
        (404, "The person has no passkey with that id (`no-such-passkey`), or passkeys are not enabled here (`passkeys-disabled`)."),
        NOT_JSON,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Deleting.
pub struct DeleteProblems;
impl ProblemStatuses for DeleteProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        SIGNED_OUT,
        (
            403,
            "The CSRF token is missing or wrong, or the request came from another site; or the sign-in is not \
             recent enough (`reauthentication-required`).",
        ),
        (404, "The person has no passkey with that id (`no-such-passkey`), or passkeys are not enabled here (`passkeys-disabled`)."),
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Beginning a sign-in.
pub struct BeginSignInProblems;
impl ProblemStatuses for BeginSignInProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        FORBIDDEN,
        DISABLED,
        (
            429,
            "This client began too many passkey sign-ins (`rate-limited-passkey-ceremonies`); nothing was stored. \
             See Retry-After.",
        ),
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Finishing a sign-in.
pub struct SignInProblems;
impl ProblemStatuses for SignInProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (
            400,
            "No sign-in was begun in this browser, or it expired or was finished (`passkey-ceremony-expired`); the \
             answer is not a WebAuthn assertion (`passkey-malformed`); or the body is not JSON this operation \
             reads (`bad-request`).",
        ),
        (
            401,
            "The assertion does not check out (`passkey-refused`: another challenge, origin or relying party, a bad \
             signature), names no registered passkey (`passkey-unknown`), or its signature counter went backwards \
             (`passkey-counter-regressed`: the key may be cloned). Nobody was signed in; a link still works.",
        ),
        FORBIDDEN,
        DISABLED,
        NOT_JSON,
        (429, "Too many failed passkey sign-ins from this client (`rate-limited-passkeys`); links still work. See Retry-After."),
        INTERNAL,
        UNAVAILABLE,
    ];
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[OpenApi]
impl PasskeyApi {
    /// List your passkeys
    ///
    /// The signed-in person's passkeys, oldest first.
    #[oai(path = "/passkeys", method = "get")]
    async fn list(&self, req: &Request) -> Result<Json<PasskeysBody>, Problem<ListProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        let active = crate::api::signed_in(req, &self.state).await?;
        let listed = passkeys.list(&active).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(PasskeysBody { passkeys: listed.into_iter().map(PasskeyItem::from).collect() }))
    }

    /// Begin adding a passkey
    ///
    /// The options for `navigator.credentials.create()`, in the shape
    /// `PublicKeyCredential.parseCreationOptionsFromJSON()` takes
    /// (`PublicKeyCredentialCreationOptionsJSON`), and a cookie binding the ceremony to this
    /// browser for five minutes. Needs a recent sign-in and the `X-CSRF-Token` header.
    #[oai(path = "/passkeys/registration", method = "post")]
    async fn begin_registration(
        &self,
        req: &Request,
    ) -> Result<Json<serde_json::Value>, Problem<BeginRegistrationProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        let active = crate::api::signed_in_to_change(req, &self.state).await?;
        let ceremony = passkeys.begin_registration(&active).await.map_err(|e| self.problem(req, e.into()))?;
        self.hand_over(req, ceremony).map_err(|e| self.problem(req, e))
    }

    /// Add a passkey
    ///
    /// Finishes adding a passkey with the browser's answer (`PublicKeyCredential.toJSON()`),
    /// in the browser that began it. Needs a recent sign-in and the `X-CSRF-Token` header.
    #[oai(path = "/passkeys", method = "post")]
    async fn add(&self, req: &Request, body: Json<NewPasskeyBody>) -> Result<PasskeyAdded, Problem<AddProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        let active = crate::api::signed_in_to_change(req, &self.state).await?;
        let Json(body) = body;
        let name = match body.name.as_deref() {
            Some(typed) => PasskeyName::parse(typed),
            None => PasskeyName::parse(&crate::user_agent::describe(req.header(header::USER_AGENT))),
        }
        .map_err(|_| self.problem(req, WebError::Passkey(PasskeyRefusal::InvalidName)))?;
        let request = AddPasskey {
            token: self.take_token(req),
            response: body.credential.to_string(),
            name,
            origin: crate::client::request_origin(req, &self.state.settings),
        };
        let added = passkeys.add(&active, request).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(PasskeyAdded::Created(Json(added.into())))
    }

    /// Rename a passkey
    ///
    /// Renames one of the signed-in person's passkeys. Needs the `X-CSRF-Token` header.
    #[oai(path = "/passkeys/:id", method = "patch")]
    async fn rename(
        &self,
        req: &Request,
        id: Path<String>,
        body: Json<RenamePasskeyBody>,
    ) -> Result<Json<PasskeyItem>, Problem<RenameProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        let active = crate::api::signed_in_to_change(req, &self.state).await?;
        let name = PasskeyName::parse(&body.0.name)
            .map_err(|_| self.problem(req, WebError::Passkey(PasskeyRefusal::InvalidName)))?;
        // A malformed id names none of the person's passkeys, like an unknown one.
        let id = PasskeyId::parse(&id.0).map_err(|_| self.problem(req, WebError::NoSuchPasskey))?;
        let renamed = passkeys.rename(&active, &id, &name).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(renamed.into()))
    }

    /// Delete a passkey
    ///
    /// Deletes one of the signed-in person's passkeys; their sessions and other passkeys stay,
    /// and links still sign them in. Needs a recent sign-in and the `X-CSRF-Token` header.
    #[oai(path = "/passkeys/:id", method = "delete")]
    async fn delete(&self, req: &Request, id: Path<String>) -> Result<PasskeyDeleted, Problem<DeleteProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        let active = crate::api::signed_in_to_change(req, &self.state).await?;
        let id = PasskeyId::parse(&id.0).map_err(|_| self.problem(req, WebError::NoSuchPasskey))?;
        let origin = crate::client::request_origin(req, &self.state.settings);
        passkeys.delete(&active, &id, &origin).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(PasskeyDeleted::Deleted)
    }

    /// Begin signing in with a passkey
    ///
    /// The options for `navigator.credentials.get()` (`PublicKeyCredentialRequestOptionsJSON`,
    /// no credentials listed: the browser offers the passkeys it holds for this site, and no
    /// address is asked or revealed), and a cookie binding the ceremony to this browser for
    /// five minutes. Needs the `X-CSRF-Token` header.
    #[oai(path = "/signin/passkey", method = "post")]
    async fn begin_sign_in(&self, req: &Request) -> Result<Json<serde_json::Value>, Problem<BeginSignInProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        auth::check_csrf(req, &self.state, None).map_err(|e| self.problem(req, e))?;
        let client = client::client_ip(req, &self.state.settings.trusted_proxies);
        let ceremony = passkeys.begin_sign_in(client).await.map_err(|e| self.problem(req, e.into()))?;
        self.hand_over(req, ceremony).map_err(|e| self.problem(req, e))
    }

    /// Sign in with a passkey
    ///
    /// Signs in with the browser's assertion (`PublicKeyCredential.toJSON()`), in the browser
    /// that began the ceremony, setting the session cookie. Needs the `X-CSRF-Token` header.
    #[oai(path = "/callback/passkey", method = "post")]
    async fn sign_in(
        &self,
        req: &Request,
        body: Json<PasskeySignInBody>,
    ) -> Result<Json<UrlBody>, Problem<SignInProblems>> {
        let passkeys = self.enabled().map_err(|e| self.problem(req, e))?;
        auth::check_csrf(req, &self.state, None).map_err(|e| self.problem(req, e))?;
        let Json(body) = body;
        let destination = self.state.settings.callback(body.callback_url.as_deref());
        let request = PasskeySignIn {
            token: self.take_token(req),
            response: body.credential.to_string(),
            user_agent: req.header(header::USER_AGENT).map(forms::user_agent),
            client: client::client_ip(req, &self.state.settings.trusted_proxies),
            origin: client::request_origin(req, &self.state.settings),
        };
        let signed_in = passkeys.sign_in(request).await.map_err(|e| self.problem(req, e.into()))?;
        auth::finish_sign_in(req, &self.state, &signed_in).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(UrlBody { url: self.state.settings.callback_url(&destination) }))
    }
}

impl PasskeyApi {
    /// The passkey provider, or a 404 problem when it is off.
    fn enabled(&self) -> Result<&Arc<Passkeys>, WebError> {
        self.state.passkeys.as_ref().ok_or(WebError::PasskeysDisabled)
    }

    /// The options for the browser, the ceremony's token in its cookie.
    fn hand_over(&self, req: &Request, ceremony: ports::Ceremony) -> Result<Json<serde_json::Value>, WebError> {
        let options: serde_json::Value =
            serde_json::from_str(&ceremony.options).map_err(|e| WebError::Unexpected(e.into()))?;
        let seconds = (ceremony.expires - self.state.sessions.now()).num_seconds().max(1);
        let max_age = Duration::from_secs(u64::try_from(seconds).unwrap_or(1));
        let token = ceremony.token.encode();
        cookies::set(req.cookie(), &self.state.settings, cookies::Kind::PasskeyCeremony, &token, Some(max_age));
        Ok(Json(options))
    }

    /// The ceremony token this browser holds, its cookie cleared: a ceremony is finished once.
    fn take_token(&self, req: &Request) -> Option<CeremonyToken> {
        let value = cookies::read(req.cookie(), &self.state.settings, cookies::Kind::PasskeyCeremony)?;
        cookies::clear(req.cookie(), &self.state.settings, cookies::Kind::PasskeyCeremony);
        CeremonyToken::parse(&value).ok()
    }

    /// Routes a failure through the one mapping, as a problem document.
    fn problem<S>(&self, req: &Request, error: WebError) -> Problem<S> {
        Problem::new(req, &self.state, error)
    }
}
