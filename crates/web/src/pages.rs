//! The person-facing pages, rendered from Tera templates embedded in the binary.

use std::sync::Arc;

use anyhow::Context as _;
use chrono::SecondsFormat;
use domain::EmailAddress;
use poem::http::StatusCode;
use poem::web::{Data, Html, Json, Query};
use poem::{handler, IntoResponse, Request, Response};
use ports::LinkState;
use serde::Serialize;
use tera::{Context, Tera};

use crate::errors::{invalid_email_sentence, Format, WebError};
use crate::forms::{AuthErrorQuery, CallbackQuery, MailboxQuery, SignInPageQuery};
use crate::{auth, csrf, AppState};

/// The built-in page templates, by the name an override file must have.
const BUILTIN: [(&str, &str); 11] = [
    ("layout.html", include_str!("../templates/layout.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("signin.html", include_str!("../templates/signin.html")),
    ("check_email.html", include_str!("../templates/check_email.html")),
    ("auth_error.html", include_str!("../templates/auth_error.html")),
    ("csrf_error.html", include_str!("../templates/csrf_error.html")),
    ("server_error.html", include_str!("../templates/server_error.html")),
    ("mailbox.html", include_str!("../templates/mailbox.html")),
    ("signout.html", include_str!("../templates/signout.html")),
    ("confirm.html", include_str!("../templates/confirm.html")),
    ("account.html", include_str!("../templates/account.html")),
];

/// The page templates an operator may override, by file name under `templates.dir`.
pub const TEMPLATE_NAMES: [&str; BUILTIN.len()] = {
    let mut names = [""; BUILTIN.len()];
    let mut i = 0;
    while i < BUILTIN.len() {
        names[i] = BUILTIN[i].0;
        i += 1;
    }
    names
};

/// The parsed page templates.
#[derive(Debug)]
pub struct Pages {
    tera: Tera,
}

impl Pages {
    /// Parses the built-in templates.
    ///
    /// # Errors
    /// Fails if a template does not parse (caught by the tests).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::with_overrides(Vec::new())
    }

    /// Parses the built-in templates, replacing those named in `overrides` (name, source).
    ///
    /// # Errors
    /// Names the template and, through the error's cause, the line that does not parse.
    pub fn with_overrides(overrides: Vec<(String, String)>) -> anyhow::Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_templates(BUILTIN).context("built-in page templates do not parse")?;
        if !overrides.is_empty() {
            tera.add_raw_templates(overrides).context("a page template override does not parse")?;
        }
        tera.autoescape_on(vec![".html"]);
        Ok(Self { tera })
    }

    /// Renders a page with the values every page shares plus `extra`.
    ///
    /// # Errors
    /// Fails if the template refers to a missing value.
    pub fn render(&self, state: &AppState, template: &str, extra: Context) -> anyhow::Result<String> {
        let settings = &state.settings;
        let mut context = Context::new();
        context.insert("site_name", &settings.site_name);
        context.insert("sign_in_page", &settings.pages.sign_in);
        context.insert("account_page", &settings.pages.account);
        context.insert("signin_action", &settings.auth_path("/signin/email"));
        context.insert("signout_action", &settings.auth_path("/signout"));
        context.insert("callback_action", &settings.auth_path("/callback/email"));
        context.insert("link_minutes", &state.sign_in.settings().link_policy.max_age_minutes());
        context.extend(extra);
        self.tera.render(template, &context).with_context(|| format!("cannot render {template}"))
    }
}

/// Renders a page as a response with `status`.
pub(crate) fn page(state: &AppState, status: StatusCode, template: &str, extra: Context) -> Result<Response, WebError> {
    let html = state.pages.render(state, template, extra)?;
    Ok(Html(html).with_status(status).into_response())
}

/// `GET /`: who is signed in, with a sign-out button, or a link to sign in.
#[handler]
pub async fn home(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    respond(req, &state, home_page(req, &state).await)
}

async fn home_page(req: &Request, state: &AppState) -> Result<Response, WebError> {
    let context = signed_in_context(req, state).await?;
    page(state, StatusCode::OK, "home.html", context)
}

