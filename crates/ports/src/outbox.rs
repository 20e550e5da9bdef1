//! The outbox port: emails of every kind, and notices to apps, waiting to be delivered, and
//! their delivery state.
//!
//! Asking for a link stores the link and its outbox row in one transaction (see
//! [`crate::LinkStore::insert_with_email`]). While this instance's delivery worker keeps up, the
//! row is stored already leased to it and handed over in memory ([`DeliveryQueue`]): the email
//! goes out without a claim round-trip, and the stored row still guarantees delivery if the
//! process dies first (its lease runs out and any worker claims it). Otherwise the row is stored
//! due, and a worker claims due rows, sends them and records the outcome. The content of a
//! pending row (its link, code or new address) is sealed; once the row is sent, failed or
//! dropped, the sealed body is erased and only metadata stays. Other kinds of email (the
//! address-change confirmation and notice) are stored the same way, with the change they
//! belong to (see [`crate::UserStore::request_address_change`]).
//!
//! Not every row is an email. When a session ends that an app got an ID token in, the store
//! queues a back-channel logout notice for that app in the same transaction (see
//! [`crate::SessionStore::delete`]); the worker signs a logout token and POSTs it
//! ([`crate::WebhookSender`]) with the same leases, retries and records as an email. A notice
//! holds only identifiers, so it is stored in the clear. Webhooks are queued the same way, by
//! the store, with the audit event they tell of (see `domain::webhook`); their body is sealed
//! like an email's, and they are delivered one at a time per person and endpoint, in order.

use chrono::{DateTime, Utc};
use domain::oidc::{ClientId, LogoutNotice};
use domain::{EmailAddress, LinkTokenHash, OutboxId};

use crate::mailer::EmailKind;

/// An outbox row about to be stored with what it is about (a link, an address change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// What kind of email it is.
    pub kind: EmailKind,
    /// The language to write it in.
    pub lang: String,
    /// The recipient.
    pub recipient: EmailAddress,
    /// The token hash of the link the email carries (random for an email without one): the
    /// sealing's associated data, which binds the body to this row.
    pub link_token_hash: LinkTokenHash,
    /// The [`crate::EmailContent`], sealed (see `domain::sealed`).
    pub sealed_body: Vec<u8>,
    /// When its link expires: after that the message is dropped, never sent late.
    pub expires: DateTime<Utc>,
    /// When the message was queued (and first due, unless leased).
    pub created_at: DateTime<Utc>,
    /// When set, the row is stored claimed by this instance (one attempt begun) until then,
    /// to be sent from memory; otherwise it is stored due at `created_at`.
    pub leased_until: Option<DateTime<Utc>>,
}

impl NewOutboxMessage {
    /// The message as the worker that holds its lease sees it, once stored as row `id`.
    pub fn into_claimed(self, id: OutboxId, leased_until: DateTime<Utc>) -> OutboxMessage {
        OutboxMessage {
            id,
            payload: Payload::Email(QueuedEmail {
                kind: self.kind,
                lang: self.lang,
                recipient: self.recipient,
                link_token_hash: self.link_token_hash,
                sealed_body: self.sealed_body,
            }),
            expires: self.expires,
            attempts: 1,
            leased_until,
        }
    }
}

/// A queued email as the worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEmail {
    /// What kind of email it is.
    pub kind: EmailKind,
    /// The language to write it in.
    pub lang: String,
    /// The recipient.
    pub recipient: EmailAddress,
    /// Associated data of the seal (see [`NewOutboxMessage::link_token_hash`]).
    pub link_token_hash: LinkTokenHash,
    /// The sealed [`crate::EmailContent`].
    pub sealed_body: Vec<u8>,
}

/// What a row carries: the worker sends each kind its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// An email, through the [`crate::Mailer`].
    Email(QueuedEmail),
    /// A back-channel logout notice, signed as a logout token when it is sent and POSTed to
    /// the app through the [`crate::WebhookSender`].
    BackchannelLogout(LogoutNotice),
    /// A webhook: its body sealed like an email's, signed for its endpoint at each attempt and
    /// POSTed through the [`crate::WebhookSender`].
    Webhook(QueuedWebhook),
}

/// A queued webhook as the worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedWebhook {
    /// The endpoint's URL, as configured (`webhooks[].url`).
    pub endpoint: String,
    /// Associated data of the seal (random per row), which binds the body to this row.
    pub seal_id: LinkTokenHash,
    /// The sealed JSON body.
    pub sealed_body: Vec<u8>,
}

