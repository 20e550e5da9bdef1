//! The passkey provider: after a first sign-in by link, a person adds a passkey from their
//! account page and signs in with it from then on, with no email sent. It proves who someone
//! is with a WebAuthn assertion and then asks [`Sessions`] for a session, as the link and the
//! password providers do. The link stays the way in for a new device and the recovery path:
//! deleting every passkey locks nobody out.
//!
//! The rules, and why:
//! - Every ceremony's state is stored (by the [`PasskeyStore`]) under the hash of a token that
//!   only the browser which began it holds, for [`PasskeySettings::ceremony_lifetime`], and is
//!   taken (deleted) when the answer comes: an answer from another browser, a second answer,
//!   or a late one finds nothing.
//! - Signing in asks for no address, so nothing here says which addresses have passkeys.
//! - Failed sign-ins (an answer that does not check out, an unknown credential, a counter that
//!   went backwards) count against their own per-client limit, which link sign-in never reads.
//! - Adding and deleting a passkey need a recent sign-in, like the other sensitive changes;
//!   renaming and listing do not.
//! - A signature counter that does not move forward (a cloned key, or a copy racing the real
//!   one) is refused and logged as a warning, as the WebAuthn spec suggests; the person is told
//!   to use their link instead.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::audit::{AuditKind, RequestOrigin};
use domain::rate_limit::client_key;
use domain::{CeremonyToken, Passkey, PasskeyId, PasskeyName, Quota, ServerSecret, SignInMethod, UserHandle};

use crate::clock::Clock;
use crate::random::os_random;
use crate::rate_limit::{Admission, Bucket, RateLimiter};
use crate::sessions::{ActiveSession, OpenSessionError, SignedIn};
use crate::stores::{CeremonyPurpose, NewCeremony, NewPasskey, PasskeyAdded, PasskeyStore, PasskeyUse};
use crate::webauthn::{CeremonyRefusal, PasskeyHolder, WebAuthn};
use crate::Sessions;

/// How passkey ceremonies run.
#[derive(Debug, Clone)]
pub struct PasskeySettings {
    /// How long a begun ceremony can be finished.
    pub ceremony_lifetime: TimeDelta,
    /// Failed passkey sign-ins from one client; `None` turns the limit off.
    pub failed_sign_ins_per_client: Option<Quota>,
    /// Sign-in ceremonies one client may begin (each stores a row until it is finished or
    /// purged: the one write anyone can cause without signing in); `None` turns it off.
    pub sign_in_ceremonies_per_client: Option<Quota>,
    /// Keys the names of the rate-limit counters.
    pub secret: ServerSecret,
}

/// The passkey provider. Built only when `passkey.enabled` is on.
pub struct Passkeys {
    store: Arc<dyn PasskeyStore>,
    webauthn: Arc<dyn WebAuthn>,
    sessions: Arc<Sessions>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    settings: PasskeySettings,
}

/// A ceremony begun: the options for the browser, and the token for its cookie.
#[derive(Debug)]
pub struct Ceremony {
    /// The options JSON (`PublicKeyCredentialCreationOptionsJSON` or
    /// `PublicKeyCredentialRequestOptionsJSON`).
    pub options: String,
    /// The token only this browser will hold.
    pub token: CeremonyToken,
    /// When the ceremony stops being accepted.
    pub expires: DateTime<Utc>,
}

