//! The mailer port: the emails the core sends, how they are rendered, how they are sent, and
//! how the development mailbox is read.
//!
//! Every kind of email travels the same way: the use case seals its [`EmailContent`] into an
//! outbox row; the delivery worker opens it, has the [`EmailRenderer`] turn it into subject,
//! HTML and text in the recipient's language, once, and hands the result to the [`Mailer`],
//! which only sends. Adding a kind of email is a variant here and three templates; no mailer
//! changes.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::EmailAddress;
use url::Url;

/// What an email is for. Stored in the outbox row's `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    /// A magic link (and its code) that signs the recipient in.
    SignIn,
    /// A link that makes the recipient's address the sign-in address of an existing account.
    ConfirmNewAddress,
    /// A notice to an account's former address that it no longer signs in with it.
    AddressChanged,
    /// A security alert to the account's address: a sign-in from a new browser, a password
    /// changed, a passkey added.
    SecurityAlert,
}

impl EmailKind {
    /// Every kind, in declaration order.
    pub const ALL: [EmailKind; 4] =
        [EmailKind::SignIn, EmailKind::ConfirmNewAddress, EmailKind::AddressChanged, EmailKind::SecurityAlert];

    /// The stored name, which is also the stem of the kind's template files.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailKind::SignIn => "sign_in",
            EmailKind::ConfirmNewAddress => "confirm_address",
            EmailKind::AddressChanged => "address_changed",
            EmailKind::SecurityAlert => "security_alert",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// What an email says, beyond who it is to: its kind and the values its templates show. Its
/// `Debug` shows the kind only: links and codes are live secrets, the new address is personal.
#[derive(Clone, PartialEq, Eq)]
pub enum EmailContent {
    /// The sign-in email.
    SignIn {
        /// The magic link. It carries a live token: never log it outside the development mailer.
        link: Url,
        /// The short code for signing in on another device (`XXXX-XXXX`), when the link has
        /// one. As secret as the link.
        code: Option<String>,
    },
    /// "Confirm this is your new sign-in address", to the new address.
    ConfirmNewAddress {
        /// The confirmation link; as secret as a sign-in link.
        link: Url,
    },
    /// "Your account now signs in as ...", to the old address.
    AddressChanged {
        /// The address the account signs in with now.
        new_address: EmailAddress,
    },
    /// "Was this you?": something security-relevant happened to the account.
    SecurityAlert {
        /// What happened.
        alert: SecurityAlert,
        /// The account page, where the person sees their activity and can undo it.
        account_url: Url,
    },
}

/// What a security alert tells of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityAlert {
    /// A sign-in from a browser not seen on the account before ("Chrome on Linux").
    NewSignIn {
        /// The browser and system.
        device: String,
    },
    /// The password was set or changed.
    PasswordChanged,
    /// A passkey was added, with the name it was given.
    PasskeyAdded {
        /// Its name.
        name: String,
    },
    /// The account was deleted by its owner (the goodbye email; the link goes to the site).
    AccountDeleted,
}

impl SecurityAlert {
    /// Its name in templates (`alert`) and in the sealed text.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecurityAlert::NewSignIn { .. } => "new_sign_in",
            SecurityAlert::PasswordChanged => "password_changed",
            SecurityAlert::PasskeyAdded { .. } => "passkey_added",
            SecurityAlert::AccountDeleted => "account_deleted",
        }
    }

    /// The alert's one value (the device, the passkey's name), if it has one.
    pub fn detail(&self) -> &str {
        match self {
            SecurityAlert::NewSignIn { device } => device,
            SecurityAlert::PasskeyAdded { name } => name,
            SecurityAlert::PasswordChanged | SecurityAlert::AccountDeleted => "",
        }
    }

    fn from_parts(name: &str, detail: &str) -> Option<Self> {
        Some(match name {
            "new_sign_in" => SecurityAlert::NewSignIn { device: detail.to_owned() },
            "password_changed" => SecurityAlert::PasswordChanged,
            "passkey_added" => SecurityAlert::PasskeyAdded { name: detail.to_owned() },
            "account_deleted" => SecurityAlert::AccountDeleted,
            _ => return None,
        })
    }
}

