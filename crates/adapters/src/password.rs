//! The password ports: [`Argon2Hasher`] (argon2id, PHC strings, off the async workers behind
//! a concurrency cap) and [`ZxcvbnList`] (the common-password check, from zxcvbn's shipped
//! frequency lists of breached passwords, words and names).

use std::sync::Arc;

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash as Phc, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use domain::{Password, PasswordHash};
use ports::{CommonPasswords, PasswordCheck, PasswordHasher};
use tokio::sync::Semaphore;

/// The argon2id cost settings: memory in KiB, passes, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Cost {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes (threads the hash could use; one hash runs on one thread here).
    pub parallelism: u32,
}

/// OWASP's Password Storage Cheat Sheet's argon2id settings, all equivalent in cost:
/// (memory KiB, iterations). A configuration must meet or pass one of them.
pub const OWASP_MINIMUMS: [(u32, u32); 5] = [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)];

impl Argon2Cost {
    /// OWASP's second setting, the argon2 crate's default too: 19 MiB, 2 passes, 1 lane.
    pub const DEFAULT: Self = Self { memory_kib: 19_456, iterations: 2, parallelism: 1 };

    /// Whether this cost is at or above one of [`OWASP_MINIMUMS`].
    pub fn meets_owasp(&self) -> bool {
        self.parallelism >= 1
            && OWASP_MINIMUMS
                .iter()
                .any(|&(memory, iterations)| self.memory_kib >= memory && self.iterations >= iterations)
    }

    fn params(&self) -> anyhow::Result<Params> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|error| anyhow::anyhow!("argon2 parameters refused: {error}"))
    }
}

/// argon2id over `spawn_blocking`, at most `max_concurrent` hashes at a time; more wait their
/// turn without holding an async worker.
#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password with the configured cost, checked when there is no hash to
    /// check against, so that "no such account" costs what "wrong password" costs.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Hasher").field("params", &self.params).finish_non_exhaustive()
    }
}

impl Argon2Hasher {
    /// A hasher with this cost and concurrency cap (at least 1).
    ///
    /// # Errors
    /// When the cost is below OWASP's recommendation or not valid for argon2, or the OS gives
    /// no randomness for the dummy hash.
    pub fn new(cost: Argon2Cost, max_concurrent: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            cost.meets_owasp(),
            "password.argon2 memory_kib = {}, iterations = {} is below OWASP's recommendation \
             (at least one of {OWASP_MINIMUMS:?} as (memory_kib, iterations))",
            cost.memory_kib,
            cost.iterations
        );
        let params = cost.params()?;
        let mut random = [0_u8; 32];
        getrandom::fill(&mut random).map_err(|error| anyhow::anyhow!("no randomness from the OS: {error}"))?;
        let dummy = hash_with(&params, &domain::hex::encode(&random))?;
        Ok(Self { params, permits: Arc::new(Semaphore::new(max_concurrent.max(1))), dummy: dummy.into() })
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("the password hasher was closed")?;
        tokio::task::spawn_blocking(work).await.context("a password hash did not finish")
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(|error| anyhow::anyhow!("no randomness from the OS: {error}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| anyhow::anyhow!("cannot encode a salt: {error}"))?;
    let hash = argon2id(params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|error| anyhow::anyhow!("cannot hash a password: {error}"))?;
    Ok(hash.to_string())
}

/// Checks `password` against the PHC string `stored` (whatever parameters it names).
fn check_with(params: &Params, password: &str, stored: &str) -> PasswordCheck {
    let Ok(parsed) = Phc::new(stored) else {
        tracing::error!("a stored password hash is not a PHC string; treated as a wrong password");
        return PasswordCheck::Mismatch;
    };
    if argon2id(params).verify_password(password.as_bytes(), &parsed).is_err() {
        return PasswordCheck::Mismatch;
    }
    let outdated = parsed.algorithm.as_str() != "argon2id"
        || parsed.version != Some(Version::V0x13.into())
        || Params::try_from(&parsed).map_or(true, |old| {
            old.m_cost() < params.m_cost() || old.t_cost() < params.t_cost() || old.p_cost() < params.p_cost()
        });
    PasswordCheck::Matches { outdated }
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        Ok(PasswordHash::from_phc(self.run(move || hash_with(&params, &password)).await??))
    }

    async fn check(&self, password: &Password, stored: Option<PasswordHash>) -> anyhow::Result<PasswordCheck> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        let dummy = Arc::clone(&self.dummy);
        self.run(move || match stored {
            Some(stored) => check_with(&params, &password, stored.as_phc()),
            None => {
                // The same verification as a real one, its answer thrown away.
                let _ = check_with(&params, &password, &dummy);
                PasswordCheck::Mismatch
            }
        })
        .await
    }
}

