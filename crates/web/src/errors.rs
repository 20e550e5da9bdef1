//! The one place where failures become HTTP responses.
//!
//! Each use-case error is mapped here, once: to a status, and to a page for people or an RFC 9457
//! problem document for programs (chosen by `Accept`). Server errors log their whole cause chain
//! and show a fixed message; nothing internal reaches the response.

use domain::{InvalidEmail, PasswordRefusal};
use i18n::Sentence;
use poem::http::{header, StatusCode};
use poem::web::Redirect;
use poem::{IntoResponse, Request, Response};
use ports::{
    ChangeAddressError, ConfirmAddressError, LimitScope, LinkStateError, ListSessionsError, PasswordSignInError,
    ReadActivityError, ReadSessionError, RedeemCodeError, RedeemLinkError, RenameError, RequestLinkError,
    RevokeOtherSessionsError, RevokeSessionError, SetPasswordError, SignOutError, Unavailable,
};
use tera::Context;

use crate::render::{check_email_page, page_in, sign_in_form, FormError};
use crate::{telemetry, AppState};

/// How long a client is asked to wait while a dependency is unavailable: about what a
/// database failover or a Redis restart takes.
pub(crate) const RETRY_AFTER_OUTAGE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Whether the caller wants a page or JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A person's browser.
    Html,
    /// A program that sent `Accept: application/json`.
    Json,
}

impl Format {
    /// Reads the request's `Accept` header.
    pub fn of(req: &Request) -> Self {
        let accept = req.header(header::ACCEPT).unwrap_or_default();
        if accept.contains("application/json") || accept.contains("application/problem+json") {
            Format::Json
        } else {
            Format::Html
        }
    }
}

/// What went wrong with a request, in the terms the response needs.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The CSRF token was missing or did not match.
    #[error("csrf token missing or invalid")]
    Csrf,
    /// The body could not be read as a form (the parser's reason, for the log).
    #[error("unreadable form: {0}")]
    BadForm(String),
    /// A JSON body names a key twice (which one wins would be the parser's choice, not the
    /// sender's); the reason, for the log.
    #[error("unacceptable json: {0}")]
    BadJson(String),
    /// A query parameter is not acceptable; the text is a sentence shown to the caller.
    #[error("bad query: {0}")]
    BadQuery(String),
    /// The typed address is not acceptable; the form is shown again with what was typed.
    #[error("invalid email address: {reason}")]
    InvalidEmail {
        /// What was typed, to show again.
        typed: String,
        /// Where to land after sign-in, kept for the second attempt.
        callback_url: Option<String>,
        /// Why it was refused.
        reason: InvalidEmail,
    },
    /// No such page.
    #[error("not found")]
    NotFound,
    /// The request needs a session and the browser has none (or it ended).
    #[error("not signed in")]
    SignedOut,
    /// The signed-in person has no session with that id.
    #[error("no such session")]
    NoSuchSession,
    /// The page exists, but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than the limit (declared in `Content-Length`; nothing was read).
    #[error("request body over {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A body was sent without a `Content-Length` (chunked), which the size limit needs.
    #[error("request body without a content length")]
    LengthRequired,
    /// The request (its body, or the work it asked for) took longer than allowed.
    #[error("request timed out")]
    RequestTimeout,
    /// A rate limit is reached; nothing was done.
    #[error("rate limited: {limit:?}")]
    RateLimited {
        /// Which limit.
        limit: Limit,
        /// How long until it admits again.
        retry_after: chrono::TimeDelta,
        /// The page a person sees it on.
        page: LimitedPage,
    },
    /// A link signed nobody in.
    #[error("sign-in link refused: {0:?}")]
    Link(LinkRefusal),
    /// A code typed on the "check your email" page signed nobody in.
    #[error("sign-in code refused: {0:?}")]
    Code(CodeProblem),
    /// An address-change confirmation link changed nothing.
    #[error("address change refused: {0:?}")]
    AddressChange(AddressChangeRefusal),
    /// The new sign-in address asked for is the one the account has.
    #[error("that is already the sign-in address")]
    SameAddress,
    /// Deleting an account: the address typed to confirm is not the account's.
    #[error("the typed address is not the account's")]
    ConfirmationMismatch,
    /// The sign-up policy is an allowlist and the new sign-in address is outside it.
    #[error("that address cannot sign in here")]
    AddressNotAllowed,
    /// Passwords are not enabled on this deployment.
    #[error("passwords are not enabled")]
    PasswordsDisabled,
    /// An address and password signed nobody in; which of the two was wrong is not said.
    #[error("wrong email address or password")]
    PasswordRejected {
        /// The typed address, to show again (never the password).
        typed: String,
        /// Where to land after sign-in, kept for the second attempt.
        callback_url: Option<String>,
    },
    /// A new password broke a rule.
    #[error("password refused: {0}")]
    PasswordRefused(PasswordRefusal),
    /// A sensitive change needs a recent sign-in first ("sudo mode").
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// Passkeys are not enabled on this deployment.
    #[error("passkeys are not enabled")]
    PasskeysDisabled,
    /// A passkey ceremony (adding one, or signing in) did not succeed.
    #[error("passkey refused: {0:?}")]
    Passkey(PasskeyRefusal),
    /// The signed-in person has no passkey with that id.
    #[error("no such passkey")]
    NoSuchPasskey,
    /// An OAuth refusal at the token, revocation or userinfo endpoint: answered as RFC 6749's
    /// `{"error": ...}` JSON whatever the `Accept`, since OAuth clients read nothing else.
    #[error("oauth refusal: {0:?}")]
    OAuth(OAuthRefusal),
    /// An authorization or logout request that cannot be sent back to the app (an unknown
    /// client, an unregistered redirect URI, a hint that is not ours): an error page.
    #[error("openid connect request refused: {0:?}")]
    Oidc(OidcRefusal),
    /// The signed-in person has not signed in to that app.
    #[error("no such app")]
    NoSuchApp,
    /// The router or an extractor refused the request before a handler ran.
    #[error("request refused with status {0}")]
    Refused(StatusCode),
    /// Anything else: logged in full, shown as a fixed message.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Which rate limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Links to one address.
    LinksToAddress,
    /// Link requests from one client.
    RequestsFromClient,
    /// Links to anyone.
    LinksToEveryone,
    /// Failed link or code sign-ins from one client.
    FailedSignIns,
    /// Failed password sign-ins for one address or from one client.
    FailedPasswords,
    /// Failed passkey sign-ins from one client.
    FailedPasskeys,
    /// Passkey sign-ins begun from one client.
    PasskeyCeremonies,
}

/// An OAuth error (RFC 6749 §5.2, RFC 6750 §3.1), with the description the app's developer
/// reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthRefusal {
    /// Unknown client, wrong secret, or no authentication (401).
    InvalidClient,
    /// A code or refresh token that does not work, and why.
    InvalidGrant(&'static str),
    /// A missing or malformed parameter, and which.
    InvalidRequest(&'static str),
    /// A refresh asked for more than was granted.
    InvalidScope,
    /// A `grant_type` other than `authorization_code` and `refresh_token`.
    UnsupportedGrantType,
    /// A missing, unknown, expired or revoked access token at userinfo (401).
    InvalidToken,
    /// Too many token requests from the client (429).
    RateLimited {
        /// How long until it may ask again.
        retry_after: chrono::TimeDelta,
    },
}

impl OAuthRefusal {
    /// An `invalid_request` saying what is wrong.
    pub(crate) fn request(description: &'static str) -> Self {
        OAuthRefusal::InvalidRequest(description)
    }

    /// The status, the `error` code and its description.
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            OAuthRefusal::InvalidClient => (StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed"),
            OAuthRefusal::InvalidGrant(description) => (StatusCode::BAD_REQUEST, "invalid_grant", description),
            OAuthRefusal::InvalidRequest(description) => (StatusCode::BAD_REQUEST, "invalid_request", description),
            OAuthRefusal::InvalidScope => {
                (StatusCode::BAD_REQUEST, "invalid_scope", "a refresh may only narrow the scopes granted")
            }
            OAuthRefusal::UnsupportedGrantType => {
                (StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type is authorization_code or refresh_token")
            }
            OAuthRefusal::InvalidToken => {
                (StatusCode::UNAUTHORIZED, "invalid_token", "the access token is missing, expired or revoked")
            }
            OAuthRefusal::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", "too many token requests from this client")
            }
        }
    }
}

