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
    /// Display name, when one is set.
    pub name: Option<DisplayName>,
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
    /// Holds a control character (a line break, a tab, ...), a line or paragraph separator,
    /// or a bidirectional control, which would let a name reorder the text shown around it.
    #[error("a display name cannot hold line breaks, control characters or text-direction controls")]
    ControlCharacter,
}

/// Characters a display name may not hold besides Unicode's control characters: the line and
/// paragraph separators (a line break by another name), and the bidirectional embeddings,
/// overrides, isolates and marks, which can make a name shown in a page or an email read
/// backwards or swallow the text after it ("Trojan Source").
pub(crate) fn is_layout_control(character: char) -> bool {
    matches!(
        character,
        '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

impl DisplayName {
    /// The name typed, or `None` for a blank one (which removes the name).
    ///
    /// # Errors
    /// [`InvalidDisplayName`] when it is too long or holds a control character.
    pub fn parse(typed: &str) -> Result<Option<Self>, InvalidDisplayName> {
        let trimmed = typed.trim();
        if trimmed.chars().any(|c| c.is_control() || is_layout_control(c)) {
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
    fn separators_and_text_direction_controls_are_refused() {
        for name in [
            "Ada\u{2028}Admin",
            "Ada\u{2029}Admin",
            "\u{202e}nimdA",
            "Ada \u{2066}x\u{2069}",
            "a\u{200f}b",
            "a\u{061c}b",
        ] {
            assert_eq!(DisplayName::parse(name), Err(InvalidDisplayName::ControlCharacter), "{name:?}");
        }
        assert!(DisplayName::parse("عائشة").expect("right-to-left letters are fine").is_some());
    }

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
