//! The passkeys ([`PasskeyStore`]): credentials by the SHA-256 of their id, the per-user
//! handle on the user's row, and the state of ceremonies in progress, taken by deleting it.

use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use domain::audit::AuditEvent;
use domain::id::Id;
use domain::{CeremonyHash, CredentialId, Passkey, PasskeyId, PasskeyName, UserHandle, UserId};
use ports::{
    CeremonyPurpose, NewCeremony, NewPasskey, PasskeyAdded, PasskeyForSignIn, PasskeyStore, PasskeyUse,
    StoredCredential, TakenCeremony,
};
use sqlx::any::AnyRow;
use sqlx::Row as _;

use super::store::*;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

/// The columns [`passkey_from_row`] reads, from `passkeys` aliased `p`.
const PASSKEY_COLUMNS: &str =
    "p.id AS passkey_id, p.user_id AS passkey_user_id, p.name AS passkey_name, p.created_at AS passkey_created_at, \
     p.last_used_at, p.backed_up, p.credential, p.sign_count";

/// A passkey in a row holding [`PASSKEY_COLUMNS`].
fn passkey_from_row(row: &AnyRow) -> anyhow::Result<Passkey> {
    let id: String = row.try_get("passkey_id")?;
    let user_id: String = row.try_get("passkey_user_id")?;
    let name: String = row.try_get("passkey_name")?;
    Ok(Passkey {
        id: Id::parse(&id).map_err(|_| anyhow::anyhow!("stored passkey id is not an id"))?,
        user_id: Id::parse(&user_id).map_err(|_| anyhow::anyhow!("stored user_id is not an id"))?,
        name: PasskeyName::parse(&name).context("stored passkey name is no longer accepted")?,
        created_at: stored_instant(row, "passkey_created_at")?,
        last_used_at: row.try_get::<Option<i64>, _>("last_used_at")?.map(from_millis).transpose()?,
        backed_up: row.try_get::<i64, _>("backed_up")? != 0,
    })
}

/// The adapter's credential in a row holding [`PASSKEY_COLUMNS`].
fn credential_from_row(row: &AnyRow) -> anyhow::Result<StoredCredential> {
    Ok(StoredCredential(text_column(row, "credential")?.into_bytes()))
}

/// The credential's text column: the adapter serialises to UTF-8 JSON.
fn credential_text(credential: &StoredCredential) -> anyhow::Result<&str> {
    std::str::from_utf8(&credential.0).context("a WebAuthn credential to store is not text")
}

#[async_trait::async_trait]
impl PasskeyStore for SqlStore {
    async fn user_handle(&self, user_id: &UserId, candidate: &UserHandle) -> anyhow::Result<UserHandle> {
        // Set only where none is: of racing first ceremonies one handle is stored, and every
        // racer reads that one back.
        self.writer
            .execute(
                sqlx::query(&self.sql("UPDATE users SET passkey_handle = ? WHERE id = ? AND passkey_handle IS NULL"))
                    .bind(candidate.to_hex())
                    .bind(user_id.as_str()),
            )
            .await
            .doing("cannot store the passkey handle")?;
        let stored: Option<String> = self
            .writer
            .fetch_optional(
                sqlx::query(&self.sql("SELECT passkey_handle FROM users WHERE id = ?")).bind(user_id.as_str()),
            )
            .await
            .doing("cannot read the passkey handle")?
            .map(|row| row.try_get::<Option<String>, _>("passkey_handle"))
            .transpose()?
            .flatten();
        let stored = stored.context("the user has no passkey handle (deleted meanwhile?)")?;
        UserHandle::from_hex(&stored).map_err(|_| anyhow::anyhow!("stored passkey handle is malformed"))
    }

