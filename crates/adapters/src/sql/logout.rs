//! Back-channel logout notices, queued by the store itself: every statement that ends sessions
//! first queues, in its own transaction, a notice for each app registered for back-channel
//! logout that got an ID token in one of those sessions. So a committed sign-out always has its
//! notices, whichever way the session ended (signed out, revoked, "everywhere else", a password
//! or address change, the person removed), and a rolled-back one has none.
//!
//! The use cases do not ask for this: which apps to tell is known only to the grants, inside
//! the transaction, and the session-ending methods stay as they were. The store then wakes this
//! instance's delivery worker ([`crate::handover::Wakes`]), since nothing was handed over.

use chrono::{DateTime, TimeDelta, Utc};
use domain::audit::AuditEvent;
use domain::id::{Id, OutboxKind};
use domain::oidc::LogoutNotice;
use ports::MessageKind;
use sqlx::Row as _;

use super::writer::WriteTx;

use super::store::*;
use super::Doing as _;
use crate::time::to_millis;

/// How long a notice is worth delivering: an app down for longer than a day has long since
/// ended its sessions on its own.
const NOTICE_LIFETIME: TimeDelta = TimeDelta::days(1);

/// Which sessions a session-ending statement ends: a condition on `sessions` (no alias) and
/// its values, in order.
pub(super) struct EndingSessions<'a> {
    pub(super) condition: &'static str,
    pub(super) values: Vec<&'a str>,
}

impl SqlStore {
    /// Queues, inside `tx`, a notice for every (app, session) pair among `ending` that the app
    /// is to be told of; call it before the statement that deletes the sessions. Returns how
    /// many were queued.
    pub(super) async fn queue_logout_notices_within(
        &self,
        tx: &mut WriteTx,
        ending: &EndingSessions<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let select = format!(
            "SELECT DISTINCT g.client_id, g.user_id, g.session_id FROM oidc_grants g \
             JOIN oidc_clients c ON c.id = g.client_id \
             WHERE c.backchannel_logout_uri IS NOT NULL AND g.session_id IN (SELECT id FROM sessions WHERE {})",
            ending.condition
        );
        let select = self.sql(&select);
        let mut query = sqlx::query(&select);
        for value in &ending.values {
            query = query.bind(*value);
        }
        let rows = query.fetch_all(&mut **tx).await.doing("cannot find the apps to tell of a sign-out")?;
        for row in &rows {
            let client_id: String = row.try_get("client_id")?;
            let notice = serde_json::json!({
                "client_id": client_id,
                "user_id": row.try_get::<String, _>("user_id")?,
                "session_id": row.try_get::<String, _>("session_id")?,
            });
            let id = new_id::<OutboxKind>()?;
            // The seal's associated data is unused for a notice (nothing is sealed); random
            // like an email without a link.
            let unused_hash = domain::hex::encode(&ports::random::os_random::<32>()?);
            sqlx::query(&self.sql(
                "INSERT INTO outbox (id, kind, lang, recipient, link_token_hash, payload, link_expires, attempts, \
                 next_attempt_at, created_at, updated_at) VALUES (?, ?, '', ?, ?, ?, ?, 0, ?, ?, ?)",
            ))
            .bind(id.as_str())
            .bind(MessageKind::BackchannelLogout.as_str())
            .bind(client_id)
            .bind(unused_hash)
            .bind(notice.to_string())
            .bind(to_millis(now + NOTICE_LIFETIME))
            .bind(to_millis(now))
            .bind(to_millis(now))
            .bind(to_millis(now))
            .execute(&mut **tx)
            .await
            .doing("cannot queue a back-channel logout notice")?;
        }
        Ok(rows.len())
    }

    /// Ends the sessions `ending` selects, with their notices and `audit`, in one transaction;
    /// returns how many sessions ended. The event is written only when a session ended, naming
    /// its user, and its id when it was one session.
    pub(super) async fn end_sessions(
        &self,
        ending: &EndingSessions<'_>,
        audit: &AuditEvent,
        what: &str,
    ) -> anyhow::Result<u64> {
        let now = Utc::now();
        let (ended, notices, event) = retrying(|| async {
            let mut tx = self.begin_write().await?;
            let select = format!("SELECT id, user_id FROM sessions WHERE {}", ending.condition);
            let select = self.sql(&select);
            let mut query = sqlx::query(&select);
            for value in &ending.values {
                query = query.bind(*value);
            }
            let sessions = query.fetch_all(&mut *tx).await.doing_with(|| format!("cannot {what}"))?;
            let Some(first) = sessions.first() else {
                tx.rollback().await.doing_with(|| format!("cannot {what}"))?;
                return Ok((0, 0, None));
            };
            let (ended, notices) = self.end_sessions_within(&mut tx, ending, now).await?;
            let mut event = audit.clone();
            if event.user_id.is_none() {
                event.user_id = Some(stored_id(&text_column(first, "user_id")?)?);
            }
            if sessions.len() == 1 && event.session_id.is_none() {
                event.session_id = Some(stored_id(&text_column(first, "id")?)?);
            }
            self.insert_audit(&mut tx, &event, None).await?;
            tx.commit().await.doing_with(|| format!("cannot commit: {what}"))?;
            Ok((ended, notices, Some(event)))
        })
        .await?;
        self.notices_queued(notices);
        if let Some(event) = &event {
            self.log_committed([event]);
        }
        Ok(ended)
    }

    /// Ends the sessions `ending` selects inside `tx`: queues their logout notices, then deletes
    /// them. Returns how many sessions ended and how many notices were queued.
    pub(super) async fn end_sessions_within(
        &self,
        tx: &mut WriteTx,
        ending: &EndingSessions<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(u64, usize)> {
        let notices = self.queue_logout_notices_within(tx, ending, now).await?;
        let statement = format!("DELETE FROM sessions WHERE {}", ending.condition);
        let statement = self.sql(&statement);
        let mut delete = sqlx::query(&statement);
        for value in &ending.values {
            delete = delete.bind(*value);
        }
        let done = delete.execute(&mut **tx).await.doing("cannot end the sessions")?;
        Ok((done.rows_affected(), notices))
    }

    /// Wakes this instance's worker after `count` notices were queued and committed.
    pub(super) fn notices_queued(&self, count: usize) {
        if count > 0 {
            if let Some(wakes) = self.worker.get() {
                wakes.wake();
            }
        }
    }
}

fn stored_id<K>(text: &str) -> anyhow::Result<Id<K>> {
    Id::parse(text).map_err(|_| anyhow::anyhow!("stored id is not an id"))
}

/// Reads a stored notice (the `payload` column of a `backchannel_logout` row).
pub(super) fn stored_notice(payload: &str) -> anyhow::Result<LogoutNotice> {
    let json: serde_json::Value = serde_json::from_str(payload)?;
    let text = |name: &str| json[name].as_str().map(str::to_owned).ok_or_else(|| anyhow::anyhow!("no {name}"));
    Ok(LogoutNotice {
        client_id: domain::oidc::ClientId::parse(&text("client_id")?)
            .map_err(|_| anyhow::anyhow!("stored client id is malformed"))?,
        user_id: domain::UserId::parse(&text("user_id")?)
            .map_err(|_| anyhow::anyhow!("stored user id is not an id"))?,
        session_id: domain::SessionId::parse(&text("session_id")?)
            .map_err(|_| anyhow::anyhow!("stored session id is not an id"))?,
    })
}
