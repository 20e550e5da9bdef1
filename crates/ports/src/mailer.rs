//! The mailer port: how the core sends a sign-in email, and how the development mailbox is read.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::EmailAddress;
use url::Url;

/// Everything a mailer needs to render and send one sign-in email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInEmail {
    /// The recipient.
    pub to: EmailAddress,
    /// The magic link. It carries a live token: never log it outside the development mailer.
    pub link: Url,
    /// The short code for signing in on another device (`XXXX-XXXX`), when the link has one.
    /// As secret as the link.
    pub code: Option<String>,
    /// Whole minutes until the link expires.
    pub expires_in_minutes: i64,
    /// The product name shown in the email.
    pub site_name: String,
    /// The host the link points at, shown so people can check it.
    pub host: String,
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

/// Sends sign-in emails.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends one sign-in email. `idempotency_key` is stable across retries of one message, for
    /// providers that can use it to drop duplicates.
    ///
    /// # Errors
    /// MUST return [`MailError::Permanent`] when retrying cannot help and
    /// [`MailError::Transient`] when it might.
    async fn send_sign_in_link(&self, email: &SignInEmail, idempotency_key: &str) -> Result<SentReceipt, MailError>;
}

/// A message as kept by the development mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxMessage {
    /// The recipient.
    pub to: EmailAddress,
    /// The subject line.
    pub subject: String,
    /// The rendered HTML part.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// The sign-in link the message carries.
    pub link: String,
    /// The short code the message carries, if any.
    pub code: Option<String>,
    /// When the message was "sent".
    pub sent_at: DateTime<Utc>,
}

/// Read access to the development mailbox, present only while the development mailer is
/// configured. (Not mocked: it has one implementation, read directly in tests.)
pub trait DevMailbox: Send + Sync {
    /// Messages newest first, only those to `to` when given, at most `limit` of them.
    fn list(&self, to: Option<&EmailAddress>, limit: usize) -> Vec<MailboxMessage>;
}