/// Why no ceremony was begun.
#[derive(Debug, thiserror::Error)]
pub enum BeginCeremonyError {
    /// Adding a passkey needs a recent sign-in.
    #[error("confirm it is you first")]
    ReauthenticationRequired,
    /// This client began too many sign-in ceremonies; nothing was stored.
    #[error("too many passkey sign-ins begun")]
    RateLimited {
        /// How long until it may begin another.
        retry_after: TimeDelta,
    },
    /// Storage or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A registration answer to finish adding a passkey.
#[derive(Debug)]
pub struct AddPasskey {
    /// The token from the ceremony's cookie, if the browser sent one.
    pub token: Option<CeremonyToken>,
    /// `PublicKeyCredential.toJSON()` of the new credential.
    pub response: String,
    /// The name to give it (the browser and system by default).
    pub name: PasskeyName,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// Why no passkey was added.
#[derive(Debug, thiserror::Error)]
pub enum AddPasskeyError {
    /// The sign-in is not recent enough.
    #[error("confirm it is you first")]
    ReauthenticationRequired,
    /// No ceremony was begun in this browser for this person, or it expired or was finished.
    #[error("the passkey ceremony expired or was already used")]
    CeremonyExpired,
    /// The answer did not check out.
    #[error(transparent)]
    Refused(CeremonyRefusal),
    /// This authenticator's credential is registered already.
    #[error("this passkey is registered already")]
    AlreadyRegistered,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A sign-in answer.
#[derive(Debug)]
pub struct PasskeySignIn {
    /// The token from the ceremony's cookie, if the browser sent one.
    pub token: Option<CeremonyToken>,
    /// `PublicKeyCredential.toJSON()` of the assertion.
    pub response: String,
    /// The browser's `User-Agent`, stored with the session.
    pub user_agent: Option<String>,
    /// The client's address, for the limit on failures.
    pub client: Option<IpAddr>,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// Why a passkey signed nobody in.
#[derive(Debug, thiserror::Error)]
pub enum PasskeySignInError {
    /// No sign-in ceremony was begun in this browser, or it expired or was finished.
    #[error("the passkey ceremony expired or was already used")]
    CeremonyExpired,
    /// The answer did not check out (counted as a failure unless malformed).
    #[error(transparent)]
    Refused(CeremonyRefusal),
    /// No stored passkey has this credential id (it was deleted, or never registered here).
    #[error("this passkey is not registered")]
    UnknownPasskey,
    /// Too many failed passkey sign-ins from this client; nothing was checked. Links still
    /// work.
    #[error("too many failed passkey sign-ins")]
    RateLimited {
        /// How long until it may try again.
        retry_after: TimeDelta,
    },
    /// Storage or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a passkey was not renamed or deleted.
#[derive(Debug, thiserror::Error)]
pub enum ChangePasskeyError {
    /// Deleting needs a recent sign-in.
    #[error("confirm it is you first")]
    ReauthenticationRequired,
    /// The person has no passkey with that id (another person's id is as unknown).
    #[error("no such passkey")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Passkeys {
    /// The provider over its ports.
    pub fn new(
        store: Arc<dyn PasskeyStore>,
        webauthn: Arc<dyn WebAuthn>,
        sessions: Arc<Sessions>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        settings: PasskeySettings,
    ) -> Self {
        Self { store, webauthn, sessions, limiter, clock, settings }
    }

    /// The signed-in person's passkeys, oldest first.
    ///
    /// # Errors
    /// Only when storage fails.
    pub async fn list(&self, active: &ActiveSession) -> anyhow::Result<Vec<Passkey>> {
        Ok(self.store.list(&active.user.id).await?.into_iter().map(|(passkey, _)| passkey).collect())
    }

    /// Begins adding a passkey to the signed-in person's account.
    ///
    /// # Errors
    /// [`BeginCeremonyError::ReauthenticationRequired`] unless the sign-in is recent.
    pub async fn begin_registration(&self, active: &ActiveSession) -> Result<Ceremony, BeginCeremonyError> {
        if !self.sessions.is_recent(active) {
            return Err(BeginCeremonyError::ReauthenticationRequired);
        }
        let user = &active.user;
        let handle = self.store.user_handle(&user.id, &UserHandle::from_random_bytes(os_random()?)).await?;
        let exclude: Vec<_> =
            self.store.list(&user.id).await?.into_iter().map(|(_, credential_id)| credential_id).collect();
        let display_name = user.name.as_ref().map_or(user.email.as_str(), |name| name.as_str());
        let holder = PasskeyHolder { handle: &handle, name: user.email.as_str(), display_name };
        let begun = self.webauthn.begin_registration(holder, &exclude)?;
        Ok(self.keep(begun, CeremonyPurpose::Registration, Some(user.id.clone())).await?)
    }

    /// Finishes adding a passkey with the browser's answer.
    ///
    /// # Errors
    /// An [`AddPasskeyError`]; on any of them nothing is stored.
    pub async fn add(&self, active: &ActiveSession, request: AddPasskey) -> Result<Passkey, AddPasskeyError> {
        if !self.sessions.is_recent(active) {
            return Err(AddPasskeyError::ReauthenticationRequired);
        }
        let now = self.clock.now();
        let token = request.token.ok_or(AddPasskeyError::CeremonyExpired)?;
        let ceremony = self
            .store
            .take_ceremony(&token.hash(), CeremonyPurpose::Registration, now)
            .await?
            .filter(|ceremony| ceremony.user_id.as_ref() == Some(&active.user.id))
            .ok_or(AddPasskeyError::CeremonyExpired)?;
        let registered = self.webauthn.finish_registration(&request.response, &ceremony.state).map_err(|refusal| {
            tracing::warn!(user.id = %active.user.id.as_str(), reason = %refusal, "passkey registration refused");
            AddPasskeyError::Refused(refusal)
        })?;
        let new = NewPasskey {
            user_id: active.user.id.clone(),
            credential_id: registered.id,
            credential: registered.credential,
            name: request.name,
            backed_up: registered.backed_up,
            sign_count: registered.sign_count,
            created_at: now,
        };
        let audit = self
            .sessions
            .account_event(active, AuditKind::PasskeyAdded, &request.origin)
            .with_detail(new.name.as_str().to_owned());
        match self.store.add(&new, &audit).await? {
            PasskeyAdded::Added(passkey) => {
                tracing::info!(user.id = %active.user.id.as_str(), passkey.id = %passkey.id.as_str(), "passkey added");
                let alert = crate::sessions::AccountAlert::PasskeyAdded(passkey.name.as_str());
                self.sessions.alert(active, alert, &request.origin).await;
                Ok(passkey)
            }
            PasskeyAdded::CredentialTaken => Err(AddPasskeyError::AlreadyRegistered),
        }
    }

