//! Rate limiting by GCRA, the generic cell rate algorithm, and the keys it counts by.
//!
//! GCRA keeps one instant per key, the "theoretical arrival time" (TAT): when the key's
//! allowance would be fully spent if requests had come at the steady rate. A request is
//! admitted when, charging it, the TAT would run no further than one period past now; it then
//! moves the TAT on by one interval (`period / count`). So a quota of 5 per hour admits a burst
//! of 5 and then one every 12 minutes, exactly what "5 per hour" means to a person, and needs
//! one number per key rather than a window of timestamps: one small row in SQL, one key in
//! Redis, updated in one step. A sliding log is exact but stores every request; a fixed window
//! admits twice the quota across a boundary; a token bucket is GCRA with more state.

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};

/// "`count` per `period`": a burst of up to `count`, refilled steadily over `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    count: u32,
    period: TimeDelta,
}

/// What GCRA decided for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gcra {
    /// Admitted; store this as the key's new TAT (it may be forgotten after it passes).
    Admitted {
        /// The new theoretical arrival time.
        tat: DateTime<Utc>,
    },
    /// Refused; the key admits again after this long.
    Refused {
        /// How long until one more would be admitted.
        retry_after: TimeDelta,
    },
}

impl Quota {
    /// `count` per `period`, or `None` for a count of zero (the limit is off) or an empty
    /// period.
    pub fn per(count: u32, period: TimeDelta) -> Option<Self> {
        (count > 0 && period > TimeDelta::zero()).then_some(Self { count, period })
    }

    /// The steady spacing of admissions: `period / count`.
    pub fn interval(&self) -> TimeDelta {
        self.period / i32::try_from(self.count).unwrap_or(i32::MAX)
    }

    /// The period the count is spread over.
    pub fn period(&self) -> TimeDelta {
        self.period
    }

    /// Decides a request at `now` against a key whose stored TAT is `tat` (`None` when the key
    /// has none, or it was forgotten).
    pub fn check(&self, tat: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Gcra {
        let tat = tat.filter(|tat| *tat > now).unwrap_or(now);
        let charged = tat + self.interval();
        // Admitted while the charged TAT stays within one period of now.
        let admit_from = charged - self.period;
        if now < admit_from {
            Gcra::Refused { retry_after: admit_from - now }
        } else {
            Gcra::Admitted { tat: charged }
        }
    }
}

/// The key a client is counted under: an IPv4 address as it is, an IPv6 address by its /64
/// (one subscriber's network: a host there can pick any of 2^64 addresses), and an IPv4 address
/// mapped into IPv6 as the IPv4 address it is.
pub fn client_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::{client_key, Gcra, Quota};

    fn start() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).single().expect("valid date")
    }

    /// Runs requests at the given offsets (seconds from the start), returning which were admitted.
    fn admitted(quota: Quota, offsets: &[i64]) -> Vec<bool> {
        let mut tat = None;
        offsets
            .iter()
            .map(|offset| match quota.check(tat, start() + TimeDelta::seconds(*offset)) {
                Gcra::Admitted { tat: new } => {
                    tat = Some(new);
                    true
                }
                Gcra::Refused { .. } => false,
            })
            .collect()
    }

    #[test]
    fn five_per_hour_admits_a_burst_of_five_then_one_per_twelve_minutes() {
        let quota = Quota::per(5, TimeDelta::hours(1)).expect("a quota");
        let offsets = [0, 1, 2, 3, 4, 5, 12 * 60 - 1, 12 * 60 + 4, 12 * 60 + 5];
        assert_eq!(admitted(quota, &offsets), [true, true, true, true, true, false, false, true, false]);
    }

    #[test]
    fn one_per_minute_is_a_minimum_gap() {
        let quota = Quota::per(1, TimeDelta::minutes(1)).expect("a quota");
        assert_eq!(admitted(quota, &[0, 30, 59, 60, 61, 120]), [true, false, false, true, false, true]);
    }

    #[test]
    fn a_refusal_says_how_long_to_wait_and_charges_nothing() {
        let quota = Quota::per(1, TimeDelta::minutes(4)).expect("a quota");
        let Gcra::Admitted { tat } = quota.check(None, start()) else { panic!("the first is admitted") };

        let refused = quota.check(Some(tat), start() + TimeDelta::seconds(30));

        assert_eq!(refused, Gcra::Refused { retry_after: TimeDelta::seconds(210) });
        assert!(matches!(quota.check(Some(tat), start() + TimeDelta::minutes(4)), Gcra::Admitted { .. }));
    }

    #[test]
    fn a_quota_of_zero_is_no_limit_at_all() {
        assert_eq!(Quota::per(0, TimeDelta::hours(1)), None);
        assert_eq!(Quota::per(3, TimeDelta::zero()), None);
    }

    #[test]
    fn clients_are_counted_by_ipv4_address_and_ipv6_slash_64() {
        let cases = [
            ("203.0.113.9", "203.0.113.9"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::ffff:198.51.100.7", "198.51.100.7"),
        ];
        for (ip, key) in cases {
            assert_eq!(client_key(ip.parse().expect("an address")), key, "{ip}");
        }
    }
}
