//! Telling apps over HTTP: the port the outbox worker POSTs through.
//!
//! Back-channel logout notices go this way (a logout token, form-encoded), and webhooks (JSON,
//! signed in headers); the outbox row, its
//! lease and its retries are the same as an email's (see [`crate::Deliverer`]). The adapter
//! only sends and sorts the answer into "done", "try again" or "will never work"; what is sent
//! and when is decided above it.

use std::fmt;
use std::time::Duration;

use url::Url;

/// One POST to an app.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpPost {
    /// Where to.
    pub url: Url,
    /// The body's media type.
    pub content_type: &'static str,
    /// Further headers (a webhook's id, timestamp and signature).
    pub headers: Vec<(&'static str, String)>,
    /// The body. It may carry a signed token, so `Debug` shows only its length.
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPost")
            .field("url", &self.url.as_str())
            .field("content_type", &self.content_type)
            .field("headers", &self.headers.iter().map(|(name, _)| *name).collect::<Vec<_>>())
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// Why a POST did not get through.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The app answered with a client error other than 408 or 429: it will answer the same
    /// again, so retrying cannot help.
    #[error("the app refused the request: {0:#}")]
    Permanent(#[source] anyhow::Error),
    /// The app could not be reached, timed out, failed (5xx) or asked us to come back later.
    #[error("the app is unavailable: {source:#}")]
    Transient {
        /// What went wrong.
        #[source]
        source: anyhow::Error,
        /// How long the app asked us to wait (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
}

/// Sends POSTs to apps.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `request`, returning the response's status when it is a success (2xx).
    ///
    /// # Errors
    /// A [`PostError`] saying whether trying again may help.
    async fn post(&self, request: &HttpPost) -> Result<u16, PostError>;
}

/// A configured webhook endpoint (`[[webhooks]]`): where to POST, which event types it wants,
/// and the secrets to sign with (the current one first, then those being rotated out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Where to POST (https, or http on loopback).
    pub url: Url,
    /// The event types it is sent.
    pub events: Vec<domain::webhook::WebhookEventType>,
    /// Signing secrets: every attempt is signed with each.
    pub secrets: Vec<domain::webhook::WebhookSecret>,
}
