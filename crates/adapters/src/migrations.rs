//! Migration bookkeeping shared by every SQL backend: what is applied, what is pending.

use chrono::{DateTime, Utc};

/// One migration and whether it has been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    /// The version (the file name's numeric prefix).
    pub version: i64,
    /// The description (the rest of the file name).
    pub description: String,
    /// When it was applied, or `None` if it is pending.
    pub applied_at: Option<DateTime<Utc>>,
}
