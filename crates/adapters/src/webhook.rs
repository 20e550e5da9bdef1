//! POSTs to apps ([`WebhookSender`]) through reqwest with rustls: back-channel logout notices.
//!
//! The app's answer decides what happens next: a 2xx is done; 408, 429 and 5xx, a timeout or
//! no answer are tried again later (after `Retry-After` when the app said); any other status
//! will not change by asking again. Redirects are not followed: a registered URI that moved is
//! the operator's to update, and following one would let an app point magiclink anywhere.

use std::time::Duration;

use anyhow::Context as _;
use ports::{HttpPost, PostError, WebhookSender};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;

/// The HTTP client for apps.
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    http: reqwest::Client,
}

impl HttpWebhookSender {
    /// A client that gives up on an app after `timeout`.
    ///
    /// # Errors
    /// When the TLS setup cannot be built.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("magiclink/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { http })
    }
}

#[async_trait::async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn post(&self, request: &HttpPost) -> Result<u16, PostError> {
        let mut post = self.http.post(request.url.clone()).header(CONTENT_TYPE, request.content_type);
        for (name, value) in &request.headers {
            post = post.header(*name, value);
        }
        let response = post.body(request.body.clone()).send().await.map_err(|error| PostError::Transient {
            // Without the URL: reqwest's message repeats it, and the outbox row names the app.
            source: anyhow::Error::new(error.without_url()).context("the app did not answer"),
            retry_after: None,
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(status.as_u16());
        }
        let retry_after = crate::mail::resend::retry_after(response.headers());
        let error = anyhow::anyhow!("the app answered HTTP {}", status.as_u16());
        if matches!(status, StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS) || status.is_server_error() {
            Err(PostError::Transient { source: error, retry_after })
        } else {
            Err(PostError::Permanent(error))
        }
    }
}
