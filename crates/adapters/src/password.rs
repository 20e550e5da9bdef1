//! The password ports: [`Argon2Hasher`] (argon2id, PHC strings, off the async workers behind
//! a concurrency cap) and [`ZxcvbnList`] (the common-password check, from zxcvbn's shipped
//! frequency lists of breached passwords, words and names).

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use argon2::password_hash::{Output, ParamsString, PasswordHash as Phc, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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
    memory: Arc<WorkingMemory>,
    /// A hash of a random password with the configured cost, checked when there is no hash to
    /// check against, so that "no such account" costs what "wrong password" costs.
    dummy: Arc<str>,
}

impl std::fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Argon2Hasher").field("params", &self.params).finish_non_exhaustive()
    }
}

/// argon2id's working memory (`memory_kib` per hash), one buffer per permit, kept and reused.
///
/// Why not let each hash allocate its own: the allocator keeps what a hash frees in the arena
/// of the thread that freed it, and the blocking pool's threads each have one, so a burst of
/// guesses left the process at 680 MiB (measured with the end-to-end benchmark) where the cap
/// promises `max_concurrent × memory_kib`. With this pool that product is all there is.
struct WorkingMemory {
    /// Buffers not in use; never more than the permits, since a buffer is taken only under one.
    free: Mutex<Vec<Vec<Block>>>,
    /// Blocks per buffer: the configured cost's.
    blocks: usize,
}

impl WorkingMemory {
    fn take(&self) -> Vec<Block> {
        let reused = self.free.lock().map(|mut free| free.pop()).unwrap_or_default();
        reused.unwrap_or_else(|| vec![Block::default(); self.blocks])
    }

    fn give_back(&self, buffer: Vec<Block>) {
        if let Ok(mut free) = self.free.lock() {
            free.push(buffer);
        }
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
        let memory = WorkingMemory { free: Mutex::new(Vec::new()), blocks: params.block_count() };
        // A buffer of its own, dropped here, not the pool's: an instance that never sees a
        // password keeps no working memory.
        let mut scratch = vec![Block::default(); memory.blocks];
        let dummy = hash_with(&params, &domain::hex::encode(&random), &mut scratch)?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            memory: Arc::new(memory),
            dummy: dummy.into(),
        })
    }

    /// Runs `work` on the blocking pool with a working-memory buffer, once a permit is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await.context("the password hasher was closed")?;
        let memory = Arc::clone(&self.memory);
        tokio::task::spawn_blocking(move || {
            let mut buffer = memory.take();
            let result = work(&mut buffer);
            memory.give_back(buffer);
            result
        })
        .await
        .context("a password hash did not finish")
    }
}

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// A PHC string of argon2id with `params` over `password` and a fresh salt, computed in `memory`.
fn hash_with(params: &Params, password: &str, memory: &mut [Block]) -> anyhow::Result<String> {
    let mut salt = [0_u8; 16];
    getrandom::fill(&mut salt).map_err(|error| anyhow::anyhow!("no randomness from the OS: {error}"))?;
    let mut output = [0_u8; Params::DEFAULT_OUTPUT_LEN];
    argon2id(params)
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut output, memory)
        .map_err(|error| anyhow::anyhow!("cannot hash a password: {error}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|error| anyhow::anyhow!("cannot encode a salt: {error}"))?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|error| anyhow::anyhow!("argon2 parameters: {error}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|error| anyhow::anyhow!("argon2 output: {error}"))?),
    };
    Ok(phc.to_string())
}

/// The most memory a stored hash may ask a check for, in KiB (1 GiB, fifty times OWASP's
/// settings): a stored string names its own cost, and a corrupted one must not make a check
/// allocate without bound.
const MAX_STORED_MEMORY_KIB: u32 = 1 << 20;

/// Checks `password` against the PHC string `stored` (whatever argon2 variant and parameters it
/// names), computing in `memory`, which grows for a hash made with more memory than it has.
fn check_with(params: &Params, password: &str, stored: &str, memory: &mut Vec<Block>) -> PasswordCheck {
    let Some(stored) = StoredHash::parse(stored) else {
        tracing::error!("a stored password hash is not an argon2 PHC string; treated as a wrong password");
        return PasswordCheck::Mismatch;
    };
    if stored.params.m_cost() > MAX_STORED_MEMORY_KIB {
        tracing::error!("a stored password hash asks for more than 1 GiB; treated as a wrong password");
        return PasswordCheck::Mismatch;
    }
    if memory.len() < stored.params.block_count() {
        memory.resize(stored.params.block_count(), Block::default());
    }
    let argon2 = Argon2::new(stored.algorithm, stored.version, stored.params.clone());
    let mut salt = [0_u8; 64];
    let mut computed = [0_u8; Output::MAX_LENGTH];
    let computed = &mut computed[..stored.output.len()];
    let matches = stored.salt.decode_b64(&mut salt).is_ok_and(|salt| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt, computed, &mut memory[..]).is_ok()
            // `Output`'s equality is constant-time.
            && Output::new(computed).is_ok_and(|computed| computed == stored.output)
    });
    if !matches {
        return PasswordCheck::Mismatch;
    }
    let outdated = stored.algorithm != Algorithm::Argon2id
        || stored.version != Version::V0x13
        || stored.params.m_cost() < params.m_cost()
        || stored.params.t_cost() < params.t_cost()
        || stored.params.p_cost() < params.p_cost();
    PasswordCheck::Matches { outdated }
}

