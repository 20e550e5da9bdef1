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
//! here, once per attempt, in the language stored with it; the mailer only sends.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::link::is_expired;
use domain::SecretRing;
use futures_util::stream::{self, StreamExt as _};

use crate::clock::Clock;
use crate::mailer::{Email, EmailContent, EmailRenderer, MailError, Mailer, OutgoingEmail};
use crate::outbox::{DeliveryState, Outbox, OutboxMessage, SentMessage};
use crate::random::os_random;

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

/// The delivery use case over the outbox, a mailer and the clock.
pub struct Deliverer {
    outbox: Arc<dyn Outbox>,
    renderer: Arc<dyn EmailRenderer>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
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

impl Deliverer {
    /// Assembles the worker's core from its ports.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        renderer: Arc<dyn EmailRenderer>,
        mailer: Arc<dyn Mailer>,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
    ) -> Self {
        Self { outbox, renderer, mailer, clock, settings, unrecorded: std::sync::Mutex::default() }
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
        let to = message.recipient.masked();
        let kind = message.kind.as_str();
        if is_expired(message.expires, now) {
            tracing::warn!(to = %to, id = %message.id, kind, "dropping an email whose link expired before it could be sent");
            self.outbox
                .mark_final(&message.id, DeliveryState::Dropped, "link expired before it could be sent", now)
                .await?;
            return Ok(Outcome::Dropped);
        }
        let Some(content) = self.unseal(&message) else {
            tracing::error!(to = %to, id = %message.id, kind, "cannot open a queued email; was the secret changed?");
            self.outbox
                .mark_final(&message.id, DeliveryState::Failed, "sealed body does not open (secret changed?)", now)
                .await?;
            return Ok(Outcome::Failed);
        };
        let seconds_left = u64::try_from((message.expires - now).num_seconds()).unwrap_or_default().max(1);
        let email = Email {
            to: message.recipient.clone(),
            lang: message.lang.clone(),
            content,
            expires_in_seconds: seconds_left,
            site_name: self.settings.site_name.clone(),
            host: self.settings.host.clone(),
        };
        let rendered = match self.renderer.render(&email) {
            Ok(rendered) => rendered,
            Err(error) => {
                // A template that does not render will not render on a retry either.
                let reason = format!("the email does not render: {error:#}");
                tracing::error!(to = %to, id = %message.id, kind, reason = %reason, "cannot render an email");
                self.outbox.mark_final(&message.id, DeliveryState::Failed, &reason, now).await?;
                return Ok(Outcome::Failed);
            }
        };
        let outgoing = OutgoingEmail { to: email.to, content: email.content, rendered };
        match self.mailer.send(&outgoing, message.id.as_str()).await {
            Ok(receipt) => {
                tracing::info!(to = %to, id = %message.id, kind, attempts = message.attempts, provider_id = receipt.provider_message_id.as_deref(), "email sent");
                let record = SentMessage { id: message.id, provider_message_id: receipt.provider_message_id };
                Ok(Outcome::Sent(record, message.leased_until))
            }
            Err(MailError::Permanent(error)) => {
                let reason = crate::mailer::failure_text(&error);
                tracing::error!(to = %to, id = %message.id, kind, reason = %reason, "email refused for good: not sent");
                self.outbox.mark_final(&message.id, DeliveryState::Failed, &reason, self.clock.now()).await?;
                Ok(Outcome::Failed)
            }
            Err(MailError::Transient { source, retry_after }) => {
                let reason = crate::mailer::failure_text(&source);
                let now = self.clock.now();
                if message.attempts >= self.settings.retry.max_attempts {
                    tracing::error!(to = %to, id = %message.id, kind, attempts = message.attempts, reason = %reason, "giving up on an email: not sent");
                    let reason = format!("gave up after {} attempts: {reason}", message.attempts);
                    self.outbox.mark_final(&message.id, DeliveryState::Failed, &reason, now).await?;
                    return Ok(Outcome::Failed);
                }
                let jitter = u32::from_le_bytes(os_random::<4>()?);
                let mut delay = self.settings.retry.delay(message.attempts, jitter);
                if let Some(asked) = retry_after.and_then(|d| TimeDelta::from_std(d).ok()) {
                    delay = delay.max(asked);
                }
                tracing::warn!(to = %to, id = %message.id, kind, attempts = message.attempts, retry_in_ms = delay.num_milliseconds(), reason = %reason, "sending an email failed; it will be retried");
                self.outbox.mark_retry(&message.id, now + delay, &reason, now).await?;
                Ok(Outcome::Retried)
            }
        }
    }

    /// The row's content, opened with the current secret or one rotated out while it waited.
    fn unseal(&self, message: &OutboxMessage) -> Option<EmailContent> {
        let associated = message.link_token_hash.to_hex();
        let plain = self
            .settings
            .secrets
            .all()
            .find_map(|secret| domain::sealed::open(secret, associated.as_bytes(), &message.sealed_body).ok())?;
        EmailContent::from_sealed_text(message.kind, std::str::from_utf8(&plain).ok()?)
    }
}

#[cfg(test)]
mod tests;
