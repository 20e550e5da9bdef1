//! Rendering the person-facing pages: the Tera templates embedded in the binary (or an
//! operator's overrides), the values every page shares, and the two forms that are shown again
//! when what was sent is refused (sign-in, check your email). Depends on no handler and no
//! error mapping, so that both [`crate::pages`] and [`crate::errors`] can use it.

use std::sync::Arc;

use anyhow::Context as _;
use i18n::{Localized, Sentence, Translations};
use poem::http::StatusCode;
use poem::web::Html;
use poem::{IntoResponse, Request, Response};
use tera::{Context, Tera};

use crate::{csrf, AppState};

/// The built-in page templates, by the name an override file must have.
const BUILTIN: [(&str, &str); 15] = [
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
    ("confirm_email.html", include_str!("../templates/confirm_email.html")),
    ("signed_in_already.html", include_str!("../templates/signed_in_already.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("oidc_logout.html", include_str!("../templates/oidc_logout.html")),
];

/// The page templates an operator may override, by file name under `templates.dir`.
pub const TEMPLATE_NAMES: [&str; BUILTIN.len()] = i18n::template_names(&BUILTIN);

/// The parsed page templates, in every language on offer.
#[derive(Debug)]
pub struct Pages {
    templates: Localized,
    translations: Arc<Translations>,
}

impl Pages {
    /// Parses the built-in templates, with the built-in translations.
    ///
    /// # Errors
    /// Fails if a template does not parse (caught by the tests).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::with_overrides(Vec::new(), Arc::new(Translations::builtin()?))
    }

    /// Parses the built-in templates, replacing those named in `overrides` (name, source), in
    /// every language `translations` offers.
    ///
    /// # Errors
    /// Names the template and, through the error's cause, the line that does not parse.
    pub fn with_overrides(overrides: Vec<(String, String)>, translations: Arc<Translations>) -> anyhow::Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_templates(BUILTIN).context("built-in page templates do not parse")?;
        if !overrides.is_empty() {
            tera.add_raw_templates(overrides).context("a page template override does not parse")?;
        }
        tera.autoescape_on(vec![".html"]);
        Ok(Self { templates: translations.localize(&tera), translations })
    }

    /// The languages on offer and their messages.
    pub fn translations(&self) -> &Translations {
        &self.translations
    }

    /// Renders a page in `lang` with the values every page shares plus `extra`.
    ///
    /// # Errors
    /// Fails if the template refers to a missing value.
    pub fn render(&self, state: &AppState, lang: &str, template: &str, extra: Context) -> anyhow::Result<String> {
        let settings = &state.settings;
        let mut context = Context::new();
        context.insert("site_name", &settings.site_name);
        context.insert("sign_in_page", &settings.pages.sign_in);
        context.insert("account_page", &settings.pages.account);
        context.insert("signin_action", &settings.auth_path("/signin/email"));
        context.insert("signout_action", &settings.auth_path("/signout"));
        context.insert("callback_action", &settings.auth_path("/callback/email"));
        context.insert("link_seconds", &state.sign_in.settings().link_policy.max_age_seconds());
        context.insert("password_enabled", &state.passwords.is_some());
        context.insert("passkey_enabled", &state.passkeys.is_some());
        context.insert("api_base", &settings.auth_path(""));
        context.insert("passkey_script", &settings.auth_path("/passkey.js"));
        context.insert("restart_forgets_links", &settings.restart_forgets_links);
        context.insert("password_action", &settings.auth_path("/callback/password"));
        context.extend(extra);
        self.templates.render(lang, template, &mut context).with_context(|| format!("cannot render {template}"))
    }
}

/// `sentence` in the request's language.
pub(crate) fn say(req: &Request, state: &AppState, sentence: &Sentence) -> String {
    state.pages.translations().say(&crate::lang::of(req), sentence)
}

/// Renders a page in the request's language as a response with `status`.
pub(crate) fn page(
    req: &Request,
    state: &AppState,
    status: StatusCode,
    template: &str,
    extra: Context,
) -> anyhow::Result<Response> {
    page_in(&crate::lang::of(req), state, status, template, extra)
}

/// Renders a page in `lang` as a response with `status`.
pub(crate) fn page_in(
    lang: &str,
    state: &AppState,
    status: StatusCode,
    template: &str,
    extra: Context,
) -> anyhow::Result<Response> {
    let html = state.pages.render(state, lang, template, extra)?;
    let mut response = Html(html).with_status(status).into_response();
    if let Ok(value) = poem::http::HeaderValue::from_str(lang) {
        response.headers_mut().insert(poem::http::header::CONTENT_LANGUAGE, value);
    }
    Ok(response)
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

/// Which of the sign-in page's forms a message belongs under.
#[derive(Debug, Clone)]
pub(crate) enum FormError {
    /// None: the page as first shown.
    None,
    /// The "email me a link" form.
    Link(Sentence),
    /// The "email and password" form.
    Password(Sentence),
}

/// Renders the sign-in page, optionally with an error under one of its forms.
pub(crate) fn sign_in_form(
    req: &Request,
    state: &AppState,
    email: &str,
    callback_url: Option<&str>,
    error: FormError,
    status: StatusCode,
) -> anyhow::Result<Response> {
    let (error, password_error) = match error {
        FormError::None => (None, None),
        FormError::Link(sentence) => (Some(sentence), None),
        FormError::Password(sentence) => (None, Some(sentence)),
    };
    let mut context = Context::new();
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    // What was typed comes back to be corrected, but never more than a short excerpt of it.
    context.insert("email", &excerpt(email, MAX_ECHOED_CHARS));
    let callback_url = callback_url.filter(|url| url.len() <= domain::callback::MAX_LENGTH);
    context.insert("callback_url", callback_url.unwrap_or("/"));
    context.insert("error", &error.map(|error| say(req, state, &error)));
    context.insert("password_error", &password_error.map(|error| say(req, state, &error)));
    context.insert("notice", &None::<String>);
    page(req, state, status, "signin.html", context)
}

/// Renders "check your email", optionally with why a typed code failed.
pub(crate) fn check_email_page(
    req: &Request,
    state: &AppState,
    code_error: Option<Sentence>,
    status: StatusCode,
) -> anyhow::Result<Response> {
    let now = state.sign_in.now();
    let pending = crate::pending::read(req.cookie(), &state.settings, now);
    let mut context = Context::new();
    context.insert("link_expired", &pending.as_ref().is_some_and(|p| p.link_expired(now)));
    context.insert("to", &pending.as_ref().map(|p| p.masked_email.as_str()));
    context.insert("pending", &pending.is_some());
    context.insert("code_error", &code_error.map(|error| say(req, state, &error)));
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    page(req, state, status, "check_email.html", context)
}
