//! The magic-link provider: request a link, redeem it (or its code), and the account changes
//! that go through links (the sign-in address in [`address`], the display name). Sessions are
//! the [`Sessions`] service's, which this provider and the password provider
//! ([`crate::passwords`]) both open sessions through.
//!
//! Written once against the ports, so the same rules hold whichever database and mailer a
//! deployment picks. Each use case has its own error enum: the cases a caller acts on, plus
//! `Unexpected` for infrastructure failures, which `web` turns into a 5xx in one place.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::audit::RequestOrigin;
use domain::audit::{AuditEvent, AuditKind, AuditOutcome};
use domain::code::MAX_CODE_ATTEMPTS;
use domain::rate_limit::client_key;
use domain::{
    CallbackPath, DisplayName, EmailAddress, LinkPolicy, LinkToken, LinkTokenHash, Quota, SecretRing, SignInCode,
    SignInMethod,
};
use url::Url;

use crate::clock::Clock;
use crate::mailer::EmailContent;
use crate::outbox::{DeliveryQueue, NewOutboxMessage};
use crate::random::os_random;
use crate::rate_limit::{Admission, Bucket, RateLimiter};
use crate::sessions::{ActiveSession, SignedIn};
use crate::stores::{CodeRedemption, LinkIssued, LinkState, LinkStore, NewLink, Redemption, UserStore};
use crate::Sessions;

/// Fixed settings of the sign-in flow.
#[derive(Debug, Clone)]
pub struct SignInSettings {
    /// Keys the link-token hashes; what the secrets rotated out signed (links, codes) is still
    /// honoured until it expires.
    pub secrets: SecretRing,
    /// How long links live.
    pub link_policy: LinkPolicy,
    /// The absolute URL of the link callback endpoint (`{base_url}{base_path}/callback/email`).
    pub callback_endpoint: Url,
    /// The absolute URL of the page that confirms a new sign-in address
    /// (`{base_url}{pages.account}/email/confirm`); the emailed link adds `?token=`.
    pub confirm_address_endpoint: Url,
    /// How long used and expired links are kept after expiry, so that opening one still says
    /// "already used" or "expired" rather than "not valid".
    pub link_retention: TimeDelta,
    /// The rate limits; `None` in a field turns that limit off.
    pub limits: SignInLimits,
    /// Who may get a link.
    pub sign_up: SignUpPolicy,
    /// Whether the old address is told when an account's address changes
    /// (`alerts.address_changed`).
    pub notify_address_change: bool,
}

/// Who may get a sign-in link. A refused address gets exactly the answer an allowed one gets,
/// and no email: the policy never tells anyone which addresses have accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SignUpPolicy {
    /// Anyone; a first sign-in creates the user.
    #[default]
    Open,
    /// Only addresses that already have a user (added by an operator, or signed in before).
    ExistingUsers,
    /// Addresses at these domains (A-labels, exact match), and existing users.
    Allowlist(Vec<String>),
}

/// The rate limits on sign-in. Each is "so many per so long" by GCRA; `None` is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignInLimits {
    /// Links to one address: the minimum gap (1 per gap).
    pub address_gap: Option<Quota>,
    /// Links to one address: the cap per hour.
    pub address_hourly: Option<Quota>,
    /// Link requests from one client (IPv4 address, IPv6 /64), per hour.
    pub client_hourly: Option<Quota>,
    /// Links sent to anyone, per hour: the sender's reputation and bill.
    pub global_hourly: Option<Quota>,
    /// Failed redemptions (unknown links, wrong codes) from one client.
    pub failed_redemptions: Option<Quota>,
}

/// Which limit refused a link request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// Links to this address.
    Address,
    /// Requests from this client.
    Client,
    /// Links sent to anyone.
    Everyone,
}

impl LimitScope {
    /// Its name in logs: `address`, `client` or `everyone`.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitScope::Address => "address",
            LimitScope::Client => "client",
            LimitScope::Everyone => "everyone",
        }
    }
}

