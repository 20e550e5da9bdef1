//! The rate-limiter port: counters shared by every instance, that survive a restart.
//!
//! The algorithm is GCRA ([`domain::rate_limit`]); a limiter stores one instant per key and
//! updates it atomically. Keys arrive already keyed-hashed by the use case, so a store never
//! holds an address or an IP address in the clear.

use chrono::{DateTime, TimeDelta, Utc};
use domain::secret::KeyPurpose;
use domain::{Quota, ServerSecret};

/// One counter to charge: an opaque key and its quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// The counter's key, e.g. `link:address:<hmac>`; safe to store and log.
    pub key: String,
    /// How many per how long.
    pub quota: Quota,
}

impl Bucket {
    /// The counter `name` of `value` (an address, a client key), named by a keyed hash of
    /// both, so the store never sees addresses or IP addresses.
    pub fn keyed(secret: &ServerSecret, name: &str, value: &str, quota: Quota) -> Self {
        let mac = secret.mac(KeyPurpose::RateLimit, format!("{name}\0{value}").as_bytes());
        Bucket { key: format!("{name}:{}", domain::hex::encode(&mac[..16])), quota }
    }
}

/// What a limiter decided for a set of buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every bucket had room, and each was charged one.
    Admitted,
    /// The bucket at this index (of those given) had no room; nothing was charged.
    Refused {
        /// Index into the buckets passed in.
        bucket: usize,
        /// How long until that bucket admits again.
        retry_after: TimeDelta,
    },
}

/// Shared, durable rate-limit counters.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync {
    /// Charges one to every bucket at `now`, atomically: either each has room and each is
    /// charged ([`Admission::Admitted`]), or none is charged and the first bucket without room
    /// is named ([`Admission::Refused`]). Concurrent calls on one key are serialised: never
    /// more are admitted than the quota allows.
    ///
    /// # Errors
    /// MUST fail only when the counters cannot be read or written.
    async fn acquire(&self, buckets: &[Bucket], now: DateTime<Utc>) -> anyhow::Result<Admission>;

    /// How long until `bucket` would admit one more at `now` (`None`: it would now), charging
    /// nothing.
    ///
    /// # Errors
    /// MUST fail only when the counters cannot be read.
    async fn wait(&self, bucket: &Bucket, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>>;

    /// Forgets counters whose instant passed before `now` (they would admit as if new).
    /// Returns how many; a store whose keys expire by themselves returns 0.
    ///
    /// # Errors
    /// MUST fail only on a storage failure.
    async fn purge(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;
}