impl fmt::Debug for EmailContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailContent::{:?}(***)", self.kind())
    }
}

impl EmailContent {
    /// Its kind.
    pub fn kind(&self) -> EmailKind {
        match self {
            EmailContent::SignIn { .. } => EmailKind::SignIn,
            EmailContent::ConfirmNewAddress { .. } => EmailKind::ConfirmNewAddress,
            EmailContent::AddressChanged { .. } => EmailKind::AddressChanged,
            EmailContent::SecurityAlert { .. } => EmailKind::SecurityAlert,
        }
    }

    /// The link the email carries, if any.
    pub fn link(&self) -> Option<&Url> {
        match self {
            EmailContent::SignIn { link, .. } | EmailContent::ConfirmNewAddress { link } => Some(link),
            EmailContent::AddressChanged { .. } | EmailContent::SecurityAlert { .. } => None,
        }
    }

    /// The sign-in code the email carries, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            EmailContent::SignIn { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The values as sealed into the outbox: one per line, in a fixed order per kind. (A
    /// sign-in row is "link, then code", the format rows had before there were other kinds.)
    pub fn to_sealed_text(&self) -> String {
        match self {
            EmailContent::SignIn { link, code: Some(code) } => format!("{link}\n{code}"),
            EmailContent::SignIn { link, code: None } | EmailContent::ConfirmNewAddress { link } => link.to_string(),
            EmailContent::AddressChanged { new_address } => new_address.as_str().to_owned(),
            // The detail last: a passkey's name is the person's text, on one line (names
            // refuse control characters).
            EmailContent::SecurityAlert { alert, account_url } => {
                format!("{}\n{account_url}\n{}", alert.as_str(), alert.detail())
            }
        }
    }

    /// Reads what [`EmailContent::to_sealed_text`] wrote for a row of `kind`.
    pub fn from_sealed_text(kind: EmailKind, text: &str) -> Option<Self> {
        let mut lines = text.split('\n');
        let first = lines.next()?;
        Some(match kind {
            EmailKind::SignIn => {
                EmailContent::SignIn { link: Url::parse(first).ok()?, code: lines.next().map(str::to_owned) }
            }
            EmailKind::ConfirmNewAddress => EmailContent::ConfirmNewAddress { link: Url::parse(first).ok()? },
            EmailKind::AddressChanged => EmailContent::AddressChanged { new_address: EmailAddress::parse(first).ok()? },
            EmailKind::SecurityAlert => {
                let account_url = Url::parse(lines.next()?).ok()?;
                let detail = lines.next().unwrap_or_default();
                EmailContent::SecurityAlert { alert: SecurityAlert::from_parts(first, detail)?, account_url }
            }
        })
    }
}

/// Everything the renderer needs for one email. `Debug` masks the address and hides the content.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// The recipient.
    pub to: EmailAddress,
    /// The language tag to write it in (`en`, `de`, ...), that of the request that caused it;
    /// the renderer falls back to its default for a language it lacks.
    pub lang: String,
    /// What it says.
    pub content: EmailContent,
    /// Seconds until its link expires (meaningless for an email without one); the templates say
    /// it in words ("10 minutes").
    pub expires_in_seconds: u64,
    /// The product name shown in the email.
    pub site_name: String,
    /// The host the links point at, shown so people can check it.
    pub host: String,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("to", &self.to.masked())
            .field("lang", &self.lang)
            .field("content", &self.content)
            .field("expires_in_seconds", &self.expires_in_seconds)
            .finish_non_exhaustive()
    }
}

/// The three parts of a rendered email. `Debug` shows their lengths only: the HTML and text
/// carry the link and code.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// One line, no line breaks.
    pub subject: String,
    /// The HTML part (values escaped).
    pub html: String,
    /// The plain-text part.
    pub text: String,
}

