//! Passwords, the optional second way in: the rules a new password must meet, and the stored
//! hash. Hashing itself is I/O-free but slow on purpose, so it lives behind a port
//! (`ports::password::PasswordHasher`), as does the list of common passwords.
//!
//! The rules follow NIST SP 800-63B (revision 4, section 3.1.1.2):
//! - Passwords are Unicode, normalised to NFKC before hashing, so the same password typed on
//!   two keyboards (a composed "é" or "e" + combining accent, a full-width digit) is the same.
//!   Each code point counts as one character.
//! - At least [`DEFAULT_MIN_LENGTH`] characters by default, because here a password is the only
//!   factor (NIST: 15 for a single-factor password, 8 only beside a second factor); operators
//!   may lower it, never below [`MIN_LENGTH_FLOOR`].
//! - Up to [`MAX_LENGTH`] characters (NIST asks for at least 64), which also bounds the work a
//!   hash does on hostile input.
//! - No composition rules (digits, symbols, mixed case): they make passwords harder to remember,
//!   not to guess. Instead a new password is refused when it is the account's address or on a
//!   list of common and breached passwords (that check is a port).
//! - Control characters (line breaks, tabs) are refused in a new password: no keyboard types
//!   them the same way twice.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

use crate::email::EmailAddress;

/// The least minimum length an operator may configure (NIST's minimum beside a second factor).
pub const MIN_LENGTH_FLOOR: usize = 8;
/// The minimum length by default (NIST's minimum when the password is the only factor).
pub const DEFAULT_MIN_LENGTH: usize = 15;
/// The most characters a password may have, counted after normalisation.
pub const MAX_LENGTH: usize = 256;

/// A password as typed, NFKC-normalised. Its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

/// A stored password hash in the PHC string format (`$argon2id$v=19$m=...`). Its `Debug`
/// output is redacted: a hash is an offline-guessing target.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

/// The rules a new password must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordRules {
    min_length: usize,
}

/// Why a password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefusal {
    /// Fewer characters than the minimum.
    #[error("a password needs at least {min} characters")]
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than [`MAX_LENGTH`] characters.
    #[error("a password has at most {MAX_LENGTH} characters")]
    TooLong,
    /// Holds a line break, a tab or another control character.
    #[error("a password cannot hold line breaks, tabs or other control characters")]
    ControlCharacter,
    /// It is (or contains) the account's own address.
    #[error("a password cannot be your email address")]
    ContainsAddress,
    /// It is on the list of common and breached passwords, or as easy to guess.
    #[error("that password is too common: it is among the first an attacker would try")]
    Common,
}

/// A minimum length outside [`MIN_LENGTH_FLOOR`]..=[`MAX_LENGTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password.min_length must be between {MIN_LENGTH_FLOOR} and {MAX_LENGTH}, not {0}")]
pub struct InvalidMinLength(pub usize);

impl PasswordRules {
    /// Rules with this minimum length.
    ///
    /// # Errors
    /// [`InvalidMinLength`] below [`MIN_LENGTH_FLOOR`] or above [`MAX_LENGTH`].
    pub fn new(min_length: usize) -> Result<Self, InvalidMinLength> {
        if (MIN_LENGTH_FLOOR..=MAX_LENGTH).contains(&min_length) {
            Ok(Self { min_length })
        } else {
            Err(InvalidMinLength(min_length))
        }
    }

    /// The minimum length, in characters.
    pub fn min_length(&self) -> usize {
        self.min_length
    }

    /// Whether `password` may become the password of the account signing in with `email`.
    /// (The common-password check is the caller's, through its port.)
    ///
    /// # Errors
    /// The first [`PasswordRefusal`] that applies.
    pub fn check_new(&self, password: &Password, email: &EmailAddress) -> Result<(), PasswordRefusal> {
        if password.0.chars().any(char::is_control) {
            return Err(PasswordRefusal::ControlCharacter);
        }
        if password.chars() < self.min_length {
            return Err(PasswordRefusal::TooShort { min: self.min_length });
        }
        let lowered = password.0.to_lowercase();
        if lowered.contains(email.as_str()) || lowered == email.local_part().to_lowercase() {
            return Err(PasswordRefusal::ContainsAddress);
        }
        Ok(())
    }
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self { min_length: DEFAULT_MIN_LENGTH }
    }
}

