//! The audit log port: security events, written with the change they record, read back by
//! person, kind and time, and forgotten after `audit.retention_days`.
//!
//! An event that records a change travels with the change into the store method that makes it
//! (a link and its email, a session and its sign-in, a sign-out), which writes both in one
//! transaction: a committed change always has its event, a rolled-back one none. An event that
//! records no change (a refused sign-in, a rate-limited request) is written on its own through
//! [`AuditLog::record`].

use chrono::{DateTime, Utc};
use domain::audit::{AuditEvent, AuditKind};
use domain::UserId;

/// An event as stored, with its id (a UUIDv7: ordered by time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Its id.
    pub id: String,
    /// The event.
    pub event: AuditEvent,
}

/// Which events to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this person's.
    pub user_id: Option<UserId>,
    /// Only of this kind.
    pub kind: Option<AuditKind>,
    /// Only at or after this moment.
    pub since: Option<DateTime<Utc>>,
    /// Only older than the event with this id (the next page).
    pub before_id: Option<String>,
    /// At most this many.
    pub limit: u32,
}

/// Stores audit events.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// Records an event that records no change of its own (a refusal).
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn record(&self, event: &AuditEvent) -> anyhow::Result<()>;

    /// The events `query` selects, newest first.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn list(&self, query: &AuditQuery) -> anyhow::Result<Vec<RecordedEvent>>;

    /// Deletes events older than `cutoff`, returning how many.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64>;
}
