//! Delivering queued emails: render and send what was handed over in memory or claimed from
//! the outbox, record what happened.
//!
//! Two ways in, one way out. A new email is stored leased to this instance and handed over in
//! memory ([`crate::DeliveryQueue`]; no claim round-trip while the process is healthy), then
//! sent by [`Deliverer::deliver_handed_over`]; rows that are due (retries, a full hand-over
//! queue, leases left by a process that died) are claimed in batches by
//! [`Deliverer::deliver_due`]. Both end in the same send-and-record step.
//!
//! Delivery is at least once: a row is claimed under a lease, sent, then recorded. Only a crash
//! between the provider's acceptance and the record can send a message twice (and the row id is
//! passed to the mailer as an idempotency key, which Resend honours). Transient failures retry
//! with exponential backoff and jitter up to a limit; a message whose link expired is dropped,
//! never sent late; permanent failures are recorded with the provider's reason.
//!
//! Every kind of email goes this way. Its sealed [`EmailContent`] is opened here and rendered
//! here, once per attempt, in the language stored with it; the mailer only sends. Back-channel
//! logout notices go the same way to a different door: each attempt signs a fresh logout token
//! ([`BackchannelLogout`]) and POSTs it through the [`WebhookSender`]; the app's answer is
//! sorted into sent, retry and failed exactly as a mail provider's is.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::link::is_expired;
use domain::SecretRing;
use futures_util::stream::{self, StreamExt as _};

use crate::clock::Clock;
use crate::mailer::{Email, EmailContent, EmailRenderer, MailError, Mailer, OutgoingEmail};
use crate::oidc::logout::BackchannelLogout;
use crate::outbox::{DeliveryState, Outbox, OutboxMessage, Payload, QueuedEmail, QueuedWebhook, SentMessage};
use crate::random::os_random;
use crate::webhook::{HttpPost, PostError, WebhookEndpoint, WebhookSender};

/// When to retry a transient failure, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay after the first failure; it doubles after each further one.
    pub base_delay: TimeDelta,
    /// The delay never grows past this.
    pub max_delay: TimeDelta,
}

impl RetryPolicy {
    /// The delay after `failures` failed attempts, given a uniformly random `jitter`.
    ///
    /// "Equal jitter": half the exponential delay is fixed, the other half random, so retries
    /// from many messages spread out while none comes back sooner than half its schedule.
    pub fn delay(&self, failures: u32, jitter: u32) -> TimeDelta {
        let doublings = failures.saturating_sub(1).min(30);
        let exponential = self.base_delay.checked_mul(1 << doublings).unwrap_or(self.max_delay).min(self.max_delay);
        let half = exponential / 2;
        let random_part = TimeDelta::milliseconds(
            (half.num_milliseconds().max(0) as f64 * (f64::from(jitter) / f64::from(u32::MAX))) as i64,
        );
        half + random_part
    }
}

/// Fixed settings of the delivery worker.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Opens the sealed bodies, under the secret that sealed them (the current one or one
    /// rotated out since).
    pub secrets: SecretRing,
    /// Retry schedule.
    pub retry: RetryPolicy,
    /// Messages sent at once.
    pub concurrency: u32,
    /// How long a claimed row is left alone before another attempt may claim it again.
    pub lease: TimeDelta,
    /// The product name used in emails.
    pub site_name: String,
    /// The host the links point at.
    pub host: String,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Rows claimed.
    pub claimed: u32,
    /// Accepted by the provider.
    pub sent: u32,
    /// Failed transiently, to be retried.
    pub retried: u32,
    /// Failed for good.
    pub failed: u32,
    /// Dropped because their link expired.
    pub dropped: u32,
    /// Handed over too late to send: their lease ran out first, so they are left to a claim.
    pub lapsed: u32,
    /// Sent, but recording it failed: kept to record again ([`Deliverer::record_again`])
    /// until their lease runs out.
    pub unrecorded: u32,
}

impl BatchReport {
    /// Adds another batch's counts to these.
    pub fn add(&mut self, other: BatchReport) {
        self.claimed += other.claimed;
        self.sent += other.sent;
        self.retried += other.retried;
        self.failed += other.failed;
        self.dropped += other.dropped;
        self.lapsed += other.lapsed;
        self.unrecorded += other.unrecorded;
    }