impl fmt::Debug for RenderedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedEmail")
            .field("subject_chars", &self.subject.chars().count())
            .field("html_bytes", &self.html.len())
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

/// Turns an [`Email`] into its parts, from templates an operator may override.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait EmailRenderer: Send + Sync {
    /// Renders one email.
    ///
    /// # Errors
    /// When a template fails to render (an operator's override that refers to a missing value):
    /// retrying cannot help.
    fn render(&self, email: &Email) -> anyhow::Result<RenderedEmail>;
}

/// A rendered email on its way to the provider. `Debug` masks the address and hides the rest.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The recipient.
    pub to: EmailAddress,
    /// What it is, with the values it was rendered from: the development mailbox shows its
    /// link and code; real mailers ignore it.
    pub content: EmailContent,
    /// Subject, HTML and text, ready to send.
    pub rendered: RenderedEmail,
}

impl fmt::Debug for OutgoingEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingEmail")
            .field("to", &self.to.masked())
            .field("content", &self.content)
            .field("rendered", &self.rendered)
            .finish()
    }
}

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The provider refused the message and will refuse it again (bad recipient, denied relay,
    /// bad credentials): retrying cannot help.
    #[error("the mail provider refused the message: {0:#}")]
    Permanent(#[source] anyhow::Error),
    /// The provider could not be reached or asked us to come back later.
    #[error("the mail provider is unavailable: {source:#}")]
    Transient {
        /// What went wrong.
        #[source]
        source: anyhow::Error,
        /// How long the provider asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
}

/// A provider's words about a failure, fit to log and to store on the outbox row: addresses
/// masked (`a***@example.com`) and links replaced, since SMTP replies and API errors often
/// quote the recipient ("550 <ada@example.com>: no such user") and could quote a message.
pub fn provider_text(said: &str) -> String {
    said.split_inclusive(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ',' | ';' | '(' | ')'))
        .map(|piece| {
            let (word, tail) = piece.split_at(
                piece
                    .trim_end_matches(|c: char| {
                        c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ',' | ';' | '(' | ')')
                    })
                    .len(),
            );
            let shown = if word.contains("://") {
                "<link>".to_owned()
            } else if let Some((local, domain)) =
                word.split_once('@').filter(|(local, domain)| !local.is_empty() && domain.contains('.'))
            {
                format!("{}***@{domain}", local.chars().next().map(String::from).unwrap_or_default())
            } else {
                word.to_owned()
            };
            shown + tail
        })
        .collect()
}

/// Why a send failed, as [`provider_text`] of the error's chain of causes, each cause said once:
/// mail libraries' errors often repeat their source in their own message ("Connection error:
/// Connection refused (os error 111)" over the io error "Connection refused (os error 111)"),
/// which `{:#}` would print twice.
pub fn failure_text(error: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    provider_text(&said)
}

impl MailError {
    /// A transient failure with no advice on when to retry.
    pub fn transient(source: impl Into<anyhow::Error>) -> Self {
        MailError::Transient { source: source.into(), retry_after: None }
    }
}

/// What the provider said when it accepted a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentReceipt {
    /// The provider's id for the message, when it gives one (Resend does; SMTP servers may not).
    pub provider_message_id: Option<String>,
}

