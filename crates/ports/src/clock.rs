//! The clock port: every "now" in the core comes from here, so expiry is tested without sleeping.

use chrono::{DateTime, Utc};

/// A source of the current time.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    /// The current instant in UTC.
    fn now(&self) -> DateTime<Utc>;
}