impl From<OAuthRefusal> for WebError {
    fn from(refusal: OAuthRefusal) -> Self {
        WebError::OAuth(refusal)
    }
}

/// Why an authorization or logout request is answered with an error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcRefusal {
    /// `client_id` is missing or not registered.
    UnknownClient,
    /// `redirect_uri` is missing or not one the client registered.
    UnregisteredRedirectUri,
    /// The logout's `id_token_hint` is not an ID token of ours.
    InvalidLogoutHint,
    /// The logout's `post_logout_redirect_uri` is not registered for the client.
    UnregisteredLogoutRedirectUri,
}

impl OidcRefusal {
    fn parts(self) -> (&'static str, &'static str, &'static str) {
        match self {
            OidcRefusal::UnknownClient => {
                ("oidc-unknown-client", "problem-oidc-unknown-client-title", "problem-oidc-unknown-client-detail")
            }
            OidcRefusal::UnregisteredRedirectUri => (
                "oidc-redirect-uri-unregistered",
                "problem-oidc-redirect-uri-title",
                "problem-oidc-redirect-uri-detail",
            ),
            OidcRefusal::InvalidLogoutHint => {
                ("oidc-logout-hint-invalid", "problem-oidc-logout-hint-title", "problem-oidc-logout-hint-detail")
            }
            OidcRefusal::UnregisteredLogoutRedirectUri => (
                "oidc-logout-redirect-unregistered",
                "problem-oidc-redirect-uri-title",
                "problem-oidc-redirect-uri-detail",
            ),
        }
    }
}