    /// Renames one of the signed-in person's passkeys.
    ///
    /// # Errors
    /// [`ChangePasskeyError::NotFound`] when they have no passkey with that id.
    pub async fn rename(
        &self,
        active: &ActiveSession,
        id: &PasskeyId,
        name: &PasskeyName,
    ) -> Result<Passkey, ChangePasskeyError> {
        self.store.rename(&active.user.id, id, name).await?.ok_or(ChangePasskeyError::NotFound)
    }

    /// Deletes one of the signed-in person's passkeys. Their sessions, other passkeys and
    /// links are untouched.
    ///
    /// # Errors
    /// [`ChangePasskeyError::ReauthenticationRequired`] unless the sign-in is recent;
    /// [`ChangePasskeyError::NotFound`] when they have no passkey with that id.
    pub async fn delete(
        &self,
        active: &ActiveSession,
        id: &PasskeyId,
        origin: &RequestOrigin,
    ) -> Result<(), ChangePasskeyError> {
        if !self.sessions.is_recent(active) {
            return Err(ChangePasskeyError::ReauthenticationRequired);
        }
        let audit = self.sessions.account_event(active, AuditKind::PasskeyRemoved, origin).with_detail(id.as_str());
        if !self.store.delete(&active.user.id, id, &audit).await? {
            return Err(ChangePasskeyError::NotFound);
        }
        tracing::info!(user.id = %active.user.id.as_str(), passkey.id = %id.as_str(), "passkey deleted");
        Ok(())
    }

    /// Begins a sign-in with a passkey (no address asked) for `client`.
    ///
    /// # Errors
    /// [`BeginCeremonyError::RateLimited`] when the client began too many; otherwise only when
    /// storage or randomness fails.
    pub async fn begin_sign_in(&self, client: Option<IpAddr>) -> Result<Ceremony, BeginCeremonyError> {
        let quota = self.settings.sign_in_ceremonies_per_client;
        if let Some(bucket) = self.client_bucket("passkey-ceremony-client", quota, client) {
            if let Admission::Refused { retry_after, .. } = self.limiter.acquire(&[bucket], self.clock.now()).await? {
                return Err(BeginCeremonyError::RateLimited { retry_after });
            }
        }
        let begun = self.webauthn.begin_sign_in()?;
        Ok(self.keep(begun, CeremonyPurpose::SignIn, None).await?)
    }

    /// Signs in with the browser's assertion, opening a session.
    ///
    /// # Errors
    /// A [`PasskeySignInError`]; failures that are not the browser's fault are counted.
    pub async fn sign_in(&self, request: PasskeySignIn) -> Result<SignedIn, PasskeySignInError> {
        let now = self.clock.now();
        let bucket = self.client_bucket("passkey-client", self.settings.failed_sign_ins_per_client, request.client);
        if let Some(bucket) = &bucket {
            if let Some(retry_after) = self.limiter.wait(bucket, now).await? {
                self.sessions
                    .record_refusal(AuditKind::PasskeySignIn, "rate_limited", &request.origin, None, None)
                    .await?;
                return Err(PasskeySignInError::RateLimited { retry_after });
            }
        }
        let outcome = self.check_assertion(&request, now).await;
        if let Err(error) = &outcome {
            let reason = match error {
                PasskeySignInError::CeremonyExpired => Some("ceremony_expired"),
                PasskeySignInError::Refused(CeremonyRefusal::CounterWentBack) => Some("counter_regressed"),
                PasskeySignInError::Refused(_) => Some("assertion_refused"),
                PasskeySignInError::UnknownPasskey => Some("unknown_passkey"),
                PasskeySignInError::RateLimited { .. } => Some("rate_limited"),
                PasskeySignInError::Unexpected(_) => None,
            };
            if let Some(reason) = reason {
                self.sessions.record_refusal(AuditKind::PasskeySignIn, reason, &request.origin, None, None).await?;
            }
        }
        if let (Err(error), Some(bucket)) = (&outcome, &bucket) {
            if counts_as_failure(error) {
                if let Admission::Refused { .. } = self.limiter.acquire(std::slice::from_ref(bucket), now).await? {
                    tracing::warn!("passkey sign-in limit reached for a client");
                }
            }
        }
        let record = outcome?;
        let signed_in =
            self.sessions.open(record, &request.origin, request.user_agent, SignInMethod::Passkey).await.map_err(
                |error| match error {
                    OpenSessionError::Unexpected(inner) => PasskeySignInError::Unexpected(inner),
                },
            )?;
        tracing::info!(user.id = %signed_in.user.id.as_str(), "signed in with a passkey");
        Ok(signed_in)
    }

