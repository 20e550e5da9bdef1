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

/// The hash of a session token: stored and looked up in its place.
pub type SessionTokenHash = crate::digest::Digest<crate::digest::SessionDigest>;

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
        decode_cookie_token(encoded).map(Self)
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The stored form.
    pub fn hash(&self) -> SessionTokenHash {
        SessionTokenHash::computed(Sha256::digest(self.0).into())
    }
}

/// Reads a 32-byte token from a cookie value: its URL-safe base64, unpadded (43 characters).
/// Shared by every token a cookie carries (the session's, a passkey ceremony's).
///
/// # Errors
/// [`MalformedToken`] for anything else.
pub(crate) fn decode_cookie_token(encoded: &str) -> Result<[u8; TOKEN_BYTES], MalformedToken> {
    if encoded.len() != 43 {
        return Err(MalformedToken);
    }
    let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| MalformedToken)?;
    bytes.try_into().map_err(|_| MalformedToken)
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(***)")
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
    /// How the person proved who they are for this session.
    pub method: SignInMethod,
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
    /// How the person signed in.
    pub method: SignInMethod,
}

/// How a person proved who they are when a session began: what an ID token's `amr` will say,
/// and what the account page shows beside each session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignInMethod {
    /// A magic link opened.
    Link,
    /// The short code sent with a link, typed on another device.
    Code,
    /// An address and password.
    Password,
    /// A passkey (WebAuthn assertion).
    Passkey,
}

impl SignInMethod {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Link => "link",
            Self::Code => "code",
            Self::Password => "password",
            Self::Passkey => "passkey",
        }
    }

    /// The method a stored name names; `None` for one this version does not know.
    pub fn parse(stored: &str) -> Option<Self> {
        [Self::Link, Self::Code, Self::Password, Self::Passkey].into_iter().find(|method| method.as_str() == stored)
    }
}

/// How long sessions live and how often their expiry slides forward, up to an absolute end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    max_age: TimeDelta,
    update_age: TimeDelta,
    absolute_max_age: TimeDelta,
}

impl SessionPolicy {
    /// 30 days, as in Auth.js.
    pub const DEFAULT_MAX_AGE_SECONDS: u32 = 30 * 24 * 60 * 60;
    /// 24 hours, as in Auth.js.
    pub const DEFAULT_UPDATE_AGE_SECONDS: u32 = 24 * 60 * 60;
    /// 90 days: a session in daily use still ends, and its person signs in again (by link, so
    /// proving they still read the address), at least once a quarter. OWASP ASVS 7.3.2 asks for
    /// an absolute lifetime; NIST SP 800-63B allows 30 days for the lowest assurance level
    /// without reauthentication, and a passwordless service whose sign-in is one click can ask
    /// a little more often than a password service without losing anyone.
    pub const DEFAULT_ABSOLUTE_MAX_AGE_SECONDS: u32 = 90 * 24 * 60 * 60;

    /// A policy with the given lifetimes, in seconds, and the default absolute lifetime.
    pub fn new(max_age_seconds: u32, update_age_seconds: u32) -> Self {
        Self {
            max_age: TimeDelta::seconds(i64::from(max_age_seconds)),
            update_age: TimeDelta::seconds(i64::from(update_age_seconds)),
            absolute_max_age: TimeDelta::seconds(i64::from(Self::DEFAULT_ABSOLUTE_MAX_AGE_SECONDS)),
        }
    }

    /// The same policy, with sessions ending `seconds` after their sign-in however much they
    /// are used.
    #[must_use]
    pub fn with_absolute_max_age(self, seconds: u32) -> Self {
        Self { absolute_max_age: TimeDelta::seconds(i64::from(seconds)), ..self }
    }

