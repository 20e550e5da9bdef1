//! The person-facing pages, rendered from Tera templates embedded in the binary.

use std::sync::Arc;

use chrono::SecondsFormat;
use domain::EmailAddress;
use poem::http::StatusCode;
use poem::web::{Data, Json, Query};
use poem::{handler, IntoResponse, Request, Response};
use ports::{EmailKind, LinkState};
use serde::Serialize;
use tera::Context;

use crate::errors::{invalid_email_sentence, respond, Format, WebError};
use crate::forms::{AuthErrorQuery, CallbackQuery, MailboxQuery, SignInPageQuery};
use crate::render::{check_email_page, page, sign_in_form};
use crate::{auth, csrf, AppState};

/// `GET /`: who is signed in, with a sign-out button, or a link to sign in.
#[handler]
pub async fn home(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    respond(req, &state, home_page(req, &state).await)
}

async fn home_page(req: &Request, state: &AppState) -> Result<Response, WebError> {
    let mut context = signed_in_context(req, state).await?;
    // `?deleted=1`, where deleting an account lands: says so (it changes nothing).
    let deleted = req.uri().query().is_some_and(|query| query.split('&').any(|pair| pair == "deleted=1"));
    context.insert("deleted", &deleted);
    Ok(page(req, state, StatusCode::OK, "home.html", context)?)
}

/// `GET {base}/signout`: Auth.js's confirm page, whose button posts the sign-out form.
#[handler]
pub async fn sign_out_confirm(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let result = async {
        let context = signed_in_context(req, &state).await?;
        Ok(page(req, &state, StatusCode::OK, "signout.html", context)?)
    }
    .await;
    respond(req, &state, result)
}

/// `user` (with the signed-in address) and a CSRF token for the sign-out form, when someone is
/// signed in; nothing otherwise.
async fn signed_in_context(req: &Request, state: &AppState) -> Result<Context, WebError> {
    let mut context = Context::new();
    if let Some(session) = auth::current_session(req, state).await? {
        context.insert("user", &serde_json::json!({ "email": session.user.email.as_str() }));
        context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    }
    Ok(context)
}

/// `GET {pages.sign_in}` and `GET {base}/signin` (Auth.js's route): the sign-in form.
#[handler]
pub async fn sign_in(req: &Request, state: Data<&Arc<AppState>>, query: Query<SignInPageQuery>) -> Response {
    let result = sign_in_form(
        req,
        &state,
        query.email.as_deref().unwrap_or_default(),
        query.callback_url.as_deref(),
        crate::render::FormError::None,
        StatusCode::OK,
    );
    respond(req, &state, result.map_err(WebError::from))
}

/// `GET {pages.verify_request}`: "we sent you a link", with the field for the code when this
/// browser asked for a link.
#[handler]
pub async fn check_email(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    respond(req, &state, check_email_page(req, &state, None, StatusCode::OK).map_err(WebError::from))
}

/// `GET {pages.error}`: says which case a failed link is and what to do next.
#[handler]
pub async fn auth_error(req: &Request, state: Data<&Arc<AppState>>, query: Query<AuthErrorQuery>) -> Response {
    let result = (|| {
        let mut context = Context::new();
        context.insert("error", &query.error.as_deref().unwrap_or("Default"));
        context.insert("reason", &query.reason.as_deref().unwrap_or_default());
        context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
        Ok(page(req, &state, StatusCode::OK, "auth_error.html", context)?)
    })();
    respond(req, &state, result)
}

/// One message as `/dev/mailbox` shows it.
#[derive(Debug, Serialize)]
struct MailboxEntry {
    to: String,
    subject: String,
    time: String,
    /// `sign_in`, `confirm_address` or `address_changed`.
    kind: &'static str,
    /// The link the email carries (none in a notice).
    link: Option<String>,
    /// The short code the email carries.
    code: Option<String>,
    /// What a sign-in link is now: `unused`, `used`, `expired` or `unknown` (retired or
    /// purged); `null` for other kinds of email.
    state: Option<&'static str>,
    #[serde(skip_serializing)]
    html: String,
}

