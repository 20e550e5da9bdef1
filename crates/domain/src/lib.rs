//! Values and rules of magic-link sign-in, with no I/O.
//!
//! Everything here is pure: parsing an email address, hashing a token, deciding whether a
//! link has expired or a session is due for extension, deciding whether a `callbackUrl` is
//! safe to follow. Randomness and time come in as arguments, so every rule is testable with
//! plain `#[test]`s and fixed inputs. Nothing here derives serde, sqlx or poem traits: the
//! outer crates own their own representations and convert.

pub mod audit;
pub mod callback;
pub mod code;
pub mod digest;
pub mod email;
pub mod hex;
pub mod id;
pub mod link;
pub mod oidc;
pub mod passkey;
pub mod password;
pub mod rate_limit;
pub mod sealed;
pub mod secret;
pub mod session;
pub mod user;
pub mod webhook;

pub use callback::CallbackPath;
pub use code::{MalformedCode, SignInCode, SignInCodeHash};
pub use digest::{Digest, MalformedDigest};
pub use email::{EmailAddress, InvalidEmail};
pub use id::{MalformedId, OutboxId, SessionId, UserId};
pub use link::{LinkPolicy, LinkToken, LinkTokenHash, MalformedToken};
pub use passkey::{
    CeremonyHash, CeremonyToken, CredentialId, InvalidPasskeyName, MalformedCredentialId, Passkey, PasskeyId,
    PasskeyName, UserHandle,
};
pub use password::{Password, PasswordHash, PasswordRefusal, PasswordRules};
pub use rate_limit::Quota;
pub use secret::{SecretRing, SecretText, ServerSecret};
pub use session::{Session, SessionPolicy, SessionSummary, SessionToken, SessionTokenHash, SignInMethod};
pub use user::{DisplayName, InvalidDisplayName, User};
