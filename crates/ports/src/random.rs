//! Random bytes from the operating system's CSPRNG, the only source used for tokens.

/// Fills an array from the OS CSPRNG (`getrandom(2)` on Linux).
///
/// # Errors
/// Fails only if the operating system cannot provide randomness, which no token may do without.
pub fn os_random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("the OS CSPRNG failed: {e}"))?;
    Ok(bytes)
}
