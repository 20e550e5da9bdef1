//! Conversions between instants and the INTEGER milliseconds the SQL schema stores.

use anyhow::Context as _;
use chrono::{DateTime, Utc};

/// An instant as stored: milliseconds since the Unix epoch.
pub(crate) fn to_millis(instant: DateTime<Utc>) -> i64 {
    instant.timestamp_millis()
}

/// A stored instant back as a `DateTime`.
pub(crate) fn from_millis(millis: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis).with_context(|| format!("stored instant {millis} is out of range"))
}
