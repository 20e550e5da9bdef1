//! Rate-limit counters in Redis, for deployments whose instances share one (and whose database
//! should not take a write per sign-in request for counting).
//!
//! GCRA's check-and-charge runs as one Lua script, so it is atomic in Redis however many
//! instances call it; it is `domain::rate_limit`'s arithmetic, in milliseconds, and the shared
//! rate-limit tests run the same cases against this store and the SQL one. Each key expires
//! when its instant passes, so Redis forgets spent counters by itself.

use anyhow::Context as _;
use chrono::{DateTime, TimeDelta, Utc};
use domain::rate_limit::Gcra;
use ports::{Admission, Bucket, RateLimiter};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};

/// Every key this service writes starts with this, to share a Redis with other programs.
const KEY_PREFIX: &str = "magiclink:rate:";

/// Checks every bucket, then charges all or none. `KEYS` are the buckets; `ARGV[1]` is now in
/// milliseconds, then each bucket's interval and period in milliseconds. Answers `{0, 0}` when
/// admitted, or `{index, retry_after_ms}` (1-based) for the first bucket without room.
const ACQUIRE: &str = r"
local now = tonumber(ARGV[1])
local charged = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local admit_from = new_tat - period
  if now < admit_from then return {i, admit_from - now} end
  charged[i] = new_tat
end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], charged[i], 'PX', charged[i] - now)
end
return {0, 0}
";

/// Rate-limit counters in one Redis server, through a connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    acquire: Script,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisRateLimiter")
    }
}

impl RedisRateLimiter {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`) and checks that
    /// it answers. `shown_url` is the URL with any password masked, for messages.
    ///
    /// # Errors
    /// Fails, naming `shown_url`, when the URL is malformed or the server does not answer.
    pub async fn connect(url: &str, shown_url: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("`{shown_url}` is not a Redis URL"))?;
        let mut connection =
            ConnectionManager::new(client).await.with_context(|| format!("cannot reach Redis at `{shown_url}`"))?;
        let _: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .with_context(|| format!("Redis at `{shown_url}` does not answer"))?;
        Ok(Self { connection, acquire: Script::new(ACQUIRE) })
    }
}

fn millis(delta: TimeDelta) -> i64 {
    delta.num_milliseconds().max(1)
}

#[async_trait::async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission> {
        if buckets.is_empty() {
            return Ok(Admission::Admitted);
        }
        let mut invocation = self.acquire.prepare_invoke();
        invocation.arg(now.timestamp_millis());
        for bucket in buckets {
            invocation.key(format!("{KEY_PREFIX}{}", bucket.key));
            invocation.arg(millis(bucket.quota.interval())).arg(millis(bucket.quota.period()));
        }
        let mut connection = self.connection.clone();
        let (index, retry_after_ms): (i64, i64) =
            invocation.invoke_async(&mut connection).await.context("cannot charge the rate limits in Redis")?;
        Ok(match usize::try_from(index) {
            Ok(0) | Err(_) => Admission::Admitted,
            Ok(one_based) => {
                Admission::Refused { bucket: one_based - 1, retry_after: TimeDelta::milliseconds(retry_after_ms) }
            }
        })
    }

    async fn wait(&self, bucket: &Bucket, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>> {
        let mut connection = self.connection.clone();
        let tat: Option<i64> = connection
            .get(format!("{KEY_PREFIX}{}", bucket.key))
            .await
            .context("cannot read a rate limit from Redis")?;
        let tat = tat.and_then(DateTime::from_timestamp_millis);
        Ok(match bucket.quota.check(tat, now) {
            Gcra::Admitted { .. } => None,
            Gcra::Refused { retry_after } => Some(retry_after),
        })
    }

    async fn purge(&self, _now: DateTime<Utc>) -> anyhow::Result<u64> {
        // Every key was set to expire when its instant passes.
        Ok(0)
    }
}
