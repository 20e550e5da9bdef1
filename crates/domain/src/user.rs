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

/// The longest display name kept, in characters.
pub const MAX_DISPLAY_NAME: usize = 80;

/// A display name as a person typed it on their account page: trimmed, at most
/// [`MAX_DISPLAY_NAME`] characters, no control characters (it is shown on pages and could go
/// into email headers). Empty means "no name".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

/// Why a typed display name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDisplayName {
    /// Longer than [`MAX_DISPLAY_NAME`] characters.
    #[error("a display name has at most {MAX_DISPLAY_NAME} characters")]
    TooLong,
    /// Holds a control character (a line break, a tab, ...).
    #[error("a display name cannot hold line breaks or other control characters")]
    ControlCharacter,
}

impl DisplayName {
    /// The name typed, or `None` for a blank one (which removes the name).
    ///
    /// # Errors
    /// [`InvalidDisplayName`] when it is too long or holds a control character.
    pub fn parse(typed: &str) -> Result<Option<Self>, InvalidDisplayName> {
        let trimmed = typed.trim();
        if trimmed.chars().any(char::is_control) {
            return Err(InvalidDisplayName::ControlCharacter);
        }
        if trimmed.chars().count() > MAX_DISPLAY_NAME {
            return Err(InvalidDisplayName::TooLong);
        }
        Ok((!trimmed.is_empty()).then(|| Self(trimmed.to_owned())))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{DisplayName, InvalidDisplayName, MAX_DISPLAY_NAME};

    #[test]
    fn a_display_name_is_trimmed_and_blank_removes_it() {
        assert_eq!(DisplayName::parse("  Ada Lovelace ").map(|n| n.map(|n| n.0)), Ok(Some("Ada Lovelace".to_owned())));
        assert_eq!(DisplayName::parse("   "), Ok(None));
        assert_eq!(DisplayName::parse("Zoë 🙂").map(|n| n.is_some()), Ok(true));
    }

    #[test]
    fn overlong_names_and_control_characters_are_refused() {
        let longest = "é".repeat(MAX_DISPLAY_NAME);
        assert!(DisplayName::parse(&longest).is_ok());
        assert_eq!(DisplayName::parse(&format!("{longest}é")), Err(InvalidDisplayName::TooLong));
        for typed in ["Ada\nBcc: x@example.com", "tab\there", "nul\u{0}"] {
            assert_eq!(DisplayName::parse(typed), Err(InvalidDisplayName::ControlCharacter), "{typed:?}");
        }
    }
}