    async fn list(&self, user_id: &UserId) -> anyhow::Result<Vec<(Passkey, CredentialId)>> {
        let rows = sqlx::query(&self.sql(&format!(
            "SELECT {PASSKEY_COLUMNS}, p.credential_id FROM passkeys p WHERE p.user_id = ? ORDER BY p.created_at, p.id"
        )))
        .bind(user_id.as_str())
        .fetch_all(&self.pool)
        .await
        .doing("cannot list the passkeys")?;
        rows.iter()
            .map(|row| {
                let encoded = text_column(row, "credential_id")?;
                let bytes = URL_SAFE_NO_PAD.decode(encoded).context("stored credential_id is not base64url")?;
                Ok((passkey_from_row(row)?, CredentialId::new(bytes).context("stored credential_id is malformed")?))
            })
            .collect()
    }

    async fn add(&self, passkey: &NewPasskey, audit: &AuditEvent) -> anyhow::Result<PasskeyAdded> {
        let id = new_id::<domain::passkey::PasskeyKind>()?;
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(&self.sql(
            "INSERT INTO passkeys (id, user_id, credential_key, credential_id, credential, name, backed_up, sign_count, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ))
        .bind(id.as_str())
        .bind(passkey.user_id.as_str())
        .bind(passkey.credential_id.key())
        .bind(URL_SAFE_NO_PAD.encode(passkey.credential_id.as_bytes()))
        .bind(credential_text(&passkey.credential)?)
        .bind(passkey.name.as_str())
        .bind(i64::from(passkey.backed_up))
        .bind(i64::from(passkey.sign_count))
        .bind(to_millis(passkey.created_at))
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                self.insert_audit(&mut tx, audit, None).await?;
                tx.commit().await.doing("cannot commit the passkey")?;
                self.log_committed([audit]);
            }
            Err(error) if is_unique_violation(&error) => {
                // PostgreSQL's transaction is unusable after the failed insert: only rollback.
                tx.rollback().await.doing("cannot roll back the refused passkey")?;
                return Ok(PasskeyAdded::CredentialTaken);
            }
            Err(error) => return Err::<PasskeyAdded, _>(error).doing("cannot store the passkey"),
        }
        Ok(PasskeyAdded::Added(Passkey {
            id,
            user_id: passkey.user_id.clone(),
            name: passkey.name.clone(),
            created_at: passkey.created_at,
            last_used_at: None,
            backed_up: passkey.backed_up,
        }))
    }

    async fn find_for_sign_in(&self, credential_id: &CredentialId) -> anyhow::Result<Option<PasskeyForSignIn>> {
        let row = sqlx::query(&self.sql(&format!(
            "SELECT {PASSKEY_COLUMNS}, u.passkey_handle, {USER_COLUMNS} \
             FROM passkeys p JOIN users u ON u.id = p.user_id WHERE p.credential_key = ? AND u.disabled_at IS NULL"
        )))
        .bind(credential_id.key())
        .fetch_optional(&self.pool)
        .await
        .doing("cannot read the passkey")?;
        let Some(row) = row else { return Ok(None) };
        let handle: Option<String> = row.try_get("passkey_handle")?;
        let handle = handle.context("a user with a passkey has no passkey handle")?;
        Ok(Some(PasskeyForSignIn {
            passkey: passkey_from_row(&row)?,
            user: user_from_row(&row)?,
            user_handle: UserHandle::from_hex(&handle)
                .map_err(|_| anyhow::anyhow!("stored passkey handle is malformed"))?,
            credential: credential_from_row(&row)?,
            sign_count: stored_count(&row, "sign_count")?,
        }))
    }

    async fn record_use(&self, id: &PasskeyId, used: &PasskeyUse) -> anyhow::Result<bool> {
        let count = i64::from(used.sign_count);
        let done = self
            .writer
            .execute(
                sqlx::query(&self.sql(
                    "UPDATE passkeys SET credential = ?, sign_count = ?, backed_up = ?, last_used_at = ? \
             WHERE id = ? AND (sign_count < ? OR ? = 0)",
                ))
                .bind(credential_text(&used.credential)?)
                .bind(count)
                .bind(i64::from(used.backed_up))
                .bind(to_millis(used.at))
                .bind(id.as_str())
                .bind(count)
                .bind(count),
            )
            .await
            .doing("cannot record the passkey's use")?;
        Ok(done.rows_affected() > 0)
    }