/// The page's view of a message also carries the HTML, which the JSON leaves out.
#[derive(Debug, Serialize)]
struct MailboxPageEntry<'a> {
    #[serde(flatten)]
    entry: &'a MailboxEntry,
    html: String,
}

/// `GET /dev/mailbox`: the development mailbox, as a page or (with `Accept: application/json`)
/// as JSON. Routed only while the development mailer is configured.
#[handler]
pub async fn mailbox(req: &Request, state: Data<&Arc<AppState>>, query: Query<MailboxQuery>) -> Response {
    let result = mailbox_response(req, &state, &query).await;
    respond(req, &state, result)
}

async fn mailbox_response(req: &Request, state: &AppState, query: &MailboxQuery) -> Result<Response, WebError> {
    let Some(dev_mailbox) = &state.mailbox else {
        return Err(WebError::NotFound);
    };
    let to = match query.to.as_deref().filter(|to| !to.is_empty()) {
        Some(raw) => Some(EmailAddress::parse(raw).map_err(|reason| {
            let why = state.pages.translations().say(i18n::DEFAULT, &invalid_email_sentence(&reason));
            WebError::BadQuery(format!("`to` is not an address. {why}"))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(50).min(1000);
    let mut entries = Vec::new();
    for message in dev_mailbox.list(to.as_ref(), limit) {
        entries.push(MailboxEntry {
            state: match (&message.link, message.kind) {
                (Some(link), EmailKind::SignIn) => Some(link_state(state, link).await?),
                _ => None,
            },
            kind: message.kind.as_str(),
            to: message.to.as_str().to_owned(),
            subject: message.subject,
            time: message.sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            link: message.link,
            code: message.code,
            html: message.html,
        });
    }
    if Format::of(req) == Format::Json {
        return Ok(Json(entries).into_response());
    }
    let view: Vec<MailboxPageEntry<'_>> =
        entries.iter().map(|entry| MailboxPageEntry { entry, html: links_open_at_top_level(&entry.html) }).collect();
    let mut context = Context::new();
    context.insert("messages", &view);
    context.insert("to", &to.as_ref().map(EmailAddress::as_str));
    Ok(page(req, state, StatusCode::OK, "mailbox.html", context)?)
}

/// What a mailbox message's link is now, read from the store without changing it.
async fn link_state(state: &AppState, link: &str) -> Result<&'static str, WebError> {
    let Ok(url) = url::Url::parse(link) else {
        return Ok("unknown");
    };
    let mut query = CallbackQuery::default();
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "token" => query.token = Some(value.into_owned()),
            "email" => query.email = Some(value.into_owned()),
            _ => {}
        }
    }
    let Ok(request) = query.to_request(None, None, domain::audit::RequestOrigin::default()) else {
        return Ok("unknown");
    };
    let found = state.sign_in.link_state(&request.token, &request.email).await.map_err(|error| match error {
        ports::LinkStateError::Unexpected(inner) => WebError::Unexpected(inner),
    })?;
    Ok(match found {
        LinkState::Unused => "unused",
        LinkState::Used => "used",
        LinkState::Replaced => "replaced",
        LinkState::Expired => "expired",
        LinkState::Unknown => "unknown",
    })
}

/// The email's HTML with every link opening in the top-level page. In the sandboxed preview a
/// link would otherwise open inside the frame, where the session cookie cannot be set and our
/// own pages refuse to be framed: the link would be used up without signing anyone in.
fn links_open_at_top_level(html: &str) -> String {
    const BASE: &str = r#"<base target="_top">"#;
    match html.find("<head>") {
        Some(at) => format!("{}{BASE}{}", &html[..at + "<head>".len()], &html[at + "<head>".len()..]),
        None => format!("{BASE}{html}"),
    }
}
