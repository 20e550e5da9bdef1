//! Users as the sign-in flow knows them.

use chrono::{DateTime, Utc};

use crate::email::EmailAddress;

/// A user's id: a UUIDv7 in its hyphenated text form, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    /// Wraps an id issued by a store.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