/// A claimed outbox row, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Row id (UUIDv7).
    pub id: OutboxId,
    /// What to send, to whom.
    pub payload: Payload,
    /// When it stops being worth sending (a link's expiry; a day for a logout notice).
    pub expires: DateTime<Utc>,
    /// Attempts so far, including the one this claim starts.
    pub attempts: u32,
    /// When this claim's lease runs out: after that another worker may claim the row, so this
    /// one must not send it.
    pub leased_until: DateTime<Utc>,
}

/// A message the provider accepted, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// Its row.
    pub id: OutboxId,
    /// The provider's id for it, if the provider gave one.
    pub provider_message_id: Option<String>,
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

/// What kind of message a row is, as stored in its `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// An email of this kind (stored under the email kind's own name, as before notices).
    Email(EmailKind),
    /// A back-channel logout notice.
    BackchannelLogout,
    /// A webhook.
    Webhook,
}

impl MessageKind {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Email(kind) => kind.as_str(),
            MessageKind::BackchannelLogout => "backchannel_logout",
            MessageKind::Webhook => "webhook",
        }
    }

    /// Reads a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "backchannel_logout" => Some(MessageKind::BackchannelLogout),
            "webhook" => Some(MessageKind::Webhook),
            other => EmailKind::parse(other).map(MessageKind::Email),
        }
    }
}

/// Whom a row is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressee {
    /// A person's inbox.
    Email(EmailAddress),
    /// A registered app (its back-channel logout URI is looked up when the notice is sent).
    App(ClientId),
    /// A configured webhook endpoint, by its URL.
    Endpoint(String),
}

impl Addressee {
    /// As operators see it: an address masked, an app by its client id.
    pub fn masked(&self) -> String {
        match self {
            Addressee::Email(address) => address.masked(),
            Addressee::App(client_id) => format!("app {client_id}"),
            Addressee::Endpoint(url) => format!("webhook {url}"),
        }
    }
}

/// An outbox row as operators see it: metadata only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Row id.
    pub id: OutboxId,
    /// What kind of message it is.
    pub kind: MessageKind,
    /// Whom it is for.
    pub recipient: Addressee,
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
    /// When the oldest pending row was queued (`None` with none pending).
    pub oldest_pending: Option<DateTime<Utc>>,
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

    /// Stores an email that belongs to no other change (a security alert, sent after the
    /// change it tells of committed), due at once unless leased. Returns its row's id.
    ///
    /// # Errors
    /// MUST fail if it could not be stored durably.
    async fn enqueue(&self, message: &NewOutboxMessage) -> anyhow::Result<OutboxId>;

    /// Records sent messages and erases their bodies, all in one write: a worker records a
    /// whole batch at once. A row already recorded sent keeps its first record; a row that a
    /// worker whose lease ran out recorded failed or dropped meanwhile is recorded sent, since
    /// it was.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn mark_sent(&self, sent: &[SentMessage], now: DateTime<Utc>) -> anyhow::Result<()>;

    /// Records a transient failure; the row is due again at `next_attempt_at`. Only a pending
    /// row changes: a worker whose lease ran out never reopens a finished one.
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
    /// Only a pending row changes: a worker whose lease ran out never overwrites another
    /// worker's `sent`.
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

    /// Gives back rows leased to this instance that it will not send (it is stopping): due at
    /// `now` again, the attempt they were leased for not counted. Rows no longer pending are
    /// left alone. Returns how many were given back.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn release(&self, ids: &[OutboxId], now: DateTime<Utc>) -> anyhow::Result<u64>;

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

/// This instance's delivery worker, as the sign-in use case hands it new emails.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait DeliveryQueue: Send + Sync {
    /// Until when a row stored at `now` should be leased to this instance's worker, which will
    /// send it from memory; `None` when the worker is backed up, and the row should be stored
    /// due for the next claim instead.
    fn lease_for_new(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>>;

    /// Hands over a message stored with the lease [`DeliveryQueue::lease_for_new`] gave.
    fn hand_over(&self, message: OutboxMessage);

    /// Wakes the worker to claim due rows. A wake with no worker waiting is remembered until it
    /// next waits.
    fn wake(&self);
}
