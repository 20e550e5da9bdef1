//! Magic-link tokens: the plain token that travels in the email, the keyed hash that is stored,
//! and the expiry rule.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};

use crate::secret::{KeyPurpose, ServerSecret};

/// Bytes of entropy in a link token (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// A plain link token. It exists only between generation and the email, and between the
/// request and the hash when a link is opened; it is never stored and its `Debug` is redacted.
pub struct LinkToken([u8; TOKEN_BYTES]);

/// The keyed hash of a link token: stored and looked up in its place.
pub type LinkTokenHash = crate::digest::Digest<crate::digest::LinkDigest>;

/// The text in a link is not a token this service could have issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed token")]
pub struct MalformedToken;

impl LinkToken {
    /// Wraps bytes from the OS CSPRNG (the caller draws them: this crate does no I/O).
    pub fn from_random_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// Reads a token from its URL form.
    ///
    /// # Errors
    /// [`MalformedToken`] unless the text is exactly the URL-safe base64 of 32 bytes.
    pub fn parse(encoded: &str) -> Result<Self, MalformedToken> {
        decode_fixed(encoded).map(Self)
    }

    /// The URL-safe base64 form put in the link (43 characters, no padding).
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The keyed hash under which this token is stored.
    pub fn hash(&self, secret: &ServerSecret) -> LinkTokenHash {
        LinkTokenHash::computed(secret.mac(KeyPurpose::LinkToken, &self.0))
    }
}

impl fmt::Debug for LinkToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkToken(***)")
    }
}

/// How long a link stays valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkPolicy {
    max_age: TimeDelta,
}

impl LinkPolicy {
    /// The OWASP ASVS limit for out-of-band authentication tokens (10 minutes).
    pub const DEFAULT_MAX_AGE_SECONDS: u32 = 600;

    /// A policy whose links live `max_age_seconds` seconds.
    pub fn new(max_age_seconds: u32) -> Self {
        Self { max_age: TimeDelta::seconds(i64::from(max_age_seconds)) }
    }

    /// When a link issued at `now` expires.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.max_age
    }

    /// How long a link lives, in seconds.
    pub fn max_age_seconds(&self) -> u64 {
        u64::try_from(self.max_age.num_seconds()).unwrap_or_default()
    }

    /// Whole minutes a link lives, rounded up: the JSON API's `expiresInMinutes`.
    pub fn max_age_minutes(&self) -> i64 {
        (self.max_age.num_seconds() + 59) / 60
    }
}

/// A link is usable strictly before its expiry instant and never at or after it.
pub fn is_expired(expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= expires
}

fn decode_fixed(encoded: &str) -> Result<[u8; TOKEN_BYTES], MalformedToken> {
    // Checking the length first bounds the work done on hostile input.
    if encoded.len() != 43 {
        return Err(MalformedToken);
    }
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| MalformedToken)?;
    bytes.try_into().map_err(|_| MalformedToken)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::{is_expired, LinkPolicy, LinkToken, LinkTokenHash, MalformedToken};
    use crate::ServerSecret;

    fn secret() -> ServerSecret {
        ServerSecret::new(*b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_survives_its_url_form() {
        let token = LinkToken::from_random_bytes([7; 32]);
        let encoded = token.encode();
        assert_eq!(encoded.len(), 43);
        assert!(encoded.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let parsed = LinkToken::parse(&encoded).expect("round trip");
        assert!(parsed.hash(&secret()).matches(&token.hash(&secret())));
    }

    #[test]
    fn malformed_url_forms_are_refused() {
        let good = LinkToken::from_random_bytes([1; 32]).encode();
        let padded = format!("{good}=");
        let too_short = &good[..42];
        let bad_alphabet = format!("{}+", &good[..42]);
        let cases = ["", "abc", too_short, &padded, &bad_alphabet, &"A".repeat(1000)];
        for case in cases {
            assert_eq!(LinkToken::parse(case).map(|_| ()), Err(MalformedToken), "input {case:?}");
        }
    }

    #[test]
    fn the_hash_is_keyed_by_the_secret_and_differs_per_token() {
        let one = LinkToken::from_random_bytes([1; 32]);
        let two = LinkToken::from_random_bytes([2; 32]);
        let other_secret = ServerSecret::new(*b"another-secret-another-secret-32");
        assert!(!one.hash(&secret()).matches(&two.hash(&secret())));
        assert!(!one.hash(&secret()).matches(&one.hash(&other_secret)));
        assert!(one.hash(&secret()).matches(&one.hash(&secret())));
    }

    #[test]
    fn the_stored_hex_form_round_trips_and_rejects_garbage() {
        let hash = LinkToken::from_random_bytes([9; 32]).hash(&secret());
        let hex = hash.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(LinkTokenHash::from_hex(&hex).expect("round trip").matches(&hash));
        for bad in ["", &hex[..63], &hex.to_uppercase(), &format!("{}g", &hex[..63])] {
            assert!(LinkTokenHash::from_hex(bad).is_err(), "input {bad:?}");
        }
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let token = LinkToken::from_random_bytes([5; 32]);
        assert_eq!(format!("{token:?}"), "LinkToken(***)");
        let hash_debug = format!("{:?}", token.hash(&secret()));
        assert!(hash_debug.len() < 30, "{hash_debug}");
    }

    #[test]
    fn expiry_edges() {
        let issued = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).single().expect("valid date");
        let policy = LinkPolicy::new(600);
        let expires = policy.expires_at(issued);
        let cases = [
            (issued, false),
            (expires - TimeDelta::milliseconds(1), false),
            (expires, true),
            (expires + TimeDelta::milliseconds(1), true),
            (expires + TimeDelta::days(365), true),
        ];
        for (now, expired) in cases {
            assert_eq!(is_expired(expires, now), expired, "at {now}");
        }
    }

    #[test]
    fn minutes_until_expiry_round_up() {
        assert_eq!(LinkPolicy::new(600).max_age_minutes(), 10);
        assert_eq!(LinkPolicy::new(601).max_age_minutes(), 11);
        assert_eq!(LinkPolicy::new(59).max_age_minutes(), 1);
    }
}
