//! The audit log ([`AuditLog`]): events written inside the transaction of the change they
//! record ([`SqlStore::insert_audit`], called by the link, session and user stores), or on
//! their own for refusals; read newest first by person, kind and time; purged by age.
//!
//! `user_id` has no foreign key on purpose: a deleted person's events stay, with the id and
//! without the address.
//!
//! Webhooks ride on the same write: an event an endpoint subscribed to (see
//! `domain::webhook::WebhookEventType::of_audit`) is queued in the outbox in the same
//! transaction, its JSON body sealed like an email's, so a committed change is told exactly
//! when it committed. Rows of one person and endpoint carry the person's id as their ordering
//! key: the worker claims them one at a time, oldest first.

use chrono::{DateTime, TimeDelta, Utc};
use domain::audit::{AuditEvent, AuditKind, AuditOutcome, RequestOrigin};
use domain::id::{Id, OutboxKind};
use domain::webhook::WebhookEventType;
use domain::{EmailAddress, ServerSecret};
use ports::{AuditLog, AuditQuery, MessageKind, RecordedEvent};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use super::store::*;
use super::writer::Deferred;
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

/// Which audit events become webhooks, for which endpoints, and the secret their bodies are
/// sealed under (`[[webhooks]]`, and the server secret).
#[derive(Clone)]
pub struct WebhookRouting {
    /// Each endpoint's URL and the event types it wants.
    pub endpoints: Vec<(String, Vec<WebhookEventType>)>,
    /// The current server secret, which seals the queued bodies.
    pub seal: ServerSecret,
}

impl std::fmt::Debug for WebhookRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRouting").field("endpoints", &self.endpoints).finish_non_exhaustive()
    }
}

/// How long a webhook is worth delivering: an endpoint down for longer than that has missed
/// the event, and the operator sees it `dropped` in `magiclink outbox`.
const WEBHOOK_LIFETIME: TimeDelta = TimeDelta::days(3);

impl SqlStore {
    /// Sets which audit events become webhooks. Set once; later calls are ignored.
    pub fn configure_webhooks(&self, routing: WebhookRouting) {
        let _already_set = self.webhooks.set(routing);
    }

    /// The routing, `event`'s webhook type and the endpoints it is to be told to, when any is.
    fn webhook_targets(&self, event: &AuditEvent) -> Option<(&WebhookRouting, WebhookEventType, Vec<&str>)> {
        let routing = self.webhooks.get()?;
        let kind = WebhookEventType::of_audit(event.kind, &event.outcome)?;
        let urls: Vec<&str> = routing
            .endpoints
            .iter()
            .filter(|(_, wanted)| wanted.contains(&kind))
            .map(|(url, _)| url.as_str())
            .collect();
        (!urls.is_empty()).then_some((routing, kind, urls))
    }

