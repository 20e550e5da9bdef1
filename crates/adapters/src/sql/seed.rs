//! Filling a database with many users and sessions quickly, for scale checks (`cargo xtask
//! seed`, the index-plan tests and the benchmarks): multi-row inserts in batches, then the
//! planner's statistics refreshed.
//!
//! Seeded sessions have predictable tokens ([`seeded_session_token`]), so that a benchmark can
//! look them up; the command refuses outside the development profile for that reason.

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::SessionToken;

use super::store::placeholders;
use super::{Doing as _, SqlStore};
use crate::time::to_millis;

/// Rows per `INSERT`: well under every backend's limit on bound parameters (7 per row).
const ROWS_PER_INSERT: usize = 500;
/// `INSERT`s per transaction.
const INSERTS_PER_TRANSACTION: usize = 20;

/// What a seeding run added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    /// Users added.
    pub users: u64,
    /// Sessions added.
    pub sessions: u64,
}

/// The address of seeded user `n`.
pub fn seeded_address(n: u64) -> String {
    format!("seed-{n}@seed.example.com")
}

/// The cookie token of seeded session `n`: predictable on purpose, so benchmarks can find it.
pub fn seeded_session_token(n: u64) -> SessionToken {
    let mut bytes = [0x5e_u8; 32];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    SessionToken::from_random_bytes(bytes)
}

impl SqlStore {
    /// Adds `users` users (`seed-N@seed.example.com`, numbered after those seeded before) and
    /// `sessions` sessions spread over them (their tokens numbered after the seeded sessions
    /// already there), valid for `valid_for` from `now`, then refreshes the planner's
    /// statistics.
    ///
    /// # Errors
    /// When `sessions` is positive and `users` is zero, or on a storage failure.
    pub async fn seed(
        &self,
        users: u64,
        sessions: u64,
        now: DateTime<Utc>,
        valid_for: TimeDelta,
    ) -> anyhow::Result<Seeded> {
        anyhow::ensure!(sessions == 0 || users > 0, "sessions need users: seed at least one user");
        // Numbers continue after an earlier run's, users and sessions each on their own count.
        let first = self.count_seeded("SELECT COUNT(*) FROM users WHERE email LIKE ?").await?;
        let session_first = self
            .count_seeded("SELECT COUNT(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email LIKE ?")
            .await?;
        let at = to_millis(now);
        let user_ids: Vec<String> = (0..users).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let user_rows = user_ids.iter().enumerate().map(|(i, id)| {
            let n = first + i as u64;
            vec![
                Value::Text(id.clone()),
                Value::Text(seeded_address(n)),
                Value::Int(at),
                Value::Int(at),
                Value::Int(at),
            ]
        });
        self.insert_batches(
            "INSERT INTO users (id, email, email_verified, created_at, updated_at) VALUES ",
            5,
            user_rows,
        )
        .await
        .context("cannot seed users")?;
        let expires = to_millis(now + valid_for);
        let session_rows = (0..sessions).map(|i| {
            let user = &user_ids[usize::try_from(i % users).unwrap_or_default()];
            vec![
                Value::Text(uuid::Uuid::now_v7().to_string()),
                Value::Text(seeded_session_token(session_first + i).hash().to_hex()),
                Value::Text(user.clone()),
                Value::Int(expires),
                Value::Int(at),
                Value::Int(at),
            ]
        });
        self.insert_batches(
            "INSERT INTO sessions (id, session_token, user_id, expires, created_at, updated_at) VALUES ",
            6,
            session_rows,
        )
        .await
        .context("cannot seed sessions")?;
        for statement in self.dialect().analyze() {
            self.writer().execute(sqlx::query(statement)).await.doing("cannot refresh the planner's statistics")?;
        }
        Ok(Seeded { users, sessions })
    }

    /// Runs a count whose one parameter is the pattern of seeded addresses.
    async fn count_seeded(&self, count: &str) -> anyhow::Result<u64> {
        let counted: i64 = sqlx::query_scalar(&self.sql(count))
            .bind("seed-%@seed.example.com")
            .fetch_one(self.pool())
            .await
            .doing("cannot count what was seeded before")?;
        Ok(u64::try_from(counted).unwrap_or_default())
    }

    /// Inserts `rows` of `columns` values each, [`ROWS_PER_INSERT`] per statement.
    async fn insert_batches(
        &self,
        insert: &str,
        columns: usize,
        rows: impl Iterator<Item = Vec<Value>>,
    ) -> anyhow::Result<()> {
        let row_placeholders = format!("({})", placeholders(columns));
        let mut rows = rows.peekable();
        while rows.peek().is_some() {
            let mut tx = self.writer().begin().await?;
            for _ in 0..INSERTS_PER_TRANSACTION {
                let batch: Vec<Vec<Value>> = rows.by_ref().take(ROWS_PER_INSERT).collect();
                if batch.is_empty() {
                    break;
                }
                let statement = format!("{insert}{}", vec![row_placeholders.as_str(); batch.len()].join(", "));
                let statement = self.sql(&statement);
                let mut query = sqlx::query(&statement);
                for value in batch.into_iter().flatten() {
                    query = match value {
                        Value::Text(text) => query.bind(text),
                        Value::Int(number) => query.bind(number),
                    };
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }
}

/// One value to bind.
enum Value {
    Text(String),
    Int(i64),
}