/// What a stored PHC string names: the argon2 variant, version and cost, the salt and the
/// output to compare with.
struct StoredHash {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    salt: SaltString,
    output: Output,
}

impl StoredHash {
    fn parse(stored: &str) -> Option<Self> {
        let parsed = Phc::new(stored).ok()?;
        Some(Self {
            algorithm: Algorithm::try_from(parsed.algorithm).ok()?,
            version: parsed.version.map_or(Ok(Version::default()), Version::try_from).ok()?,
            params: Params::try_from(&parsed).ok()?,
            salt: SaltString::from_b64(parsed.salt?.as_str()).ok()?,
            output: parsed.hash?,
        })
    }
}

#[async_trait::async_trait]
impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: &Password) -> anyhow::Result<PasswordHash> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        Ok(PasswordHash::from_phc(self.run(move |memory| hash_with(&params, &password, memory)).await??))
    }

    async fn check(&self, password: &Password, stored: Option<PasswordHash>) -> anyhow::Result<PasswordCheck> {
        let params = self.params.clone();
        let password = password.expose().to_owned();
        let dummy = Arc::clone(&self.dummy);
        self.run(move |memory| match stored {
            Some(stored) => check_with(&params, &password, stored.as_phc(), memory),
            None => {
                // The same verification as a real one, its answer thrown away.
                let _ = check_with(&params, &password, &dummy, memory);
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

    /// `password` hashed by the argon2 crate's own PHC hasher (not ours), at the cheap cost.
    fn hashed_by_the_argon2_crate(algorithm: Algorithm, password: &str) -> PasswordHash {
        use argon2::password_hash::PasswordHasher as _;
        let argon2 = Argon2::new(algorithm, Version::V0x13, CHEAP.params().expect("valid"));
        let salt = SaltString::encode_b64(b"sixteen byte slt").expect("salt");
        PasswordHash::from_phc(argon2.hash_password(password.as_bytes(), &salt).expect("hashed").to_string())
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        use argon2::password_hash::PasswordVerifier as _;
        let hasher = Argon2Hasher::new(CHEAP, 1).expect("valid cost");
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, CHEAP.params().expect("valid"));

        let ours = hasher.hash(&typed("correct horse battery staple")).await.expect("hashed");
        let parsed = Phc::new(ours.as_phc()).expect("a PHC string");
        assert!(argon2.verify_password(b"correct horse battery staple", &parsed).is_ok());
        assert!(argon2.verify_password(b"correct horse battery stapler", &parsed).is_err());

        let theirs = hashed_by_the_argon2_crate(Algorithm::Argon2id, "correct horse battery staple");
        let check = hasher.check(&typed("correct horse battery staple"), Some(theirs)).await;
        assert_eq!(check.expect("ran"), PasswordCheck::Matches { outdated: false });
    }

    #[tokio::test]
    async fn another_argon2_variant_checks_and_is_outdated() {
        let hasher = Argon2Hasher::new(CHEAP, 1).expect("valid cost");
        let stored = hashed_by_the_argon2_crate(Algorithm::Argon2i, "correct horse battery staple");
        let check = hasher.check(&typed("correct horse battery staple"), Some(stored)).await;
        assert_eq!(check.expect("ran"), PasswordCheck::Matches { outdated: true });
    }

    #[tokio::test]
    async fn a_stored_hash_asking_for_more_than_a_gibibyte_is_refused_unchecked() {
        let hasher = Argon2Hasher::new(CHEAP, 1).expect("valid cost");
        let huge = "$argon2id$v=19$m=4194304,t=1,p=1$c2l4dGVlbiBieXRlIHNsdA$\
                    7yYU8wbqyTFh5cbhh+gDbD0XXD5FeNrPk40WyHsjzLA";
        let check = hasher.check(&typed("anything at all"), Some(PasswordHash::from_phc(huge))).await;
        assert_eq!(check.expect("ran"), PasswordCheck::Mismatch);
        let kept = hasher.memory.free.lock().expect("not poisoned");
        assert!(kept.iter().all(|buffer| buffer.len() == CHEAP.params().expect("valid").block_count()));
    }

    /// However many checks arrive at once, the working memory is one buffer per permit, reused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn working_memory_is_one_buffer_per_permit() {
        let hasher = Argon2Hasher::new(CHEAP, 2).expect("valid cost");
        let stored = hasher.hash(&typed("correct horse battery staple")).await.expect("hashed");
        let checks: Vec<_> = (0..8)
            .map(|i| {
                let hasher = hasher.clone();
                let stored = stored.clone();
                tokio::spawn(async move { hasher.check(&typed(&format!("guess number {i}")), Some(stored)).await })
            })
            .collect();
        for check in checks {
            assert_eq!(check.await.expect("joined").expect("ran"), PasswordCheck::Mismatch);
        }
        let kept = hasher.memory.free.lock().expect("not poisoned").len();
        assert!((1..=2).contains(&kept), "{kept} buffers kept for 2 permits");
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
