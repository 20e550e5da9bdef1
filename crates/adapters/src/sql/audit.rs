//! The audit log ([`AuditLog`]): events written inside the transaction of the change they
//! record ([`SqlStore::insert_audit`], called by the link, session and user stores), or on
//! their own for refusals; read newest first by person, kind and time; purged by age.
//!
//! `user_id` has no foreign key on purpose: a deleted person's events stay, with the id and
//! without the address.

use chrono::{DateTime, Utc};
use domain::audit::{AuditEvent, AuditKind, AuditOutcome, RequestOrigin};
use domain::id::Id;
use domain::EmailAddress;
use ports::{AuditLog, AuditQuery, RecordedEvent};
use sqlx::any::AnyRow;
use sqlx::Any;

use super::store::*;
use super::Doing as _;
use crate::time::to_millis;

/// Marks audit event ids.
#[derive(Debug)]
pub enum AuditEventKind {}

/// The longest detail, user-agent summary or request id kept, in characters.
const MAX_AUDIT_TEXT: usize = 200;

/// What a store does with audit events, from `[audit]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditOptions {
    /// Events are written (`audit.enabled`); off, nothing is (for measuring its cost).
    pub enabled: bool,
    /// Events are also written to the log as JSON lines once committed (`audit.log_json`).
    pub log_json: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        Self { enabled: true, log_json: false }
    }
}

impl SqlStore {
    /// Writes `event` through `executor` (inside the caller's transaction). When the event
    /// names no user and `user_of` is given, the user with that address, if any, is named (a
    /// link asked for an existing account).
    pub(super) async fn insert_audit(
        &self,
        executor: impl sqlx::Executor<'_, Database = Any>,
        event: &AuditEvent,
        user_of: Option<&EmailAddress>,
    ) -> anyhow::Result<()> {
        if !self.audit_options().enabled {
            return Ok(());
        }
        let id = new_id::<AuditEventKind>()?;
        let user = match (&event.user_id, user_of) {
            (None, Some(_)) => "(SELECT id FROM users WHERE email = ?)",
            _ => "?",
        };
        let statement = format!(
            "INSERT INTO audit_events (id, at, kind, outcome, reason, user_id, session_id, method, client_address, \
             user_agent, request_id, detail) VALUES (?, ?, ?, ?, ?, {user}, ?, ?, ?, ?, ?, ?)"
        );
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement)
            .bind(id.as_str())
            .bind(to_millis(event.at))
            .bind(event.kind.as_str())
            .bind(event.outcome.as_str())
            .bind(event.outcome.reason());
        query = match (&event.user_id, user_of) {
            (None, Some(email)) => query.bind(email.as_str()),
            (user_id, _) => query.bind(user_id.as_ref().map(|id| id.as_str().to_owned())),
        };
        query
            .bind(event.session_id.as_ref().map(|id| id.as_str().to_owned()))
            .bind(event.method.map(domain::SignInMethod::as_str))
            .bind(event.origin.client_address.as_deref().map(|text| truncated(text, MAX_AUDIT_TEXT)))
            .bind(event.origin.user_agent.as_deref().map(|text| truncated(text, MAX_AUDIT_TEXT)))
            .bind(event.origin.request_id.as_deref().map(|text| truncated(text, MAX_AUDIT_TEXT)))
            .bind(event.detail.as_deref().map(|text| truncated(text, MAX_AUDIT_TEXT)))
            .execute(executor)
            .await
            .doing("cannot record the audit event")?;
        Ok(())
    }

    /// This store's options (the defaults until [`SqlStore::configure_audit`]).
    fn audit_options(&self) -> AuditOptions {
        self.audit_options.get().copied().unwrap_or_default()
    }

    /// Sets what this store does with audit events. Set once; later calls are ignored.
    pub fn configure_audit(&self, options: AuditOptions) {
        let _already_set = self.audit_options.set(options);
    }

    /// Writes committed events to the log as JSON lines, when that is on.
    pub(super) fn log_committed<'a>(&self, events: impl IntoIterator<Item = &'a AuditEvent>) {
        let options = self.audit_options();
        if !(options.enabled && options.log_json) {
            return;
        }
        for event in events {
            tracing::info!(target: "magiclink::audit", event = %event_json(None, event), "audit event");
        }
    }
}

