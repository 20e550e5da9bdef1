//! Sessions, the service every way of signing in shares: a provider (the magic link, the
//! password) proves who someone is, then asks this service for a session; from then on reading,
//! extending, listing and ending it is the same whichever provider opened it. An OAuth provider
//! would be one more caller of [`Sessions::open`] (or of [`Sessions::draft`], when it stores the
//! session in its own transaction, as a link redemption does).
//!
//! A session stores only the SHA-256 of its cookie token, and when it began: a sign-in counts
//! as recent ("sudo mode") for [`SessionSettings::recent_sign_in`], which sensitive changes
//! check with [`Sessions::is_recent`].
//!
//! Every sign-in and every session ended is audited here, the event travelling with the change
//! into the store (see [`crate::audit`]); the providers' refusals are recorded through
//! [`Sessions::record_refusal`], so that the audit log is reached through one service.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::audit::{AuditEvent, AuditKind, AuditOutcome, RequestOrigin};
use domain::{SessionId, SessionPolicy, SessionSummary, SessionToken, SignInMethod, User, UserId};

use crate::alerts::Alerts;
use crate::audit::{AuditLog, AuditQuery, RecordedEvent};
use crate::clock::Clock;
use crate::random::os_random;
use crate::stores::{NewSession, SessionDraft, SessionStore, SignedInRecord};

/// How sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// How long sessions live and slide.
    pub policy: SessionPolicy,
    /// How recent a sign-in must be for a sensitive change (a password, the sign-in address):
    /// "sudo mode". Older sessions confirm it is them first, with a fresh link or their password.
    pub recent_sign_in: TimeDelta,
}

/// The session service.
pub struct Sessions {
    store: Arc<dyn SessionStore>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    settings: SessionSettings,
    /// Security alerts, when any is on.
    alerts: Option<Arc<Alerts>>,
}

/// A person who just signed in.
#[derive(Debug)]
pub struct SignedIn {
    /// The new session's token, for the cookie only.
    pub session_token: SessionToken,
    /// When the session expires.
    pub expires: DateTime<Utc>,
    /// Who signed in.
    pub user: User,
}

impl SignedIn {
    /// The person a redemption signed in, holding the token of the session it stored.
    pub(crate) fn new(session_token: SessionToken, record: SignedInRecord) -> Self {
        Self { session_token, expires: record.session.expires, user: record.user }
    }
}

/// A change to an account the person is alerted of.
#[derive(Debug, Clone, Copy)]
pub enum AccountAlert<'a> {
    /// The password was set or changed.
    PasswordChanged,
    /// A passkey with this name was added.
    PasskeyAdded(&'a str),
}

/// A live session and its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// Which session it is (never its token), to tell it apart in the person's list.
    pub session_id: SessionId,
    /// Who is signed in.
    pub user: User,
    /// When the session expires (after any extension just made).
    pub expires: DateTime<Utc>,
    /// When the person signed in, opening this session: sensitive changes need it to be recent.
    pub signed_in_at: DateTime<Utc>,
    /// Whether this read extended the session, so the cookie should be re-issued.
    pub extended: bool,
    /// How the person signed in.
    pub method: SignInMethod,
}

/// Why a session could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadSessionError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why signing out failed.
#[derive(Debug, thiserror::Error)]
pub enum SignOutError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a person's sessions could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListSessionsError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a person's security activity could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadActivityError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// The most events one page of a person's activity holds.
pub const MAX_ACTIVITY_PAGE: u32 = 100;

