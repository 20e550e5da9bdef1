//! The SMTP mailer: lettre on tokio with rustls, pooled connections.
//!
//! `mailer.smtp.url` is `smtp://[user:password@]host[:port]` (STARTTLS, as `mailer.smtp.tls`
//! says: required, opportunistic or off) or `smtps://...` (TLS from the first byte). A 5xx
//! answer (bad recipient, relaying denied, authentication refused) is a permanent failure;
//! 4xx answers, timeouts and connection errors are transient.

use domain::SecretText;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use ports::{MailError, Mailer, OutgoingEmail, SentReceipt};

/// How STARTTLS is used on an `smtp://` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartTls {
    /// Refuse to send unless the server upgrades to TLS (the default).
    Required,
    /// Upgrade when the server offers it, else send in clear.
    Opportunistic,
    /// Never upgrade (a relay on the same host only).
    Off,
}

/// What the SMTP mailer needs.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// `smtp://` or `smtps://` URL, optionally with credentials.
    pub url: SecretText,
    /// User name, when not in the URL.
    pub username: Option<String>,
    /// Password, when not in the URL.
    pub password: Option<SecretText>,
    /// STARTTLS policy for `smtp://`.
    pub starttls: StartTls,
    /// Timeout of each SMTP command and of connecting.
    pub timeout: Duration,
    /// Connections kept open in the pool.
    pub pool_size: u32,
    /// Extra root certificates (PEM) to trust, for a private CA.
    pub extra_root_pem: Option<Vec<u8>>,
}

/// Sends rendered emails over SMTP.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    message_id_domain: String,
}

/// Parses `mailer.from`: `name <address>` or a bare address.
///
/// # Errors
/// Names the key when the value is not one address.
pub fn parse_from(from: &str) -> anyhow::Result<Mailbox> {
    let mailbox = from.parse::<Mailbox>().map_err(|e| {
        anyhow::anyhow!("mailer.from `{from}` is not an address like `magiclink <no-reply@example.com>`: {e}")
    })?;
    check_sender(&mailbox)?;
    Ok(mailbox)
}

/// A display name with a line break or control character could start a new header if any
/// encoder along the way let it through; lettre refuses to encode one. Refuse it at start-up,
/// naming the key, rather than fail on every message.
///
/// # Errors
/// When the display name holds a control character.
pub fn check_sender(from: &Mailbox) -> anyhow::Result<()> {
    if from.name.as_deref().is_some_and(|name| name.chars().any(char::is_control)) {
        anyhow::bail!("mailer.from: the display name must not contain line breaks or control characters");
    }
    Ok(())
}

impl SmtpMailer {
    /// Builds the pooled transport; no connection is made until the first message.
    ///
    /// # Errors
    /// Names the setting that is malformed.
    pub fn new(settings: &SmtpSettings, from: Mailbox) -> anyhow::Result<Self> {
        check_sender(&from)?;
        let url = url::Url::parse(settings.url.expose())
            .map_err(|e| anyhow::anyhow!("mailer.smtp.url is not a URL like smtp://host:587 ({e})"))?;
        let host = url.host_str().context("mailer.smtp.url has no host")?.to_owned();
        let tls_parameters = || -> anyhow::Result<TlsParameters> {
            let mut builder = TlsParameters::builder(host.clone());
            if let Some(pem) = &settings.extra_root_pem {
                builder = builder.add_root_certificate(
                    Certificate::from_pem(pem).context("mailer.smtp.ca_file is not a PEM certificate")?,
                );
            }
            builder.build_rustls().context("cannot set up TLS for SMTP")
        };
        let (tls, default_port) = match (url.scheme(), settings.starttls) {
            ("smtps", _) => (Tls::Wrapper(tls_parameters()?), 465),
            ("smtp", StartTls::Required) => (Tls::Required(tls_parameters()?), 587),
            ("smtp", StartTls::Opportunistic) => (Tls::Opportunistic(tls_parameters()?), 587),
            ("smtp", StartTls::Off) => (Tls::None, 25),
            (other, _) => anyhow::bail!("mailer.smtp.url scheme `{other}` is not smtp or smtps"),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(settings.timeout))
            .pool_config(PoolConfig::new().max_size(settings.pool_size.max(1)));
        let decode = |s: &str| percent_decode(s);
        let username =
            settings.username.clone().or_else(|| (!url.username().is_empty()).then(|| decode(url.username())));
        let password = settings.password.as_ref().map(|p| p.expose().to_owned()).or_else(|| url.password().map(decode));
        match (username, password) {
            (Some(user), Some(password)) => builder = builder.credentials(Credentials::new(user, password)),
            (None, None) => {}
            _ => anyhow::bail!("mailer.smtp needs both a user name and a password, or neither"),
        }
        let message_id_domain = from.email.domain().to_owned();
        Ok(Self { transport: builder.build(), from, message_id_domain })
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &OutgoingEmail, idempotency_key: &str) -> Result<SentReceipt, MailError> {
        let rendered = email.rendered.clone();
        let to = email.to.as_str().parse().map_err(|e| MailError::Permanent(anyhow::anyhow!("bad recipient: {e}")))?;
        // A stable Message-ID per outbox row lets a receiving system spot a duplicate after a
        // crash between sending and recording.
        let message_id = format!("<{idempotency_key}@{}>", self.message_id_domain);
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to))
            .subject(rendered.subject)
            .message_id(Some(message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html))
            .map_err(|e| MailError::Permanent(anyhow::anyhow!("cannot build the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(_response) => Ok(SentReceipt { provider_message_id: Some(message_id) }),
            Err(error) if error.is_permanent() => Err(MailError::Permanent(anyhow::Error::new(error))),
            Err(error) => Err(MailError::transient(anyhow::Error::new(error))),
        }
    }

    async fn check(&self) -> anyhow::Result<()> {
        // lettre opens a connection as for a message (EHLO, STARTTLS, AUTH), then sends NOOP.
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => anyhow::bail!("the SMTP server accepted the connection but did not answer NOOP"),
            Err(error) => Err(anyhow::anyhow!(ports::mailer::failure_text(&anyhow::Error::new(error))))
                .context("cannot reach the SMTP server with mailer.smtp's settings"),
        }
    }
}
