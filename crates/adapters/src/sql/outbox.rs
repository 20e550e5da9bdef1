//! The outbox ([`Outbox`]): emails and logout notices, claimed under a lease, recorded sent,
//! retried or final, each record guarded by the state it expects, and purged once finished.
//! A finished row keeps only metadata: its sealed body and its payload are erased.

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::{LinkTokenHash, OutboxId};
use ports::{
    Addressee, DeliveryState, MessageKind, Outbox, OutboxCounts, OutboxEntry, OutboxMessage, Payload, QueuedEmail,
    SentMessage,
};
use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::store::*;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

/// An outbox row as the listing reads it.
#[derive(sqlx::FromRow)]
struct OutboxEntryRow {
    id: String,
    kind: String,
    recipient: String,
    status: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: i64,
    provider_message_id: Option<String>,
    last_error: Option<String>,
}

fn stored_kind(kind: &str) -> anyhow::Result<MessageKind> {
    MessageKind::parse(kind).with_context(|| format!("unknown kind of message `{kind}`"))
}

fn stored_addressee(kind: MessageKind, recipient: &str) -> anyhow::Result<Addressee> {
    Ok(match kind {
        MessageKind::Email(_) => {
            Addressee::Email(domain::EmailAddress::parse(recipient).context("stored recipient is not a valid address")?)
        }
        MessageKind::BackchannelLogout => Addressee::App(
            domain::oidc::ClientId::parse(recipient).map_err(|_| anyhow::anyhow!("stored client id is malformed"))?,
        ),
        MessageKind::Webhook => Addressee::Endpoint(recipient.to_owned()),
    })
}

fn outbox_entry_from_row(row: &AnyRow) -> anyhow::Result<OutboxEntry> {
    let row = <OutboxEntryRow as sqlx::FromRow<'_, AnyRow>>::from_row(row)?;
    let kind = stored_kind(&row.kind)?;
    Ok(OutboxEntry {
        id: domain::OutboxId::parse(&row.id).map_err(|_| anyhow::anyhow!("stored id is not an id"))?,
        kind,
        recipient: stored_addressee(kind, &row.recipient)?,
        state: DeliveryState::parse(&row.status).with_context(|| format!("unknown outbox status `{}`", row.status))?,
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        created_at: from_millis(row.created_at)?,
        next_attempt_at: from_millis(row.next_attempt_at)?,
        provider_message_id: row.provider_message_id,
        last_error: row.last_error,
    })
}

/// The rows a worker may claim (once due): pending, and for a row with an ordering key (a
/// person's webhooks to one endpoint), only while no older row of its key and recipient is
/// pending, so that they arrive one at a time, in order.
const CLAIMABLE: &str = "status = 'pending' AND (ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox older \
     WHERE older.ordering_key = outbox.ordering_key AND older.recipient = outbox.recipient \
     AND older.status = 'pending' AND older.id < outbox.id))";

impl SqlStore {
    pub(super) async fn try_claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        let mut tx = self.begin_write().await?;
        // Lock the due rows (skipping those another worker holds), then lease them by moving
        // their next attempt to the end of the lease: a worker that dies mid-send gives its
        // rows back when the lease runs out.
        let select = format!(
            "SELECT id, kind, lang, recipient, link_token_hash, sealed_body, payload, link_expires, attempts FROM outbox \
             WHERE {CLAIMABLE} AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?{}",
            self.dialect.for_update_skip_locked()
        );
        let rows = sqlx::query(&self.sql(&select))
            .bind(to_millis(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .doing("cannot read due outbox rows")?;
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let lease = format!(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, updated_at = ? WHERE id IN ({})",
            placeholders(rows.len())
        );
        let lease = self.sql(&lease);
        let mut query = sqlx::query(&lease).bind(to_millis(lease_until)).bind(to_millis(now));
        let mut claimed = Vec::with_capacity(rows.len());
        for any_row in &rows {
            let row = <ClaimedRow as sqlx::FromRow<'_, AnyRow>>::from_row(any_row)?;
            let payload = match stored_kind(&row.kind)? {
                MessageKind::Email(kind) => Payload::Email(QueuedEmail {
                    kind,
                    lang: row.lang,
                    recipient: domain::EmailAddress::parse(&row.recipient)
                        .context("stored recipient is not a valid address")?,
                    link_token_hash: LinkTokenHash::from_hex(&row.link_token_hash)
                        .context("stored token hash is not valid")?,
                    sealed_body: row.sealed_body.context("a pending email has no body")?,
                }),
                MessageKind::Webhook => Payload::Webhook(ports::QueuedWebhook {
                    endpoint: row.recipient,
                    seal_id: LinkTokenHash::from_hex(&row.link_token_hash).context("stored seal id is not valid")?,
                    sealed_body: row.sealed_body.context("a pending webhook has no body")?,
                }),
                MessageKind::BackchannelLogout => Payload::BackchannelLogout(super::logout::stored_notice(
                    // Text that MySQL's TEXT hands the `Any` driver as bytes.
                    &optional_text_column(any_row, "payload")?.context("a pending notice has no payload")?,
                )?),
            };
            let message = OutboxMessage {
                id: OutboxId::parse(&row.id).map_err(|_| anyhow::anyhow!("stored id is not an id"))?,
                payload,
                expires: from_millis(row.link_expires)?,
                attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX).saturating_add(1),
                leased_until: lease_until,
            };
            query = query.bind(message.id.as_str().to_owned());
            claimed.push(message);
        }
        query.execute(&mut *tx).await.doing("cannot lease due outbox rows")?;
        tx.commit().await.doing("cannot commit the outbox claim")?;
        Ok(claimed)
    }
}