/// Why a session was not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// The signed-in person has no session with that id (it ended, or it is someone else's).
    #[error("no such session")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why the other sessions were not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeOtherSessionsError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why no session was opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenSessionError {
    /// Storage or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl Sessions {
    /// The service over its store.
    pub fn new(
        store: Arc<dyn SessionStore>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        settings: SessionSettings,
    ) -> Self {
        Self { store, audit, clock, settings, alerts: None }
    }

    /// Sends security alerts through `alerts` after sign-ins and account changes.
    #[must_use]
    pub fn with_alerts(mut self, alerts: Arc<Alerts>) -> Self {
        self.alerts = Some(alerts);
        self
    }

    /// The person `record` signed in, holding `session_token`, after the sign-in committed:
    /// alerts them of a browser new to their account. An alert that cannot be queued is
    /// logged; the sign-in stands.
    pub async fn signed_in(
        &self,
        session_token: SessionToken,
        record: SignedInRecord,
        origin: &RequestOrigin,
    ) -> SignedIn {
        if let Some(alerts) = &self.alerts {
            if let Err(error) = alerts.signed_in(&record.user, &record.session.id, origin).await {
                tracing::warn!(user.id = %record.user.id.as_str(), error = %format!("{error:#}"), "the new-sign-in alert was not queued");
            }
        }
        SignedIn::new(session_token, record)
    }

    /// After a change to `active`'s account that the person is told of (`alert` picks which),
    /// once it committed. A failure is logged; the change stands.
    pub async fn alert(&self, active: &ActiveSession, alert: AccountAlert<'_>, origin: &RequestOrigin) {
        let Some(alerts) = &self.alerts else { return };
        let queued = match alert {
            AccountAlert::PasswordChanged => alerts.password_changed(&active.user, origin).await,
            AccountAlert::PasskeyAdded(name) => alerts.passkey_added(&active.user, name, origin).await,
        };
        if let Err(error) = queued {
            tracing::warn!(user.id = %active.user.id.as_str(), error = %format!("{error:#}"), "a security alert was not queued");
        }
    }

    /// The audit event of a sign-in by `method`, succeeded, now.
    fn sign_in_event(&self, origin: &RequestOrigin, method: SignInMethod) -> AuditEvent {
        let kind = match method {
            SignInMethod::Link => AuditKind::LinkRedeemed,
            SignInMethod::Code => AuditKind::CodeRedeemed,
            SignInMethod::Password => AuditKind::PasswordSignIn,
            SignInMethod::Passkey => AuditKind::PasskeySignIn,
        };
        AuditEvent::new(kind, AuditOutcome::Succeeded, self.clock.now(), origin).by(method)
    }

    /// The event for a change the signed-in person made to their account (`kind` succeeded
    /// now, from `origin`, in `active`'s session), to store with the change.
    pub fn account_event(&self, active: &ActiveSession, kind: AuditKind, origin: &RequestOrigin) -> AuditEvent {
        AuditEvent::new(kind, AuditOutcome::Succeeded, self.clock.now(), origin)
            .of_user(&active.user.id)
            .in_session(&active.session_id)
            .by(active.method)
    }

    /// Records that a provider refused `kind` for `reason` (a refusal changes nothing, so it
    /// is written on its own); `user_id` when the refusal is about a known account.
    ///
    /// # Errors
    /// Only when storage fails.
    pub async fn record_refusal(
        &self,
        kind: AuditKind,
        reason: &'static str,
        origin: &RequestOrigin,
        user_id: Option<&UserId>,
        detail: Option<String>,
    ) -> anyhow::Result<()> {
        let mut event = AuditEvent::new(kind, AuditOutcome::refused(reason), self.clock.now(), origin);
        event.user_id = user_id.cloned();
        event.detail = detail;
        self.audit.record(&event).await
    }

    /// How sessions live.
    pub fn settings(&self) -> SessionSettings {
        self.settings
    }

    /// The current time, as the service sees it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A new session's token and the row to store for it, for a provider that stores the
    /// session in its own transaction (a link redemption: the link is used exactly when its
    /// session exists).
    ///
    /// # Errors
    /// Only when the OS gives no randomness.
    pub fn draft(
        &self,
        origin: &RequestOrigin,
        user_agent: Option<String>,
        method: SignInMethod,
    ) -> anyhow::Result<(SessionToken, SessionDraft)> {
        let token = SessionToken::from_random_bytes(os_random()?);
        let expires = self.settings.policy.expires_at(self.clock.now());
        let audit = self.sign_in_event(origin, method);
        let draft = SessionDraft { token_hash: token.hash(), expires, user_agent, method, audit };
        Ok((token, draft))
    }

    /// Opens a session for `user`, whom a provider has just proven.
    ///
    /// # Errors
    /// [`OpenSessionError::Unexpected`] when storage or randomness fails.
    pub async fn open(
        &self,
        user: User,
        origin: &RequestOrigin,
        user_agent: Option<String>,
        method: SignInMethod,
    ) -> Result<SignedIn, OpenSessionError> {
        let now = self.clock.now();
        let (session_token, draft) = self.draft(origin, user_agent, method)?;
        let session = self
            .store
            .create(&NewSession {
                token_hash: draft.token_hash,
                user_id: user.id.clone(),
                expires: draft.expires,
                user_agent: draft.user_agent,
                created_at: now,
                method,
                audit: draft.audit.of_user(&user.id),
            })
            .await?;
        Ok(self.signed_in(session_token, SignedInRecord { user, session }, origin).await)
    }

    /// Whether the person signed in recently enough for a sensitive change: within
    /// [`SessionSettings::recent_sign_in`] of now.
    pub fn is_recent(&self, active: &ActiveSession) -> bool {
        self.clock.now() - active.signed_in_at <= self.settings.recent_sign_in
    }

    /// The live session behind a cookie token, extending it when due.
    ///
    /// # Errors
    /// Only [`ReadSessionError::Unexpected`]: an unknown or expired token is `Ok(None)`.
    pub async fn read(&self, token: &SessionToken) -> Result<Option<ActiveSession>, ReadSessionError> {
        let now = self.clock.now();
        let Some((session, user)) = self.store.find(&token.hash()).await? else {
            return Ok(None);
        };
        let policy = self.settings.policy;
        if !policy.is_live(session.created_at, session.expires, now) {
            return Ok(None);
        }
        match policy.extension(session.created_at, session.expires, now) {
            Some(expires) => {
                self.store.extend(&session.id, expires, now).await?;
                Ok(Some(ActiveSession {
                    session_id: session.id,
                    user,
                    expires,
                    signed_in_at: session.created_at,
                    extended: true,
                    method: session.method,
                }))
            }
            None => Ok(Some(ActiveSession {
                session_id: session.id,
                user,
                expires: session.expires,
                signed_in_at: session.created_at,
                extended: false,
                method: session.method,
            })),
        }
    }

    /// Ends the session behind a cookie token. Ending an unknown session succeeds.
    ///
    /// # Errors
    /// Only [`SignOutError::Unexpected`].
    pub async fn end(&self, token: &SessionToken, origin: &RequestOrigin) -> Result<(), SignOutError> {
        let event = AuditEvent::new(AuditKind::SignedOut, AuditOutcome::Succeeded, self.clock.now(), origin);
        self.store.delete(&token.hash(), &event).await?;
        Ok(())
    }

    /// The signed-in person's live sessions, most recently used first.
    ///
    /// # Errors
    /// Only [`ListSessionsError::Unexpected`].
    pub async fn list(&self, active: &ActiveSession) -> Result<Vec<SessionSummary>, ListSessionsError> {
        Ok(self.store.list_for_user(&active.user.id, self.clock.now()).await?)
    }

    /// One page of the signed-in person's security activity (their sign-ins, failed attempts
    /// on their account, and changes to it), newest first: at most `limit` events (capped at
    /// [`MAX_ACTIVITY_PAGE`]), older than the event `before` when given (the next page).
    ///
    /// # Errors
    /// Only [`ReadActivityError::Unexpected`].
    pub async fn activity(
        &self,
        active: &ActiveSession,
        before: Option<String>,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, ReadActivityError> {
        let query = AuditQuery {
            user_id: Some(active.user.id.clone()),
            kind: None,
            since: None,
            before_id: before,
            limit: limit.clamp(1, MAX_ACTIVITY_PAGE),
        };
        Ok(self.audit.list(&query).await?)
    }

    /// Ends one of the signed-in person's sessions, this one included (which signs this
    /// browser out). Only their own: an id of someone else's session is [`RevokeSessionError::NotFound`],
    /// exactly as an unknown one, so ids of others' sessions cannot be probed.
    ///
    /// # Errors
    /// [`RevokeSessionError::NotFound`] when the person has no session with that id.
    pub async fn revoke(
        &self,
        active: &ActiveSession,
        session_id: &SessionId,
        origin: &RequestOrigin,
    ) -> Result<(), RevokeSessionError> {
        let event = AuditEvent::new(AuditKind::SessionRevoked, AuditOutcome::Succeeded, self.clock.now(), origin)
            .of_user(&active.user.id)
            .in_session(session_id);
        if !self.store.delete_for_user(&active.user.id, session_id, &event).await? {
            return Err(RevokeSessionError::NotFound);
        }
        tracing::info!(user.id = %active.user.id.as_str(), session.id = %session_id.as_str(), "session revoked");
        Ok(())
    }

    /// Ends every session of the signed-in person except this one ("sign out everywhere
    /// else"), returning how many ended.
    ///
    /// # Errors
    /// Only [`RevokeOtherSessionsError::Unexpected`].
    pub async fn revoke_others(
        &self,
        active: &ActiveSession,
        origin: &RequestOrigin,
    ) -> Result<u64, RevokeOtherSessionsError> {
        let event = AuditEvent::new(AuditKind::SessionRevoked, AuditOutcome::Succeeded, self.clock.now(), origin)
            .of_user(&active.user.id)
            .with_detail("every other session");
        let revoked = self.store.delete_others(&active.user.id, &active.session_id, &event).await?;
        tracing::info!(user.id = %active.user.id.as_str(), revoked, "other sessions revoked");
        Ok(revoked)
    }

    /// Ends every session of `user_id` except `keep`, returning how many ended: after a
    /// password change, say (`why`, in the audit event).
    ///
    /// # Errors
    /// Only when storage fails.
    pub async fn end_others_of(
        &self,
        user_id: &UserId,
        keep: &SessionId,
        why: &'static str,
        origin: &RequestOrigin,
    ) -> anyhow::Result<u64> {
        let event = AuditEvent::new(AuditKind::SessionRevoked, AuditOutcome::Succeeded, self.clock.now(), origin)
            .of_user(user_id)
            .with_detail(why);
        self.store.delete_others(user_id, keep, &event).await
    }

    /// Deletes sessions that have expired, returning how many.
    ///
    /// # Errors
    /// Only when storage fails.
    pub async fn purge_expired(&self) -> anyhow::Result<u64> {
        self.store.purge_expired(self.clock.now()).await
    }
}