    /// Whether some rows were left pending (to retry, or to claim after a lapsed lease), so the
    /// outbox should be looked at again.
    pub fn left_pending(&self) -> bool {
        self.retried > 0 || self.lapsed > 0
    }
}

/// Why a batch could not run.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Where webhooks go: the configured endpoints and the HTTP door.
struct Webhooks {
    endpoints: Vec<WebhookEndpoint>,
    sender: Arc<dyn WebhookSender>,
}

/// Where notices to apps go: the logout tokens they carry, and the HTTP door.
struct AppNotices {
    logout: Arc<BackchannelLogout>,
    sender: Arc<dyn WebhookSender>,
}

/// The delivery use case over the outbox, a mailer and the clock.
pub struct Deliverer {
    outbox: Arc<dyn Outbox>,
    renderer: Arc<dyn EmailRenderer>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    /// `None` while the OpenID Provider is off: a notice queued before it was turned off fails.
    apps: Option<AppNotices>,
    /// `None` with no webhook configured: a webhook queued before that was dropped.
    webhooks: Option<Webhooks>,
    /// Messages the provider accepted whose record failed, with when their lease runs out:
    /// recorded again until then, since after it another worker would send them a second time.
    unrecorded: std::sync::Mutex<Vec<(SentMessage, DateTime<Utc>)>>,
}

enum Outcome {
    /// Accepted by the provider; recorded with the rest of its batch. With its lease's end.
    Sent(SentMessage, DateTime<Utc>),
    Retried,
    Failed,
    Dropped,
}

/// What one attempt at one message came to, before it is recorded.
enum Attempt {
    /// Accepted, with the provider's id for it if it gave one.
    Accepted(Option<String>),
    /// Will never be sent: recorded `Failed` with the reason.
    Refused(String),
    /// Not worth sending any more: recorded `Dropped` with the reason.
    Moot(String),
    /// Failed for now: retried after the backoff (or after `retry_after` if later), unless out
    /// of attempts.
    Unavailable { reason: String, retry_after: Option<std::time::Duration> },
}

impl From<MailError> for Attempt {
    fn from(error: MailError) -> Self {
        match error {
            MailError::Permanent(error) => Attempt::Refused(crate::mailer::failure_text(&error)),
            MailError::Transient { source, retry_after } => {
                Attempt::Unavailable { reason: crate::mailer::failure_text(&source), retry_after }
            }
        }
    }
}

impl From<PostError> for Attempt {
    fn from(error: PostError) -> Self {
        match error {
            PostError::Permanent(error) => Attempt::Refused(crate::mailer::failure_text(&error)),
            PostError::Transient { source, retry_after } => {
                Attempt::Unavailable { reason: crate::mailer::failure_text(&source), retry_after }
            }
        }
    }
}

