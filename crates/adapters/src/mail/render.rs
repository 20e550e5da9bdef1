//! Renders the sign-in email (subject, HTML and plain text) from the built-in Tera templates.

use anyhow::Context as _;
use ports::SignInEmail;
use tera::{Context, Tera};

const SUBJECT: &str = "email/sign_in.subject.txt";
const HTML: &str = "email/sign_in.html";
const TEXT: &str = "email/sign_in.txt";

/// The email templates an operator may override, by file name under `templates.dir`.
pub const TEMPLATE_NAMES: [&str; 3] = [SUBJECT, HTML, TEXT];

/// The three parts of a rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no line breaks.
    pub subject: String,
    /// The HTML part (values escaped).
    pub html: String,
    /// The plain-text part.
    pub text: String,
}

/// The parsed email templates, built once at start-up.
#[derive(Debug)]
pub struct EmailRenderer {
    tera: Tera,
}

impl EmailRenderer {
    /// Parses the built-in templates.
    ///
    /// # Errors
    /// Fails if a template does not parse (a bug caught by the tests).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::with_overrides(Vec::new())
    }

    /// Parses the built-in templates, replacing those named in `overrides` (name, source).
    ///
    /// # Errors
    /// Names the template and, through the error's cause, the line that does not parse.
    pub fn with_overrides(overrides: Vec<(String, String)>) -> anyhow::Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_templates([
            (SUBJECT, include_str!("../../templates/email/sign_in.subject.txt")),
            (HTML, include_str!("../../templates/email/sign_in.html")),
            (TEXT, include_str!("../../templates/email/sign_in.txt")),
        ])
        .context("built-in email templates do not parse")?;
        if !overrides.is_empty() {
            tera.add_raw_templates(overrides).context("an email template override does not parse")?;
        }
        // Only the HTML part is HTML; escaping the text parts would mangle `&` in links.
        tera.autoescape_on(vec![".html"]);
        Ok(Self { tera })
    }

    /// Renders one sign-in email.
    ///
    /// # Errors
    /// Fails if a template refers to a missing variable.
    pub fn render(&self, email: &SignInEmail) -> anyhow::Result<RenderedEmail> {
        let mut context = Context::new();
        context.insert("to", email.to.as_str());
        context.insert("link", email.link.as_str());
        context.insert("code", &email.code);
        context.insert("expires_in_minutes", &email.expires_in_minutes);
        context.insert("site_name", &email.site_name);
        context.insert("host", &email.host);
        let subject = self.tera.render(SUBJECT, &context)?;
        Ok(RenderedEmail {
            // A subject is one header line: fold any line break a template or site name brought in.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            html: self.tera.render(HTML, &context)?,
            text: self.tera.render(TEXT, &context)?,
        })
    }
}
