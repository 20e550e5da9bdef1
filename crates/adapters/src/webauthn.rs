//! The WebAuthn ceremonies ([`ports::WebAuthn`]) with `webauthn-rs-core`, the engine of
//! `webauthn-rs`. Its high-level `Webauthn` type fixes user verification to "required" and
//! discoverable credentials to "discouraged"; magiclink needs discoverable credentials (signing
//! in asks for no address) and user verification "preferred" by default (`passkey.
//! user_verification`), so this adapter drives the core with those two choices and takes every
//! other default of the high-level passkey API: no attestation, the library's secure
//! algorithms, backup-eligible upgrades allowed, counters checked.
//!
//! Everything crossing the port is JSON text or bytes: the options the browser parses, the
//! state kept in the database (the core's own serde form), the stored credential.

use std::time::Duration;

use anyhow::Context as _;
use domain::{CredentialId, UserHandle};
use ports::{
    BegunCeremony, CeremonyRefusal, ClaimedCredential, PasskeyHolder, RegisteredCredential, StoredCredential,
    VerifiedAssertion, WebAuthn,
};
use url::Url;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, AuthenticationState, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, UserVerificationPolicy,
};
use webauthn_rs_core::WebauthnCore;

/// How long the browser gives the person to touch their authenticator.
const AUTHENTICATOR_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether signing in must verify the person (PIN, biometric) or only prefers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerification {
    /// Ask for it; accept a touch alone from an authenticator that cannot verify.
    Preferred,
    /// Refuse any ceremony without it.
    Required,
}

/// The WebAuthn relying party: one host name (`rp_id`) and the one origin pages are served
/// from.
pub struct WebAuthnCeremonies {
    core: WebauthnCore,
    policy: UserVerificationPolicy,
}

impl WebAuthnCeremonies {
    /// The relying party `rp_id` (the base URL's host or a parent domain of it) for pages at
    /// `origin`.
    ///
    /// # Errors
    /// When `rp_id` is not `origin`'s host or a parent domain of it.
    pub fn new(rp_name: &str, rp_id: &str, origin: &Url, verification: UserVerification) -> anyhow::Result<Self> {
        let host = origin.host_str().context("the base URL has no host")?;
        anyhow::ensure!(
            host == rp_id || host.ends_with(&format!(".{rp_id}")),
            "passkey.rp_id {rp_id:?} is neither the base URL's host {host:?} nor a parent domain of it"
        );
        let mut allowed = origin.clone();
        allowed.set_path("");
        allowed.set_query(None);
        allowed.set_fragment(None);
        let core =
            WebauthnCore::new_unsafe_experts_only(rp_name, rp_id, vec![allowed], AUTHENTICATOR_TIMEOUT, None, None);
        let policy = match verification {
            UserVerification::Preferred => UserVerificationPolicy::Preferred,
            UserVerification::Required => UserVerificationPolicy::Required,
        };
        Ok(Self { core, policy })
    }
}

/// The refusal a library error means.
fn refusal(error: WebauthnError) -> CeremonyRefusal {
    match error {
        WebauthnError::CredentialPossibleCompromise => CeremonyRefusal::CounterWentBack,
        other => CeremonyRefusal::Failed(other.to_string()),
    }
}

fn malformed(error: serde_json::Error) -> CeremonyRefusal {
    CeremonyRefusal::Malformed(error.to_string())
}

/// State the adapter itself serialised, read back; failing means the database holds something
/// this version did not write, which no browser caused.
fn stored<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, CeremonyRefusal> {
    serde_json::from_slice(bytes).map_err(|error| CeremonyRefusal::Failed(format!("unreadable stored {what}: {error}")))
}

impl WebAuthn for WebAuthnCeremonies {
    fn begin_registration<'a>(
        &self,
        holder: PasskeyHolder<'a>,
        exclude: &[CredentialId],
    ) -> anyhow::Result<BegunCeremony> {
        let exclude = exclude.iter().map(|id| id.as_bytes().to_vec()).collect::<Vec<_>>();
        let builder = self
            .core
            .new_challenge_register_builder(holder.handle.as_bytes(), holder.name, holder.display_name)
            .context("cannot begin a passkey registration")?
            .attestation(AttestationConveyancePreference::None)
            .user_verification_policy(self.policy)
            .require_resident_key(true)
            .exclude_credentials((!exclude.is_empty()).then_some(exclude));
        let (options, state) =
            self.core.generate_challenge_register(builder).context("cannot begin a passkey registration")?;
        Ok(BegunCeremony {
            options: serde_json::to_string(&options.public_key)?,
            state: serde_json::to_vec::<RegistrationState>(&state)?,
        })
    }

    fn finish_registration(&self, response: &str, state: &[u8]) -> Result<RegisteredCredential, CeremonyRefusal> {
        let response: RegisterPublicKeyCredential = serde_json::from_str(response).map_err(malformed)?;
        let state: RegistrationState = stored(state, "registration state")?;
        let credential = self.core.register_credential(&response, &state, None).map_err(refusal)?;
        let id = CredentialId::new(credential.cred_id.clone())
            .map_err(|_| CeremonyRefusal::Failed("the credential id is empty or too long".into()))?;
        Ok(RegisteredCredential {
            id,
            backed_up: credential.backup_state,
            sign_count: credential.counter,
            credential: StoredCredential(serde_json::to_vec(&credential).map_err(malformed)?),
        })
    }

    fn begin_sign_in(&self) -> anyhow::Result<BegunCeremony> {
        // No credentials listed: the browser offers every passkey it holds for this site, and
        // the answer names its user.
        let builder = self
            .core
            .new_challenge_authenticate_builder(Vec::new(), Some(self.policy))
            .context("cannot begin a passkey sign-in")?
            .allow_backup_eligible_upgrade(true);
        let (options, state) =
            self.core.generate_challenge_authenticate(builder).context("cannot begin a passkey sign-in")?;
        Ok(BegunCeremony {
            options: serde_json::to_string(&options.public_key)?,
            state: serde_json::to_vec::<AuthenticationState>(&state)?,
        })
    }

    fn claimed_credential(&self, response: &str) -> Result<ClaimedCredential, CeremonyRefusal> {
        let response: PublicKeyCredential = serde_json::from_str(response).map_err(malformed)?;
        let id = CredentialId::new(response.raw_id.clone())
            .map_err(|_| CeremonyRefusal::Malformed("the credential id is empty or too long".into()))?;
        Ok(ClaimedCredential { id, user_handle: response.get_user_unique_id().and_then(UserHandle::from_slice) })
    }

    fn finish_sign_in(
        &self,
        response: &str,
        state: &[u8],
        credential: &StoredCredential,
        sign_count: u32,
    ) -> Result<VerifiedAssertion, CeremonyRefusal> {
        let response: PublicKeyCredential = serde_json::from_str(response).map_err(malformed)?;
        let state: AuthenticationState = stored(state, "sign-in state")?;
        let mut credential: Credential = stored(&credential.0, "credential")?;
        // The counter column is what record_use guards; the serialised copy may lag behind it.
        credential.counter = sign_count;
        let result = self.core.authenticate_single_credential(&response, &state, &credential).map_err(refusal)?;
        credential.counter = result.counter();
        credential.backup_state = result.backup_state();
        credential.backup_eligible = result.backup_eligible();
        Ok(VerifiedAssertion {
            credential: StoredCredential(serde_json::to_vec(&credential).map_err(malformed)?),
            sign_count: result.counter(),
            backed_up: result.backup_state(),
            user_verified: result.user_verified(),
        })
    }
}