impl Deliverer {
    /// Assembles the worker's core from its ports.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        renderer: Arc<dyn EmailRenderer>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            outbox,
            renderer,
            mailer,
            clock,
            settings,
            apps: None,
            webhooks: None,
            unrecorded: std::sync::Mutex::default(),
        }
    }

    /// Delivers webhooks too: to `endpoints`, through `sender`.
    #[must_use]
    pub fn with_webhooks(mut self, endpoints: Vec<WebhookEndpoint>, sender: Arc<dyn WebhookSender>) -> Self {
        self.webhooks = Some(Webhooks { endpoints, sender });
        self
    }

    /// Delivers back-channel logout notices too: signed by `logout`, POSTed through `sender`.
    #[must_use]
    pub fn with_app_notices(mut self, logout: Arc<BackchannelLogout>, sender: Arc<dyn WebhookSender>) -> Self {
        self.apps = Some(AppNotices { logout, sender });
        self
    }

    /// The fixed settings.
    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// Claims the rows due now and delivers them, `concurrency` at a time.
    ///
    /// # Errors
    /// [`DeliveryError::Unexpected`] when claiming fails. A failure to record one message's
    /// outcome is logged and leaves that row to be retried after its lease.
    pub async fn deliver_due(&self) -> Result<BatchReport, DeliveryError> {
        let now = self.clock.now();
        let concurrency = self.settings.concurrency.max(1);
        let claimed = self.outbox.claim_due(now, now + self.settings.lease, concurrency.saturating_mul(4)).await?;
        let count = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
        let mut report = self.deliver_all(claimed).await;
        report.claimed = count;
        Ok(report)
    }

    /// Delivers messages handed over in memory, those whose lease still holds; the others are
    /// left to a claim (counted as `lapsed`).
    pub async fn deliver_handed_over(&self, messages: Vec<OutboxMessage>) -> BatchReport {
        let now = self.clock.now();
        let (live, lapsed): (Vec<OutboxMessage>, Vec<OutboxMessage>) =
            messages.into_iter().partition(|message| message.leased_until > now);
        let taken = u32::try_from(live.len()).unwrap_or(u32::MAX);
        let mut report = self.deliver_all(live).await;
        report.claimed = taken;
        report.lapsed = u32::try_from(lapsed.len()).unwrap_or(u32::MAX);
        report
    }

    /// Sends `messages`, `concurrency` at a time, and records each outcome.
    async fn deliver_all(&self, messages: Vec<OutboxMessage>) -> BatchReport {
        let concurrency = usize::try_from(self.settings.concurrency.max(1)).unwrap_or(1);
        let outcomes: Vec<anyhow::Result<Outcome>> = stream::iter(messages)
            .map(|message| self.deliver_one(message))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut report = BatchReport::default();
        let mut sent = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(Outcome::Sent(message, lease_ends)) => sent.push((message, lease_ends)),
                Ok(Outcome::Retried) => report.retried += 1,
                Ok(Outcome::Failed) => report.failed += 1,
                Ok(Outcome::Dropped) => report.dropped += 1,
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "recording a delivery failed; it will be retried after its lease")
                }
            }
        }
        if !sent.is_empty() {
            // One write for the whole batch. If it fails, the messages are kept to record again
            // while their lease holds; only past it would another worker send them again.
            let records: Vec<SentMessage> = sent.iter().map(|(message, _)| message.clone()).collect();
            match self.outbox.mark_sent(&records, self.clock.now()).await {
                Ok(()) => report.sent = u32::try_from(sent.len()).unwrap_or(u32::MAX),
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "recording sent emails failed; trying again while their lease holds");
                    report.unrecorded = u32::try_from(sent.len()).unwrap_or(u32::MAX);
                    self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(sent);
                }
            }
        }
        report
    }

    /// Tries again to record the messages whose record failed. Those whose lease ran out are
    /// given up (another worker may send them again; `docs/email.md` says when). Returns how
    /// many are still kept, for the caller to try again after a pause, or the failure.
    ///
    /// # Errors
    /// [`DeliveryError::Unexpected`] when recording fails again; the messages stay kept.
    pub async fn record_again(&self) -> Result<usize, DeliveryError> {
        let now = self.clock.now();
        let kept: Vec<(SentMessage, DateTime<Utc>)> = {
            let mut kept = self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (live, lapsed): (Vec<_>, Vec<_>) = kept.drain(..).partition(|(_, lease_ends)| *lease_ends > now);
            if !lapsed.is_empty() {
                tracing::error!(
                    emails = lapsed.len(),
                    "gave up recording sent emails: their lease ran out, so they may be sent a second time"
                );
            }
            live
        };
        if kept.is_empty() {
            return Ok(0);
        }
        let records: Vec<SentMessage> = kept.iter().map(|(message, _)| message.clone()).collect();
        match self.outbox.mark_sent(&records, now).await {
            Ok(()) => {
                tracing::info!(emails = records.len(), "recorded sent emails at a later try");
                Ok(0)
            }
            Err(error) => {
                let count = kept.len();
                self.unrecorded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(kept);
                Err(DeliveryError::Unexpected(error.context(format!("{count} sent emails still unrecorded"))))
            }
        }
    }

    /// Gives back handed-over messages this instance will not send (it is stopping), so that
    /// the next worker to claim sends them at once instead of after their lease.
    ///
    /// # Errors
    /// [`DeliveryError::Unexpected`] on a storage failure; the rows then wait for their lease.
    pub async fn release(&self, messages: Vec<OutboxMessage>) -> Result<u64, DeliveryError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let ids: Vec<_> = messages.into_iter().map(|message| message.id).collect();
        Ok(self.outbox.release(&ids, self.clock.now()).await?)
    }

    /// When the next pending message is due, if any.
    ///
    /// # Errors
    /// [`DeliveryError::Unexpected`] on a storage failure.
    pub async fn next_due(&self) -> Result<Option<DateTime<Utc>>, DeliveryError> {
        Ok(self.outbox.next_due().await?)
    }

    /// Deletes delivery records (metadata only) finished longer than `retention` ago.
    ///
    /// # Errors
    /// [`DeliveryError::Unexpected`] on a storage failure.
    pub async fn purge_finished(&self, retention: TimeDelta) -> Result<u64, DeliveryError> {
        Ok(self.outbox.purge_finished(self.clock.now() - retention).await?)
    }

    async fn deliver_one(&self, message: OutboxMessage) -> anyhow::Result<Outcome> {
        let now = self.clock.now();
        // What the log calls it: operators search for "email sent" and "email refused".
        let (to, kind, what, a_what) = match &message.payload {
            Payload::Email(email) => (email.recipient.masked(), email.kind.as_str(), "email", "an email"),
            Payload::BackchannelLogout(notice) => {
                (format!("app {}", notice.client_id), "backchannel_logout", "logout notice", "a logout notice")
            }
            Payload::Webhook(webhook) => (format!("webhook {}", webhook.endpoint), "webhook", "webhook", "a webhook"),
        };
        let attempt = if is_expired(message.expires, now) {
            Attempt::Moot("expired before it could be sent".to_owned())
        } else {
            match &message.payload {
                Payload::Email(email) => self.send_email(&message, email, now).await,
                Payload::BackchannelLogout(notice) => self.send_logout_notice(notice, now).await,
                Payload::Webhook(webhook) => self.send_webhook(&message, webhook, now).await,
            }
        };
        let now = self.clock.now();
        match attempt {
            Attempt::Accepted(provider_message_id) => {
                tracing::info!(to = %to, id = %message.id, kind, attempts = message.attempts, provider_id = provider_message_id.as_deref(), "{what} sent");
                let record = SentMessage { id: message.id, provider_message_id };
                Ok(Outcome::Sent(record, message.leased_until))
            }
            Attempt::Moot(reason) => {
                tracing::warn!(to = %to, id = %message.id, kind, reason = %reason, "dropping {a_what}: not sent");
                self.outbox.mark_final(&message.id, DeliveryState::Dropped, &reason, now).await?;
                Ok(Outcome::Dropped)
            }
            Attempt::Refused(reason) => {
                tracing::error!(to = %to, id = %message.id, kind, reason = %reason, "{what} refused for good: not sent");
                self.outbox.mark_final(&message.id, DeliveryState::Failed, &reason, now).await?;
                Ok(Outcome::Failed)
            }
            Attempt::Unavailable { reason, retry_after } => {
                if message.attempts >= self.settings.retry.max_attempts {
                    tracing::error!(to = %to, id = %message.id, kind, attempts = message.attempts, reason = %reason, "giving up on {a_what}: not sent");
                    let reason = format!("gave up after {} attempts: {reason}", message.attempts);
                    self.outbox.mark_final(&message.id, DeliveryState::Failed, &reason, now).await?;
                    return Ok(Outcome::Failed);
                }
                let jitter = u32::from_le_bytes(os_random::<4>()?);
                let mut delay = self.settings.retry.delay(message.attempts, jitter);
                if let Some(asked) = retry_after.and_then(|d| TimeDelta::from_std(d).ok()) {
                    delay = delay.max(asked);
                }
                tracing::warn!(to = %to, id = %message.id, kind, attempts = message.attempts, retry_in_ms = delay.num_milliseconds(), reason = %reason, "sending {a_what} failed; it will be retried");
                self.outbox.mark_retry(&message.id, now + delay, &reason, now).await?;
                Ok(Outcome::Retried)
            }
        }
    }

    /// One attempt at an email: open, render, send.
    async fn send_email(&self, message: &OutboxMessage, queued: &QueuedEmail, now: DateTime<Utc>) -> Attempt {
        let Some(content) = self.unseal(queued) else {
            return Attempt::Refused("sealed body does not open (secret changed?)".to_owned());
        };
        let seconds_left = u64::try_from((message.expires - now).num_seconds()).unwrap_or_default().max(1);
        let email = Email {
            to: queued.recipient.clone(),
            lang: queued.lang.clone(),
            content,
            expires_in_seconds: seconds_left,
            site_name: self.settings.site_name.clone(),
            host: self.settings.host.clone(),
        };
        let rendered = match self.renderer.render(&email) {
            Ok(rendered) => rendered,
            // A template that does not render will not render on a retry either.
            Err(error) => return Attempt::Refused(format!("the email does not render: {error:#}")),
        };
        let outgoing = OutgoingEmail { to: email.to, content: email.content, rendered };
        match self.mailer.send(&outgoing, message.id.as_str()).await {
            Ok(receipt) => Attempt::Accepted(receipt.provider_message_id),
            Err(error) => error.into(),
        }
    }

    /// One attempt at a back-channel logout notice: sign a logout token now, POST it.
    async fn send_logout_notice(&self, notice: &domain::oidc::LogoutNotice, now: DateTime<Utc>) -> Attempt {
        let Some(apps) = &self.apps else {
            return Attempt::Refused("the OpenID Provider is turned off".to_owned());
        };
        let request = match apps.logout.request(notice, now).await {
            Ok(Some(request)) => request,
            Ok(None) => {
                return Attempt::Moot("the app is gone or no longer registered for back-channel logout".to_owned())
            }
            Err(error) => return Attempt::Unavailable { reason: format!("{error:#}"), retry_after: None },
        };
        match apps.sender.post(&request).await {
            Ok(status) => Attempt::Accepted(Some(format!("HTTP {status}"))),
            Err(error) => error.into(),
        }
    }

    /// One attempt at a webhook: open its body, sign it for its endpoint now, POST it. The
    /// `webhook-id` is the row's id, the same on every attempt, so the receiver can tell a
    /// retry from a new event.
    async fn send_webhook(&self, message: &OutboxMessage, queued: &QueuedWebhook, now: DateTime<Utc>) -> Attempt {
        let Some(webhooks) = &self.webhooks else {
            return Attempt::Moot("no webhook is configured any more".to_owned());
        };
        let Some(endpoint) = webhooks.endpoints.iter().find(|endpoint| endpoint.url.as_str() == queued.endpoint) else {
            return Attempt::Moot("its endpoint is no longer configured".to_owned());
        };
        let Some(body) = self.open_sealed(&queued.seal_id, &queued.sealed_body) else {
            return Attempt::Refused("sealed body does not open (secret changed?)".to_owned());
        };
        let id = format!("msg_{}", message.id.as_str());
        let timestamp = now.timestamp();
        let signature = domain::webhook::signature_header(&endpoint.secrets, &id, timestamp, &body);
        let request = HttpPost {
            url: endpoint.url.clone(),
            content_type: "application/json",
            headers: vec![
                ("webhook-id", id),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", signature),
            ],
            body,
        };
        match webhooks.sender.post(&request).await {
            Ok(status) => Attempt::Accepted(Some(format!("HTTP {status}"))),
            Err(error) => error.into(),
        }
    }

    /// The row's content, opened with the current secret or one rotated out while it waited.
    fn unseal(&self, message: &QueuedEmail) -> Option<EmailContent> {
        let plain = self.open_sealed(&message.link_token_hash, &message.sealed_body)?;
        EmailContent::from_sealed_text(message.kind, std::str::from_utf8(&plain).ok()?)
    }

    /// A sealed body bound to `seal_id`, opened with the current secret or one rotated out
    /// while it waited.
    fn open_sealed(&self, seal_id: &domain::LinkTokenHash, sealed: &[u8]) -> Option<Vec<u8>> {
        let associated = seal_id.to_hex();
        self.settings.secrets.all().find_map(|secret| domain::sealed::open(secret, associated.as_bytes(), sealed).ok())
    }
}

#[cfg(test)]
mod tests;
