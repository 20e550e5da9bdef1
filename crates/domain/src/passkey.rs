//! Passkeys as the rest of the service sees them: the person's list (a name, when made, when
//! last used, whether synced), the values a WebAuthn ceremony leaves behind (a credential id,
//! the random per-user handle authenticators store) and the one-time token that binds a
//! ceremony to the browser that began it. Which library checks the signatures is the adapter's
//! business: nothing here names it.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use sha2::{Digest as _, Sha256};

use crate::id::Id;
use crate::link::MalformedToken;
use crate::user::UserId;

/// Marks passkey ids.
#[derive(Debug)]
pub enum PasskeyKind {}

/// A passkey's own id (a UUID, not the credential id, which only the authenticator and the
/// sign-in check need).
pub type PasskeyId = Id<PasskeyKind>;

/// The longest passkey name kept, in characters.
pub const MAX_PASSKEY_NAME: usize = 64;

/// A passkey's name, as its owner typed it or as the browser suggested ("Chrome on Linux"):
/// trimmed, 1 to [`MAX_PASSKEY_NAME`] characters, no control or text-direction characters
/// (the same rule as display names: it is shown on pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyName(String);

/// Why a typed passkey name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPasskeyName {
    /// Blank.
    #[error("a passkey needs a name")]
    Empty,
    /// Longer than [`MAX_PASSKEY_NAME`] characters.
    #[error("a passkey name has at most {MAX_PASSKEY_NAME} characters")]
    TooLong,
    /// Holds a control or text-direction character.
    #[error("a passkey name cannot hold line breaks, control characters or text-direction controls")]
    ControlCharacter,
}

