//! "A dependency could not be asked in time": the one failure the web layer answers with
//! 503 and `Retry-After` rather than 500.
//!
//! Adapters know why a call failed (no database connection within the acquire timeout, Redis
//! not answering within its timeout); the core and the web layer must not name their driver
//! types. So an adapter puts an [`Unavailable`] into the cause chain of the `anyhow::Error`
//! it returns, and whoever maps failures to answers asks [`Unavailable::in_chain`]. The
//! failure is still a failure: nothing here turns an outage into "not found" or "signed out".

/// Which dependency could not be asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// The database: no connection within the acquire timeout, or the server unreachable.
    #[error("the database is unavailable")]
    Database,
    /// The shared rate-limit store (Redis) did not answer in time.
    #[error("the rate-limit store is unavailable")]
    RateLimitStore,
}

impl Unavailable {
    /// The dependency named anywhere in `error`'s cause chain, if any.
    pub fn in_chain(error: &anyhow::Error) -> Option<Self> {
        // anyhow finds a context value through every layer of context above it; a plain
        // `chain()` walk would see only anyhow's private wrappers. A cause that *is* an
        // `Unavailable` (a source, not a context) is found by the walk.
        error
            .downcast_ref::<Unavailable>()
            .or_else(|| error.chain().find_map(|cause| cause.downcast_ref::<Unavailable>()))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::Unavailable;
    use anyhow::Context as _;

    #[test]
    fn an_outage_is_found_under_any_context_and_other_failures_are_not_outages() {
        let outage = Err::<(), _>(anyhow::Error::new(std::io::Error::other("refused")))
            .context(Unavailable::Database)
            .context("cannot read the session")
            .expect_err("failed");
        assert_eq!(Unavailable::in_chain(&outage), Some(Unavailable::Database));
        assert_eq!(Unavailable::in_chain(&anyhow::anyhow!("disk full")), None);
    }
}