    /// Queues the webhooks `event` (stored as `event_id`) is told as, on `connection` (inside
    /// the caller's transaction). The body names the account's current address when it still
    /// has one.
    async fn queue_webhooks(
        &self,
        connection: &mut AnyConnection,
        event_id: &str,
        event: &AuditEvent,
    ) -> anyhow::Result<()> {
        let (Some((routing, kind, urls)), Some(user_id)) = (self.webhook_targets(event), event.user_id.as_ref()) else {
            return Ok(());
        };
        let email: Option<String> = sqlx::query_scalar(&self.sql("SELECT email FROM users WHERE id = ?"))
            .bind(user_id.as_str())
            .fetch_optional(&mut *connection)
            .await
            .doing("cannot read the address for a webhook")?;
        let body = serde_json::json!({
            "type": kind.as_str(),
            "timestamp": event.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": {
                "user_id": user_id.as_str(),
                "email": email,
                "session_id": event.session_id.as_ref().map(|id| id.as_str()),
                "method": event.method.map(domain::SignInMethod::as_str),
                "event": event.kind.as_str(),
                "event_id": event_id,
            },
        })
        .to_string();
        for url in urls {
            let id = new_id::<OutboxKind>()?;
            let seal_id = domain::hex::encode(&ports::random::os_random::<32>()?);
            let sealed =
                domain::sealed::seal(&routing.seal, seal_id.as_bytes(), ports::random::os_random()?, body.as_bytes());
            sqlx::query(&self.sql(
                "INSERT INTO outbox (id, kind, lang, recipient, link_token_hash, sealed_body, ordering_key, \
                 link_expires, attempts, next_attempt_at, created_at, updated_at) \
                 VALUES (?, ?, '', ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            ))
            .bind(id.as_str())
            .bind(MessageKind::Webhook.as_str())
            .bind(url)
            .bind(seal_id)
            .bind(sealed)
            .bind(user_id.as_str())
            .bind(to_millis(event.at + WEBHOOK_LIFETIME))
            .bind(to_millis(event.at))
            .bind(to_millis(event.at))
            .bind(to_millis(event.at))
            .execute(&mut *connection)
            .await
            .doing("cannot queue a webhook")?;
        }
        Ok(())
    }

    /// Writes `event` on `connection` (inside the caller's transaction), with the webhooks it
    /// is told as. When the event names no user and `user_of` is given, the user with that
    /// address, if any, is named (a link asked for an existing account).
    pub(super) async fn insert_audit(
        &self,
        connection: &mut AnyConnection,
        event: &AuditEvent,
        user_of: Option<&EmailAddress>,
    ) -> anyhow::Result<()> {
        self.insert_audit_events(connection, &[event], user_of).await
    }

    /// Writes `events` in one statement (a sign-in that created its user writes two), then the
    /// webhooks they are told as; `user_of` as for [`SqlStore::insert_audit`], for each.
    pub(super) async fn insert_audit_events(
        &self,
        connection: &mut AnyConnection,
        events: &[&AuditEvent],
        user_of: Option<&EmailAddress>,
    ) -> anyhow::Result<()> {
        self.run_with_events(connection, Vec::new(), events, user_of, "cannot record the audit event").await
    }

    /// Runs `statements` and the one `INSERT` of `events` together (see
    /// [`SqlStore::run_together`]: one round trip on SQLite), then queues the events' webhooks;
    /// `user_of` as for [`SqlStore::insert_audit`]. The change and its events, stored at once.
    pub(super) async fn run_with_events(
        &self,
        connection: &mut AnyConnection,
        mut statements: Vec<Deferred>,
        events: &[&AuditEvent],
        user_of: Option<&EmailAddress>,
        what: &str,
    ) -> anyhow::Result<()> {
        let ids = match self.audit_statement(events, user_of)? {
            Some((ids, record_events)) => {
                statements.push(record_events);
                ids
            }
            None => Vec::new(),
        };
        if !statements.is_empty() {
            self.run_together(&mut *connection, statements, what).await?;
        }
        for (id, event) in ids.iter().zip(events) {
            self.queue_webhooks(connection, id, event).await?;
        }
        Ok(())
    }

    /// The one `INSERT` that writes `events` (`user_of` as for [`SqlStore::insert_audit`]), and
    /// the ids it gives them, for their webhooks once it ran; `None` when the audit log is off
    /// or there is nothing to write.
    fn audit_statement(
        &self,
        events: &[&AuditEvent],
        user_of: Option<&EmailAddress>,
    ) -> anyhow::Result<Option<(Vec<String>, Deferred)>> {
        if !self.audit_options().enabled || events.is_empty() {
            return Ok(None);
        }
        let ids = events
            .iter()
            .map(|_| new_id::<AuditEventKind>().map(|id| id.as_str().to_owned()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rows: Vec<String> = events
            .iter()
            .map(|event| {
                let user = match (&event.user_id, user_of) {
                    (None, Some(_)) => "(SELECT id FROM users WHERE email = ?)",
                    _ => "?",
                };
                format!("(?, ?, ?, ?, ?, {user}, ?, ?, ?, ?, ?, ?)")
            })
            .collect();
        let statement = format!(
            "INSERT INTO audit_events (id, at, kind, outcome, reason, user_id, session_id, method, client_address, \
             user_agent, request_id, detail) VALUES {}",
            rows.join(", ")
        );
        // Every value owned, so that the statement can wait to run with others.
        let owned = |text: Option<&str>| text.map(|text| truncated(text, MAX_AUDIT_TEXT));
        let values: Vec<_> = ids
            .iter()
            .zip(events)
            .map(|(id, event)| {
                let user = match (&event.user_id, user_of) {
                    (None, Some(email)) => Some(email.as_str().to_owned()),
                    (user_id, _) => user_id.as_ref().map(|id| id.as_str().to_owned()),
                };
                (
                    (id.clone(), to_millis(event.at), event.kind.as_str(), event.outcome.as_str()),
                    (event.outcome.reason().map(str::to_owned), user),
                    (
                        event.session_id.as_ref().map(|id| id.as_str().to_owned()),
                        event.method.map(domain::SignInMethod::as_str),
                    ),
                    (
                        owned(event.origin.client_address.as_deref()),
                        owned(event.origin.user_agent.as_deref()),
                        owned(event.origin.request_id.as_deref()),
                        owned(event.detail.as_deref()),
                    ),
                )
            })
            .collect();
        let statement = Deferred::new(self.sql(&statement), move |mut query| {
            for ((id, at, kind, outcome), (reason, user), (session_id, method), (address, agent, request, detail)) in
                values
            {
                query = query
                    .bind(id)
                    .bind(at)
                    .bind(kind)
                    .bind(outcome)
                    .bind(reason)
                    .bind(user)
                    .bind(session_id)
                    .bind(method)
                    .bind(address)
                    .bind(agent)
                    .bind(request)
                    .bind(detail);
            }
            query
        });
        Ok(Some((ids, statement)))
    }

    /// This store's options (the defaults until [`SqlStore::configure_audit`]).
    fn audit_options(&self) -> AuditOptions {
        self.audit_options.get().copied().unwrap_or_default()
    }

    /// Sets what this store does with audit events. Set once; later calls are ignored.
    pub fn configure_audit(&self, options: AuditOptions) {
        let _already_set = self.audit_options.set(options);
    }

    /// After the commit of `events`: writes them to the log as JSON lines, when that is on, and
    /// wakes this instance's worker when webhooks were queued with them.
    pub(super) fn log_committed<'a>(&self, events: impl IntoIterator<Item = &'a AuditEvent>) {
        let options = self.audit_options();
        if !options.enabled {
            return;
        }
        let mut webhooks = 0;
        for event in events {
            if options.log_json {
                tracing::info!(target: "magiclink::audit", event = %event_json(None, event), "audit event");
            }
            if event.user_id.is_some() && self.webhook_targets(event).is_some() {
                webhooks += 1;
            }
        }
        self.notices_queued(webhooks);
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
                lang: None,
            },
            detail: optional_text_column(row, "detail")?,
        },
    })
}

#[async_trait::async_trait]
impl AuditLog for SqlStore {
    async fn record(&self, event: &AuditEvent) -> anyhow::Result<()> {
        // With the webhooks it queues: both or neither.
        let mut tx = self.begin_write().await?;
        self.insert_audit(&mut tx, event, None).await?;
        tx.commit().await.doing("cannot commit the audit event")?;
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
