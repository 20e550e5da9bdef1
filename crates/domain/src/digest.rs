//! Digests of secrets: what is stored and looked up in place of a link token, a session token
//! or a sign-in code. One generic type with a marker per kind, as [`crate::id::Id`] is for ids,
//! so a session token's hash can never be compared with a link's, and every kind has the same
//! API: hex for storage, raw bytes for binding, a constant-time comparison, a `Debug` that
//! shows a prefix only.
//!
//! Only this crate makes a digest from a secret (`LinkToken::hash`, `SessionToken::hash`,
//! `SignInCode::hash`); the rest of the service rebuilds them from what it stored.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use subtle::ConstantTimeEq as _;

/// What a digest is of.
pub trait DigestKind {
    /// The name `Debug` shows.
    const NAME: &'static str;
}

/// Marks the keyed hash of a link token.
#[derive(Debug)]
pub enum LinkDigest {}
impl DigestKind for LinkDigest {
    const NAME: &'static str = "LinkTokenHash";
}

/// Marks the hash of a session token.
#[derive(Debug)]
pub enum SessionDigest {}
impl DigestKind for SessionDigest {
    const NAME: &'static str = "SessionTokenHash";
}

/// Marks the keyed hash of a sign-in code, bound to its link.
#[derive(Debug)]
pub enum CodeDigest {}
impl DigestKind for CodeDigest {
    const NAME: &'static str = "SignInCodeHash";
}

/// A 32-byte digest of a secret of kind `K`.
pub struct Digest<K> {
    bytes: [u8; 32],
    kind: PhantomData<fn() -> K>,
}

/// The text is not 64 lower-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed digest")]
pub struct MalformedDigest;

impl<K> Digest<K> {
    /// A digest this crate computed.
    pub(crate) fn computed(bytes: [u8; 32]) -> Self {
        Self { bytes, kind: PhantomData }
    }

    /// Rebuilds a digest read back from storage.
    ///
    /// # Errors
    /// [`MalformedDigest`] unless the text is 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, MalformedDigest> {
        crate::hex::decode_32(hex).map(Self::computed).ok_or(MalformedDigest)
    }

    /// The stored form: 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.bytes)
    }

    /// The raw digest, to bind other values (a code, a pending-sign-in cookie) to it.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Rebuilds a digest from its raw bytes (as carried in a pending-sign-in cookie).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self::computed(bytes)
    }

    /// Compares two digests in constant time, so that a comparison's duration says nothing
    /// about how many leading bytes matched.
    pub fn matches(&self, other: &Self) -> bool {
        self.bytes.ct_eq(&other.bytes).into()
    }
}

impl<K> Clone for Digest<K> {
    fn clone(&self) -> Self {
        Self::computed(self.bytes)
    }
}

impl<K> PartialEq for Digest<K> {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl<K> Eq for Digest<K> {}

impl<K> Hash for Digest<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.bytes.hash(state);
    }
}

impl<K: DigestKind> fmt::Debug for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines and too little to look a row up by.
        write!(f, "{}({}…)", K::NAME, &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::{CodeDigest, Digest, LinkDigest};

    #[test]
    fn a_digest_round_trips_through_hex_compares_in_full_and_shows_a_prefix_only() {
        let digest = Digest::<LinkDigest>::from_bytes([0xab; 32]);
        let hex = digest.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(Digest::<LinkDigest>::from_hex(&hex).expect("round trip").matches(&digest));
        for bad in ["", "00", &hex.to_uppercase(), &format!("{hex}0"), &"g".repeat(64)] {
            assert!(Digest::<CodeDigest>::from_hex(bad).is_err(), "{bad:?}");
        }
        let mut other = [0xab; 32];
        other[31] = 0;
        assert!(!digest.matches(&Digest::from_bytes(other)));
        assert_eq!(format!("{digest:?}"), "LinkTokenHash(abababab…)");
    }
}
