//! Renders every kind of email (subject, HTML and plain text) from the built-in Tera templates
//! or an operator's overrides: `email/{kind}.subject.txt`, `email/{kind}.html` and
//! `email/{kind}.txt` for each [`EmailKind`], in the language stored with the email (their
//! sentences come from the `i18n` crate's Fluent files). The delivery worker calls it once per
//! attempt; the mailers only send what it made.

use std::sync::Arc;

use anyhow::Context as _;
use i18n::{Localized, Translations};
use ports::{Email, EmailContent, RenderedEmail};
use tera::{Context, Tera};

/// The built-in email templates, by the name an override file must have.
const BUILTIN: [(&str, &str); 13] = [
    ("email/layout.html", include_str!("../../templates/email/layout.html")),
    ("email/sign_in.subject.txt", include_str!("../../templates/email/sign_in.subject.txt")),
    ("email/sign_in.html", include_str!("../../templates/email/sign_in.html")),
    ("email/sign_in.txt", include_str!("../../templates/email/sign_in.txt")),
    ("email/confirm_address.subject.txt", include_str!("../../templates/email/confirm_address.subject.txt")),
    ("email/confirm_address.html", include_str!("../../templates/email/confirm_address.html")),
    ("email/confirm_address.txt", include_str!("../../templates/email/confirm_address.txt")),
    ("email/address_changed.subject.txt", include_str!("../../templates/email/address_changed.subject.txt")),
    ("email/address_changed.html", include_str!("../../templates/email/address_changed.html")),
    ("email/address_changed.txt", include_str!("../../templates/email/address_changed.txt")),
    ("email/security_alert.subject.txt", include_str!("../../templates/email/security_alert.subject.txt")),
    ("email/security_alert.html", include_str!("../../templates/email/security_alert.html")),
    ("email/security_alert.txt", include_str!("../../templates/email/security_alert.txt")),
];

/// The email templates an operator may override, by file name under `templates.dir`.
pub const TEMPLATE_NAMES: [&str; BUILTIN.len()] = i18n::template_names(&BUILTIN);

/// The parsed email templates in every language, built once at start-up.
#[derive(Debug)]
pub struct TemplateRenderer {
    templates: Localized,
}

impl TemplateRenderer {
    /// Parses the built-in templates, with the built-in translations.
    ///
    /// # Errors
    /// Fails if a template does not parse (a bug caught by the tests).
    pub fn builtin() -> anyhow::Result<Self> {
        Self::with_overrides(Vec::new(), &Arc::new(Translations::builtin()?))
    }

    /// Parses the built-in templates, replacing those named in `overrides` (name, source), in
    /// every language `translations` offers.
    ///
    /// # Errors
    /// Names the template and, through the error's cause, the line that does not parse.
    pub fn with_overrides(overrides: Vec<(String, String)>, translations: &Arc<Translations>) -> anyhow::Result<Self> {
        let mut tera = Tera::default();
        tera.add_raw_templates(BUILTIN).context("built-in email templates do not parse")?;
        if !overrides.is_empty() {
            tera.add_raw_templates(overrides).context("an email template override does not parse")?;
        }
        // Only the HTML part is HTML; escaping the text parts would mangle `&` in links.
        tera.autoescape_on(vec![".html"]);
        Ok(Self { templates: translations.localize(&tera) })
    }
}