/// `GET {base}/signout`: Auth.js's confirm page, whose button posts the sign-out form.
#[handler]
pub async fn sign_out_confirm(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let result = async {
        let context = signed_in_context(req, &state).await?;
        page(&state, StatusCode::OK, "signout.html", context)
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
        None,
        StatusCode::OK,
    );
    respond(req, &state, result)
}

/// The most of a refused input a page shows again: more than any real address.
const MAX_ECHOED_CHARS: usize = 320;

/// At most `max` characters of `text`, with an ellipsis when cut.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Renders the sign-in form, optionally with an error under the field.
pub(crate) fn sign_in_form(
    req: &Request,
    state: &AppState,
    email: &str,
    callback_url: Option<&str>,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut context = Context::new();
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    // What was typed comes back to be corrected, but never more than a short excerpt of it.
    context.insert("email", &excerpt(email, MAX_ECHOED_CHARS));
    let callback_url = callback_url.filter(|url| url.len() <= domain::callback::MAX_LENGTH);
    context.insert("callback_url", callback_url.unwrap_or("/"));
    context.insert("error", &error);
    context.insert("notice", &None::<String>);
    page(state, status, "signin.html", context)
}

/// `GET {pages.verify_request}`: "we sent you a link", with the field for the code when this
/// browser asked for a link.
#[handler]
pub async fn check_email(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    respond(req, &state, check_email_page(req, &state, None, StatusCode::OK))
}

/// Renders "check your email", optionally with why a typed code failed.
pub(crate) fn check_email_page(
    req: &Request,
    state: &AppState,
    code_error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let pending = crate::pending::read(req.cookie(), &state.settings, state.sign_in.now());
    let mut context = Context::new();
    context.insert("to", &pending.as_ref().map(|p| p.masked_email.as_str()));
    context.insert("pending", &pending.is_some());
    context.insert("code_error", &code_error);
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    page(state, status, "check_email.html", context)
}

/// `GET {pages.error}`: says which case a failed link is and what to do next.
#[handler]
pub async fn auth_error(req: &Request, state: Data<&Arc<AppState>>, query: Query<AuthErrorQuery>) -> Response {
    let result = (|| {
        let mut context = Context::new();
        context.insert("error", &query.error.as_deref().unwrap_or("Default"));
        context.insert("reason", &query.reason.as_deref().unwrap_or_default());
        context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
        page(&state, StatusCode::OK, "auth_error.html", context)
    })();
    respond(req, &state, result)
}

/// One message as `/dev/mailbox` shows it.
#[derive(Debug, Serialize)]
struct MailboxEntry {
    to: String,
    subject: String,
    time: String,
    link: String,
    /// The short code the email carries.
    code: Option<String>,
    /// What the link is now: `unused`, `used`, `expired` or `unknown` (retired or purged).
    state: &'static str,
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
            WebError::BadQuery(format!("`to` is not an address. {}", invalid_email_sentence(&reason)))
        })?),
        None => None,
    };
    let limit = query.limit.unwrap_or(50).min(1000);
    let mut entries = Vec::new();
    for message in dev_mailbox.list(to.as_ref(), limit) {
        entries.push(MailboxEntry {
            state: link_state(state, &message.link).await?,
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
    page(state, StatusCode::OK, "mailbox.html", context)
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
    let Ok(request) = query.to_request(None, None) else {
        return Ok("unknown");
    };
    let found = state.sign_in.link_state(&request.token, &request.email).await.map_err(|error| match error {
        ports::LinkStateError::Unexpected(inner) => WebError::Unexpected(inner),
    })?;
    Ok(match found {
        LinkState::Unused => "unused",
        LinkState::Used => "used",
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

/// Turns a handler's result into a response, mapping errors in the one place that does so.
pub(crate) fn respond(req: &Request, state: &AppState, result: Result<Response, WebError>) -> Response {
    result.unwrap_or_else(|error| error.into_response(Format::of(req), req, state))
}
