//! The server secret and the keys derived from it.
//!
//! One secret (`AUTH_SECRET`) keys everything, but never directly: each use gets its own key,
//! `HMAC-SHA256(secret, purpose)`, so a value made for one purpose (a CSRF token, say) can never
//! be replayed as another (a link token hash).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest secret the production profile accepts, in bytes.
pub const MIN_PRODUCTION_SECRET_BYTES: usize = 32;

/// The least entropy, in bits, that [`estimated_entropy_bits`] must find in a production secret.
/// A random secret of 32 or more characters from any alphabet `cargo xtask secret` or
/// `openssl rand` prints clears it easily; a repeated character or a short repeated pattern
/// padded to length does not.
pub const MIN_PRODUCTION_SECRET_BITS: f64 = 100.0;

/// The entropy of `text` estimated from its own characters: none at all when it is a shorter
/// piece repeated (`aaaa...`, `abcabc...`, a word over and over), else its length times the
/// Shannon entropy of how often each character occurs. It cannot tell a random string from a
/// well-mixed chosen one, but it catches what length alone lets through.
pub fn estimated_entropy_bits(text: &str) -> f64 {
    let characters: Vec<char> = text.chars().collect();
    let repeats_with_period = |period: usize| characters.iter().zip(&characters[period..]).all(|(a, b)| a == b);
    if (1..=characters.len() / 2).any(repeats_with_period) {
        return 0.0;
    }
    let mut counts = std::collections::HashMap::new();
    let mut length = 0_u32;
    for character in text.chars() {
        *counts.entry(character).or_insert(0_u32) += 1;
        length += 1;
    }
    let length = f64::from(length);
    let per_character: f64 = counts
        .values()
        .map(|&count| {
            let p = f64::from(count) / length;
            -p * p.log2()
        })
        .sum();
    per_character * length
}

/// What a derived key is for. Each purpose yields an unrelated key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Hashing magic-link tokens before they are stored or looked up.
    LinkToken,
    /// Binding CSRF tokens to this server.
    Csrf,
    /// Sealing pending outbox messages (XChaCha20-Poly1305).
    Outbox,
    /// Hashing the short sign-in codes before they are stored.
    Code,
    /// Binding a pending-sign-in cookie to the browser that asked for a link.
    PendingSignIn,
    /// Naming rate-limit counters without storing addresses or IPs in the clear.
    RateLimit,
    /// Sealing the OpenID Provider's private signing keys in the database.
    SigningKey,
}

impl KeyPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            KeyPurpose::LinkToken => b"magiclink/v1/link-token",
            KeyPurpose::Csrf => b"magiclink/v1/csrf",
            KeyPurpose::Outbox => b"magiclink/v1/outbox",
            KeyPurpose::Code => b"magiclink/v1/code",
            KeyPurpose::PendingSignIn => b"magiclink/v1/pending-sign-in",
            KeyPurpose::RateLimit => b"magiclink/v1/rate-limit",
            KeyPurpose::SigningKey => b"magiclink/v1/signing-key",
        }
    }
}

/// The current server secret and those rotated out, newest first: new values are signed with
/// the current one, and what was signed before a rotation (links and codes in flight, queued
/// emails, open forms, pending sign-ins) still checks under the one that signed it. The one
/// place that knows the order.
#[derive(Clone)]
pub struct SecretRing {
    current: ServerSecret,
    previous: Vec<ServerSecret>,
}

impl SecretRing {
    /// `current`, then `previous`, newest first.
    pub fn new(current: ServerSecret, previous: Vec<ServerSecret>) -> Self {
        Self { current, previous }
    }

    /// A ring of one secret: nothing was rotated out.
    pub fn single(current: ServerSecret) -> Self {
        Self::new(current, Vec::new())
    }

    /// The secret new values are signed with.
    pub fn current(&self) -> &ServerSecret {
        &self.current
    }

    /// Every secret a value may have been signed with: the current one first.
    pub fn all(&self) -> impl Iterator<Item = &ServerSecret> {
        std::iter::once(&self.current).chain(&self.previous)
    }
}

impl fmt::Debug for SecretRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRing(*** and {} rotated out)", self.previous.len())
    }
}

/// The server secret. Its `Debug` output is redacted so it cannot be logged by accident.
#[derive(Clone)]
pub struct ServerSecret(Vec<u8>);

impl ServerSecret {
    /// Wraps the secret's bytes as configured (any length; the production profile checks it).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The secret's length in bytes, for the production start-up check.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no secret was configured at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `HMAC-SHA256(key(purpose), message)`.
    pub fn mac(&self, purpose: KeyPurpose, message: &[u8]) -> [u8; 32] {
        let key = self.derive(purpose);
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts keys of any length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The key for `purpose`, for primitives other than HMAC (the outbox's AEAD).
    pub fn derive(&self, purpose: KeyPurpose) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(purpose.label());
        mac.finalize().into_bytes().into()
    }
}

/// A secret string from configuration (a password, an API key, a URL with credentials) that
/// cannot reach a log by accident: its `Debug` is redacted, and its text comes out only through
/// [`SecretText::expose`], at the one place that must send it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one call that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether nothing was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for SecretText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "SecretText(unset)" } else { "SecretText(***)" })
    }
}

impl fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::{estimated_entropy_bits, KeyPurpose, SecretText, ServerSecret, MIN_PRODUCTION_SECRET_BITS};

    #[test]
    fn repeated_characters_and_patterns_have_too_little_entropy_and_random_secrets_enough() {
        for weak in ["a".repeat(40), "ab".repeat(20), "password".repeat(5), "abcd".repeat(10)] {
            assert!(estimated_entropy_bits(&weak) < MIN_PRODUCTION_SECRET_BITS, "{weak}");
        }
        // What `cargo xtask secret` prints (base64 of 32 random bytes), and 32 random bytes in hex.
        for strong in [
            "q3V9c1mZ0rYb8LxT2kFhN6sWdP4eJuGa7oQyRiXv5Ek",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ] {
            assert!(estimated_entropy_bits(strong) >= MIN_PRODUCTION_SECRET_BITS, "{strong}");
        }
    }

    #[test]
    fn secret_text_never_shows_in_debug() {
        let secret = SecretText::new("smtp://user:hunter2@mail.example.com");
        assert_eq!(format!("{secret:?}"), "SecretText(***)");
        assert_eq!(format!("{:?}", SecretText::default()), "SecretText(unset)");
        assert_eq!(secret.expose(), "smtp://user:hunter2@mail.example.com");
    }

    #[test]
    fn purposes_yield_unrelated_macs_of_the_same_message() {
        let secret = ServerSecret::new(*b"0123456789abcdef0123456789abcdef");
        let link = secret.mac(KeyPurpose::LinkToken, b"message");
        let csrf = secret.mac(KeyPurpose::Csrf, b"message");
        assert_ne!(link, csrf);
        assert_eq!(link, secret.mac(KeyPurpose::LinkToken, b"message"));
    }

    #[test]
    fn different_secrets_yield_different_macs() {
        let one = ServerSecret::new(*b"0123456789abcdef0123456789abcdef");
        let two = ServerSecret::new(*b"0123456789abcdef0123456789abcdeF");
        assert_ne!(one.mac(KeyPurpose::LinkToken, b"m"), two.mac(KeyPurpose::LinkToken, b"m"));
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = ServerSecret::new(*b"super-secret-value-super-secret!");
        assert_eq!(format!("{secret:?}"), "ServerSecret(***)");
    }
}