impl From<ports::AuthorizeError> for WebError {
    fn from(error: ports::AuthorizeError) -> Self {
        match error {
            ports::AuthorizeError::UnknownClient => WebError::Oidc(OidcRefusal::UnknownClient),
            ports::AuthorizeError::UnregisteredRedirectUri => WebError::Oidc(OidcRefusal::UnregisteredRedirectUri),
            ports::AuthorizeError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ports::EndSessionError> for WebError {
    fn from(error: ports::EndSessionError) -> Self {
        match error {
            ports::EndSessionError::InvalidHint => WebError::Oidc(OidcRefusal::InvalidLogoutHint),
            ports::EndSessionError::UnregisteredRedirectUri => {
                WebError::Oidc(OidcRefusal::UnregisteredLogoutRedirectUri)
            }
            ports::EndSessionError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ports::UserInfoError> for WebError {
    fn from(error: ports::UserInfoError) -> Self {
        match error {
            ports::UserInfoError::InvalidToken => WebError::OAuth(OAuthRefusal::InvalidToken),
            ports::UserInfoError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ports::RevokeAppError> for WebError {
    fn from(error: ports::RevokeAppError) -> Self {
        match error {
            ports::RevokeAppError::NotFound => WebError::NoSuchApp,
            ports::RevokeAppError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

/// Why a passkey ceremony did not succeed, in the terms the answer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasskeyRefusal {
    /// No ceremony was begun in this browser, or it expired or was finished.
    CeremonyExpired,
    /// The answer is not a WebAuthn credential.
    Malformed,
    /// The answer does not check out.
    Refused,
    /// No stored passkey has the credential id.
    Unknown,
    /// The signature counter went backwards: the key may be cloned.
    CounterWentBack,
    /// The authenticator's passkey is registered already.
    AlreadyRegistered,
    /// A registration answer that is well formed but does not check out.
    RegistrationRefused,
    /// The name is blank, too long or holds control characters.
    InvalidName,
}

impl PasskeyRefusal {
    /// The status, problem type and sentences.
    fn parts(self) -> (StatusCode, &'static str, &'static str, &'static str) {
        match self {
            PasskeyRefusal::CeremonyExpired => (
                StatusCode::BAD_REQUEST,
                "passkey-ceremony-expired",
                "problem-passkey-ceremony-expired-title",
                "problem-passkey-ceremony-expired-detail",
            ),
            PasskeyRefusal::Malformed => (
                StatusCode::BAD_REQUEST,
                "passkey-malformed",
                "problem-passkey-malformed-title",
                "problem-passkey-malformed-detail",
            ),
            PasskeyRefusal::Refused => (
                StatusCode::UNAUTHORIZED,
                "passkey-refused",
                "problem-passkey-refused-title",
                "problem-passkey-refused-detail",
            ),
            PasskeyRefusal::Unknown => (
                StatusCode::UNAUTHORIZED,
                "passkey-unknown",
                "problem-passkey-unknown-title",
                "problem-passkey-unknown-detail",
            ),
            PasskeyRefusal::CounterWentBack => (
                StatusCode::UNAUTHORIZED,
                "passkey-counter-regressed",
                "problem-passkey-counter-regressed-title",
                "problem-passkey-counter-regressed-detail",
            ),
            PasskeyRefusal::AlreadyRegistered => (
                StatusCode::CONFLICT,
                "passkey-already-registered",
                "problem-passkey-already-registered-title",
                "problem-passkey-already-registered-detail",
            ),
            PasskeyRefusal::RegistrationRefused => (
                StatusCode::BAD_REQUEST,
                "passkey-registration-refused",
                "problem-passkey-registration-refused-title",
                "problem-passkey-registration-refused-detail",
            ),
            PasskeyRefusal::InvalidName => (
                StatusCode::BAD_REQUEST,
                "passkey-name-invalid",
                "problem-passkey-name-invalid-title",
                "problem-passkey-name-invalid-detail",
            ),
        }
    }
}

/// Where a person meets a rate limit: the form they sent, again, with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitedPage {
    /// The sign-in form, with what was typed.
    SignIn {
        /// The typed address.
        typed: String,
        /// The callback URL, kept for the next attempt.
        callback_url: Option<String>,
    },
    /// "Check your email", under the code field.
    CheckEmail,
    /// The plain error page (a link opened too often after failures).
    Error,
    /// The sign-in page's password form, with the typed address.
    PasswordSignIn {
        /// The typed address.
        typed: String,
        /// The callback URL, kept for the next attempt.
        callback_url: Option<String>,
    },
}

impl Limit {
    /// What the person is told, with the wait in words: "... Try again in 4 minutes."
    pub fn sentence(self, retry_after: chrono::TimeDelta) -> Sentence {
        let what = match self {
            Limit::LinksToAddress => "limit-links-to-address",
            Limit::RequestsFromClient => "limit-requests-from-client",
            Limit::LinksToEveryone => "limit-links-to-everyone",
            Limit::FailedSignIns => "limit-failed-sign-ins",
            Limit::FailedPasswords => "limit-failed-passwords",
            Limit::FailedPasskeys => "limit-failed-passkeys",
            Limit::PasskeyCeremonies => "limit-passkey-ceremonies",
        };
        let (count, unit) = in_units(retry_after);
        Sentence::new(what).then("limit-try-again").arg("count", count).arg("unit", unit)
    }

    /// The limit on emails with links that a use case named.
    pub(crate) fn of_scope(scope: LimitScope) -> Self {
        match scope {
            LimitScope::Address => Limit::LinksToAddress,
            LimitScope::Client => Limit::RequestsFromClient,
            LimitScope::Everyone => Limit::LinksToEveryone,
        }
    }

    pub(crate) fn kind(self) -> &'static str {
        match self {
            Limit::LinksToAddress => "rate-limited-address",
            Limit::RequestsFromClient => "rate-limited-client",
            Limit::LinksToEveryone => "rate-limited-everyone",
            Limit::FailedSignIns => "rate-limited-failures",
            Limit::FailedPasswords => "rate-limited-passwords",
            Limit::FailedPasskeys => "rate-limited-passkeys",
            Limit::PasskeyCeremonies => "rate-limited-passkey-ceremonies",
        }
    }
}

/// A wait as people say it, rounded up, as a count and a unit: (45, "second"), (1, "minute"),
/// (4, "minute"), (2, "hour"). The translations put it in words.
pub fn in_units(wait: chrono::TimeDelta) -> (u64, &'static str) {
    let seconds = retry_after_seconds(wait);
    match seconds {
        0..=59 => (seconds, "second"),
        60..=5399 => (seconds.div_ceil(60), "minute"),
        _ => (seconds.div_ceil(3600), "hour"),
    }
}

/// Whole seconds to wait, rounded up (at least 1), for `Retry-After`.
pub fn retry_after_seconds(wait: chrono::TimeDelta) -> u64 {
    let millis = u64::try_from(wait.num_milliseconds()).unwrap_or(0);
    millis.div_ceil(1000).max(1)
}

/// Why a typed code signed nobody in, in the terms the page needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeProblem {
    /// Wrong; `attempts_left` more may be tried.
    Wrong {
        /// Wrong codes still allowed.
        attempts_left: u32,
    },
    /// Too many wrong codes: this one no longer works.
    Exhausted,
    /// The link and its code expired.
    Expired,
    /// The link and its code were already used.
    AlreadyUsed,
    /// A newer link to the same address replaced the link and its code.
    Replaced,
    /// The link is gone (purged).
    Invalid,
    /// Not eight characters of the code alphabet.
    Malformed,
    /// This browser did not ask for a link (no pending-sign-in cookie): codes work only there.
    NotThisBrowser,
}

impl CodeProblem {
    /// The `type` suffix of its problem document.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            CodeProblem::Wrong { .. } => "wrong-code",
            CodeProblem::Exhausted => "code-exhausted",
            CodeProblem::Expired => "code-expired",
            CodeProblem::AlreadyUsed => "code-used",
            CodeProblem::Replaced => "code-replaced",
            CodeProblem::Invalid => "code-invalid",
            CodeProblem::Malformed => "code-malformed",
            CodeProblem::NotThisBrowser => "code-not-this-browser",
        }
    }

    /// What the person is told, as a sentence.
    pub fn sentence(self) -> Sentence {
        match self {
            CodeProblem::Wrong { attempts_left: 0 } => Sentence::new("code-wrong-last"),
            CodeProblem::Wrong { attempts_left } => Sentence::new("code-wrong").arg("attempts", attempts_left),
            CodeProblem::Exhausted => Sentence::new("code-exhausted"),
            CodeProblem::Expired => Sentence::new("code-expired"),
            CodeProblem::AlreadyUsed => Sentence::new("code-used"),
            CodeProblem::Replaced => Sentence::new("code-replaced"),
            CodeProblem::Invalid => Sentence::new("code-invalid"),
            CodeProblem::Malformed => Sentence::new("code-malformed"),
            CodeProblem::NotThisBrowser => Sentence::new("code-not-this-browser"),
        }
    }
}

impl From<RedeemCodeError> for WebError {
    fn from(error: RedeemCodeError) -> Self {
        WebError::Code(match error {
            RedeemCodeError::Wrong { attempts_left } => CodeProblem::Wrong { attempts_left },
            RedeemCodeError::Exhausted => CodeProblem::Exhausted,
            RedeemCodeError::Expired => CodeProblem::Expired,
            RedeemCodeError::AlreadyUsed => CodeProblem::AlreadyUsed,
            RedeemCodeError::Replaced => CodeProblem::Replaced,
            RedeemCodeError::Invalid => CodeProblem::Invalid,
            RedeemCodeError::RateLimited { retry_after } => {
                return WebError::RateLimited {
                    limit: Limit::FailedSignIns,
                    retry_after,
                    page: LimitedPage::CheckEmail,
                }
            }
            RedeemCodeError::Unexpected(inner) => return WebError::Unexpected(inner),
        })
    }
}

impl WebError {
    /// A failed link request, answered on the sign-in form with what was typed.
    pub fn from_link_request(error: RequestLinkError, typed: &str, callback_url: Option<&str>) -> Self {
        match error {
            RequestLinkError::RateLimited { scope, retry_after } => WebError::RateLimited {
                limit: Limit::of_scope(scope),
                retry_after,
                page: LimitedPage::SignIn { typed: typed.to_owned(), callback_url: callback_url.map(str::to_owned) },
            },
            RequestLinkError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

/// The use cases whose only failure is `Unexpected` (storage): each reaches the one map
/// through `From`, one line here for each.
macro_rules! unexpected_only {
    ($($error:ident),+ $(,)?) => {
        $(
            impl From<$error> for WebError {
                fn from(error: $error) -> Self {
                    match error {
                        $error::Unexpected(inner) => WebError::Unexpected(inner),
                    }
                }
            }
        )+
    };
}

unexpected_only!(
    LinkStateError,
    ReadSessionError,
    ListSessionsError,
    ReadActivityError,
    RenameError,
    RevokeOtherSessionsError,
    SignOutError
);

impl From<ports::DeleteAccountError> for WebError {
    fn from(error: ports::DeleteAccountError) -> Self {
        match error {
            ports::DeleteAccountError::ReauthenticationRequired => WebError::ReauthenticationRequired,
            ports::DeleteAccountError::ConfirmationMismatch => WebError::ConfirmationMismatch,
            ports::DeleteAccountError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<RevokeSessionError> for WebError {
    fn from(error: RevokeSessionError) -> Self {
        match error {
            RevokeSessionError::NotFound => WebError::NoSuchSession,
            RevokeSessionError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

/// A link that signed nobody in, as the error it is: a page redirect for people (to the error
/// page, saying which case), a problem document for programs.
pub fn link_refusal(error: RedeemLinkError) -> WebError {
    match error {
        RedeemLinkError::Invalid => WebError::Link(LinkRefusal::Invalid),
        RedeemLinkError::AlreadyUsed => WebError::Link(LinkRefusal::Used),
        RedeemLinkError::Replaced => WebError::Link(LinkRefusal::Replaced),
        // No address in the URL: the page asks for it again rather than carry it in history,
        // logs and Referer.
        RedeemLinkError::Expired { .. } => WebError::Link(LinkRefusal::Expired),
        RedeemLinkError::RateLimited { retry_after } => {
            WebError::RateLimited { limit: Limit::FailedSignIns, retry_after, page: LimitedPage::Error }
        }
        RedeemLinkError::Unexpected(inner) => WebError::Unexpected(inner),
    }
}

/// Why an address-change confirmation link changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressChangeRefusal {
    /// Not a link this service sent, or replaced by a newer request.
    Invalid,
    /// Used already.
    Used,
    /// Past its expiry.
    Expired,
    /// The new address belongs to another account by now.
    Taken,
    /// The browser is not signed in to the account that asked for the change.
    NotTheRequester,
}

impl From<ConfirmAddressError> for WebError {
    fn from(error: ConfirmAddressError) -> Self {
        WebError::AddressChange(match error {
            ConfirmAddressError::Invalid => AddressChangeRefusal::Invalid,
            ConfirmAddressError::AlreadyUsed => AddressChangeRefusal::Used,
            ConfirmAddressError::Expired => AddressChangeRefusal::Expired,
            ConfirmAddressError::AddressTaken => AddressChangeRefusal::Taken,
            ConfirmAddressError::NotTheRequester => AddressChangeRefusal::NotTheRequester,
            ConfirmAddressError::RateLimited { retry_after } => {
                return WebError::RateLimited { limit: Limit::FailedSignIns, retry_after, page: LimitedPage::Error }
            }
            ConfirmAddressError::Unexpected(inner) => return WebError::Unexpected(inner),
        })
    }
}

impl From<ChangeAddressError> for WebError {
    fn from(error: ChangeAddressError) -> Self {
        match error {
            ChangeAddressError::SameAddress => WebError::SameAddress,
            ChangeAddressError::NotAllowed => WebError::AddressNotAllowed,
            ChangeAddressError::ReauthenticationRequired => WebError::ReauthenticationRequired,
            ChangeAddressError::RateLimited { scope, retry_after } => {
                WebError::RateLimited { limit: Limit::of_scope(scope), retry_after, page: LimitedPage::Error }
            }
            ChangeAddressError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl WebError {
    /// A failed password sign-in, answered on the sign-in page's password form with the typed
    /// address.
    pub fn from_password_sign_in(error: PasswordSignInError, typed: &str, callback_url: Option<&str>) -> Self {
        match error {
            PasswordSignInError::Rejected => {
                WebError::PasswordRejected { typed: typed.to_owned(), callback_url: callback_url.map(str::to_owned) }
            }
            PasswordSignInError::RateLimited { retry_after } => WebError::RateLimited {
                limit: Limit::FailedPasswords,
                retry_after,
                page: LimitedPage::PasswordSignIn {
                    typed: typed.to_owned(),
                    callback_url: callback_url.map(str::to_owned),
                },
            },
            PasswordSignInError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ports::BeginCeremonyError> for WebError {
    fn from(error: ports::BeginCeremonyError) -> Self {
        match error {
            ports::BeginCeremonyError::ReauthenticationRequired => WebError::ReauthenticationRequired,
            ports::BeginCeremonyError::RateLimited { retry_after } => {
                WebError::RateLimited { limit: Limit::PasskeyCeremonies, retry_after, page: LimitedPage::Error }
            }
            ports::BeginCeremonyError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

/// The refusal a WebAuthn answer that did not check out means to the person.
fn ceremony_refusal(refusal: &ports::CeremonyRefusal) -> PasskeyRefusal {
    match refusal {
        ports::CeremonyRefusal::Malformed(_) => PasskeyRefusal::Malformed,
        ports::CeremonyRefusal::Failed(_) => PasskeyRefusal::Refused,
        ports::CeremonyRefusal::CounterWentBack => PasskeyRefusal::CounterWentBack,
    }
}

impl From<ports::AddPasskeyError> for WebError {
    fn from(error: ports::AddPasskeyError) -> Self {
        match error {
            ports::AddPasskeyError::ReauthenticationRequired => WebError::ReauthenticationRequired,
            ports::AddPasskeyError::CeremonyExpired => WebError::Passkey(PasskeyRefusal::CeremonyExpired),
            ports::AddPasskeyError::Refused(ports::CeremonyRefusal::Malformed(_)) => {
                WebError::Passkey(PasskeyRefusal::Malformed)
            }
            ports::AddPasskeyError::Refused(_) => WebError::Passkey(PasskeyRefusal::RegistrationRefused),
            ports::AddPasskeyError::AlreadyRegistered => WebError::Passkey(PasskeyRefusal::AlreadyRegistered),
            ports::AddPasskeyError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ports::ChangePasskeyError> for WebError {
    fn from(error: ports::ChangePasskeyError) -> Self {
        match error {
            ports::ChangePasskeyError::ReauthenticationRequired => WebError::ReauthenticationRequired,
            ports::ChangePasskeyError::NotFound => WebError::NoSuchPasskey,
            ports::ChangePasskeyError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ports::PasskeySignInError> for WebError {
    fn from(error: ports::PasskeySignInError) -> Self {
        match error {
            ports::PasskeySignInError::CeremonyExpired => WebError::Passkey(PasskeyRefusal::CeremonyExpired),
            ports::PasskeySignInError::Refused(refusal) => WebError::Passkey(ceremony_refusal(&refusal)),
            ports::PasskeySignInError::UnknownPasskey => WebError::Passkey(PasskeyRefusal::Unknown),
            ports::PasskeySignInError::RateLimited { retry_after } => {
                WebError::RateLimited { limit: Limit::FailedPasskeys, retry_after, page: LimitedPage::Error }
            }
            ports::PasskeySignInError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<SetPasswordError> for WebError {
    fn from(error: SetPasswordError) -> Self {
        match error {
            SetPasswordError::ReauthenticationRequired => WebError::ReauthenticationRequired,
            SetPasswordError::Refused(refusal) => WebError::PasswordRefused(refusal),
            SetPasswordError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

/// What a person reads when a new password is refused.
pub fn password_refusal_sentence(refusal: PasswordRefusal) -> Sentence {
    match refusal {
        PasswordRefusal::TooShort { min } => Sentence::new("password-too-short").arg("min", min as u64),
        PasswordRefusal::TooLong => Sentence::new("password-too-long").arg("max", domain::password::MAX_LENGTH as u64),
        PasswordRefusal::ControlCharacter => Sentence::new("password-control-character"),
        PasswordRefusal::ContainsAddress => Sentence::new("password-contains-address"),
        PasswordRefusal::Common => Sentence::new("password-common"),
    }
}

/// The `type` suffix of a refused password's problem document.
fn password_refusal_kind(refusal: PasswordRefusal) -> &'static str {
    match refusal {
        PasswordRefusal::TooShort { .. } => "password-too-short",
        PasswordRefusal::TooLong => "password-too-long",
        PasswordRefusal::ControlCharacter => "password-control-character",
        PasswordRefusal::ContainsAddress => "password-contains-address",
        PasswordRefusal::Common => "password-common",
    }
}

/// Why a link signed nobody in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Not a link this service sent (or tampered with, or purged).
    Invalid,
    /// Used already.
    Used,
    /// A newer link to the same address replaced it.
    Replaced,
    /// Past its expiry.
    Expired,
}

impl LinkRefusal {
    /// The `type` suffix of its problem document.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "link-invalid",
            LinkRefusal::Used => "link-used",
            LinkRefusal::Replaced => "link-replaced",
            LinkRefusal::Expired => "link-expired",
        }
    }

    /// The error page's `reason` parameter.
    pub fn reason(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "invalid",
            LinkRefusal::Used => "used",
            LinkRefusal::Replaced => "replaced",
            LinkRefusal::Expired => "expired",
        }
    }
}

/// How one error is answered: everything the response needs, decided by [`WebError::answer`]
/// in one `match`, so that a new error is one arm there.
struct Answer {
    /// The HTTP status.
    status: StatusCode,
    /// The problem type's suffix: `urn:magiclink:problem:<kind>`.
    kind: &'static str,
    /// The problem's title (a sentence of the translations).
    title: Sentence,
    /// What to do about it, safe to show anyone.
    detail: Sentence,
    /// What a person sees, when it is more than the plain error page.
    page: Page,
    /// What the account page shows, when the error is met by one of its forms.
    account: Option<AccountShown>,
    /// What it counts as in the metrics, if anything.
    metric: Option<Metric>,
    /// How long to wait before trying again (`Retry-After`).
    retry_after: Option<chrono::TimeDelta>,
    /// Close the connection: a body was left unread (too large, too slow) and must not be
    /// taken for the next request.
    close: bool,
}

/// The page a person sees for an error, beyond the plain error page.
enum Page {
    /// The plain error page (or the JSON problem).
    Plain,
    /// "Reload and try again", for a missing or stale CSRF token.
    Csrf,
    /// The sign-in form again, with what was typed and the message under the field.
    SignInForm {
        /// The typed address.
        typed: String,
        /// The callback URL, kept for the next attempt.
        callback_url: Option<String>,
        /// The message, under the link or the password form.
        message: FormError,
    },
    /// "Check your email" again, with the message under the code field.
    CheckEmail(Option<Sentence>),
    /// The link error page, saying which case (`?reason=`).
    LinkError(&'static str),
}

/// What the account page shows for an error met by one of its forms.
enum AccountShown {
    /// The page again, with this sentence under the form that was sent.
    Under(Sentence),
    /// The page again, with the "confirm it is you" forms in place of the one that was sent.
    ConfirmItIsYou,
}

/// A field of the account page refused, with the sentence shown under it.
#[derive(Debug, Clone)]
pub(crate) enum FieldError {
    /// Nothing refused.
    None,
    /// The display name.
    Name(Sentence),
    /// The new sign-in address.
    Email(Sentence),
    /// The new password.
    Password(Sentence),
    /// The current password, confirming it is the person.
    Reauthenticate(Sentence),
    /// The address typed to confirm deleting the account.
    Delete(Sentence),
}

/// What an error counts as in the metrics.
enum Metric {
    /// A sign-in attempt's outcome (`signins_total{outcome}`).
    SignIn(&'static str),
    /// A rate limit that refused (`rate_limited_total{limit}`).
    RateLimited(&'static str),
}

impl WebError {
    /// The one map from errors to answers: status, problem type and sentences, the page a
    /// person sees, the metric, and `Retry-After`. Problem documents speak English; error
    /// pages the request's language.
    fn answer(&self) -> Answer {
        let plain = |status, kind, title: &'static str, detail: &'static str| Answer {
            status,
            kind,
            title: Sentence::new(title),
            detail: Sentence::new(detail),
            page: Page::Plain,
            account: None,
            metric: None,
            retry_after: None,
            close: false,
        };
        match self {
            WebError::Csrf => Answer {
                page: Page::Csrf,
                ..plain(StatusCode::FORBIDDEN, "csrf", "problem-csrf-title", "problem-csrf-detail")
            },
            // The parser's own words stay in the log: they are terse and may quote the body.
            WebError::BadForm(_) => {
                plain(StatusCode::BAD_REQUEST, "bad-request", "problem-bad-form-title", "problem-bad-form-detail")
            }
            WebError::BadJson(_) => {
                plain(StatusCode::BAD_REQUEST, "bad-request", "problem-bad-json-title", "problem-bad-json-detail")
            }
            WebError::BadQuery(detail) => Answer {
                detail: Sentence::new("problem-as-is").arg("text", detail.as_str()),
                ..plain(StatusCode::BAD_REQUEST, "bad-request", "problem-bad-query-title", "")
            },
            WebError::InvalidEmail { typed, callback_url, reason } => Answer {
                detail: invalid_email_sentence(reason),
                page: Page::SignInForm {
                    typed: typed.clone(),
                    callback_url: callback_url.clone(),
                    message: FormError::Link(invalid_email_sentence(reason)),
                },
                account: Some(AccountShown::Under(invalid_email_sentence(reason))),
                ..plain(StatusCode::BAD_REQUEST, "invalid-email", "problem-invalid-email-title", "")
            },
            WebError::NotFound => {
                plain(StatusCode::NOT_FOUND, "not-found", "problem-not-found-title", "problem-not-found-detail")
            }
            WebError::SignedOut => {
                plain(StatusCode::UNAUTHORIZED, "signed-out", "problem-signed-out-title", "problem-signed-out-detail")
            }
            WebError::NoSuchSession => plain(
                StatusCode::NOT_FOUND,
                "no-such-session",
                "problem-no-such-session-title",
                "problem-no-such-session-detail",
            ),
            WebError::MethodNotAllowed => plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "problem-method-not-allowed-title",
                "problem-method-not-allowed-detail",
            ),
            WebError::Code(problem) => Answer {
                detail: problem.sentence(),
                page: Page::CheckEmail(Some(problem.sentence())),
                metric: Some(Metric::SignIn(problem.kind())),
                ..plain(StatusCode::BAD_REQUEST, problem.kind(), "problem-code-title", "")
            },
            WebError::Link(refusal) => {
                let (status, title, detail) = match refusal {
                    LinkRefusal::Invalid => {
                        (StatusCode::BAD_REQUEST, "problem-link-invalid-title", "problem-link-invalid-detail")
                    }
                    LinkRefusal::Used => (StatusCode::GONE, "problem-link-used-title", "problem-link-used-detail"),
                    LinkRefusal::Replaced => {
                        (StatusCode::GONE, "problem-link-replaced-title", "problem-link-replaced-detail")
                    }
                    LinkRefusal::Expired => {
                        (StatusCode::GONE, "problem-link-expired-title", "problem-link-expired-detail")
                    }
                };
                Answer {
                    page: Page::LinkError(refusal.reason()),
                    metric: Some(Metric::SignIn(refusal.kind())),
                    ..plain(status, refusal.kind(), title, detail)
                }
            }
            WebError::AddressChange(refusal) => match refusal {
                AddressChangeRefusal::Invalid => plain(
                    StatusCode::BAD_REQUEST,
                    "address-change-invalid",
                    "problem-address-change-invalid-title",
                    "problem-address-change-invalid-detail",
                ),
                AddressChangeRefusal::Used => plain(
                    StatusCode::GONE,
                    "address-change-used",
                    "problem-address-change-used-title",
                    "problem-address-change-used-detail",
                ),
                AddressChangeRefusal::Expired => plain(
                    StatusCode::GONE,
                    "address-change-expired",
                    "problem-address-change-expired-title",
                    "problem-address-change-expired-detail",
                ),
                AddressChangeRefusal::Taken => plain(
                    StatusCode::CONFLICT,
                    "address-taken",
                    "problem-address-taken-title",
                    "problem-address-taken-detail",
                ),
                AddressChangeRefusal::NotTheRequester => plain(
                    StatusCode::FORBIDDEN,
                    "address-change-not-requester",
                    "problem-address-change-not-requester-title",
                    "problem-address-change-not-requester-detail",
                ),
            },
            WebError::ConfirmationMismatch => Answer {
                account: Some(AccountShown::Under(Sentence::new("account-delete-mismatch"))),
                ..plain(
                    StatusCode::BAD_REQUEST,
                    "confirmation-mismatch",
                    "problem-confirmation-mismatch-title",
                    "problem-confirmation-mismatch-detail",
                )
            },
            WebError::SameAddress => Answer {
                account: Some(AccountShown::Under(Sentence::new("account-same-address"))),
                ..plain(
                    StatusCode::BAD_REQUEST,
                    "same-address",
                    "problem-same-address-title",
                    "problem-same-address-detail",
                )
            },
            WebError::AddressNotAllowed => Answer {
                account: Some(AccountShown::Under(Sentence::new("account-address-not-allowed"))),
                ..plain(
                    StatusCode::BAD_REQUEST,
                    "address-not-allowed",
                    "problem-address-not-allowed-title",
                    "problem-address-not-allowed-detail",
                )
            },
            WebError::PasswordsDisabled => plain(
                StatusCode::NOT_FOUND,
                "passwords-disabled",
                "problem-passwords-disabled-title",
                "problem-passwords-disabled-detail",
            ),
            WebError::PasskeysDisabled => plain(
                StatusCode::NOT_FOUND,
                "passkeys-disabled",
                "problem-passkeys-disabled-title",
                "problem-passkeys-disabled-detail",
            ),
            WebError::Passkey(refusal) => {
                let (status, kind, title, detail) = refusal.parts();
                let metric = matches!(
                    refusal,
                    PasskeyRefusal::Refused | PasskeyRefusal::Unknown | PasskeyRefusal::CounterWentBack
                )
                .then_some(Metric::SignIn(kind));
                Answer { metric, ..plain(status, kind, title, detail) }
            }
            WebError::NoSuchPasskey => plain(
                StatusCode::NOT_FOUND,
                "no-such-passkey",
                "problem-no-such-passkey-title",
                "problem-no-such-passkey-detail",
            ),
            WebError::PasswordRejected { typed, callback_url } => Answer {
                page: Page::SignInForm {
                    typed: typed.clone(),
                    callback_url: callback_url.clone(),
                    message: FormError::Password(Sentence::new("password-rejected")),
                },
                metric: Some(Metric::SignIn("password-rejected")),
                // On the account page it is the current password, confirming it is the person.
                account: Some(AccountShown::Under(Sentence::new("account-reauth-wrong"))),
                ..plain(
                    StatusCode::UNAUTHORIZED,
                    "password-rejected",
                    "problem-password-rejected-title",
                    "problem-password-rejected-detail",
                )
            },
            WebError::PasswordRefused(refusal) => Answer {
                detail: password_refusal_sentence(*refusal),
                account: Some(AccountShown::Under(password_refusal_sentence(*refusal))),
                ..plain(StatusCode::BAD_REQUEST, password_refusal_kind(*refusal), "problem-password-refused-title", "")
            },
            WebError::ReauthenticationRequired => Answer {
                account: Some(AccountShown::ConfirmItIsYou),
                ..plain(
                    StatusCode::FORBIDDEN,
                    "reauthentication-required",
                    "problem-reauthentication-required-title",
                    "problem-reauthentication-required-detail",
                )
            },
            WebError::RateLimited { limit, retry_after, page } => {
                let sentence = limit.sentence(*retry_after);
                let page = match page {
                    LimitedPage::SignIn { typed, callback_url } => Page::SignInForm {
                        typed: typed.clone(),
                        callback_url: callback_url.clone(),
                        message: FormError::Link(sentence.clone()),
                    },
                    LimitedPage::PasswordSignIn { typed, callback_url } => Page::SignInForm {
                        typed: typed.clone(),
                        callback_url: callback_url.clone(),
                        message: FormError::Password(sentence.clone()),
                    },
                    LimitedPage::CheckEmail => Page::CheckEmail(Some(sentence.clone())),
                    LimitedPage::Error => Page::Plain,
                };
                Answer {
                    account: Some(AccountShown::Under(sentence.clone())),
                    detail: sentence,
                    page,
                    metric: Some(Metric::RateLimited(limit.kind())),
                    retry_after: Some(*retry_after),
                    ..plain(StatusCode::TOO_MANY_REQUESTS, limit.kind(), "problem-rate-limited-title", "")
                }
            }
            WebError::PayloadTooLarge { limit } => Answer {
                detail: Sentence::new("problem-payload-too-large-detail").arg("limit", *limit),
                close: true,
                ..plain(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "problem-payload-too-large-title", "")
            },
            WebError::LengthRequired => Answer {
                close: true,
                ..plain(
                    StatusCode::LENGTH_REQUIRED,
                    "length-required",
                    "problem-length-required-title",
                    "problem-length-required-detail",
                )
            },
            WebError::RequestTimeout => Answer {
                close: true,
                ..plain(
                    StatusCode::REQUEST_TIMEOUT,
                    "request-timeout",
                    "problem-request-timeout-title",
                    "problem-request-timeout-detail",
                )
            },
            WebError::OAuth(refusal) => {
                let (status, code, _) = refusal.parts();
                let (metric, retry_after) = match refusal {
                    OAuthRefusal::RateLimited { retry_after } => {
                        (Some(Metric::RateLimited("rate-limited-oidc-token")), Some(*retry_after))
                    }
                    _ => (None, None),
                };
                Answer { metric, retry_after, ..plain(status, code, "problem-oauth-title", "problem-oauth-detail") }
            }
            WebError::Oidc(refusal) => {
                let (kind, title, detail) = refusal.parts();
                plain(StatusCode::BAD_REQUEST, kind, title, detail)
            }
            WebError::NoSuchApp => {
                plain(StatusCode::NOT_FOUND, "no-such-app", "problem-no-such-app-title", "problem-no-such-app-detail")
            }
            WebError::Refused(status) => {
                plain(*status, "bad-request", "problem-refused-title", "problem-refused-detail")
            }
            WebError::Unexpected(error) if Unavailable::in_chain(error).is_some() => Answer {
                retry_after: Some(RETRY_AFTER_OUTAGE),
                ..plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "problem-unavailable-title",
                    "problem-unavailable-detail",
                )
            },
            WebError::Unexpected(_) => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "problem-internal-title",
                "problem-internal-detail",
            ),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.answer().status
    }

    /// How the account page answers this error when one of its forms met it: the status, and
    /// the sentence to show under that form (`None`: show the "confirm it is you" forms
    /// instead). `None` when the account page does not show it: the plain map answers it.
    pub(crate) fn on_account_page(&self) -> Option<(StatusCode, Option<Sentence>)> {
        let answer = self.answer();
        match answer.account? {
            AccountShown::Under(sentence) => Some((answer.status, Some(sentence))),
            AccountShown::ConfirmItIsYou => Some((answer.status, None)),
        }
    }

    /// What the map adds to a page a handler rendered for this error: the metric, and
    /// `Retry-After`.
    pub(crate) fn finish(&self, response: &mut Response, state: &AppState) {
        let answer = self.answer();
        self.count(&answer, state);
        if let Some(wait) = answer.retry_after {
            set_retry_after(response, wait);
        }
    }

    /// The response for this failure, as a page or a problem document.
    pub fn into_response(self, format: Format, req: &Request, state: &AppState) -> Response {
        let answer = self.answer();
        let path = req.uri().path();
        let lang = crate::lang::of(req);
        // People get the page they were on again, saying what went wrong; anything else is a
        // page or problem that needs nothing from the request.
        let again = match (format, &answer.page) {
            (Format::Html, Page::SignInForm { typed, callback_url, message }) => {
                Some(sign_in_form(req, state, typed, callback_url.as_deref(), message.clone(), answer.status))
            }
            (Format::Html, Page::CheckEmail(message)) => {
                Some(check_email_page(req, state, message.clone(), answer.status))
            }
            (Format::Html, Page::LinkError(reason)) => Some(Ok(Redirect::see_other(format!(
                "{}?error=Verification&reason={reason}",
                state.settings.pages.error
            ))
            .into_response())),
            _ => None,
        };
        match again {
            Some(Ok(mut response)) => {
                self.count(&answer, state);
                if let Some(wait) = answer.retry_after {
                    set_retry_after(&mut response, wait);
                }
                response
            }
            // The page itself failed to render: the plain error page (or problem) instead.
            Some(Err(error)) => WebError::Unexpected(error).standalone_response(format, path, &lang, state),
            None => self.answer_with(answer, format, path, &lang, state),
        }
    }

    /// The response for this failure when no request is at hand any more (the router's own
    /// 404 and 405): a page that needs nothing from the request, or a problem document.
    pub fn standalone_response(self, format: Format, path: &str, lang: &str, state: &AppState) -> Response {
        let answer = self.answer();
        self.answer_with(answer, format, path, lang, state)
    }

    /// The plain error page or problem document for `answer`, logged and counted.
    fn answer_with(self, answer: Answer, format: Format, path: &str, lang: &str, state: &AppState) -> Response {
        self.count(&answer, state);
        match &self {
            // An outage is the operator's to fix, not a bug: one warning per refused request,
            // with the cause, and the health check says which dependency is away.
            WebError::Unexpected(error) if answer.status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(path = %path, error = %format!("{error:#}"), "request refused: a dependency is unavailable");
            }
            WebError::Unexpected(error) => {
                tracing::error!(path = %path, error = %format!("{error:#}"), "request failed")
            }
            _ => {}
        }
        let mut response = match (&self, format) {
            (WebError::OAuth(refusal), _) => oauth_response(refusal),
            (_, Format::Json) => self.problem_response(&answer, state),
            (_, Format::Html) => self.page_response(&answer, lang, state).unwrap_or_else(|error| {
                // The error page itself failed: fall back to plain text rather than recurse.
                tracing::error!(error = %format!("{error:#}"), "error page failed");
                "Something went wrong on our side.".with_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }),
        };
        if answer.close {
            response.headers_mut().insert(header::CONNECTION, poem::http::HeaderValue::from_static("close"));
        }
        if let Some(wait) = answer.retry_after {
            set_retry_after(&mut response, wait);
        }
        response
    }

    /// Counts the answer in the metrics, when it counts as something.
    fn count(&self, answer: &Answer, state: &AppState) {
        match answer.metric {
            Some(Metric::SignIn(outcome)) => telemetry::sign_in(&state.settings, outcome),
            Some(Metric::RateLimited(limit)) => telemetry::rate_limited(&state.settings, limit),
            None => {}
        }
    }

    fn problem_response(&self, answer: &Answer, state: &AppState) -> Response {
        let say = |sentence: &Sentence| state.pages.translations().say(i18n::DEFAULT, sentence);
        let mut body = serde_json::json!({
            "type": format!("urn:magiclink:problem:{}", answer.kind),
            "title": say(&answer.title),
            "status": answer.status.as_u16(),
            "detail": say(&answer.detail).replace("{base}", &state.settings.auth_base_path),
        });
        if let WebError::Code(CodeProblem::Wrong { attempts_left }) = self {
            body["attemptsLeft"] = serde_json::json!(attempts_left);
        }
        if let Some(retry_after) = answer.retry_after {
            body["retryAfter"] = serde_json::json!(retry_after_seconds(retry_after));
        }
        Response::builder().status(answer.status).content_type("application/problem+json").body(body.to_string())
    }

    fn page_response(&self, answer: &Answer, lang: &str, state: &AppState) -> Result<Response, WebError> {
        if let Page::Csrf = answer.page {
            return Ok(page_in(lang, state, answer.status, "csrf_error.html", Context::new())?);
        }
        let say = |sentence: &Sentence| state.pages.translations().say(lang, sentence);
        let mut context = Context::new();
        context.insert("title", &say(&answer.title));
        context.insert("detail", &say(&answer.detail).replace("{base}", &state.settings.auth_base_path));
        Ok(page_in(lang, state, answer.status, "server_error.html", context)?)
    }
}

/// What a person reads when the address they typed is refused: a sentence, in the site's voice.
/// (The domain's own messages are terse diagnostics for logs and errors.)
pub fn invalid_email_sentence(reason: &InvalidEmail) -> Sentence {
    Sentence::new(match reason {
        InvalidEmail::Empty => "invalid-email-empty",
        InvalidEmail::TooLong => "invalid-email-too-long",
        InvalidEmail::ForbiddenCharacter => "invalid-email-forbidden-character",
        InvalidEmail::NotOneAddress => "invalid-email-not-one-address",
        InvalidEmail::InvalidLocalPart => "invalid-email-local-part",
        InvalidEmail::InvalidDomain => "invalid-email-domain",
        InvalidEmail::EncodedWord => "invalid-email-encoded-word",
        InvalidEmail::NonAsciiLocalPart => "invalid-email-non-ascii-local-part",
    })
}

/// Turns what the router or an extractor refused (an unknown path, a wrong method, a query
/// that does not parse) into the site's own error page or problem document, so that every
/// answer looks like the service and carries its headers.
pub fn router_error(error: &poem::Error, format: Format, path: &str, lang: &str, state: &AppState) -> Response {
    let web_error = match error.status() {
        StatusCode::NOT_FOUND => WebError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => WebError::MethodNotAllowed,
        status if status.is_client_error() => WebError::Refused(status),
        _ => WebError::Unexpected(anyhow::anyhow!("{error}")),
    };
    web_error.standalone_response(format, path, lang, state)
}

/// Says in `Retry-After` how long a rate-limited client should wait.
pub(crate) fn set_retry_after(response: &mut Response, wait: chrono::TimeDelta) {
    if let Ok(value) = poem::http::HeaderValue::from_str(&retry_after_seconds(wait).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
}

/// Turns a handler's result into a response, mapping errors in the one place that does so.
pub(crate) fn respond(req: &Request, state: &AppState, result: Result<Response, WebError>) -> Response {
    result.unwrap_or_else(|error| error.into_response(Format::of(req), req, state))
}

/// An OAuth error as RFC 6749 §5.2 shapes it, with the challenge RFC 6749 §5.2 and RFC 6750
/// §3 ask for on a 401.
fn oauth_response(refusal: &OAuthRefusal) -> Response {
    let (status, code, description) = refusal.parts();
    let body = serde_json::json!({ "error": code, "error_description": description });
    let mut response = Response::builder().status(status).content_type("application/json").body(body.to_string());
    let challenge = match refusal {
        OAuthRefusal::InvalidClient => Some("Basic realm=\"magiclink\""),
        OAuthRefusal::InvalidToken => Some("Bearer error=\"invalid_token\""),
        _ => None,
    };
    if let Some(challenge) = challenge {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, poem::http::HeaderValue::from_static(challenge));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use poem::http::StatusCode;

    use super::{AddressChangeRefusal, CodeProblem, Limit, LimitedPage, LinkRefusal, PasskeyRefusal, WebError};

    /// One of each kind of error. The `match` below does not compile when a variant is added
    /// without a case here.
    fn one_of_each() -> Vec<WebError> {
        let outage = anyhow::Error::new(std::io::Error::other("refused")).context(ports::Unavailable::Database);
        let errors = vec![
            WebError::Csrf,
            WebError::BadForm("x".to_owned()),
            WebError::BadJson("x".to_owned()),
            WebError::BadQuery("x".to_owned()),
            WebError::InvalidEmail { typed: "x".to_owned(), callback_url: None, reason: domain::InvalidEmail::Empty },
            WebError::NotFound,
            WebError::SignedOut,
            WebError::NoSuchSession,
            WebError::MethodNotAllowed,
            WebError::PayloadTooLarge { limit: 1 },
            WebError::LengthRequired,
            WebError::RequestTimeout,
            WebError::RateLimited {
                limit: Limit::LinksToAddress,
                retry_after: chrono::TimeDelta::seconds(1),
                page: LimitedPage::Error,
            },
            WebError::Link(LinkRefusal::Invalid),
            WebError::Link(LinkRefusal::Used),
            WebError::Link(LinkRefusal::Replaced),
            WebError::Link(LinkRefusal::Expired),
            WebError::Code(CodeProblem::Wrong { attempts_left: 1 }),
            WebError::AddressChange(AddressChangeRefusal::Invalid),
            WebError::AddressChange(AddressChangeRefusal::Used),
            WebError::AddressChange(AddressChangeRefusal::Expired),
            WebError::AddressChange(AddressChangeRefusal::Taken),
            WebError::AddressChange(AddressChangeRefusal::NotTheRequester),
            WebError::SameAddress,
            WebError::ConfirmationMismatch,
            WebError::AddressNotAllowed,
            WebError::PasswordsDisabled,
            WebError::PasswordRejected { typed: "x".to_owned(), callback_url: None },
            WebError::PasswordRefused(domain::PasswordRefusal::Common),
            WebError::ReauthenticationRequired,
            WebError::PasskeysDisabled,
            WebError::Passkey(PasskeyRefusal::CeremonyExpired),
            WebError::Passkey(PasskeyRefusal::Malformed),
            WebError::Passkey(PasskeyRefusal::Refused),
            WebError::Passkey(PasskeyRefusal::Unknown),
            WebError::Passkey(PasskeyRefusal::CounterWentBack),
            WebError::Passkey(PasskeyRefusal::AlreadyRegistered),
            WebError::Passkey(PasskeyRefusal::InvalidName),
            WebError::Passkey(PasskeyRefusal::RegistrationRefused),
            WebError::NoSuchPasskey,
            WebError::OAuth(super::OAuthRefusal::InvalidClient),
            WebError::OAuth(super::OAuthRefusal::InvalidGrant("x")),
            WebError::OAuth(super::OAuthRefusal::InvalidRequest("x")),
            WebError::OAuth(super::OAuthRefusal::InvalidScope),
            WebError::OAuth(super::OAuthRefusal::UnsupportedGrantType),
            WebError::OAuth(super::OAuthRefusal::InvalidToken),
            WebError::OAuth(super::OAuthRefusal::RateLimited { retry_after: chrono::TimeDelta::seconds(1) }),
            WebError::Oidc(super::OidcRefusal::UnknownClient),
            WebError::Oidc(super::OidcRefusal::UnregisteredRedirectUri),
            WebError::Oidc(super::OidcRefusal::InvalidLogoutHint),
            WebError::Oidc(super::OidcRefusal::UnregisteredLogoutRedirectUri),
            WebError::NoSuchApp,
            WebError::Refused(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            WebError::Unexpected(anyhow::anyhow!("a bug")),
            WebError::Unexpected(outage),
        ];
        for error in &errors {
            match error {
                WebError::Csrf
                | WebError::BadForm(_)
                | WebError::BadJson(_)
                | WebError::BadQuery(_)
                | WebError::InvalidEmail { .. }
                | WebError::NotFound
                | WebError::SignedOut
                | WebError::NoSuchSession
                | WebError::MethodNotAllowed
                | WebError::PayloadTooLarge { .. }
                | WebError::LengthRequired
                | WebError::RequestTimeout
                | WebError::RateLimited { .. }
                | WebError::Link(_)
                | WebError::Code(_)
                | WebError::AddressChange(_)
                | WebError::SameAddress
                | WebError::ConfirmationMismatch
                | WebError::AddressNotAllowed
                | WebError::PasswordsDisabled
                | WebError::PasswordRejected { .. }
                | WebError::PasswordRefused(_)
                | WebError::ReauthenticationRequired
                | WebError::PasskeysDisabled
                | WebError::Passkey(_)
                | WebError::NoSuchPasskey
                | WebError::OAuth(_)
                | WebError::Oidc(_)
                | WebError::NoSuchApp
                | WebError::Refused(_)
                | WebError::Unexpected(_) => {}
            }
        }
        errors
    }

    /// The error statuses each operation of the checked-in OpenAPI document lists (which a
    /// system test keeps equal to the served one).
    fn documented_error_statuses() -> BTreeMap<String, BTreeSet<u16>> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let document: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json")).expect("JSON");
        let mut operations = BTreeMap::new();
        for (path, methods) in document["paths"].as_object().expect("paths") {
            for (method, operation) in methods.as_object().expect("methods") {
                let statuses = operation["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .filter_map(|status| status.parse::<u16>().ok())
                    .filter(|status| *status >= 400)
                    .collect();
                operations.insert(format!("{} {path}", method.to_uppercase()), statuses);
            }
        }
        operations
    }

    /// The errors each JSON operation can meet, written down here apart from the operations'
    /// own lists of statuses, so that the two must agree: what parsing the body, the CSRF and
    /// session checks and the use case behind the operation can answer.
    fn errors_of(operation: &str) -> Vec<WebError> {
        let bug = || WebError::Unexpected(anyhow::anyhow!("a bug"));
        let outage = || {
            WebError::Unexpected(anyhow::Error::new(std::io::Error::other("x")).context(ports::Unavailable::Database))
        };
        let unreadable =
            || vec![WebError::BadJson("x".to_owned()), WebError::Refused(StatusCode::UNSUPPORTED_MEDIA_TYPE)];
        let limited = || WebError::RateLimited {
            limit: Limit::FailedSignIns,
            retry_after: chrono::TimeDelta::seconds(1),
            page: LimitedPage::Error,
        };
        let invalid_email = || WebError::InvalidEmail {
            typed: "x".to_owned(),
            callback_url: None,
            reason: domain::InvalidEmail::Empty,
        };
        let rejected = || WebError::PasswordRejected { typed: "x".to_owned(), callback_url: None };
        let mut errors = match operation {
            "GET /providers" => return Vec::new(),
            "GET /csrf" | "GET /session" => vec![],
            "GET /sessions" => vec![WebError::SignedOut],
            "DELETE /sessions/{id}" => vec![WebError::SignedOut, WebError::Csrf, WebError::NoSuchSession],
            "POST /sessions/revoke-others" => vec![WebError::SignedOut, WebError::Csrf],
            "POST /signin/email" => [unreadable(), vec![WebError::Csrf, invalid_email(), limited()]]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>(),
            "POST /signout" => [unreadable(), vec![WebError::Csrf]].into_iter().flatten().collect::<Vec<_>>(),
            "POST /callback/email" => [
                unreadable(),
                vec![
                    WebError::Csrf,
                    WebError::Link(LinkRefusal::Invalid),
                    WebError::Link(LinkRefusal::Used),
                    WebError::Link(LinkRefusal::Replaced),
                    WebError::Link(LinkRefusal::Expired),
                    WebError::Code(CodeProblem::Exhausted),
                    limited(),
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "POST /callback/password" => {
                [unreadable(), vec![WebError::Csrf, WebError::PasswordsDisabled, rejected(), limited()]]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
            }
            "POST /email" => [
                unreadable(),
                vec![
                    WebError::SignedOut,
                    WebError::Csrf,
                    invalid_email(),
                    WebError::SameAddress,
                    WebError::AddressNotAllowed,
                    WebError::ReauthenticationRequired,
                    limited(),
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "POST /email/confirm" => [
                unreadable(),
                vec![
                    WebError::Csrf,
                    WebError::AddressChange(AddressChangeRefusal::Invalid),
                    WebError::AddressChange(AddressChangeRefusal::Used),
                    WebError::AddressChange(AddressChangeRefusal::Expired),
                    WebError::AddressChange(AddressChangeRefusal::Taken),
                    WebError::AddressChange(AddressChangeRefusal::NotTheRequester),
                    limited(),
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "POST /password" => [
                unreadable(),
                vec![
                    WebError::SignedOut,
                    WebError::Csrf,
                    WebError::PasswordsDisabled,
                    WebError::PasswordRefused(domain::PasswordRefusal::Common),
                    WebError::ReauthenticationRequired,
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "POST /reauthenticate" => [
                unreadable(),
                vec![WebError::SignedOut, WebError::Csrf, WebError::PasswordsDisabled, rejected(), limited()],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "GET /passkeys" => vec![WebError::SignedOut, WebError::PasskeysDisabled],
            // A `limit` that is not a number is refused by the parameter's parsing.
            "GET /activity" => vec![WebError::SignedOut, WebError::BadQuery("x".to_owned())],
            "GET /account/export" => vec![WebError::SignedOut, WebError::ReauthenticationRequired],
            "DELETE /account" => [
                unreadable(),
                vec![
                    WebError::SignedOut,
                    WebError::Csrf,
                    WebError::ReauthenticationRequired,
                    WebError::ConfirmationMismatch,
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "POST /passkeys/registration" => vec![
                WebError::SignedOut,
                WebError::Csrf,
                WebError::ReauthenticationRequired,
                WebError::PasskeysDisabled,
            ],
            "POST /passkeys" => [
                unreadable(),
                vec![
                    WebError::SignedOut,
                    WebError::Csrf,
                    WebError::ReauthenticationRequired,
                    WebError::PasskeysDisabled,
                    WebError::Passkey(PasskeyRefusal::CeremonyExpired),
                    WebError::Passkey(PasskeyRefusal::Malformed),
                    WebError::Passkey(PasskeyRefusal::InvalidName),
                    WebError::Passkey(PasskeyRefusal::RegistrationRefused),
                    WebError::Passkey(PasskeyRefusal::AlreadyRegistered),
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "PATCH /passkeys/{id}" => [
                unreadable(),
                vec![
                    WebError::SignedOut,
                    WebError::Csrf,
                    WebError::PasskeysDisabled,
                    WebError::NoSuchPasskey,
                    WebError::Passkey(PasskeyRefusal::InvalidName),
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            "DELETE /passkeys/{id}" => vec![
                WebError::SignedOut,
                WebError::Csrf,
                WebError::ReauthenticationRequired,
                WebError::PasskeysDisabled,
                WebError::NoSuchPasskey,
            ],
            "POST /signin/passkey" => vec![WebError::Csrf, WebError::PasskeysDisabled, limited()],
            "POST /callback/passkey" => [
                unreadable(),
                vec![
                    WebError::Csrf,
                    WebError::PasskeysDisabled,
                    WebError::Passkey(PasskeyRefusal::CeremonyExpired),
                    WebError::Passkey(PasskeyRefusal::Malformed),
                    WebError::Passkey(PasskeyRefusal::Refused),
                    WebError::Passkey(PasskeyRefusal::Unknown),
                    WebError::Passkey(PasskeyRefusal::CounterWentBack),
                    limited(),
                ],
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
            other => panic!("{other} is new: say here which errors it can meet"),
        };
        // Every operation that can fail at all can meet a bug and an outage.
        errors.extend([bug(), outage()]);
        errors
    }

    #[test]
    fn each_operation_lists_exactly_the_statuses_the_map_answers_its_errors_with() {
        let operations = documented_error_statuses();
        assert!(operations.len() >= 14, "{operations:?}");
        for (operation, documented) in &operations {
            let answered: BTreeSet<u16> = errors_of(operation).iter().map(|error| error.status().as_u16()).collect();
            assert_eq!(
                documented, &answered,
                "{operation}: the document lists {documented:?}, the map answers {answered:?}"
            );
        }
        // Every kind of error is accounted for by the map (the `match` in `one_of_each`).
        assert!(one_of_each().len() > 30);
    }

    #[test]
    fn an_outage_is_503_with_retry_after_and_a_bug_500_without() {
        let statuses: Vec<(u16, Option<i64>)> = one_of_each()
            .iter()
            .filter(|error| matches!(error, WebError::Unexpected(_)))
            .map(|error| {
                let answer = error.answer();
                (answer.status.as_u16(), answer.retry_after.map(|wait| wait.num_seconds()))
            })
            .collect();
        assert_eq!(statuses, [(500, None), (503, Some(5))]);
    }
}