/// The magic-link provider (request a link, redeem it or its code) and the account changes
/// that go through links (the sign-in address, the display name), over the ports. Sessions
/// are [`Sessions`]'s.
pub struct SignIn {
    links: Arc<dyn LinkStore>,
    users: Arc<dyn UserStore>,
    sessions: Arc<Sessions>,
    delivery: Arc<dyn DeliveryQueue>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    settings: SignInSettings,
}

/// A request for a sign-in link, already parsed at the edge.
#[derive(Debug, Clone)]
pub struct RequestLink {
    /// Where to send the link.
    pub email: EmailAddress,
    /// Where to land after signing in.
    pub callback: CallbackPath,
    /// The client's address, for the per-client limit (`None` when unknown).
    pub client: Option<IpAddr>,
    /// The language of the page it was asked from, in which the email is written.
    pub lang: String,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// A link stored and its email queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkQueued {
    /// Where the link goes.
    pub email: EmailAddress,
    /// The link's token hash, which names it to the browser that asked (the pending-sign-in
    /// cookie) without being able to open it.
    pub link: LinkTokenHash,
    /// When the link expires.
    pub expires: DateTime<Utc>,
    /// Whole minutes until it expires.
    pub expires_in_minutes: i64,
}

/// Why no link was queued.
#[derive(Debug, thiserror::Error)]
pub enum RequestLinkError {
    /// A rate limit is reached; nothing was stored or queued.
    #[error("rate limited ({scope:?}) for {retry_after}")]
    RateLimited {
        /// Which limit.
        scope: LimitScope,
        /// How long until it admits again.
        retry_after: TimeDelta,
    },
    /// Storage or randomness failed; nothing was stored.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An opened link, already parsed at the edge.
#[derive(Debug)]
pub struct RedeemLink {
    /// The token from the link.
    pub token: LinkToken,
    /// The address from the link.
    pub email: EmailAddress,
    /// The browser's `User-Agent`, stored with the session.
    pub user_agent: Option<String>,
    /// The client's address, for the limit on failed redemptions.
    pub client: Option<IpAddr>,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// Why a link signed nobody in. None of these says whether the address has an account.
#[derive(Debug, thiserror::Error)]
pub enum RedeemLinkError {
    /// The link is malformed, unknown, or for another address.
    #[error("link not valid")]
    Invalid,
    /// A newer link was sent to the same address, which retired this one.
    #[error("link replaced by a newer one")]
    Replaced,
    /// The link was valid but its time is up.
    #[error("link expired")]
    Expired {
        /// The address the link was for, to pre-fill a new request.
        email: EmailAddress,
    },
    /// The link was already used.
    #[error("link already used")]
    AlreadyUsed,
    /// Too many failed redemptions from this client; nothing was tried.
    #[error("too many failed sign-ins from this client")]
    RateLimited {
        /// How long until it may try again.
        retry_after: TimeDelta,
    },
    /// Storage or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A code typed on the device that asked for the link, already parsed at the edge.
#[derive(Debug)]
pub struct RedeemCode {
    /// The link the code belongs to, named by the pending-sign-in cookie of this browser.
    pub link: LinkTokenHash,
    /// Which secret issued the link: 0 for the current one, then the previous ones in order.
    pub issued_under: usize,
    /// The code as typed.
    pub code: SignInCode,
    /// The browser's `User-Agent`, stored with the session.
    pub user_agent: Option<String>,
    /// The client's address, for the limit on failed redemptions.
    pub client: Option<IpAddr>,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// Why a code signed nobody in. None of these says whether the address has an account.
#[derive(Debug, thiserror::Error)]
pub enum RedeemCodeError {
    /// The code is wrong; it may be tried again.
    #[error("code wrong")]
    Wrong {
        /// Wrong codes still allowed.
        attempts_left: u32,
    },
    /// Too many wrong codes: this code no longer works.
    #[error("too many wrong codes")]
    Exhausted,
    /// The link (and so its code) expired.
    #[error("code expired")]
    Expired,
    /// The link (and so its code) was already used.
    #[error("code already used")]
    AlreadyUsed,
    /// A newer link was sent to the same address, which retired this one and its code.
    #[error("code replaced by a newer one")]
    Replaced,
    /// The link is unknown (purged).
    #[error("code not valid")]
    Invalid,
    /// Too many failed redemptions from this client; nothing was tried.
    #[error("too many failed sign-ins from this client")]
    RateLimited {
        /// How long until it may try again.
        retry_after: TimeDelta,
    },
    /// Storage or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why the display name was not changed.
#[derive(Debug, thiserror::Error)]
pub enum RenameError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why a link's state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LinkStateError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why housekeeping failed.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl SignIn {
    /// Assembles the core from its ports.
    pub fn new(
        links: Arc<dyn LinkStore>,
        users: Arc<dyn UserStore>,
        sessions: Arc<Sessions>,
        delivery: Arc<dyn DeliveryQueue>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        settings: SignInSettings,
    ) -> Self {
        Self { links, users, sessions, delivery, limiter, clock, settings }
    }

