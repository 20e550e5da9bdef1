//! The one place where failures become HTTP responses.
//!
//! Each use-case error is mapped here, once: to a status, and to a page for people or an RFC 9457
//! problem document for programs (chosen by `Accept`). Server errors log their whole cause chain
//! and show a fixed message; nothing internal reaches the response.

use domain::InvalidEmail;
use poem::http::{header, StatusCode};
use poem::web::Redirect;
use poem::{IntoResponse, Request, Response};
use ports::{ReadSessionError, RedeemLinkError, RequestLinkError, SignOutError};
use tera::Context;

use crate::pages::{page, sign_in_form};
use crate::AppState;

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
    /// The body could not be read as a form.
    #[error("unreadable form: {0}")]
    BadForm(String),
    /// A query parameter is not acceptable.
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
    /// Anything else: logged in full, shown as a fixed message.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<ReadSessionError> for WebError {
    fn from(error: ReadSessionError) -> Self {
        match error {
            ReadSessionError::Unexpected(inner) => WebError::Unexpected(inner),
        }
    }
}

impl From<RequestLinkError> for WebError {
    fn from(error: RequestLinkError) -> Self {
        match error {
            RequestLinkError::Unexpected(inner) => WebError::Unexpected(inner),
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

/// Where a link that signed nobody in sends the person: the error page, saying which case.
///
/// # Errors
/// [`WebError::Unexpected`] for infrastructure failures, which are not the link's fault.
pub fn redeem_failure(error: RedeemLinkError, state: &AppState) -> Result<Response, WebError> {
    let error_page = &state.settings.pages.error;
    let location = match error {
        RedeemLinkError::Invalid => format!("{error_page}?error=Verification&reason=invalid"),
        RedeemLinkError::AlreadyUsed => format!("{error_page}?error=Verification&reason=used"),
        RedeemLinkError::Expired { email } => {
            let query: String =
                url::form_urlencoded::Serializer::new(String::new()).append_pair("email", email.as_str()).finish();
            format!("{error_page}?error=Verification&reason=expired&{query}")
        }
        RedeemLinkError::Unexpected(inner) => return Err(WebError::Unexpected(inner)),
    };
    Ok(Redirect::see_other(location).into_response())
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::Csrf => StatusCode::FORBIDDEN,
            WebError::BadForm(_) | WebError::BadQuery(_) | WebError::InvalidEmail { .. } => StatusCode::BAD_REQUEST,
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `(type, title, detail)` of the problem document; the detail is safe to show anyone.
    fn problem(&self) -> (&'static str, &'static str, String) {
        match self {
            WebError::Csrf => (
                "csrf",
                "CSRF token missing or invalid",
                "Fetch a token from GET {base}/csrf and send it as csrfToken with its cookie".to_owned(),
            ),
            WebError::BadForm(detail) => ("bad-request", "The request body is not a readable form", detail.clone()),
            WebError::BadQuery(detail) => ("bad-request", "A query parameter is not acceptable", detail.clone()),
            WebError::InvalidEmail { reason, .. } => ("invalid-email", "Invalid email address", reason.to_string()),
            WebError::NotFound => ("not-found", "Not found", "There is nothing at this address".to_owned()),
            WebError::Unexpected(_) => (
                "internal",
                "Something went wrong on our side",
                "The error was logged; try again in a moment".to_owned(),
            ),
        }
    }

    /// The response for this failure, as a page or a problem document.
    pub fn into_response(self, format: Format, req: &Request, state: &AppState) -> Response {
        let status = self.status();
        if let WebError::Unexpected(error) = &self {
            tracing::error!(path = %req.uri().path(), error = ?error, "request failed");
        }
        match format {
            Format::Json => self.problem_response(status, state),
            Format::Html => self.page_response(status, req, state).unwrap_or_else(|error| {
                // The error page itself failed: fall back to plain text rather than recurse.
                tracing::error!(error = ?error, "error page failed");
                "Something went wrong on our side.".with_status(StatusCode::INTERNAL_SERVER_ERROR).into_response()
            }),
        }
    }

    fn problem_response(&self, status: StatusCode, state: &AppState) -> Response {
        let (kind, title, detail) = self.problem();
        let body = serde_json::json!({
            "type": format!("urn:magiclink:problem:{kind}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail.replace("{base}", &state.settings.auth_base_path),
        });
        Response::builder().status(status).content_type("application/problem+json").body(body.to_string())
    }

    fn page_response(self, status: StatusCode, req: &Request, state: &AppState) -> Result<Response, WebError> {
        match self {
            WebError::InvalidEmail { typed, callback_url, reason } => {
                sign_in_form(req, state, &typed, callback_url.as_deref(), Some(reason.to_string()), status)
            }
            WebError::Csrf => page(state, status, "csrf_error.html", Context::new()),
            other => {
                let (_, title, detail) = other.problem();
                let mut context = Context::new();
                context.insert("title", title);
                context.insert("detail", &detail.replace("{base}", &state.settings.auth_base_path));
                page(state, status, "server_error.html", context)
            }
        }
    }
}
