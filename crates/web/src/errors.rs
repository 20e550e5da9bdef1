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
    ReadSessionError, RedeemCodeError, RedeemLinkError, RenameError, RequestLinkError, RevokeOtherSessionsError,
    RevokeSessionError, SetPasswordError, SignOutError, Unavailable,
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
    /// The link is gone (a newer sign-in retired it).
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

impl From<LinkStateError> for WebError {
    fn from(error: LinkStateError) -> Self {
        match error {
            LinkStateError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<ReadSessionError> for WebError {
    fn from(error: ReadSessionError) -> Self {
        match error {
            ReadSessionError::Unexpected(inner) => WebError::Unexpected(inner),
        }
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

impl From<ListSessionsError> for WebError {
    fn from(error: ListSessionsError) -> Self {
        match error {
            ListSessionsError::Unexpected(inner) => WebError::Unexpected(inner),
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

impl From<RenameError> for WebError {
    fn from(error: RenameError) -> Self {
        match error {
            RenameError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<RevokeOtherSessionsError> for WebError {
    fn from(error: RevokeOtherSessionsError) -> Self {
        match error {
            RevokeOtherSessionsError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<SignOutError> for WebError {
    fn from(error: SignOutError) -> Self {
        match error {
            SignOutError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

/// A link that signed nobody in, as the error it is: a page redirect for people (to the error
/// page, saying which case), a problem document for programs.
pub fn link_refusal(error: RedeemLinkError) -> WebError {
    match error {
        RedeemLinkError::Invalid => WebError::Link(LinkRefusal::Invalid),
        RedeemLinkError::AlreadyUsed => WebError::Link(LinkRefusal::Used),
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
    /// Not a link this service sent (or tampered with).
    Invalid,
    /// Used already.
    Used,
    /// Past its expiry.
    Expired,
}

impl LinkRefusal {
    /// The `type` suffix of its problem document.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "link-invalid",
            LinkRefusal::Used => "link-used",
            LinkRefusal::Expired => "link-expired",
        }
    }

    /// The error page's `reason` parameter.
    pub fn reason(self) -> &'static str {
        match self {
            LinkRefusal::Invalid => "invalid",
            LinkRefusal::Used => "used",
            LinkRefusal::Expired => "expired",
        }
    }
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::BadForm(_)
            | WebError::BadJson(_)
            | WebError::BadQuery(_)
            | WebError::InvalidEmail { .. }
            | WebError::Code(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound | WebError::NoSuchSession => StatusCode::NOT_FOUND,
            WebError::SignedOut => StatusCode::UNAUTHORIZED,
            WebError::Link(LinkRefusal::Invalid) => StatusCode::BAD_REQUEST,
            WebError::Link(LinkRefusal::Used | LinkRefusal::Expired) => StatusCode::GONE,
            WebError::AddressChange(AddressChangeRefusal::Invalid)
            | WebError::SameAddress
            | WebError::AddressNotAllowed
            | WebError::PasswordRefused(_) => StatusCode::BAD_REQUEST,
            WebError::PasswordsDisabled => StatusCode::NOT_FOUND,
            WebError::PasswordRejected { .. } => StatusCode::UNAUTHORIZED,
            WebError::ReauthenticationRequired => StatusCode::FORBIDDEN,
            WebError::AddressChange(AddressChangeRefusal::Used | AddressChangeRefusal::Expired) => StatusCode::GONE,
            WebError::AddressChange(AddressChangeRefusal::Taken) => StatusCode::CONFLICT,
            WebError::AddressChange(AddressChangeRefusal::NotTheRequester) => StatusCode::FORBIDDEN,
            WebError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            WebError::LengthRequired => StatusCode::LENGTH_REQUIRED,
            WebError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            WebError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::Refused(status) => *status,
            WebError::Unexpected(error) if Unavailable::in_chain(error).is_some() => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long a client should wait before trying again, when the answer says so: a rate
    /// limit's own wait, or a few seconds while a dependency is away.
    fn retry_after(&self) -> Option<chrono::TimeDelta> {
        match self {
            WebError::RateLimited { retry_after, .. } => Some(*retry_after),
            WebError::Unexpected(error) if Unavailable::in_chain(error).is_some() => Some(RETRY_AFTER_OUTAGE),
            _ => None,
        }
    }

    /// `(type, title, detail)` of the problem document; the detail is safe to show anyone.
    /// Title and detail are sentences of the translations: English in problem documents, the
    /// request's language on error pages.
    fn problem(&self) -> (&'static str, Sentence, Sentence) {
        let titled = |kind, title, detail| (kind, Sentence::new(title), Sentence::new(detail));
        match self {
            WebError::Csrf => titled("csrf", "problem-csrf-title", "problem-csrf-detail"),
            // The parser's own words stay in the log: they are terse and may quote the body.
            WebError::BadForm(_) => titled("bad-request", "problem-bad-form-title", "problem-bad-form-detail"),
            WebError::BadJson(_) => titled("bad-request", "problem-bad-json-title", "problem-bad-json-detail"),
            WebError::BadQuery(detail) => (
                "bad-request",
                Sentence::new("problem-bad-query-title"),
                Sentence::new("problem-as-is").arg("text", detail.as_str()),
            ),
            WebError::InvalidEmail { reason, .. } => {
                ("invalid-email", Sentence::new("problem-invalid-email-title"), invalid_email_sentence(reason))
            }
            WebError::NotFound => titled("not-found", "problem-not-found-title", "problem-not-found-detail"),
            WebError::SignedOut => titled("signed-out", "problem-signed-out-title", "problem-signed-out-detail"),
            WebError::NoSuchSession => {
                titled("no-such-session", "problem-no-such-session-title", "problem-no-such-session-detail")
            }
            WebError::MethodNotAllowed => {
                titled("method-not-allowed", "problem-method-not-allowed-title", "problem-method-not-allowed-detail")
            }
            WebError::Code(problem) => (problem.kind(), Sentence::new("problem-code-title"), problem.sentence()),
            WebError::Link(refusal @ LinkRefusal::Invalid) => {
                titled(refusal.kind(), "problem-link-invalid-title", "problem-link-invalid-detail")
            }
            WebError::Link(refusal @ LinkRefusal::Used) => {
                titled(refusal.kind(), "problem-link-used-title", "problem-link-used-detail")
            }
            WebError::Link(refusal @ LinkRefusal::Expired) => {
                titled(refusal.kind(), "problem-link-expired-title", "problem-link-expired-detail")
            }
            WebError::AddressChange(AddressChangeRefusal::Invalid) => titled(
                "address-change-invalid",
                "problem-address-change-invalid-title",
                "problem-address-change-invalid-detail",
            ),
            WebError::AddressChange(AddressChangeRefusal::Used) => {
                titled("address-change-used", "problem-address-change-used-title", "problem-address-change-used-detail")
            }
            WebError::AddressChange(AddressChangeRefusal::Expired) => titled(
                "address-change-expired",
                "problem-address-change-expired-title",
                "problem-address-change-expired-detail",
            ),
            WebError::AddressChange(AddressChangeRefusal::Taken) => {
                titled("address-taken", "problem-address-taken-title", "problem-address-taken-detail")
            }
            WebError::AddressChange(AddressChangeRefusal::NotTheRequester) => titled(
                "address-change-not-requester",
                "problem-address-change-not-requester-title",
                "problem-address-change-not-requester-detail",
            ),
            WebError::SameAddress => {
                titled("same-address", "problem-same-address-title", "problem-same-address-detail")
            }
            WebError::AddressNotAllowed => {
                titled("address-not-allowed", "problem-address-not-allowed-title", "problem-address-not-allowed-detail")
            }
            WebError::PasswordsDisabled => {
                titled("passwords-disabled", "problem-passwords-disabled-title", "problem-passwords-disabled-detail")
            }
            WebError::PasswordRejected { .. } => {
                titled("password-rejected", "problem-password-rejected-title", "problem-password-rejected-detail")
            }
            WebError::PasswordRefused(refusal) => (
                password_refusal_kind(*refusal),
                Sentence::new("problem-password-refused-title"),
                password_refusal_sentence(*refusal),
            ),
            WebError::ReauthenticationRequired => titled(
                "reauthentication-required",
                "problem-reauthentication-required-title",
                "problem-reauthentication-required-detail",
            ),
            WebError::RateLimited { limit, retry_after, .. } => {
                (limit.kind(), Sentence::new("problem-rate-limited-title"), limit.sentence(*retry_after))
            }
            WebError::PayloadTooLarge { limit } => (
                "payload-too-large",
                Sentence::new("problem-payload-too-large-title"),
                Sentence::new("problem-payload-too-large-detail").arg("limit", *limit),
            ),
            WebError::LengthRequired => {
                titled("length-required", "problem-length-required-title", "problem-length-required-detail")
            }
            WebError::RequestTimeout => {
                titled("request-timeout", "problem-request-timeout-title", "problem-request-timeout-detail")
            }
            WebError::Refused(_) => titled("bad-request", "problem-refused-title", "problem-refused-detail"),
            WebError::Unexpected(error) if Unavailable::in_chain(error).is_some() => {
                titled("unavailable", "problem-unavailable-title", "problem-unavailable-detail")
            }
            WebError::Unexpected(_) => titled("internal", "problem-internal-title", "problem-internal-detail"),
        }
    }

    /// The response for this failure, as a page or a problem document.
    pub fn into_response(self, format: Format, req: &Request, state: &AppState) -> Response {
        match &self {
            WebError::RateLimited { limit, .. } => telemetry::rate_limited(&state.settings, limit.kind()),
            WebError::Link(refusal) => telemetry::sign_in(&state.settings, refusal.kind()),
            WebError::Code(problem) => telemetry::sign_in(&state.settings, problem.kind()),
            WebError::PasswordRejected { .. } => telemetry::sign_in(&state.settings, "password-rejected"),
            _ => {}
        }
        let retry_after = self.retry_after();
        // People get the page they were on again, saying what went wrong; anything else is a
        // page or problem that needs nothing from the request.
        let status = self.status();
        let path = req.uri().path();
        let lang = crate::lang::of(req);
        let again = match (format, self) {
            (Format::Html, WebError::InvalidEmail { typed, callback_url, reason }) => {
                let message = FormError::Link(invalid_email_sentence(&reason));
                sign_in_form(req, state, &typed, callback_url.as_deref(), message, status)
            }
            (Format::Html, WebError::PasswordRejected { typed, callback_url }) => {
                let message = FormError::Password(Sentence::new("password-rejected"));
                sign_in_form(req, state, &typed, callback_url.as_deref(), message, status)
            }
            (Format::Html, WebError::Code(problem)) => check_email_page(req, state, Some(problem.sentence()), status),
            (Format::Html, WebError::Link(refusal)) => Ok(Redirect::see_other(format!(
                "{}?error=Verification&reason={}",
                state.settings.pages.error,
                refusal.reason()
            ))
            .into_response()),
            (
                Format::Html,
                WebError::RateLimited { limit, retry_after, page: LimitedPage::SignIn { typed, callback_url } },
            ) => {
                let message = FormError::Link(limit.sentence(retry_after));
                sign_in_form(req, state, &typed, callback_url.as_deref(), message, status)
            }
            (
                Format::Html,
                WebError::RateLimited { limit, retry_after, page: LimitedPage::PasswordSignIn { typed, callback_url } },
            ) => {
                let message = FormError::Password(limit.sentence(retry_after));
                sign_in_form(req, state, &typed, callback_url.as_deref(), message, status)
            }
            (Format::Html, WebError::RateLimited { limit, retry_after, page: LimitedPage::CheckEmail }) => {
                check_email_page(req, state, Some(limit.sentence(retry_after)), status)
            }
            (format, other) => Ok(other.standalone_response(format, path, &lang, state)),
        };
        // The page itself failed to render: the plain error page (or problem) instead.
        let mut response =
            again.unwrap_or_else(|error| WebError::Unexpected(error).standalone_response(format, path, &lang, state));
        if let Some(wait) = retry_after {
            set_retry_after(&mut response, wait);
        }
        response
    }

    /// The response for this failure when no request is at hand any more (the router's own
    /// 404 and 405): a page that needs nothing from the request, or a problem document.
    pub fn standalone_response(self, format: Format, path: &str, lang: &str, state: &AppState) -> Response {
        let status = self.status();
        match &self {
            // An outage is the operator's to fix, not a bug: one warning per refused request,
            // with the cause, and the health check says which dependency is away.
            WebError::Unexpected(error) if status == StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(path = %path, error = %format!("{error:#}"), "request refused: a dependency is unavailable");
            }
            WebError::Unexpected(error) => tracing::error!(path = %path, error = ?error, "request failed"),
            _ => {}
        }
        // A body left unread (too large, too slow) must not be taken for the next request.
        let close =
            matches!(self, WebError::PayloadTooLarge { .. } | WebError::LengthRequired | WebError::RequestTimeout);
        let retry_after = self.retry_after();
        let mut response = match format {
            Format::Json => self.problem_response(status, state),
            Format::Html => self.page_response(status, lang, state).unwrap_or_else(|error| {
                // The error page itself failed: fall back to plain text rather than recurse.
                tracing::error!(error = ?error, "error page failed");
                "Something went wrong on our side.".with_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }),
        };
        if close {
            response.headers_mut().insert(header::CONNECTION, poem::http::HeaderValue::from_static("close"));
        }
        if let Some(wait) = retry_after {
            set_retry_after(&mut response, wait);
        }
        response
    }

    fn problem_response(&self, status: StatusCode, state: &AppState) -> Response {
        let (kind, title, detail) = self.problem();
        let say = |sentence: &Sentence| state.pages.translations().say(i18n::DEFAULT, sentence);
        let mut body = serde_json::json!({
            "type": format!("urn:magiclink:problem:{kind}"),
            "title": say(&title),
            "status": status.as_u16(),
            "detail": say(&detail).replace("{base}", &state.settings.auth_base_path),
        });
        if let WebError::Code(CodeProblem::Wrong { attempts_left }) = self {
            body["attemptsLeft"] = serde_json::json!(attempts_left);
        }
        if let Some(retry_after) = self.retry_after() {
            body["retryAfter"] = serde_json::json!(retry_after_seconds(retry_after));
        }
        Response::builder().status(status).content_type("application/problem+json").body(body.to_string())
    }

    fn page_response(self, status: StatusCode, lang: &str, state: &AppState) -> Result<Response, WebError> {
        if let WebError::Csrf = self {
            return Ok(page_in(lang, state, status, "csrf_error.html", Context::new())?);
        }
        let (_, title, detail) = self.problem();
        let say = |sentence: &Sentence| state.pages.translations().say(lang, sentence);
        let mut context = Context::new();
        context.insert("title", &say(&title));
        context.insert("detail", &say(&detail).replace("{base}", &state.settings.auth_base_path));
        Ok(page_in(lang, state, status, "server_error.html", context)?)
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
