//! Users as the sign-in flow knows them.

use chrono::{DateTime, Utc};

use crate::email::EmailAddress;

pub use crate::id::UserId;

/// A user account. There are no passwords: owning the address is the credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable id.
    pub id: UserId,
    /// The address the user signs in with.
    pub email: EmailAddress,
    /// Display name, when one is known.
    pub name: Option<String>,
    /// Avatar URL, when one is known.
    pub image: Option<String>,
    /// When the address was first proven by opening a link.
    pub email_verified: Option<DateTime<Utc>>,
}
