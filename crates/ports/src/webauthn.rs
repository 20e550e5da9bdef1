//! The WebAuthn ceremonies, as a port: begin one (the options a browser's
//! `navigator.credentials.create()`/`get()` takes, and the state to keep until it answers) and
//! check the answer against that state. The values are the project's own (JSON text, opaque
//! bytes, [`CredentialId`], [`UserHandle`]), so `ports` and `domain` name no WebAuthn library,
//! and a change of library touches one adapter. The adapter does no I/O: it is pure
//! verification, called from the [`crate::Passkeys`] use cases.

use domain::{CredentialId, UserHandle};

use crate::stores::StoredCredential;

/// The person a passkey is being made for, as the authenticator will show them.
#[derive(Debug, Clone, Copy)]
pub struct PasskeyHolder<'a> {
    /// The random handle the authenticator stores and gives back at sign-in.
    pub handle: &'a UserHandle,
    /// The account name the authenticator lists (the sign-in address).
    pub name: &'a str,
    /// The name the authenticator may show beside it.
    pub display_name: &'a str,
}

/// A ceremony just begun.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BegunCeremony {
    /// The options, as the JSON object `PublicKeyCredential.parseCreationOptionsFromJSON()` (or
    /// `parseRequestOptionsFromJSON()`) takes: binary values in base64url.
    pub options: String,
    /// What finishing it needs (the challenge above all), opaque, kept server-side.
    pub state: Vec<u8>,
}

/// A credential the registration answer proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredCredential {
    /// The id the authenticator made.
    pub id: CredentialId,
    /// What later assertions are checked against.
    pub credential: StoredCredential,
    /// Whether it is backed up or synced.
    pub backed_up: bool,
    /// The counter it started at.
    pub sign_count: u32,
}

/// Which credential, and whose, a sign-in answer claims to be, before anything is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedCredential {
    /// The credential id.
    pub id: CredentialId,
    /// The user handle the authenticator gave back, if it is one this service could have
    /// issued.
    pub user_handle: Option<UserHandle>,
}

/// An assertion that checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    /// The credential, updated (counter, backup state) to store.
    pub credential: StoredCredential,
    /// The counter the assertion carried.
    pub sign_count: u32,
    /// The backup state it carried.
    pub backed_up: bool,
    /// Whether the person was verified (PIN, biometric), not only present.
    pub user_verified: bool,
}

/// Why an answer was refused. The reason is for the log; people see the kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyRefusal {
    /// The answer is not a WebAuthn credential at all (not JSON, missing fields, bad base64).
    #[error("not a WebAuthn response: {0}")]
    Malformed(String),
    /// The answer is well formed but does not check out: another challenge, origin or relying
    /// party, a bad signature, no user verification where it is required.
    #[error("the WebAuthn response does not check out: {0}")]
    Failed(String),
    /// The signature counter is not above the one stored: the key may have been cloned.
    #[error("the authenticator's signature counter went backwards")]
    CounterWentBack,
}

/// The WebAuthn ceremonies.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait WebAuthn: Send + Sync {
    /// Begins adding a passkey for `holder`, excluding credentials they have already (so one
    /// authenticator is not registered twice). Asks for a discoverable credential, so that
    /// signing in needs no address.
    ///
    /// # Errors
    /// Only when the library cannot make a challenge.
    fn begin_registration<'a>(
        &self,
        holder: PasskeyHolder<'a>,
        exclude: &[CredentialId],
    ) -> anyhow::Result<BegunCeremony>;

    /// Checks a registration answer (the JSON of `PublicKeyCredential.toJSON()`) against the
    /// state its ceremony began with.
    ///
    /// # Errors
    /// A [`CeremonyRefusal`] for every answer that does not check out.
    fn finish_registration(&self, response: &str, state: &[u8]) -> Result<RegisteredCredential, CeremonyRefusal>;

    /// Begins a sign-in with whatever passkey the browser offers (no address asked).
    ///
    /// # Errors
    /// Only when the library cannot make a challenge.
    fn begin_sign_in(&self) -> anyhow::Result<BegunCeremony>;

    /// Which credential a sign-in answer names, checking nothing else.
    ///
    /// # Errors
    /// [`CeremonyRefusal::Malformed`] when the answer is not a WebAuthn assertion.
    fn claimed_credential(&self, response: &str) -> Result<ClaimedCredential, CeremonyRefusal>;

    /// Checks a sign-in answer against its ceremony's state and the stored credential, whose
    /// counter was last `sign_count`.
    ///
    /// # Errors
    /// A [`CeremonyRefusal`] for every answer that does not check out.
    fn finish_sign_in(
        &self,
        response: &str,
        state: &[u8],
        credential: &StoredCredential,
        sign_count: u32,
    ) -> Result<VerifiedAssertion, CeremonyRefusal>;
}