impl PasskeyName {
    /// The name typed.
    ///
    /// # Errors
    /// [`InvalidPasskeyName`] when it is blank, too long or holds a control character.
    pub fn parse(typed: &str) -> Result<Self, InvalidPasskeyName> {
        let trimmed = typed.trim();
        if trimmed.chars().any(|c| c.is_control() || crate::user::is_layout_control(c)) {
            return Err(InvalidPasskeyName::ControlCharacter);
        }
        if trimmed.chars().count() > MAX_PASSKEY_NAME {
            return Err(InvalidPasskeyName::TooLong);
        }
        if trimmed.is_empty() {
            return Err(InvalidPasskeyName::Empty);
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A passkey as its owner sees it in their list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// Names it to rename or delete it.
    pub id: PasskeyId,
    /// Whose it is.
    pub user_id: UserId,
    /// What the person calls it.
    pub name: PasskeyName,
    /// When it was added.
    pub created_at: DateTime<Utc>,
    /// When it last signed someone in.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whether the authenticator said the key is backed up or synced (iCloud Keychain, Google
    /// Password Manager, a password manager): losing this device does not lose the key.
    pub backed_up: bool,
}

/// The longest credential id WebAuthn allows, in bytes.
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// A credential id, as the authenticator made it (up to [`MAX_CREDENTIAL_ID`] bytes). Stored
/// looked up by its SHA-256 ([`CredentialId::key`]): a fixed-width unique key on every database.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialId(Vec<u8>);

/// The bytes are empty or longer than WebAuthn allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed credential id")]
pub struct MalformedCredentialId;

impl CredentialId {
    /// A credential id from its bytes.
    ///
    /// # Errors
    /// [`MalformedCredentialId`] when empty or longer than [`MAX_CREDENTIAL_ID`].
    pub fn new(bytes: Vec<u8>) -> Result<Self, MalformedCredentialId> {
        if bytes.is_empty() || bytes.len() > MAX_CREDENTIAL_ID {
            return Err(MalformedCredentialId);
        }
        Ok(Self(bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The lookup key: SHA-256 of the id, in lower-case hex.
    pub fn key(&self) -> String {
        crate::hex::encode(&Sha256::digest(&self.0))
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({}…)", &self.key()[..8])
    }
}

/// Bytes in a user handle.
pub const USER_HANDLE_BYTES: usize = 16;

/// The handle authenticators store with a person's passkeys and give back when signing in: 16
/// random bytes, the same for all of one person's passkeys. Not the address (an authenticator
/// may show or leak it) and not the user id (which OpenID Connect will hand to apps).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UserHandle([u8; USER_HANDLE_BYTES]);

impl UserHandle {
    /// Wraps bytes from the OS CSPRNG.
    pub fn from_random_bytes(bytes: [u8; USER_HANDLE_BYTES]) -> Self {
        Self(bytes)
    }

    /// A handle an authenticator gave back; `None` when it has not the length this service
    /// issues (so it is none of ours).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The bytes, as the authenticator stores them.
    pub fn as_bytes(&self) -> &[u8; USER_HANDLE_BYTES] {
        &self.0
    }

    /// The stored form: 32 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Reads the stored form back.
    ///
    /// # Errors
    /// [`MalformedToken`] unless the text is 32 lower-case hex digits.
    pub fn from_hex(text: &str) -> Result<Self, MalformedToken> {
        crate::hex::decode(text).map(Self).ok_or(MalformedToken)
    }
}

impl fmt::Debug for UserHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserHandle(***)")
    }
}

/// Bytes of entropy in a ceremony token (256 bits), as in a session token.
pub const CEREMONY_TOKEN_BYTES: usize = crate::session::TOKEN_BYTES;

/// The token of one passkey ceremony (adding a passkey, or signing in with one), carried only
/// in a short-lived cookie of the browser that began it. The ceremony's state is stored under
/// the token's hash, so every instance can finish it, only that browser can, and only once.
pub struct CeremonyToken([u8; CEREMONY_TOKEN_BYTES]);

/// Marks the hash of a ceremony token.
#[derive(Debug)]
pub enum CeremonyDigest {}
impl crate::digest::DigestKind for CeremonyDigest {
    const NAME: &'static str = "CeremonyHash";
}

/// The hash of a ceremony token: stored and looked up in its place.
pub type CeremonyHash = crate::digest::Digest<CeremonyDigest>;

impl CeremonyToken {
    /// Wraps bytes from the OS CSPRNG.
    pub fn from_random_bytes(bytes: [u8; CEREMONY_TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// Reads a token from a cookie value.
    ///
    /// # Errors
    /// [`MalformedToken`] unless the value is the URL-safe base64 of 32 bytes.
    pub fn parse(encoded: &str) -> Result<Self, MalformedToken> {
        crate::session::decode_cookie_token(encoded).map(Self)
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The stored form.
    pub fn hash(&self) -> CeremonyHash {
        CeremonyHash::computed(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for CeremonyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CeremonyToken(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passkey_name_is_trimmed_and_never_blank_overlong_or_controlled() {
        assert_eq!(PasskeyName::parse("  Chrome on Linux ").map(|n| n.0), Ok("Chrome on Linux".to_owned()));
        assert_eq!(PasskeyName::parse("   "), Err(InvalidPasskeyName::Empty));
        assert_eq!(PasskeyName::parse(&"k".repeat(MAX_PASSKEY_NAME + 1)), Err(InvalidPasskeyName::TooLong));
        assert!(PasskeyName::parse(&"é".repeat(MAX_PASSKEY_NAME)).is_ok());
        for typed in ["a\nb", "\u{202e}yek", "ta\tb"] {
            assert_eq!(PasskeyName::parse(typed), Err(InvalidPasskeyName::ControlCharacter), "{typed:?}");
        }
    }

    #[test]
    fn credential_ids_are_bounded_and_keyed_by_their_digest() {
        assert!(CredentialId::new(Vec::new()).is_err());
        assert!(CredentialId::new(vec![1; MAX_CREDENTIAL_ID + 1]).is_err());
        let id = CredentialId::new(vec![7; MAX_CREDENTIAL_ID]).expect("longest allowed");
        assert_eq!(id.key().len(), 64);
        assert_ne!(id.key(), CredentialId::new(vec![7; 16]).expect("short").key());
        assert!(!format!("{id:?}").contains("0707"));
    }

    #[test]
    fn user_handles_round_trip_through_hex_and_refuse_other_lengths() {
        let handle = UserHandle::from_random_bytes([0xa5; USER_HANDLE_BYTES]);
        assert_eq!(UserHandle::from_hex(&handle.to_hex()), Ok(handle));
        assert!(UserHandle::from_hex("a5").is_err());
        assert!(UserHandle::from_hex(&"zz".repeat(USER_HANDLE_BYTES)).is_err());
        assert_eq!(UserHandle::from_slice(&[1; 64]), None);
        assert_eq!(format!("{handle:?}"), "UserHandle(***)");
    }

    #[test]
    fn a_ceremony_token_parses_back_and_hashes_the_same() {
        let token = CeremonyToken::from_random_bytes([9; CEREMONY_TOKEN_BYTES]);
        let again = CeremonyToken::parse(&token.encode()).expect("round trip");
        assert!(again.hash().matches(&token.hash()));
        assert!(CeremonyToken::parse("short").is_err());
    }
}
