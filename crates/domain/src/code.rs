//! The short sign-in code printed in the email beside the link, for when the email is read on
//! one device (a phone) and the sign-in happens on another (a laptop).
//!
//! Eight characters of Crockford's base32 (40 bits, shown as `XXXX-XXXX`): no `I`, `L`, `O` or
//! `U`, and typing is forgiving (case, spaces and hyphens do not matter; `O` reads as `0`, `I`
//! and `L` as `1`). Forty bits cannot be guessed with the five tries a link allows. The code is
//! stored only as a keyed hash bound to its link, like the link token itself.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::link::LinkTokenHash;
use crate::secret::{KeyPurpose, ServerSecret};

/// Characters in a code.
pub const CODE_LENGTH: usize = 8;
/// Wrong codes allowed per link before its code stops working: 5 tries at 40 bits is a
/// one-in-200-billion chance for a guesser who somehow holds the pending-sign-in cookie.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Crockford's base32 alphabet: digits and letters, without `I`, `L`, `O` and `U`.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A plain sign-in code. Like a link token it exists only on its way into the email and out of
/// a form; it is not `Clone` and its `Debug` is redacted.
pub struct SignInCode([u8; CODE_LENGTH]);

/// The keyed hash of a sign-in code, bound to its link: stored and compared in its place.
pub type SignInCodeHash = crate::digest::Digest<crate::digest::CodeDigest>;

/// What was typed is not a code this service could have issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed code")]
pub struct MalformedCode;

impl SignInCode {
    /// A code from bytes of the OS CSPRNG (the caller draws them). Each byte picks one of 32
    /// characters, and 32 divides 256, so every character is equally likely.
    pub fn from_random_bytes(bytes: [u8; CODE_LENGTH]) -> Self {
        Self(bytes.map(|byte| ALPHABET[usize::from(byte % 32)]))
    }

    /// Reads what a person typed: case, spaces and hyphens are ignored, and `O`, `I` and `L`
    /// are read as the digits they look like.
    ///
    /// # Errors
    /// [`MalformedCode`] unless exactly eight characters of the alphabet remain.
    pub fn parse(typed: &str) -> Result<Self, MalformedCode> {
        if typed.len() > 4 * CODE_LENGTH {
            return Err(MalformedCode);
        }
        let mut code = [0_u8; CODE_LENGTH];
        let mut count = 0;
        for c in typed.chars().filter(|c| !matches!(c, ' ' | '-' | '\t')) {
            let canonical = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                other => other,
            };
            let byte = u8::try_from(canonical).map_err(|_| MalformedCode)?;
            if !ALPHABET.contains(&byte) || count == CODE_LENGTH {
                return Err(MalformedCode);
            }
            code[count] = byte;
            count += 1;
        }
        if count == CODE_LENGTH {
            Ok(Self(code))
        } else {
            Err(MalformedCode)
        }
    }

    /// The code as the email shows it: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        let (first, second) = self.0.split_at(CODE_LENGTH / 2);
        format!("{}-{}", String::from_utf8_lossy(first), String::from_utf8_lossy(second))
    }

    /// The keyed hash under which this code is stored with the link `link`.
    pub fn hash(&self, secret: &ServerSecret, link: &LinkTokenHash) -> SignInCodeHash {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&secret.derive(KeyPurpose::Code)).expect("HMAC accepts keys of any length");
        mac.update(link.as_bytes());
        mac.update(&self.0);
        SignInCodeHash::computed(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for SignInCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignInCode(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::{SignInCode, SignInCodeHash, CODE_LENGTH};
    use crate::link::LinkToken;
    use crate::secret::ServerSecret;

    fn secret() -> ServerSecret {
        ServerSecret::new(*b"code-test-secret-code-test-secre")
    }

    #[test]
    fn codes_use_the_unambiguous_alphabet_evenly() {
        let mut seen = std::collections::BTreeSet::new();
        for byte in 0..=255_u8 {
            let code = SignInCode::from_random_bytes([byte; CODE_LENGTH]).display();
            seen.insert(code.chars().next().expect("a character"));
        }
        assert_eq!(seen.len(), 32);
        assert!(seen.iter().all(|c| !matches!(c, 'I' | 'L' | 'O' | 'U')), "{seen:?}");
    }

    #[test]
    fn codes_are_shown_in_two_groups_and_read_back_however_they_are_typed() {
        let code = SignInCode::from_random_bytes([0, 1, 2, 3, 28, 29, 30, 31]);
        assert_eq!(code.display(), "0123-WXYZ");
        let link = LinkToken::from_random_bytes([7; 32]).hash(&secret());
        for typed in ["0123-WXYZ", "0123wxyz", " 0123 wxyz ", "o123-wxyz", "OI23WXYZ", "0l23-WXYZ"] {
            let parsed = SignInCode::parse(typed).unwrap_or_else(|_| panic!("{typed:?} is refused"));
            assert!(parsed.hash(&secret(), &link).matches(&code.hash(&secret(), &link)), "{typed:?}");
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for typed in ["", "0123-WXY", "0123-WXYZ0", "0123-WXYU", "0123-WXY!", "０１２３ＷＸＹＺ", &"-".repeat(100)]
        {
            assert!(SignInCode::parse(typed).is_err(), "{typed:?}");
        }
    }

    #[test]
    fn the_hash_is_bound_to_the_link_and_the_secret() {
        let code = SignInCode::from_random_bytes([5; CODE_LENGTH]);
        let one = LinkToken::from_random_bytes([1; 32]).hash(&secret());
        let two = LinkToken::from_random_bytes([2; 32]).hash(&secret());
        let other = ServerSecret::new(*b"another-secret-another-secret-32");

        assert!(!code.hash(&secret(), &one).matches(&code.hash(&secret(), &two)));
        assert!(!code.hash(&secret(), &one).matches(&code.hash(&other, &one)));
        let stored = code.hash(&secret(), &one).to_hex();
        assert!(SignInCodeHash::from_hex(&stored).expect("round trip").matches(&code.hash(&secret(), &one)));
        assert_eq!(format!("{code:?}"), "SignInCode(***)");
    }
}
