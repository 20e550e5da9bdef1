//! Rate-limit counters in the database ([`RateLimiter`]): one GCRA instant per bucket, checked
//! and charged for every bucket at once or for none, in one transaction (three statements on
//! the servers, two on SQLite).

use std::collections::HashMap;

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::rate_limit::Gcra;
use ports::{Admission, Bucket, RateLimiter};

use super::dialect::Dialect;
use super::store::*;
use super::Doing as _;
use crate::time::{from_millis, to_millis};

impl SqlStore {
    pub(super) async fn try_acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission> {
        // Three statements whatever the number of buckets (two on SQLite): rows to lock, the locked counters,
        // the charged counters. Keys go in sorted order, so two acquisitions sharing buckets
        // lock them in the same order and cannot wait on each other in a circle.
        let mut keys: Vec<&str> = buckets.iter().map(|bucket| bucket.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let list = placeholders(keys.len());
        let mut tx = self.begin_write().await?;
        // On the servers, a row to lock, even for a bucket never seen: locking a row that does
        // not exist locks nothing, and two first requests would both be admitted. A counter at
        // the epoch admits as if absent. SQLite's write already holds the whole database, so
        // there it reads what exists and writes every charged counter in one upsert at the end:
        // a statement fewer on the one writer.
        let sqlite = self.dialect == Dialect::Sqlite;
        if !sqlite {
            let insert = format!(
                "INSERT INTO rate_limits (bucket, tat) VALUES {}{}",
                vec!["(?, 0)"; keys.len()].join(", "),
                self.dialect.on_duplicate_do_nothing("bucket")
            );
            let insert = self.sql(&insert);
            let mut query = sqlx::query(&insert);
            for key in &keys {
                query = query.bind(*key);
            }
            query.execute(&mut *tx).await.doing("cannot create a rate limit")?;
        }
        let select = format!(
            "SELECT bucket, tat FROM rate_limits WHERE bucket IN ({list}) ORDER BY bucket{}",
            self.dialect.for_update()
        );
        let select = self.sql(&select);
        let mut query = sqlx::query_as::<_, (String, i64)>(&select);
        for key in &keys {
            query = query.bind(*key);
        }
        let mut counters: HashMap<String, DateTime<Utc>> = HashMap::new();
        for (key, tat) in query.fetch_all(&mut *tx).await.doing("cannot read a rate limit")? {
            counters.insert(key, from_millis(tat)?);
        }
        if sqlite {
            for key in &keys {
                counters.entry((*key).to_owned()).or_insert(DateTime::UNIX_EPOCH);
            }
        }
        // Charged in the caller's order, so a refusal names the first bucket without room.
        for (index, bucket) in buckets.iter().enumerate() {
            let counter = counters.get_mut(&bucket.key).context("a rate limit row vanished inside its transaction")?;
            match bucket.quota.check(Some(*counter), now) {
                Gcra::Admitted { tat } => *counter = tat,
                Gcra::Refused { retry_after } => {
                    tx.rollback().await?;
                    return Ok(Admission::Refused { bucket: index, retry_after });
                }
            }
        }
        let update = if sqlite {
            format!(
                "INSERT INTO rate_limits (bucket, tat) VALUES {} ON CONFLICT (bucket) DO UPDATE SET tat = excluded.tat",
                vec!["(?, ?)"; keys.len()].join(", ")
            )
        } else {
            format!("UPDATE rate_limits SET tat = {} WHERE bucket IN ({list})", case_by("bucket", keys.len()))
        };
        let update = self.sql(&update);
        let mut query = sqlx::query(&update);
        for key in &keys {
            query = query.bind(*key).bind(to_millis(counters[*key]));
        }
        if !sqlite {
            for key in &keys {
                query = query.bind(*key);
            }
        }
        query.execute(&mut *tx).await.doing("cannot charge a rate limit")?;
        tx.commit().await.doing("cannot commit the rate limits")?;
        Ok(Admission::Admitted)
    }
}

#[async_trait::async_trait]
impl RateLimiter for SqlStore {
    async fn acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission> {
        retrying(|| self.try_acquire(buckets, now)).await
    }

    async fn wait(&self, bucket: &Bucket, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>> {
        let tat: Option<i64> = sqlx::query_scalar(&self.sql("SELECT tat FROM rate_limits WHERE bucket = ?"))
            .bind(&bucket.key)
            .fetch_optional(&self.pool)
            .await
            .doing("cannot read a rate limit")?;
        Ok(match bucket.quota.check(tat.map(from_millis).transpose()?, now) {
            Gcra::Admitted { .. } => None,
            Gcra::Refused { retry_after } => Some(retry_after),
        })
    }

    async fn purge(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        self.delete_before("DELETE FROM rate_limits WHERE tat < ?", now, "spent rate limits").await
    }
}
