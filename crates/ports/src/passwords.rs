//! The password provider, the optional second way in (`password.enabled`): sign in with email
//! and password, set or change a password, and confirm it is you with your password before a
//! sensitive change. It opens sessions through [`Sessions`], as the link provider
//! ([`crate::sign_in`]) does. The magic link stays the default and the fallback ("forgot your
//! password" is a link sign-in).
//!
//! The rules, and why:
//! - A wrong password and an unknown address (or an account without a password) get the same
//!   error, and cost the same: the hasher verifies a dummy hash when there is nothing to check,
//!   and both failures are counted the same way.
//! - Failures are limited per address and per client with their own counters, which the link
//!   flow never reads: someone guessing a person's password can lock out password sign-in for
//!   that address for a while, never their magic links.
//! - Setting a password needs a recent sign-in (see [`Sessions::is_recent`]), and signs out the
//!   person's other sessions unless they ask not to: whoever knew the old password, or held a
//!   stolen session, is out.
//! - A hash made with weaker parameters than configured is replaced after the next successful
//!   sign-in, only if it was not changed meanwhile.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::audit::{AuditKind, RequestOrigin};
use domain::rate_limit::client_key;
use domain::{
    EmailAddress, Password, PasswordHash, PasswordRefusal, PasswordRules, Quota, ServerSecret, SessionToken,
    SignInMethod, User,
};

use crate::clock::Clock;
use crate::password::{CommonPasswords, PasswordCheck, PasswordHasher};
use crate::rate_limit::{Admission, Bucket, RateLimiter};
use crate::sessions::{ActiveSession, OpenSessionError, SignedIn};
use crate::stores::PasswordStore;
use crate::Sessions;

/// What the password provider needs besides sessions, limiter and clock.
pub struct PasswordSupport {
    /// Where the hashes are.
    pub store: Arc<dyn PasswordStore>,
    /// argon2id, off the async workers.
    pub hasher: Arc<dyn PasswordHasher>,
    /// The list of common and breached passwords.
    pub common: Arc<dyn CommonPasswords>,
    /// What a new password must meet.
    pub rules: PasswordRules,
    /// The limits on failed password sign-ins.
    pub limits: PasswordLimits,
    /// The product's name, which a password should not be built from either.
    pub site_name: String,
    /// Keys the names of the rate-limit counters.
    pub secret: ServerSecret,
}

/// The password provider. Built only when `password.enabled` is on; `web` answers
/// "passwords are not enabled" when it has none.
pub struct Passwords {
    support: PasswordSupport,
    sessions: Arc<Sessions>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
}

/// The limits on failed password sign-ins; `None` turns one off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordLimits {
    /// Failed password sign-ins for one address, whoever tries.
    pub per_address: Option<Quota>,
    /// Failed password sign-ins from one client, whatever address.
    pub per_client: Option<Quota>,
}

