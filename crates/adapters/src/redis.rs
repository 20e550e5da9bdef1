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
use std::time::Duration;

use ports::{Admission, Bucket, RateLimiter, StoreHealth, Unavailable};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
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

/// How long one call to Redis may take before it counts as [`Unavailable::RateLimitStore`]:
/// a rate-limit check sits in front of every sign-in request, which must not hang on it.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// What a request meets when Redis cannot be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStoreError {
    /// The request fails as unavailable (503 with `Retry-After`): no request goes uncounted.
    Refuse,
    /// The request goes through uncounted, with a warning in the log: sign-in keeps working
    /// while Redis is away, without its limits.
    Allow,
}

/// Rate-limit counters in one Redis server, through a connection that reconnects by itself.
#[derive(Clone)]
pub struct RedisRateLimiter {
    connection: ConnectionManager,
    acquire: Script,
    on_error: OnStoreError,
}

impl std::fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisRateLimiter")
    }
}

impl RedisRateLimiter {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`) and checks that
    /// it answers; later failures are met as `on_error` says. `shown_url` is the URL with any password masked, for messages.
    ///
    /// # Errors
    /// Fails, naming `shown_url`, when the URL is malformed or the server does not answer.
    pub async fn connect(url: &str, shown_url: &str, on_error: OnStoreError) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).with_context(|| format!("`{shown_url}` is not a Redis URL"))?;
        // Every connection attempt and every answer is bounded, so a Redis that is down or
        // unreachable costs a request about a second, not the client library's retries.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(REDIS_TIMEOUT);
        let connection = tokio::time::timeout(REDIS_TIMEOUT * 3, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {} s", REDIS_TIMEOUT.as_secs() * 3))
            .and_then(|connected| connected.map_err(anyhow::Error::from))
            .with_context(|| format!("cannot reach Redis at `{shown_url}`"))?;
        let limiter = Self { connection, acquire: Script::new(ACQUIRE), on_error };
        limiter.ping().await.with_context(|| format!("Redis at `{shown_url}` does not answer"))?;
        Ok(limiter)
    }

    /// Runs one call to Redis within [`REDIS_TIMEOUT`]; any failure is the store's being
    /// unavailable, said in `what`.
    ///
    /// A call that meets a connection found dropped is made once more, within the same bound:
    /// the connection manager reconnects as it reports the drop, so the first request after
    /// Redis returns does not fail for the old connection's sake.
    async fn bounded<T, F>(&self, what: &'static str, call: impl Fn() -> F) -> anyhow::Result<T>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            match call().await {
                Err(error) if error.is_connection_dropped() || error.is_io_error() => call().await,
                answer => answer,
            }
        };
        let failure = match tokio::time::timeout(REDIS_TIMEOUT, attempts).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) => anyhow::Error::new(error),
            Err(_) => anyhow::anyhow!("no answer within {} ms", REDIS_TIMEOUT.as_millis()),
        };
        Err(failure.context(what).context(Unavailable::RateLimitStore))
    }

    /// What to do with a failed check: fail the request, or let it through uncounted.
    fn on_failure<T>(&self, failure: anyhow::Error, admit: T) -> anyhow::Result<T> {
        match self.on_error {
            OnStoreError::Refuse => Err(failure),
            OnStoreError::Allow => {
                tracing::warn!(
                    error = %format!("{failure:#}"),
                    "rate limits not applied: Redis is unavailable and rate_limit.on_store_error = \"allow\""
                );
                Ok(admit)
            }
        }
    }
}

#[async_trait::async_trait]
impl StoreHealth for RedisRateLimiter {
    async fn ping(&self) -> anyhow::Result<()> {
        let _: String = self
            .bounded("Redis does not answer", || {
                let mut connection = self.connection.clone();
                async move { redis::cmd("PING").query_async(&mut connection).await }
            })
            .await?;
        Ok(())
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
        let answer = self.bounded("cannot charge the rate limits in Redis", || {
            let (mut connection, invocation) = (self.connection.clone(), &invocation);
            async move { invocation.invoke_async(&mut connection).await }
        });
        let (index, retry_after_ms): (i64, i64) = match answer.await {
            Ok(answer) => answer,
            Err(failure) => return self.on_failure(failure, Admission::Admitted),
        };
        Ok(match usize::try_from(index) {
            Ok(0) | Err(_) => Admission::Admitted,
            Ok(one_based) => {
                Admission::Refused { bucket: one_based - 1, retry_after: TimeDelta::milliseconds(retry_after_ms) }
            }
        })
    }

    async fn wait(&self, bucket: &Bucket, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>> {
        let key = format!("{KEY_PREFIX}{}", bucket.key);
        let read = || {
            let (mut connection, key) = (self.connection.clone(), key.clone());
            async move { connection.get(key).await }
        };
        let tat: Option<i64> = match self.bounded("cannot read a rate limit from Redis", read).await {
            Ok(tat) => tat,
            Err(failure) => return self.on_failure(failure, None),
        };
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