/// The common-password check: zxcvbn's estimate of how many guesses a password takes, with
/// the account's address and the site's name as words an attacker would try first. Below
/// 10^8 guesses (zxcvbn's score 3) a password is refused: it falls to an offline attack on a
/// stolen hash within days even at argon2id speeds, and many are in breach lists outright.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZxcvbnList;

/// zxcvbn's matching grows quickly with length; a prefix this long decides "common" alike
/// (no password on a list is longer), and bounds the work on a 256-character input.
const ZXCVBN_PREFIX: usize = 100;

impl CommonPasswords for ZxcvbnList {
    fn is_common(&self, password: &Password, context: &[String]) -> bool {
        let prefix: String = password.expose().chars().take(ZXCVBN_PREFIX).collect();
        let inputs: Vec<&str> = context.iter().map(String::as_str).collect();
        zxcvbn::zxcvbn(&prefix, &inputs).score() < zxcvbn::Score::Three
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest cost OWASP accepts, so the tests stay quick.
    const CHEAP: Argon2Cost = Argon2Cost { memory_kib: 7_168, iterations: 5, parallelism: 1 };

    fn typed(raw: &str) -> Password {
        Password::typed(raw).expect("not too long")
    }

    #[tokio::test]
    async fn a_hash_is_an_argon2id_phc_string_that_checks_its_password_only() {
        let hasher = Argon2Hasher::new(CHEAP, 2).expect("valid cost");
        let hash = hasher.hash(&typed("correct horse battery staple")).await.expect("hashed");
        assert!(hash.as_phc().starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{}", hash.as_phc());
        let right = hasher.check(&typed("correct horse battery staple"), Some(hash.clone())).await.expect("ran");
        assert_eq!(right, PasswordCheck::Matches { outdated: false });
        let wrong = hasher.check(&typed("correct horse battery stapler"), Some(hash)).await.expect("ran");
        assert_eq!(wrong, PasswordCheck::Mismatch);
    }

    #[tokio::test]
    async fn no_stored_hash_or_a_broken_one_is_a_mismatch() {
        let hasher = Argon2Hasher::new(CHEAP, 1).expect("valid cost");
        assert_eq!(hasher.check(&typed("anything at all"), None).await.expect("ran"), PasswordCheck::Mismatch);
        let broken = PasswordHash::from_phc("not a phc string");
        assert_eq!(hasher.check(&typed("anything at all"), Some(broken)).await.expect("ran"), PasswordCheck::Mismatch);
    }

    #[tokio::test]
    async fn a_hash_with_weaker_parameters_checks_and_is_outdated() {
        let old = Argon2Hasher::new(CHEAP, 1).expect("valid cost");
        let stronger =
            Argon2Hasher::new(Argon2Cost { memory_kib: 9_216, iterations: 5, parallelism: 1 }, 1).expect("valid cost");
        let hash = old.hash(&typed("correct horse battery staple")).await.expect("hashed");
        let check = stronger.check(&typed("correct horse battery staple"), Some(hash)).await.expect("ran");
        assert_eq!(check, PasswordCheck::Matches { outdated: true });
    }

    #[test]
    fn costs_below_owasp_are_refused() {
        assert!(Argon2Cost::DEFAULT.meets_owasp());
        assert!(Argon2Cost { memory_kib: 47_104, iterations: 1, parallelism: 1 }.meets_owasp());
        assert!(!Argon2Cost { memory_kib: 19_455, iterations: 2, parallelism: 1 }.meets_owasp());
        assert!(!Argon2Cost { memory_kib: 65_536, iterations: 0, parallelism: 1 }.meets_owasp());
        let refused = Argon2Hasher::new(Argon2Cost { memory_kib: 4_096, iterations: 3, parallelism: 1 }, 1);
        assert!(refused.expect_err("too cheap").to_string().contains("OWASP"));
    }

    #[test]
    fn common_and_breached_passwords_are_caught_and_uncommon_ones_pass() {
        let list = ZxcvbnList;
        let context = ["ada@example.com".to_owned(), "ada".to_owned(), "magiclink".to_owned()];
        for common in
            ["password1234567", "qwertyuiopasdfg", "123456789012345", "iloveyouiloveyou", "magiclinkmagiclink"]
        {
            assert!(list.is_common(&typed(common), &context), "{common} passed");
        }
        for uncommon in ["violet kestrel under a tin roof", "Gq7#vL2!mZp9@xR4wT"] {
            assert!(!list.is_common(&typed(uncommon), &context), "{uncommon} was refused");
        }
    }
}
