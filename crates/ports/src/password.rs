//! The ports the optional password sign-in needs: a slow hasher and a list of common
//! passwords. `adapters::password` implements both (argon2id, zxcvbn).

use domain::{Password, PasswordHash};

/// What checking a password against a stored hash found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password is right.
    Matches {
        /// The hash was made with weaker parameters than the configured ones: store a new one.
        outdated: bool,
    },
    /// The password is wrong, or there was no hash to check it against.
    Mismatch,
}

/// Hashes and checks passwords: deliberately slow work, run off the async workers and capped,
/// so a burst of password attempts cannot starve the other endpoints.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A new hash of `password`, with a fresh salt and the configured parameters.
    ///
    /// # Errors
    /// Only when the hasher could not run (a worker thread failed).
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash>;

    /// Whether `password` matches `stored`. With `stored` of `None` (no such user, or a user
    /// without a password) it verifies against a fixed dummy hash of the same cost and answers
    /// [`PasswordCheck::Mismatch`], so that "no account" takes as long as "wrong password".
    /// A stored hash that cannot be parsed is a mismatch, logged.
    ///
    /// # Errors
    /// Only when the hasher could not run (a worker thread failed).
    async fn check(&self, password: &Password, stored: Option<PasswordHash>) -> anyhow::Result<PasswordCheck>;
}

/// A list of common and breached passwords, checked locally (no network lookups).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait CommonPasswords: Send + Sync {
    /// Whether `password` is on the list, or as easy to guess, taking into account words an
    /// attacker would try for this account (`context`: its address, the site's name).
    fn is_common(&self, password: &Password, context: &[String]) -> bool;
}