impl ports::EmailRenderer for TemplateRenderer {
    fn render(&self, email: &Email) -> anyhow::Result<RenderedEmail> {
        let mut context = Context::new();
        context.insert("to", email.to.as_str());
        context.insert("expires_in_seconds", &email.expires_in_seconds);
        context.insert("site_name", &email.site_name);
        context.insert("host", &email.host);
        match &email.content {
            EmailContent::SignIn { link, code } => {
                context.insert("link", link.as_str());
                context.insert("code", code);
            }
            EmailContent::ConfirmNewAddress { link } => context.insert("link", link.as_str()),
            EmailContent::AddressChanged { new_address } => context.insert("new_address", new_address.as_str()),
            EmailContent::SecurityAlert { alert, account_url } => {
                context.insert("alert", alert.as_str());
                context.insert("detail", alert.detail());
                context.insert("account_url", account_url.as_str());
            }
        }
        let kind = email.content.kind().as_str();
        // One context for the three parts; rendering only adds `lang` to it.
        let mut part = |suffix: &str| -> anyhow::Result<String> {
            let name = format!("email/{kind}.{suffix}");
            self.templates.render(&email.lang, &name, &mut context).with_context(|| format!("cannot render {name}"))
        };
        let subject = part("subject.txt")?;
        Ok(RenderedEmail {
            // A subject is one header line: fold any line break a template or site name brought in.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            html: part("html")?,
            text: part("txt")?,
        })
    }
}

/// Every kind has its three templates: a kind added to [`EmailKind`] without them fails here.
#[cfg(test)]
mod tests {
    use domain::EmailAddress;
    use ports::{EmailKind, EmailRenderer as _};
    use url::Url;

    use super::*;

    fn email(content: EmailContent) -> Email {
        Email {
            to: EmailAddress::parse("a@example.com").expect("valid"),
            lang: "en".to_owned(),
            content,
            expires_in_seconds: 600,
            site_name: "<script>alert(1)</script>\r\nBcc: x@example.com".to_owned(),
            host: "127.0.0.1".to_owned(),
        }
    }

    const LINK: &str = "http://127.0.0.1:3000/api/auth/callback/email?token=t7&email=a%40example.com";

    #[test]
    fn a_sign_in_email_has_the_link_in_both_parts_and_escapes_html() {
        let content =
            EmailContent::SignIn { link: Url::parse(LINK).expect("a URL"), code: Some("ABCD-1234".to_owned()) };

        let rendered = TemplateRenderer::builtin().expect("templates parse").render(&email(content)).expect("renders");

        assert!(rendered.text.contains(LINK), "text part has the exact link");
        // Tera escapes `&` and `/` in HTML; browsers decode both back inside attributes.
        let html_unescaped = rendered.html.replace("&#x2F;", "/").replace("&amp;", "&");
        assert!(html_unescaped.contains(LINK), "html part has the link");
        assert!(rendered.text.contains("ABCD-1234") && rendered.html.contains("ABCD-1234"));
        assert!(!rendered.html.contains("<script>"), "site name is escaped in HTML");
        assert!(!rendered.subject.contains('\n') && !rendered.subject.contains('\r'), "{:?}", rendered.subject);
        assert!(rendered.html.contains("expires in 10 minutes"));
    }

    #[test]
    fn the_address_change_emails_name_the_addresses_and_carry_the_confirmation_link() {
        let renderer = TemplateRenderer::builtin().expect("templates parse");
        let confirm = EmailContent::ConfirmNewAddress { link: Url::parse(LINK).expect("a URL") };
        let notice =
            EmailContent::AddressChanged { new_address: EmailAddress::parse("new@example.org").expect("valid") };

        let confirm = renderer.render(&email(confirm)).expect("renders");
        let notice = renderer.render(&email(notice)).expect("renders");

        assert!(confirm.text.contains(LINK) && confirm.text.contains("a@example.com"), "{}", confirm.text);
        assert!(notice.text.contains("new@example.org") && notice.html.contains("new@example.org"));
        assert!(!notice.text.contains("http"), "the notice carries no link: {}", notice.text);
        assert_ne!(confirm.subject, notice.subject);
    }

    #[test]
    fn every_kind_of_email_has_its_three_templates() {
        for kind in EmailKind::ALL {
            for suffix in ["subject.txt", "html", "txt"] {
                let name = format!("email/{}.{suffix}", kind.as_str());
                assert!(TEMPLATE_NAMES.contains(&name.as_str()), "{name} is missing");
            }
        }
    }
}