    /// Deletes ceremonies begun and never finished, returning how many.
    ///
    /// # Errors
    /// Only when storage fails.
    pub async fn purge_expired(&self) -> anyhow::Result<u64> {
        self.store.purge_expired_ceremonies(self.clock.now()).await
    }

    /// The user an assertion proves, having recorded the passkey's use.
    async fn check_assertion(
        &self,
        request: &PasskeySignIn,
        now: DateTime<Utc>,
    ) -> Result<domain::User, PasskeySignInError> {
        let token = request.token.as_ref().ok_or(PasskeySignInError::CeremonyExpired)?;
        let ceremony = self
            .store
            .take_ceremony(&token.hash(), CeremonyPurpose::SignIn, now)
            .await?
            .ok_or(PasskeySignInError::CeremonyExpired)?;
        let claimed = self.webauthn.claimed_credential(&request.response).map_err(PasskeySignInError::Refused)?;
        let Some(found) = self.store.find_for_sign_in(&claimed.id).await? else {
            tracing::warn!(credential = ?claimed.id, "passkey sign-in with an unknown credential");
            return Err(PasskeySignInError::UnknownPasskey);
        };
        // A discoverable credential must name its user; the handle must be the owner's, or a
        // credential id copied from one account would be checked against another's claim.
        if claimed.user_handle != Some(found.user_handle) {
            tracing::warn!(user.id = %found.user.id.as_str(), "passkey sign-in whose user handle is not the owner's");
            return Err(PasskeySignInError::Refused(CeremonyRefusal::Failed(
                "the user handle is not the owner's".into(),
            )));
        }
        let verified = self
            .webauthn
            .finish_sign_in(&request.response, &ceremony.state, &found.credential, found.sign_count)
            .map_err(|refusal| {
                tracing::warn!(user.id = %found.user.id.as_str(), passkey.id = %found.passkey.id.as_str(), reason = %refusal, "passkey sign-in refused");
                PasskeySignInError::Refused(refusal)
            })?;
        let used = PasskeyUse {
            credential: verified.credential,
            sign_count: verified.sign_count,
            backed_up: verified.backed_up,
            at: now,
        };
        if !self.store.record_use(&found.passkey.id, &used).await? {
            tracing::warn!(user.id = %found.user.id.as_str(), passkey.id = %found.passkey.id.as_str(), "passkey counter did not move forward past a use recorded meanwhile; refused");
            return Err(PasskeySignInError::Refused(CeremonyRefusal::CounterWentBack));
        }
        Ok(found.user)
    }

    /// Stores a begun ceremony under a new token's hash.
    async fn keep(
        &self,
        begun: crate::webauthn::BegunCeremony,
        purpose: CeremonyPurpose,
        user_id: Option<domain::UserId>,
    ) -> anyhow::Result<Ceremony> {
        let token = CeremonyToken::from_random_bytes(os_random()?);
        let expires = self.clock.now() + self.settings.ceremony_lifetime;
        self.store
            .save_ceremony(&NewCeremony { hash: token.hash(), purpose, user_id, state: begun.state, expires })
            .await?;
        Ok(Ceremony { options: begun.options, token, expires })
    }

    /// The counter `name` of `client`, when its limit is on and the client known: failed
    /// sign-ins (`passkey-client`) and ceremonies begun (`passkey-ceremony-client`), each its
    /// own, never a link counter.
    fn client_bucket(&self, name: &str, quota: Option<Quota>, client: Option<IpAddr>) -> Option<Bucket> {
        Some(Bucket::keyed(&self.settings.secret, name, &client_key(client?), quota?))
    }
}

/// Whether a failed sign-in counts against the client: answers that were checked and failed,
/// not a ceremony that timed out or a malformed request.
fn counts_as_failure(error: &PasskeySignInError) -> bool {
    matches!(
        error,
        PasskeySignInError::UnknownPasskey
            | PasskeySignInError::Refused(CeremonyRefusal::Failed(_) | CeremonyRefusal::CounterWentBack)
    )
}

#[cfg(test)]
mod tests;