    async fn rename(&self, user_id: &UserId, id: &PasskeyId, name: &PasskeyName) -> anyhow::Result<Option<Passkey>> {
        self.writer
            .execute(
                sqlx::query(&self.sql("UPDATE passkeys SET name = ? WHERE id = ? AND user_id = ?"))
                    .bind(name.as_str())
                    .bind(id.as_str())
                    .bind(user_id.as_str()),
            )
            .await
            .doing("cannot rename the passkey")?;
        // Read back rather than trust rows_affected: MySQL counts an unchanged row as none.
        let row = self
            .writer
            .fetch_optional(
                sqlx::query(
                    &self.sql(&format!("SELECT {PASSKEY_COLUMNS} FROM passkeys p WHERE p.id = ? AND p.user_id = ?")),
                )
                .bind(id.as_str())
                .bind(user_id.as_str()),
            )
            .await
            .doing("cannot read the passkey")?;
        row.as_ref().map(passkey_from_row).transpose()
    }

    async fn delete(&self, user_id: &UserId, id: &PasskeyId, audit: &AuditEvent) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(&self.sql("DELETE FROM passkeys WHERE id = ? AND user_id = ?"))
            .bind(id.as_str())
            .bind(user_id.as_str())
            .execute(&mut *tx)
            .await
            .doing("cannot delete the passkey")?;
        if done.rows_affected() == 0 {
            tx.rollback().await.doing("cannot roll back")?;
            return Ok(false);
        }
        self.insert_audit(&mut tx, audit, None).await?;
        tx.commit().await.doing("cannot commit the passkey's deletion")?;
        self.log_committed([audit]);
        Ok(true)
    }

    async fn save_ceremony(&self, ceremony: &NewCeremony) -> anyhow::Result<()> {
        self.writer.execute(sqlx::query(&self.sql(
            "INSERT INTO passkey_ceremonies (ceremony_hash, purpose, user_id, state, expires) VALUES (?, ?, ?, ?, ?)",
        ))
        .bind(ceremony.hash.to_hex())
        .bind(ceremony.purpose.as_str())
        .bind(ceremony.user_id.as_ref().map(UserId::as_str))
        .bind(std::str::from_utf8(&ceremony.state).context("a ceremony state to store is not text")?)
        .bind(to_millis(ceremony.expires))
        )
        .await
        .doing("cannot store the passkey ceremony")?;
        Ok(())
    }

    async fn take_ceremony(
        &self,
        hash: &CeremonyHash,
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<TakenCeremony>> {
        let row =
            self.writer
                .fetch_optional(
                    sqlx::query(&self.sql(
                        "SELECT purpose, user_id, state, expires FROM passkey_ceremonies WHERE ceremony_hash = ?",
                    ))
                    .bind(hash.to_hex()),
                )
                .await
                .doing("cannot read the passkey ceremony")?;
        let Some(row) = row else { return Ok(None) };
        // The delete decides: of racing answers, the one whose delete removed the row has it.
        let done = self
            .writer
            .execute(
                sqlx::query(&self.sql("DELETE FROM passkey_ceremonies WHERE ceremony_hash = ?")).bind(hash.to_hex()),
            )
            .await
            .doing("cannot finish the passkey ceremony")?;
        let stored_purpose: String = row.try_get("purpose")?;
        if done.rows_affected() == 0 || stored_purpose != purpose.as_str() || stored_instant(&row, "expires")? <= now {
            return Ok(None);
        }
        let user_id: Option<String> = row.try_get("user_id")?;
        let state = text_column(&row, "state")?;
        Ok(Some(TakenCeremony {
            user_id: user_id
                .map(|text| Id::parse(&text).map_err(|_| anyhow::anyhow!("stored user_id is not an id")))
                .transpose()?,
            state: state.into_bytes(),
        }))
    }

    async fn purge_expired_ceremonies(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM passkey_ceremonies WHERE expires < ?", cutoff, "expired passkey ceremonies")
            .await
    }
}
