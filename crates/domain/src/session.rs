//! Sessions: the cookie token, its stored hash, and the lifetime rules.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, TimeDelta, Utc};
use sha2::{Digest, Sha256};

use crate::id::SessionId;
use crate::link::MalformedToken;
use crate::user::UserId;

/// Bytes of entropy in a session token (256 bits).
pub const TOKEN_BYTES: usize = 32;

/// The plain session token, carried only in the session cookie.
pub struct SessionToken([u8; TOKEN_BYTES]);

/// `SHA-256(token)`: the stored form. Unlike link tokens no key is needed: the token already has
/// 256 bits of entropy, so the hash cannot be reversed, and a stolen database copy still cannot
/// produce a cookie.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionTokenHash([u8; 32]);

impl SessionToken {
    /// Wraps bytes from the OS CSPRNG.
    pub fn from_random_bytes(bytes: [u8; TOKEN_BYTES]) -> Self {
        Self(bytes)
    }

    /// Reads a token from a cookie value.
    ///
    /// # Errors
    /// [`MalformedToken`] unless the value is the URL-safe base64 of 32 bytes.
    pub fn parse(encoded: &str) -> Result<Self, MalformedToken> {
        if encoded.len() != 43 {
            return Err(MalformedToken);
        }
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| MalformedToken)?;
        bytes.try_into().map(Self).map_err(|_| MalformedToken)
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The stored form.
    pub fn hash(&self) -> SessionTokenHash {
        SessionTokenHash(Sha256::digest(self.0).into())
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
    }
}

impl SessionTokenHash {
    /// Rebuilds a hash read back from storage.
    ///
    /// # Errors
    /// [`MalformedToken`] unless the text is 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, MalformedToken> {
        crate::hex::decode_32(hex).map(Self).ok_or(MalformedToken)
    }

    /// The stored form: 64 lower-case hex digits.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl fmt::Debug for SessionTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionTokenHash({}…)", &self.to_hex()[..8])
    }
}

/// A session as stored: who it belongs to and until when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's own id (not the token).
    pub id: SessionId,
    /// The signed-in user.
    pub user_id: UserId,
    /// The instant from which the session no longer signs anyone in.
    pub expires: DateTime<Utc>,
    /// When the person signed in (by link, code or password) and the session began: what
    /// "signed in recently" means for sensitive changes.
    pub created_at: DateTime<Utc>,
}

/// A session as its owner sees it in a list of their sessions: never its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session's id, which names it to revoke it.
    pub id: SessionId,
    /// When it was created (the sign-in).
    pub created_at: DateTime<Utc>,
    /// When it was last seen in use, to within the policy's update age: it is recorded only
    /// when a read extends the session, so reading a session never writes otherwise.
    pub last_used: DateTime<Utc>,
    /// When it stops working unless used again.
    pub expires: DateTime<Utc>,
    /// The browser's `User-Agent` at sign-in, if it sent one.
    pub user_agent: Option<String>,
}

/// How long sessions live and how often their expiry slides forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    max_age: TimeDelta,
    update_age: TimeDelta,
}

impl SessionPolicy {
    /// 30 days, as in Auth.js.
    pub const DEFAULT_MAX_AGE_SECONDS: u32 = 30 * 24 * 60 * 60;
    /// 24 hours, as in Auth.js.
    pub const DEFAULT_UPDATE_AGE_SECONDS: u32 = 24 * 60 * 60;

    /// A policy with the given lifetimes, in seconds.
    pub fn new(max_age_seconds: u32, update_age_seconds: u32) -> Self {
        Self {
            max_age: TimeDelta::seconds(i64::from(max_age_seconds)),
            update_age: TimeDelta::seconds(i64::from(update_age_seconds)),
        }
    }

    /// The expiry of a session created, or extended, at `now`.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.max_age
    }

    /// The session's full lifetime, for the cookie's `Max-Age`.
    pub fn max_age_seconds(&self) -> i64 {
        self.max_age.num_seconds()
    }

    /// Whether a session that expires at `expires` still signs someone in at `now`.
    pub fn is_live(&self, expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now < expires
    }

    /// The new expiry if a live session used at `now` is due for extension, else `None`.
    ///
    /// A session is extended at most once per `update_age`: it was last set to
    /// `expires - max_age`, and is extended only once `update_age` has passed since then. This
    /// keeps a busy session from writing to the database on every request.
    pub fn extension(&self, expires: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let last_set = expires - self.max_age;
        (self.is_live(expires, now) && now >= last_set + self.update_age).then(|| self.expires_at(now))
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::{SessionPolicy, SessionToken};

    #[test]
    fn the_cookie_value_round_trips_and_the_hash_is_stable() {
        let token = SessionToken::from_random_bytes([3; 32]);
        let parsed = SessionToken::parse(&token.encode()).expect("round trip");
        assert_eq!(parsed.hash(), token.hash());
        assert_ne!(SessionToken::from_random_bytes([4; 32]).hash(), token.hash());
        assert_eq!(token.hash().to_hex().len(), 64);
        assert!(SessionToken::parse("not-a-token").is_err());
        assert_eq!(format!("{token:?}"), "SessionToken(***)");
    }

    #[test]
    fn sessions_slide_at_most_once_per_update_age() {
        let policy = SessionPolicy::new(30 * 86_400, 86_400);
        let created = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("valid date");
        let expires = policy.expires_at(created);
        let cases = [
            (created, None),
            (created + TimeDelta::hours(23), None),
            (created + TimeDelta::hours(24), Some(policy.expires_at(created + TimeDelta::hours(24)))),
            (created + TimeDelta::days(29), Some(policy.expires_at(created + TimeDelta::days(29)))),
            (expires - TimeDelta::seconds(1), Some(policy.expires_at(expires - TimeDelta::seconds(1)))),
            (expires, None),
            (expires + TimeDelta::days(1), None),
        ];
        for (now, expected) in cases {
            assert_eq!(policy.extension(expires, now), expected, "at {now}");
        }
    }

    #[test]
    fn a_session_is_live_strictly_before_its_expiry() {
        let policy = SessionPolicy::new(60, 10);
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("valid date");
        assert!(policy.is_live(now + TimeDelta::seconds(1), now));
        assert!(!policy.is_live(now, now));
    }
}