    /// The fixed settings.
    pub fn settings(&self) -> &SignInSettings {
        &self.settings
    }

    /// The current time, as the core sees it.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Issues a link to `request.email`: stores the link and its sealed email in one
    /// transaction and hands the email to the delivery worker (or, when that is backed up,
    /// wakes it to claim the stored row). It never waits for a mail provider.
    ///
    /// The answer is the same whether or not the address has an account, and whether or not
    /// that account is disabled (then nothing is stored or sent).
    ///
    /// # Errors
    /// [`RequestLinkError::Unexpected`] when storage or randomness fails; then nothing is
    /// stored and nothing will be sent.
    pub async fn request_link(&self, request: RequestLink) -> Result<LinkQueued, RequestLinkError> {
        let now = self.clock.now();
        let masked = request.email.masked();
        if let Some((scope, retry_after)) = self.admit_email_to(&request.email, request.client, now).await? {
            self.refused(AuditKind::LinkRequested, "rate_limited", &request.origin, Some(masked)).await?;
            return Err(RequestLinkError::RateLimited { scope, retry_after });
        }
        let expires = self.settings.link_policy.expires_at(now);
        let expires_in_minutes = self.settings.link_policy.max_age_minutes();
        if !self.may_sign_in(&request.email).await? {
            tracing::info!(to = %masked, "no link sent: the sign-up policy refuses this address");
            self.refused(AuditKind::LinkRequested, "sign_up_policy", &request.origin, Some(masked)).await?;
            // The same answer as for a link sent, naming a link that does not exist.
            let link = LinkTokenHash::from_bytes(os_random()?);
            return Ok(LinkQueued { email: request.email, link, expires, expires_in_minutes });
        }
        let token = LinkToken::from_random_bytes(os_random()?);
        let token_hash = token.hash(self.settings.secrets.current());
        let code = SignInCode::from_random_bytes(os_random()?);
        let content = EmailContent::SignIn { link: self.link_url(&token, &request), code: Some(code.display()) };
        let link = NewLink {
            identifier: request.email.clone(),
            token_hash: token_hash.clone(),
            code_hash: code.hash(self.settings.secrets.current(), &token_hash),
            expires,
            created_at: now,
        };
        let email = self.outgoing(&request.email, &request.lang, token_hash.clone(), &content, expires, now)?;
        let audit = AuditEvent::new(AuditKind::LinkRequested, AuditOutcome::Succeeded, now, &request.origin)
            .with_detail(masked.clone());
        match self.links.insert_with_email(&link, &email, &audit).await? {
            LinkIssued::Queued(outbox_id) => {
                self.after_commit(email, outbox_id);
                tracing::info!(to = %masked, "sign-in link queued");
            }
            LinkIssued::AccountDisabled => {
                tracing::info!(to = %masked, "no link sent: the account is disabled");
                self.refused(AuditKind::LinkRequested, "account_disabled", &request.origin, Some(masked)).await?;
                // The same answer again; the hash names a link that was never stored.
            }
        }
        Ok(LinkQueued { email: request.email, link: token_hash, expires, expires_in_minutes })
    }

