//! The Resend mailer: `POST {base_url}/emails` with a bearer key, through reqwest with rustls.
//!
//! 2xx means sent (Resend's id is kept); 401, 403, 422 and other 4xx are permanent and logged
//! with Resend's own message; 429 and 5xx are transient and honour `Retry-After`. The outbox row
//! id goes in `Idempotency-Key`, so a retry after a crash is not sent twice. At start-up
//! [`Mailer::check`] asks `GET {base_url}/domains` with the key, which sends nothing.

use domain::SecretText;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::Mailbox;
use ports::{MailError, Mailer, OutgoingEmail, SentReceipt};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::json;

/// What the Resend mailer needs.
#[derive(Debug, Clone)]
pub struct ResendSettings {
    /// The API key (`AUTH_RESEND_KEY`).
    pub api_key: SecretText,
    /// The API's base URL, `https://api.resend.com` outside tests.
    pub base_url: String,
    /// Timeout of each request.
    pub timeout: Duration,
}

/// Sends rendered emails through Resend's HTTP API.
pub struct ResendMailer {
    http: reqwest::Client,
    endpoint: String,
    /// `GET {base_url}/domains`, which the start-up check asks with the key.
    check_endpoint: String,
    /// The API's base URL, for messages.
    base_url: String,
    api_key: SecretText,
    from: String,
}

impl ResendMailer {
    /// Builds the client.
    ///
    /// # Errors
    /// Names the setting that is missing or malformed.
    pub fn new(settings: &ResendSettings, from: &Mailbox) -> anyhow::Result<Self> {
        super::smtp::check_sender(from)?;
        anyhow::ensure!(!settings.api_key.is_empty(), "mailer.resend.api_key (AUTH_RESEND_KEY) is not set");
        let base = url::Url::parse(&settings.base_url)
            .map_err(|e| anyhow::anyhow!("mailer.resend.base_url `{}` is not a URL ({e})", settings.base_url))?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("magiclink/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let base = base.as_str().trim_end_matches('/');
        Ok(Self {
            http,
            endpoint: format!("{base}/emails"),
            check_endpoint: format!("{base}/domains"),
            base_url: base.to_owned(),
            api_key: settings.api_key.clone(),
            from: from.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl Mailer for ResendMailer {
    async fn send(&self, email: &OutgoingEmail, idempotency_key: &str) -> Result<SentReceipt, MailError> {
        let rendered = &email.rendered;
        let response = self
            .http
            .post(&self.endpoint)
            .bearer_auth(self.api_key.expose())
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({
                "from": self.from,
                "to": [email.to.as_str()],
                "subject": rendered.subject,
                "html": rendered.html,
                "text": rendered.text,
            }))
            .send()
            .await
            .map_err(|e| MailError::transient(anyhow::Error::new(e).context("Resend did not answer")))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() {
            let id = body["id"].as_str().map(str::to_owned);
            return Ok(SentReceipt { provider_message_id: id });
        }
        let message = body["message"].as_str().unwrap_or("no message").to_owned();
        let error = anyhow::anyhow!("Resend answered {status}: {message}");
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            Err(MailError::Transient { source: error, retry_after })
        } else {
            Err(MailError::Permanent(error))
        }
    }

    async fn check(&self) -> anyhow::Result<()> {
        let key = self.api_key.expose();
        anyhow::ensure!(
            key.starts_with("re_") && !key.contains(char::is_whitespace),
            "mailer.resend.api_key (AUTH_RESEND_KEY) is not a Resend API key: they start with `re_`"
        );
        // Listing domains asks for the key and sends nothing. A sending-only key may not list
        // them, and Resend says so by name: that answer proves the key too.
        let response = self
            .http
            .get(&self.check_endpoint)
            .bearer_auth(key)
            .send()
            .await
            .map_err(|error| anyhow::anyhow!(ports::mailer::failure_text(&anyhow::Error::new(error))))
            .with_context(|| format!("cannot reach Resend at {}", self.base_url))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
        if status.is_success() || body["name"] == "restricted_api_key" {
            return Ok(());
        }
        let message = body["message"].as_str().unwrap_or("no message");
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST => {
                anyhow::bail!("Resend refused mailer.resend.api_key (AUTH_RESEND_KEY): {status}: {message}")
            }
            _ => anyhow::bail!("Resend answered the check with {status}: {message}"),
        }
    }
}

/// `Retry-After` in seconds (the form Resend sends); an HTTP date is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}