impl Password {
    /// A password as typed, NFKC-normalised. Nothing else is checked: at sign-in any password
    /// up to the maximum is tried; [`PasswordRules::check_new`] applies the rest to new ones.
    ///
    /// # Errors
    /// [`PasswordRefusal::TooLong`] above [`MAX_LENGTH`] characters (checked on the raw input
    /// too, so normalising a huge input never happens).
    pub fn typed(raw: &str) -> Result<Self, PasswordRefusal> {
        // NFKC can expand a code point to at most 18; bounding the input first bounds the work.
        if raw.chars().count() > MAX_LENGTH * 4 {
            return Err(PasswordRefusal::TooLong);
        }
        let normalised: String = raw.nfkc().collect();
        if normalised.chars().count() > MAX_LENGTH {
            return Err(PasswordRefusal::TooLong);
        }
        Ok(Self(normalised))
    }

    /// The normalised password, for the hasher and the common-password check only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in characters (code points).
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl PasswordHash {
    /// A hash as stored, in the PHC string format.
    pub fn from_phc(phc: impl Into<String>) -> Self {
        Self(phc.into())
    }

    /// The PHC string, for storage and verification.
    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> EmailAddress {
        EmailAddress::parse("ada.lovelace@example.com").expect("valid")
    }

    fn typed(raw: &str) -> Password {
        Password::typed(raw).expect("not too long")
    }

    #[test]
    fn composed_and_decomposed_accents_are_the_same_password() {
        assert_eq!(typed("caf\u{e9} au lait, s'il vous plait"), typed("cafe\u{301} au lait, s'il vous plait"));
        // Full-width digits and letters normalise to ASCII under NFKC.
        assert_eq!(typed("\u{ff11}\u{ff12}\u{ff13}"), typed("123"));
    }

    #[test]
    fn length_is_counted_in_code_points_after_normalisation() {
        let rules = PasswordRules::default();
        // 15 code points, 45 bytes of UTF-8.
        let kana = typed("あいうえおかきくけこさしすせそ");
        assert_eq!(kana.chars(), 15);
        assert_eq!(rules.check_new(&kana, &address()), Ok(()));
        let fourteen = typed("あいうえおかきくけこさしすせ");
        assert_eq!(rules.check_new(&fourteen, &address()), Err(PasswordRefusal::TooShort { min: 15 }));
    }

    #[test]
    fn sixty_four_characters_and_more_are_allowed_up_to_the_maximum() {
        let rules = PasswordRules::default();
        let long = typed(&"correct horse battery staple ".repeat(10)[..MAX_LENGTH]);
        assert_eq!(rules.check_new(&long, &address()), Ok(()));
        assert_eq!(Password::typed(&"x".repeat(MAX_LENGTH + 1)), Err(PasswordRefusal::TooLong));
        assert_eq!(Password::typed(&"x".repeat(100_000)), Err(PasswordRefusal::TooLong));
    }

    #[test]
    fn no_composition_rules_apply() {
        let rules = PasswordRules::default();
        assert_eq!(rules.check_new(&typed("all lowercase words here"), &address()), Ok(()));
    }

    #[test]
    fn control_characters_and_the_own_address_are_refused() {
        let rules = PasswordRules::default();
        assert_eq!(
            rules.check_new(&typed("a line\nbreak in a password"), &address()),
            Err(PasswordRefusal::ControlCharacter)
        );
        assert_eq!(
            rules.check_new(&typed("Ada.Lovelace@Example.com!!"), &address()),
            Err(PasswordRefusal::ContainsAddress)
        );
        assert_eq!(
            PasswordRules::new(8).expect("valid").check_new(&typed("ada.lovelace"), &address()),
            Err(PasswordRefusal::ContainsAddress)
        );
    }

    #[test]
    fn the_minimum_length_has_a_floor() {
        assert_eq!(PasswordRules::new(7), Err(InvalidMinLength(7)));
        assert_eq!(PasswordRules::new(MAX_LENGTH + 1), Err(InvalidMinLength(MAX_LENGTH + 1)));
        assert_eq!(PasswordRules::new(8).map(|rules| rules.min_length()), Ok(8));
    }

    #[test]
    fn debug_output_never_shows_a_password_or_its_hash() {
        let shown = format!("{:?} {:?}", typed("hunter2 hunter2 hunter2"), PasswordHash::from_phc("$argon2id$v=19$x"));
        assert!(!shown.contains("hunter2") && !shown.contains("argon2id"), "{shown}");
    }
}
