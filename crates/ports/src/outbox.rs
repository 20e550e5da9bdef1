//! The outbox port: sign-in emails waiting to be delivered, and their delivery state.
//!
//! Asking for a link stores the link and its outbox row in one transaction (see
//! [`crate::LinkStore::insert_with_email`]); a delivery worker then claims due rows, sends them
//! and records the outcome. The link inside a pending row is sealed; once the row is sent,
//! failed or dropped, the sealed body is erased and only metadata stays.

use chrono::{DateTime, Utc};
use domain::{EmailAddress, LinkTokenHash, OutboxId};

/// An outbox row about to be stored with its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// The recipient.
    pub recipient: EmailAddress,
    /// The link's token hash: the row's key to its link, and the sealing's associated data.
    pub link_token_hash: LinkTokenHash,
    /// The link URL, sealed (see `domain::sealed`).
    pub sealed_link: Vec<u8>,
    /// When the link expires: after that the message is dropped, never sent late.
    pub link_expires: DateTime<Utc>,
    /// When the message was queued (and first due).
    pub created_at: DateTime<Utc>,
}

/// A claimed outbox row, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Row id (UUIDv7).
    pub id: OutboxId,
    /// The recipient.
    pub recipient: EmailAddress,
    /// The link's token hash (associated data of the seal).
    pub link_token_hash: LinkTokenHash,
    /// The sealed link URL.
    pub sealed_link: Vec<u8>,
    /// When the link expires.
    pub link_expires: DateTime<Utc>,
    /// Attempts so far, including the one this claim starts.
    pub attempts: u32,
}

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its first or next attempt.
    Pending,
    /// Accepted by the provider.
    Sent,
    /// Refused for good, or out of attempts.
    Failed,
    /// Its link expired before it could be sent.
    Dropped,
}

impl DeliveryState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Dropped => "dropped",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        [DeliveryState::Pending, DeliveryState::Sent, DeliveryState::Failed, DeliveryState::Dropped]
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

/// An outbox row as operators see it: metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Row id.
    pub id: OutboxId,
    /// The recipient.
    pub recipient: EmailAddress,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: u32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it is next due (pending) or was last touched (otherwise).
    pub next_attempt_at: DateTime<Utc>,
    /// The provider's message id, once sent.
    pub provider_message_id: Option<String>,
    /// The last error or the reason it failed or was dropped.
    pub last_error: Option<String>,
}

/// How many rows are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Pending rows.
    pub pending: u64,
    /// Sent rows.
    pub sent: u64,
    /// Failed rows.
    pub failed: u64,
    /// Dropped rows.
    pub dropped: u64,
}

/// Stores the outbox.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// Claims up to `limit` pending rows due at `now`, oldest due first: increments their
    /// attempts and moves their next attempt to `lease_until`, so that a worker that dies
    /// mid-send leaves them to be retried after the lease rather than lost.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>>;

    /// Records a sent message and erases its body.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn mark_sent(
        &self,
        id: &OutboxId,
        provider_message_id: Option<String>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Records a transient failure; the row is due again at `next_attempt_at`.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn mark_retry(
        &self,
        id: &OutboxId,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// Records a message that will never be sent (`Failed` or `Dropped`) and erases its body.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn mark_final(
        &self,
        id: &OutboxId,
        state: DeliveryState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()>;

    /// When the earliest pending row is due, if any.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>>;

    /// The newest `limit` rows, newest first, optionally only those in `state`.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list(&self, state: Option<DeliveryState>, limit: u32) -> anyhow::Result<Vec<OutboxEntry>>;

    /// Rows per state.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn counts(&self) -> anyhow::Result<OutboxCounts>;

    /// Deletes rows that stopped being pending before `cutoff`, returning how many.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge_finished(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}

/// Tells the delivery worker that something was queued. Waking an idle worker is cheap and a
/// wake with no worker waiting is remembered until it next waits.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait DeliveryWaker: Send + Sync {
    /// Wakes the worker.
    fn wake(&self);
}