    /// Whether the sign-up policy lets `email` have a link.
    async fn may_sign_in(&self, email: &EmailAddress) -> anyhow::Result<bool> {
        Ok(match &self.settings.sign_up {
            SignUpPolicy::Open => true,
            SignUpPolicy::ExistingUsers => self.users.find_by_email(email).await?.is_some(),
            SignUpPolicy::Allowlist(domains) => {
                domains.iter().any(|domain| domain == email.domain())
                    || self.users.find_by_email(email).await?.is_some()
            }
        })
    }

    /// Charges the limits on emails with links (to this address, from this client, to anyone)
    /// all at once, or none: `Some((scope, retry_after))` names the one that refused. Sign-in
    /// links and address confirmations share them: both send a link to an address someone typed.
    async fn admit_email_to(
        &self,
        email: &EmailAddress,
        client: Option<IpAddr>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<(LimitScope, TimeDelta)>> {
        let limits = &self.settings.limits;
        let client = client.map(client_key);
        // Tagged and dotted variants of one mailbox count as that mailbox.
        let mailbox = email.canonical_mailbox();
        let candidates = [
            (LimitScope::Address, limits.address_gap, "link-gap", Some(mailbox.as_str())),
            (LimitScope::Address, limits.address_hourly, "link-address", Some(mailbox.as_str())),
            (LimitScope::Client, limits.client_hourly, "link-client", client.as_deref()),
            (LimitScope::Everyone, limits.global_hourly, "link-everyone", Some("")),
        ];
        let (scopes, buckets): (Vec<LimitScope>, Vec<Bucket>) = candidates
            .into_iter()
            .filter_map(|(scope, quota, name, value)| Some((scope, self.bucket(name, value?, quota?))))
            .unzip();
        if buckets.is_empty() {
            return Ok(None);
        }
        match self.limiter.acquire(&buckets, now).await? {
            Admission::Admitted => Ok(None),
            Admission::Refused { bucket, retry_after } => {
                let scope = scopes.get(bucket).copied().unwrap_or(LimitScope::Everyone);
                tracing::warn!(to = %email.masked(), scope = scope.as_str(), retry_after_s = retry_after.num_seconds(), "email with a link rate-limited");
                Ok(Some((scope, retry_after)))
            }
        }
    }

    /// The outbox row for an email: `content` sealed under the current secret, bound to
    /// `seal_id` (the hash of the token the email carries), leased to this instance's worker
    /// when it keeps up.
    fn outgoing(
        &self,
        to: &EmailAddress,
        lang: &str,
        seal_id: LinkTokenHash,
        content: &EmailContent,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<NewOutboxMessage> {
        let sealed_body = domain::sealed::seal(
            self.settings.secrets.current(),
            seal_id.to_hex().as_bytes(),
            os_random()?,
            content.to_sealed_text().as_bytes(),
        );
        Ok(NewOutboxMessage {
            kind: content.kind(),
            lang: lang.to_owned(),
            recipient: to.clone(),
            link_token_hash: seal_id,
            sealed_body,
            expires,
            created_at: now,
            leased_until: self.delivery.lease_for_new(now),
        })
    }

    /// Hands a stored email to the worker, or wakes it to claim the row. Only after the
    /// commit: the stored row is what guarantees the email.
    fn after_commit(&self, email: NewOutboxMessage, outbox_id: domain::OutboxId) {
        match email.leased_until {
            Some(until) => self.delivery.hand_over(email.into_claimed(outbox_id, until)),
            None => self.delivery.wake(),
        }
    }

    /// The failed-redemption counter of `client`, when that limit is on and the client known.
    fn failure_bucket(&self, client: Option<IpAddr>) -> Option<Bucket> {
        let quota = self.settings.limits.failed_redemptions?;
        Some(self.bucket("failed-redemption", &client_key(client?), quota))
    }

    /// How long `client` must wait before trying a link or code again, if it failed too often.
    async fn failure_wait(&self, client: Option<IpAddr>, now: DateTime<Utc>) -> anyhow::Result<Option<TimeDelta>> {
        match self.failure_bucket(client) {
            Some(bucket) => self.limiter.wait(&bucket, now).await,
            None => Ok(None),
        }
    }

    /// Counts a failed redemption against `client`.
    async fn count_failure(&self, client: Option<IpAddr>, now: DateTime<Utc>) -> anyhow::Result<()> {
        if let Some(bucket) = self.failure_bucket(client) {
            self.limiter.acquire(&[bucket], now).await?;
        }
        Ok(())
    }

    /// A counter named by a keyed hash of what it counts, so the store never sees addresses
    /// or IP addresses.
    fn bucket(&self, name: &str, value: &str, quota: Quota) -> Bucket {
        Bucket::keyed(self.settings.secrets.current(), name, value, quota)
    }

    /// The hashes under which a link's token may be stored (one per secret, current first),
    /// which name the link.
    pub fn link_hashes(&self, token: &LinkToken) -> Vec<LinkTokenHash> {
        self.settings.secrets.all().map(|secret| token.hash(secret)).collect()
    }

    /// Redeems a link: marks it used, finds or creates the user, and opens a session, all in
    /// one write transaction.
    ///
    /// # Errors
    /// [`RedeemLinkError::Invalid`], [`RedeemLinkError::Expired`] or
    /// [`RedeemLinkError::AlreadyUsed`] when the link cannot sign anyone in.
    pub async fn redeem_link(&self, request: RedeemLink) -> Result<SignedIn, RedeemLinkError> {
        let now = self.clock.now();
        if let Some(retry_after) = self.failure_wait(request.client, now).await? {
            self.refused(AuditKind::LinkRedeemed, "rate_limited", &request.origin, None).await?;
            return Err(RedeemLinkError::RateLimited { retry_after });
        }
        let (session_token, session) =
            self.sessions.draft(&request.origin, request.user_agent.clone(), SignInMethod::Link)?;
        // A link issued before the secret was rotated is stored under an older secret's hash.
        let mut redemption = Redemption::Unknown;
        for secret in self.settings.secrets.all() {
            redemption = self.links.redeem(&request.token.hash(secret), &request.email, &session, now).await?;
            if redemption != Redemption::Unknown {
                break;
            }
        }
        let (refusal, reason) = match redemption {
            Redemption::Redeemed(record) => {
                tracing::info!(user.id = %record.user.id.as_str(), "signed in with a magic link");
                return Ok(self.sessions.signed_in(session_token, record, &request.origin).await);
            }
            Redemption::AlreadyUsed => (RedeemLinkError::AlreadyUsed, "used"),
            Redemption::Replaced => (RedeemLinkError::Replaced, "replaced"),
            Redemption::Expired => (RedeemLinkError::Expired { email: request.email.clone() }, "expired"),
            // Unknown links are what guessing looks like; used and expired ones are people late.
            Redemption::Unknown => {
                self.count_failure(request.client, now).await?;
                (RedeemLinkError::Invalid, "unknown")
            }
        };
        self.refused(AuditKind::LinkRedeemed, reason, &request.origin, Some(request.email.masked())).await?;
        Err(refusal)
    }

    /// Records a refusal in the audit log.
    async fn refused(
        &self,
        kind: AuditKind,
        reason: &'static str,
        origin: &domain::audit::RequestOrigin,
        detail: Option<String>,
    ) -> anyhow::Result<()> {
        self.sessions.record_refusal(kind, reason, origin, None, detail).await
    }

    /// Redeems a link by the short code from its email, typed in the browser that asked for
    /// it: marks the link used, finds or creates the user, and opens a session. Each wrong code
    /// counts; after [`MAX_CODE_ATTEMPTS`] the code no longer works.
    ///
    /// # Errors
    /// A [`RedeemCodeError`] saying why nobody was signed in.
    pub async fn redeem_code(&self, request: RedeemCode) -> Result<SignedIn, RedeemCodeError> {
        let now = self.clock.now();
        if let Some(retry_after) = self.failure_wait(request.client, now).await? {
            self.refused(AuditKind::CodeRedeemed, "rate_limited", &request.origin, None).await?;
            return Err(RedeemCodeError::RateLimited { retry_after });
        }
        // The code is keyed by the secret that issued its link (the one the pending cookie was
        // signed with), so a wrong code counts once, not once per secret.
        let secret = self.settings.secrets.all().nth(request.issued_under).unwrap_or(self.settings.secrets.current());
        let code_hash = request.code.hash(secret, &request.link);
        let (session_token, session) =
            self.sessions.draft(&request.origin, request.user_agent.clone(), SignInMethod::Code)?;
        let (refusal, reason) =
            match self.links.redeem_code(&request.link, &code_hash, MAX_CODE_ATTEMPTS, &session, now).await? {
                CodeRedemption::Redeemed(record) => {
                    tracing::info!(user.id = %record.user.id.as_str(), "signed in with a code");
                    return Ok(self.sessions.signed_in(session_token, record, &request.origin).await);
                }
                CodeRedemption::Wrong { attempts_left } => {
                    tracing::info!(attempts_left, "a wrong sign-in code");
                    self.count_failure(request.client, now).await?;
                    (RedeemCodeError::Wrong { attempts_left }, "wrong_code")
                }
                CodeRedemption::Exhausted => (RedeemCodeError::Exhausted, "attempts_used_up"),
                CodeRedemption::AlreadyUsed => (RedeemCodeError::AlreadyUsed, "used"),
                CodeRedemption::Replaced => (RedeemCodeError::Replaced, "replaced"),
                CodeRedemption::Expired => (RedeemCodeError::Expired, "expired"),
                CodeRedemption::Unknown => (RedeemCodeError::Invalid, "unknown"),
            };
        self.refused(AuditKind::CodeRedeemed, reason, &request.origin, None).await?;
        Err(refusal)
    }

    /// Sets the signed-in person's display name (`None` removes it).
    ///
    /// # Errors
    /// Only [`RenameError::Unexpected`].
    pub async fn rename(&self, active: &ActiveSession, name: Option<DisplayName>) -> Result<(), RenameError> {
        self.users.rename(&active.user.id, name).await?;
        tracing::info!(user.id = %active.user.id.as_str(), "display name changed");
        Ok(())
    }

    /// What a link is now (unused, used, expired, unknown), changing nothing: for the
    /// development mailbox, which marks links that no longer sign anyone in.
    ///
    /// # Errors
    /// Only [`LinkStateError::Unexpected`].
    pub async fn link_state(&self, token: &LinkToken, email: &EmailAddress) -> Result<LinkState, LinkStateError> {
        let now = self.clock.now();
        for secret in self.settings.secrets.all() {
            let state = self.links.state(&token.hash(secret), email, now).await?;
            if state != LinkState::Unknown {
                return Ok(state);
            }
        }
        Ok(LinkState::Unknown)
    }

    /// Deletes links that expired longer ago than the link retention, sessions that expired,
    /// and spent rate-limit counters; returns how many links and sessions.
    ///
    /// # Errors
    /// Only [`PurgeError::Unexpected`].
    pub async fn purge_expired(&self) -> Result<(u64, u64), PurgeError> {
        let cutoff = self.clock.now() - self.settings.link_retention;
        let links = self.links.purge_expired(cutoff).await?;
        let sessions = self.sessions.purge_expired().await?;
        self.limiter.purge(self.clock.now()).await?;
        Ok((links, sessions))
    }

    fn link_url(&self, token: &LinkToken, request: &RequestLink) -> Url {
        let mut link = self.settings.callback_endpoint.clone();
        link.query_pairs_mut()
            .append_pair("callbackUrl", request.callback.as_str())
            .append_pair("token", &token.encode())
            .append_pair("email", request.email.as_str());
        link
    }
}

pub mod address;
pub mod closing;

#[cfg(test)]
mod tests;