#[async_trait::async_trait]
impl Outbox for SqlStore {
    async fn enqueue(&self, message: &ports::NewOutboxMessage) -> anyhow::Result<OutboxId> {
        let mut tx = self.begin_write().await?;
        let id = self.insert_outbox_within(&mut tx, message).await?;
        tx.commit().await.doing("cannot commit the queued email")?;
        Ok(id)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<OutboxMessage>> {
        retrying(|| self.try_claim_due(now, lease_until, limit)).await
    }

    async fn mark_sent(&self, sent: &[SentMessage], now: DateTime<Utc>) -> anyhow::Result<()> {
        if sent.is_empty() {
            return Ok(());
        }
        // One statement for the batch; each row's provider id picked by its id.
        let statement = format!(
            "UPDATE outbox SET status = 'sent', sealed_body = NULL, payload = NULL, provider_message_id = {}, \
             last_error = NULL, next_attempt_at = ?, updated_at = ? WHERE status <> 'sent' AND id IN ({})",
            case_by("id", sent.len()),
            placeholders(sent.len())
        );
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement);
        for message in sent {
            let provider_id = message.provider_message_id.as_deref().map(|id| truncated(id, MAX_PROVIDER_MESSAGE_ID));
            query = query.bind(message.id.as_str()).bind(provider_id);
        }
        query = query.bind(to_millis(now)).bind(to_millis(now));
        for message in sent {
            query = query.bind(message.id.as_str());
        }
        self.writer.execute(query).await.doing("cannot record sent emails")?;
        Ok(())
    }

    async fn mark_retry(
        &self,
        id: &OutboxId,
        next_attempt_at: DateTime<Utc>,
        error: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        self.writer.execute(sqlx::query(&self.sql(
            "UPDATE outbox SET next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
        ))
        .bind(to_millis(next_attempt_at))
        .bind(truncated(error, MAX_DELIVERY_ERROR))
        .bind(to_millis(now))
        .bind(id.as_str())
        )
        .await
        .doing("cannot schedule a retry")?;
        Ok(())
    }

    async fn mark_final(
        &self,
        id: &OutboxId,
        state: DeliveryState,
        reason: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(state, DeliveryState::Failed | DeliveryState::Dropped),
            "{state:?} is not a final failure"
        );
        self.writer.execute(sqlx::query(&self.sql(
            "UPDATE outbox SET status = ?, sealed_body = NULL, payload = NULL, last_error = ?, next_attempt_at = ?, \
             updated_at = ? \
             WHERE id = ? AND status = 'pending'",
        ))
        .bind(state.as_str())
        .bind(truncated(reason, MAX_DELIVERY_ERROR))
        .bind(to_millis(now))
        .bind(to_millis(now))
        .bind(id.as_str())
        )
        .await
        .doing("cannot record a failed email")?;
        Ok(())
    }

    async fn release(&self, ids: &[OutboxId], now: DateTime<Utc>) -> anyhow::Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let statement = format!(
            "UPDATE outbox SET attempts = attempts - 1, next_attempt_at = ?, updated_at = ? \
             WHERE status = 'pending' AND attempts > 0 AND id IN ({})",
            placeholders(ids.len())
        );
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement).bind(to_millis(now)).bind(to_millis(now));
        for id in ids {
            query = query.bind(id.as_str());
        }
        let done = self.writer.execute(query).await.doing("cannot give back leased emails")?;
        Ok(done.rows_affected())
    }

    async fn next_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        // Of claimable rows only: a webhook waiting behind an older one of its person is due
        // when that one is, or the worker would wake for it again and again.
        let next: Option<i64> =
            sqlx::query_scalar(&format!("SELECT MIN(next_attempt_at) FROM outbox WHERE {CLAIMABLE}"))
                .fetch_one(&self.pool)
                .await
                .doing("cannot read the outbox")?;
        next.map(from_millis).transpose()
    }

    async fn list(&self, state: Option<DeliveryState>, limit: u32) -> anyhow::Result<Vec<OutboxEntry>> {
        let columns =
            "id, kind, recipient, status, attempts, created_at, next_attempt_at, provider_message_id, last_error";
        let filter = if state.is_some() { "WHERE status = ? " } else { "" };
        let statement = format!("SELECT {columns} FROM outbox {filter}ORDER BY created_at DESC LIMIT ?");
        let statement = self.sql(&statement);
        let mut query = sqlx::query(&statement);
        if let Some(state) = state {
            query = query.bind(state.as_str());
        }
        let rows = query.bind(i64::from(limit)).fetch_all(&self.pool).await.doing("cannot list the outbox")?;
        rows.iter().map(outbox_entry_from_row).collect()
    }

    async fn counts(&self) -> anyhow::Result<OutboxCounts> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .doing("cannot count the outbox")?;
        let mut counts = OutboxCounts::default();
        for row in rows {
            let status: String = row.try_get("status")?;
            let count = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default();
            match DeliveryState::parse(&status) {
                Some(DeliveryState::Pending) => {
                    counts.pending = count;
                    counts.oldest_pending = Some(stored_instant(&row, "oldest")?);
                }
                Some(DeliveryState::Sent) => counts.sent = count,
                Some(DeliveryState::Failed) => counts.failed = count,
                Some(DeliveryState::Dropped) => counts.dropped = count,
                None => anyhow::bail!("unknown outbox status `{status}`"),
            }
        }
        Ok(counts)
    }

    async fn purge_finished(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before(
            "DELETE FROM outbox WHERE status <> 'pending' AND updated_at < ?",
            cutoff,
            "delivery records",
        )
        .await
    }
}

/// A pending row as a claim reads it.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    id: String,
    kind: String,
    lang: String,
    recipient: String,
    link_token_hash: String,
    sealed_body: Option<Vec<u8>>,
    link_expires: i64,
    attempts: i64,
}