    /// The expiry of a session signed in at `now`.
    pub fn expires_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.max_age.min(self.absolute_max_age)
    }

    /// How long a session lasts at most from its sign-in, in seconds.
    pub fn absolute_max_age_seconds(&self) -> i64 {
        self.absolute_max_age.num_seconds()
    }

    /// When a session signed in at `signed_in_at` ends, however much it is used.
    pub fn absolute_end(&self, signed_in_at: DateTime<Utc>) -> DateTime<Utc> {
        signed_in_at + self.absolute_max_age
    }

    /// The session's full lifetime, for the cookie's `Max-Age`.
    pub fn max_age_seconds(&self) -> i64 {
        self.max_age.num_seconds()
    }

    /// Whether a session signed in at `signed_in_at` that expires at `expires` still signs
    /// someone in at `now`: before its expiry, and before its absolute end (which a session
    /// stored before the absolute lifetime existed, or under a longer one, may not respect in
    /// its stored expiry; this is what enforces it on every backend).
    pub fn is_live(&self, signed_in_at: DateTime<Utc>, expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        now < expires && now < self.absolute_end(signed_in_at)
    }

    /// The new expiry if a live session used at `now` is due for extension, else `None`. Never
    /// past the session's absolute end.
    ///
    /// A session is extended at most once per `update_age`: it was last set to
    /// `expires - max_age`, and is extended only once `update_age` has passed since then. This
    /// keeps a busy session from writing to the database on every request. A session whose
    /// expiry already reached its absolute end is not extended again.
    pub fn extension(
        &self,
        signed_in_at: DateTime<Utc>,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let last_set = expires - self.max_age;
        let extended = (now + self.max_age).min(self.absolute_end(signed_in_at));
        (self.is_live(signed_in_at, expires, now) && now >= last_set + self.update_age && extended > expires)
            .then_some(extended)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sign_in_methods_round_trip_through_their_stored_names() {
        for method in [
            super::SignInMethod::Link,
            super::SignInMethod::Code,
            super::SignInMethod::Password,
            super::SignInMethod::Passkey,
        ] {
            assert_eq!(super::SignInMethod::parse(method.as_str()), Some(method));
        }
        assert_eq!(super::SignInMethod::parse("sms"), None);
    }

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
            assert_eq!(policy.extension(created, expires, now), expected, "at {now}");
        }
    }

    #[test]
    fn a_session_is_live_strictly_before_its_expiry() {
        let policy = SessionPolicy::new(60, 10);
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("valid date");
        assert!(policy.is_live(now, now + TimeDelta::seconds(1), now));
        assert!(!policy.is_live(now, now, now));
    }

    #[test]
    fn a_session_in_daily_use_still_ends_at_its_absolute_lifetime() {
        let policy = SessionPolicy::new(30 * 86_400, 86_400).with_absolute_max_age(90 * 86_400);
        let signed_in = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single().expect("valid date");
        let end = signed_in + TimeDelta::days(90);
        // Used every day: each extension slides 30 days, but never past day 90.
        let mut expires = policy.expires_at(signed_in);
        for day in 1..=89 {
            let now = signed_in + TimeDelta::days(day);
            assert!(policy.is_live(signed_in, expires, now), "day {day}");
            if let Some(extended) = policy.extension(signed_in, expires, now) {
                assert!(extended <= end, "day {day}: extended to {extended}");
                expires = extended;
            }
        }
        assert_eq!(expires, end, "the expiry reached the absolute end and stopped there");
        assert!(!policy.is_live(signed_in, expires, end));
        assert_eq!(policy.extension(signed_in, expires, end - TimeDelta::seconds(1)), None);
        // A session stored with a later expiry (a longer lifetime before) ends all the same.
        assert!(!policy.is_live(signed_in, end + TimeDelta::days(30), end));
        // An absolute lifetime shorter than max_age shortens new sessions too.
        let short = SessionPolicy::new(30 * 86_400, 86_400).with_absolute_max_age(86_400);
        assert_eq!(short.expires_at(signed_in), signed_in + TimeDelta::days(1));
    }
}
