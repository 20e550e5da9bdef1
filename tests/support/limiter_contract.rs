//! The rate-limiter contract of `ports::rate_limit`, written once and run against every
//! limiter: the database stores (by the conformance suite) and Redis.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::Quota;
use ports::{Admission, Bucket, RateLimiter};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, 1, 9, 0, 0).single().expect("valid date")
}

/// A bucket with a key no other test (or earlier run) uses.
fn bucket(name: &str, count: u32, period: TimeDelta) -> Bucket {
    let unique = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ports::random::os_random::<12>().expect("randomness"),
    );
    Bucket { key: format!("test-{name}:{unique}"), quota: Quota::per(count, period).expect("a quota") }
}

/// The limiter contract of `ports::rate_limit`, sentence by sentence.
pub async fn check_limiter(limiter: Arc<dyn RateLimiter>) {
    // A quota of 3 per minute admits a burst of 3, then says how long to wait.
    let three = bucket("burst", 3, TimeDelta::minutes(1));
    for _ in 0..3 {
        assert_eq!(limiter.acquire(std::slice::from_ref(&three), t0()).await.expect("acquire"), Admission::Admitted);
    }
    let refused = limiter.acquire(std::slice::from_ref(&three), t0()).await.expect("acquire");
    assert_eq!(refused, Admission::Refused { bucket: 0, retry_after: TimeDelta::seconds(20) });
    assert_eq!(limiter.wait(&three, t0()).await.expect("wait"), Some(TimeDelta::seconds(20)), "wait agrees");
    let later = t0() + TimeDelta::seconds(20);
    assert_eq!(limiter.wait(&three, later).await.expect("wait"), None, "and changes nothing");
    assert_eq!(limiter.acquire(std::slice::from_ref(&three), later).await.expect("acquire"), Admission::Admitted);

    // All or none: a full bucket refuses the lot, and the others are not charged.
    let full = bucket("full", 1, TimeDelta::hours(1));
    let free = bucket("free", 1, TimeDelta::hours(1));
    limiter.acquire(std::slice::from_ref(&full), t0()).await.expect("acquire");
    let both = [free.clone(), full.clone()];
    assert!(matches!(limiter.acquire(&both, t0()).await.expect("acquire"), Admission::Refused { bucket: 1, .. }));
    assert_eq!(limiter.wait(&free, t0()).await.expect("wait"), None, "the free bucket was not charged");

    // Concurrent acquisitions on one key never admit more than the quota.
    let five = bucket("race", 5, TimeDelta::hours(1));
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            let five = five.clone();
            tokio::spawn(async move { limiter.acquire(&[five], t0()).await })
        })
        .collect();
    let mut admitted = 0;
    for attempt in attempts {
        if attempt.await.expect("task").expect("acquire") == Admission::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 5);
}