/// A sign-in with email and password, already parsed at the edge.
#[derive(Debug)]
pub struct PasswordSignIn {
    /// The address typed.
    pub email: EmailAddress,
    /// The password typed, normalised.
    pub password: Password,
    /// The browser's `User-Agent`, stored with the session.
    pub user_agent: Option<String>,
    /// The client's address, for the per-client limit.
    pub client: Option<IpAddr>,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// Why a password signed nobody in. `Rejected` never says which of address or password was
/// wrong.
#[derive(Debug, thiserror::Error)]
pub enum PasswordSignInError {
    /// The address has no account, the account no password, or the password is wrong.
    #[error("wrong email address or password")]
    Rejected,
    /// Too many failed password sign-ins for this address or from this client; nothing was
    /// checked. Magic links still work.
    #[error("too many failed password sign-ins")]
    RateLimited {
        /// How long until it may try again.
        retry_after: TimeDelta,
    },
    /// Storage, hashing or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A new password for the signed-in person, already parsed at the edge.
#[derive(Debug)]
pub struct SetPassword {
    /// The new password, normalised.
    pub password: Password,
    /// Whether to end the person's other sessions (the default on every form).
    pub sign_out_other_sessions: bool,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// A password set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSet {
    /// How many other sessions were ended.
    pub other_sessions_ended: u64,
}

/// Why no password was set.
#[derive(Debug, thiserror::Error)]
pub enum SetPasswordError {
    /// The sign-in is not recent enough: confirm it is you (a fresh link, or the current
    /// password) first.
    #[error("confirm it is you first")]
    ReauthenticationRequired,
    /// The password breaks a rule.
    #[error(transparent)]
    Refused(#[from] PasswordRefusal),
    /// Storage or hashing failed; the old password (if any) still holds.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Passwords {
    /// The provider over its ports.
    pub fn new(
        support: PasswordSupport,
        sessions: Arc<Sessions>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { support, sessions, limiter, clock }
    }

    /// The rules a new password must meet.
    pub fn rules(&self) -> PasswordRules {
        self.support.rules
    }

    /// Whether the signed-in person has a password.
    ///
    /// # Errors
    /// Only when storage fails.
    pub async fn has_password(&self, active: &ActiveSession) -> anyhow::Result<bool> {
        Ok(self.support.store.password_of(&active.user.id).await?.is_some())
    }

    /// Signs in with an address and password, opening a new session.
    ///
    /// # Errors
    /// A [`PasswordSignInError`]; `Rejected` for every wrong combination alike.
    pub async fn sign_in_with_password(&self, request: PasswordSignIn) -> Result<SignedIn, PasswordSignInError> {
        let now = self.clock.now();
        let user = match self.check_password(&request.email, &request.password, request.client, now).await {
            Ok(user) => user,
            Err(error) => {
                let reason = match &error {
                    PasswordSignInError::Rejected => "rejected",
                    PasswordSignInError::RateLimited { .. } => "rate_limited",
                    PasswordSignInError::Unexpected(_) => return Err(error),
                };
                self.sessions
                    .record_refusal(
                        AuditKind::PasswordSignIn,
                        reason,
                        &request.origin,
                        None,
                        Some(request.email.masked()),
                    )
                    .await?;
                return Err(error);
            }
        };
        let signed_in =
            self.sessions.open(user, &request.origin, request.user_agent, SignInMethod::Password).await.map_err(
                |error| match error {
                    OpenSessionError::Unexpected(inner) => PasswordSignInError::Unexpected(inner),
                },
            )?;
        tracing::info!(user.id = %signed_in.user.id.as_str(), "signed in with a password");
        Ok(signed_in)
    }

    /// Confirms that the signed-in person is who they say, with their password, before a
    /// sensitive change: opens a fresh session (recent, so the change is allowed) and ends the
    /// one behind `current`, whose cookie the caller replaces.
    ///
    /// # Errors
    /// As [`Passwords::sign_in_with_password`] for the session's own address.
    pub async fn confirm_with_password(
        &self,
        active: &ActiveSession,
        current: &SessionToken,
        password: Password,
        user_agent: Option<String>,
        client: Option<IpAddr>,
        origin: &RequestOrigin,
    ) -> Result<SignedIn, PasswordSignInError> {
        let request =
            PasswordSignIn { email: active.user.email.clone(), password, user_agent, client, origin: origin.clone() };
        let signed_in = self.sign_in_with_password(request).await?;
        self.sessions.end(current, origin).await.map_err(|error| match error {
            crate::sessions::SignOutError::Unexpected(inner) => PasswordSignInError::Unexpected(inner),
        })?;
        Ok(signed_in)
    }

    /// Sets (or changes) the signed-in person's password.
    ///
    /// # Errors
    /// A [`SetPasswordError`]; on any of them the old password still holds.
    pub async fn set_password(
        &self,
        active: &ActiveSession,
        request: SetPassword,
    ) -> Result<PasswordSet, SetPasswordError> {
        let support = &self.support;
        if !self.sessions.is_recent(active) {
            return Err(SetPasswordError::ReauthenticationRequired);
        }
        let email = &active.user.email;
        support.rules.check_new(&request.password, email)?;
        let context = [email.as_str().to_owned(), email.local_part().to_owned(), support.site_name.clone()];
        if support.common.is_common(&request.password, &context) {
            return Err(PasswordRefusal::Common.into());
        }
        let hash = support.hasher.hash(&request.password).await?;
        let audit = self.sessions.account_event(active, AuditKind::PasswordSet, &request.origin);
        support.store.set_password(&active.user.id, &hash, &audit, self.clock.now()).await?;
        self.sessions.alert(active, crate::sessions::AccountAlert::PasswordChanged, &request.origin).await;
        let other_sessions_ended = if request.sign_out_other_sessions {
            self.sessions.end_others_of(&active.user.id, &active.session_id, "password set", &request.origin).await?
        } else {
            0
        };
        tracing::info!(user.id = %active.user.id.as_str(), other_sessions_ended, "password set");
        Ok(PasswordSet { other_sessions_ended })
    }

    /// The user whose password `password` is, charging a failure to the limits otherwise.
    async fn check_password(
        &self,
        email: &EmailAddress,
        password: &Password,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> Result<User, PasswordSignInError> {
        let support = &self.support;
        let buckets = self.password_buckets(email, client);
        for bucket in &buckets {
            if let Some(retry_after) = self.limiter.wait(bucket, now).await? {
                tracing::warn!(to = %email.masked(), retry_after_s = retry_after.num_seconds(), "password sign-in rate-limited");
                return Err(PasswordSignInError::RateLimited { retry_after });
            }
        }
        let (user, stored) = match support.store.find_with_password(email).await? {
            Some((user, stored)) => (Some(user), stored),
            None => (None, None),
        };
        // With no user or no password the hasher checks a dummy hash: the same work, the same
        // answer, so the timing says nothing about which addresses have accounts.
        let check = support.hasher.check(password, stored.clone()).await?;
        match (check, user, stored) {
            (PasswordCheck::Matches { outdated }, Some(user), Some(stored)) => {
                if outdated {
                    self.rehash(&user, password, &stored, now).await;
                }
                Ok(user)
            }
            _ => {
                if !buckets.is_empty() {
                    // Charged after the check, so only failures count; a refusal here only
                    // means the next attempt waits.
                    if let Admission::Refused { .. } = self.limiter.acquire(&buckets, now).await? {
                        tracing::warn!(to = %email.masked(), "password sign-in limit reached");
                    }
                }
                Err(PasswordSignInError::Rejected)
            }
        }
    }

    /// Replaces a hash made with weaker parameters. Best effort: the sign-in succeeds either
    /// way, and the next one tries again.
    async fn rehash(&self, user: &User, password: &Password, old: &PasswordHash, now: DateTime<Utc>) {
        let support = &self.support;
        let replaced = match support.hasher.hash(password).await {
            Ok(new) => support.store.replace_password_hash(&user.id, old, &new, now).await,
            Err(error) => Err(error),
        };
        match replaced {
            Ok(true) => tracing::info!(user.id = %user.id.as_str(), "password re-hashed with the current parameters"),
            Ok(false) => {}
            Err(error) => tracing::warn!(user.id = %user.id.as_str(), error = %error, "cannot re-hash a password"),
        }
    }

    /// The counters of failed password sign-ins for `email` and from `client`: separate from
    /// every link counter, so they never hold up a magic link.
    fn password_buckets(&self, email: &EmailAddress, client: Option<IpAddr>) -> Vec<Bucket> {
        let support = &self.support;
        let client = client.map(client_key);
        [
            ("password-address", support.limits.per_address, Some(email.as_str())),
            ("password-client", support.limits.per_client, client.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, quota, value)| Some(Bucket::keyed(&support.secret, name, value?, quota?)))
        .collect()
    }
}