/// Sends rendered emails, of any kind.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one email. `idempotency_key` is stable across retries of one message, for
    /// providers that can use it to drop duplicates.
    ///
    /// # Errors
    /// MUST return [`MailError::Permanent`] when retrying cannot help and
    /// [`MailError::Transient`] when it might.
    async fn send(&self, email: &OutgoingEmail, idempotency_key: &str) -> Result<SentReceipt, MailError>;

    /// Checks, sending nothing, that the provider answers to these settings (SMTP: connect,
    /// EHLO, STARTTLS and AUTH as configured; an HTTP API: the key's shape, and the API
    /// answering it), so that a broken setting is found at start-up rather than by the first
    /// person who signs in. A mailer with nothing to reach has nothing to check.
    ///
    /// # Errors
    /// Says what is wrong, in words an operator can act on (never a password or key).
    async fn check(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A message as kept by the development mailbox. `Debug` hides what it carries, as the rest do.
#[derive(Clone, PartialEq, Eq)]
pub struct MailboxMessage {
    /// The recipient.
    pub to: EmailAddress,
    /// The subject line.
    pub subject: String,
    /// The rendered HTML part.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// What the message is (`sign_in`, `confirm_address`, `address_changed`).
    pub kind: EmailKind,
    /// The link the message carries, if any.
    pub link: Option<String>,
    /// The short code the message carries, if any.
    pub code: Option<String>,
    /// When the message was "sent".
    pub sent_at: DateTime<Utc>,
}

impl fmt::Debug for MailboxMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxMessage")
            .field("to", &self.to.masked())
            .field("kind", &self.kind)
            .field("sent_at", &self.sent_at)
            .finish_non_exhaustive()
    }
}

/// Read access to the development mailbox, present only while the development mailer is
/// configured. (Not mocked: it has one implementation, read directly in tests.)
pub trait DevMailbox: Send + Sync {
    /// Messages newest first, only those to `to` when given, at most `limit` of them.
    fn list(&self, to: Option<&EmailAddress>, limit: usize) -> Vec<MailboxMessage>;
}

#[cfg(test)]
mod tests {
    use super::{failure_text, provider_text, Email, EmailContent, OutgoingEmail, RenderedEmail};

    #[test]
    fn no_email_value_shows_its_link_code_text_or_full_address_in_debug() {
        let link = url::Url::parse("https://auth.example.com/api/auth/callback/email?token=live-token").expect("a URL");
        let content = EmailContent::SignIn { link: link.clone(), code: Some("ABCD-EFGH".to_owned()) };
        let to = domain::EmailAddress::parse("ada@example.com").expect("valid");
        let email = Email {
            to: to.clone(),
            lang: "en".to_owned(),
            content: content.clone(),
            expires_in_seconds: 600,
            site_name: "magiclink".to_owned(),
            host: "auth.example.com".to_owned(),
        };
        let rendered = RenderedEmail {
            subject: "Sign in".to_owned(),
            html: format!("<a href=\"{link}\">ABCD-EFGH</a>"),
            text: format!("{link} ABCD-EFGH"),
        };
        let outgoing = OutgoingEmail { to, content, rendered };

        let shown = format!("{email:?} {outgoing:?}");

        for secret in ["live-token", "ABCD-EFGH", "ada@example.com", "callback"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("a***@example.com") && shown.contains("SignIn"), "{shown}");
    }

    #[test]
    fn a_providers_words_keep_their_meaning_without_addresses_or_links() {
        assert_eq!(
            provider_text("550 5.1.1 <Ada.Lovelace@example.com>: Recipient address rejected"),
            "550 5.1.1 <A***@example.com>: Recipient address rejected"
        );
        assert_eq!(
            provider_text(
                "invalid 'to': ada@example.com, see https://auth.example.com/api/auth/callback/email?token=abc"
            ),
            "invalid 'to': a***@example.com, see <link>"
        );
        assert_eq!(provider_text("421 4.7.0 try again later"), "421 4.7.0 try again later");
    }

    #[test]
    fn a_failure_says_each_cause_once_and_masked() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        // As lettre's error does: its own message repeats its source's.
        let repeated = anyhow::Error::new(refused).context("Connection error: Connection refused (os error 111)");
        let distinct = anyhow::anyhow!("550 no such user <ada@example.com>").context("the provider refused it");

        assert_eq!(failure_text(&repeated), "Connection error: Connection refused (os error 111)");
        assert_eq!(failure_text(&distinct), "the provider refused it: 550 no such user <a***@example.com>");
    }
}