/// An event as one JSON object: what `audit --json` prints and the log's JSON lines carry.
pub fn event_json(id: Option<&str>, event: &AuditEvent) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "at": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "kind": event.kind.as_str(),
        "outcome": event.outcome.as_str(),
        "reason": event.outcome.reason(),
        "user_id": event.user_id.as_ref().map(|id| id.as_str()),
        "session_id": event.session_id.as_ref().map(|id| id.as_str()),
        "method": event.method.map(domain::SignInMethod::as_str),
        "client_address": event.origin.client_address,
        "user_agent": event.origin.user_agent,
        "request_id": event.origin.request_id,
        "detail": event.detail,
    })
}

fn stored_outcome(outcome: &str, reason: Option<String>) -> anyhow::Result<AuditOutcome> {
    match outcome {
        "succeeded" => Ok(AuditOutcome::Succeeded),
        "refused" => Ok(AuditOutcome::Refused(reason.unwrap_or_default().into())),
        other => anyhow::bail!("stored audit outcome {other:?} is unknown"),
    }
}

fn event_from_row(row: &AnyRow) -> anyhow::Result<RecordedEvent> {
    let kind = text_column(row, "kind")?;
    fn id_of<K>(row: &AnyRow, column: &str) -> anyhow::Result<Option<Id<K>>> {
        optional_text_column(row, column)?
            .map(|text| Id::parse(&text).map_err(|_| anyhow::anyhow!("stored {column} is not an id")))
            .transpose()
    }
    Ok(RecordedEvent {
        id: text_column(row, "id")?,
        event: AuditEvent {
            at: stored_instant(row, "at")?,
            kind: AuditKind::parse(&kind).ok_or_else(|| anyhow::anyhow!("stored audit kind {kind:?} is unknown"))?,
            outcome: stored_outcome(&text_column(row, "outcome")?, optional_text_column(row, "reason")?)?,
            user_id: id_of(row, "user_id")?,
            session_id: id_of(row, "session_id")?,
            method: optional_text_column(row, "method")?.map(|method| stored_method(&method)).transpose()?,
            origin: RequestOrigin {
                client_address: optional_text_column(row, "client_address")?,
                user_agent: optional_text_column(row, "user_agent")?,
                request_id: optional_text_column(row, "request_id")?,
            },
            detail: optional_text_column(row, "detail")?,
        },
    })
}

#[async_trait::async_trait]
impl AuditLog for SqlStore {
    async fn record(&self, event: &AuditEvent) -> anyhow::Result<()> {
        self.insert_audit(&self.writer, event, None).await?;
        self.log_committed([event]);
        Ok(())
    }

    async fn list(&self, query: &AuditQuery) -> anyhow::Result<Vec<RecordedEvent>> {
        let mut conditions = Vec::new();
        if query.user_id.is_some() {
            conditions.push("user_id = ?");
        }
        if query.kind.is_some() {
            conditions.push("kind = ?");
        }
        if query.since.is_some() {
            conditions.push("at >= ?");
        }
        if query.before_id.is_some() {
            conditions.push("id < ?");
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {} ", conditions.join(" AND ")) };
        let statement = format!(
            "SELECT id, at, kind, outcome, reason, user_id, session_id, method, client_address, user_agent, \
             request_id, detail FROM audit_events {filter}ORDER BY at DESC, id DESC LIMIT ?"
        );
        let statement = self.sql(&statement);
        let mut select = sqlx::query(&statement);
        if let Some(user_id) = &query.user_id {
            select = select.bind(user_id.as_str());
        }
        if let Some(kind) = query.kind {
            select = select.bind(kind.as_str());
        }
        if let Some(since) = query.since {
            select = select.bind(to_millis(since));
        }
        if let Some(before) = &query.before_id {
            select = select.bind(before.as_str());
        }
        let rows =
            select.bind(i64::from(query.limit)).fetch_all(&self.pool).await.doing("cannot read the audit log")?;
        rows.iter().map(event_from_row).collect()
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM audit_events WHERE at < ?", cutoff, "old audit events").await
    }
}
