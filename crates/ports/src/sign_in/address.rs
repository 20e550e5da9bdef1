//! Changing a signed-in person's sign-in address: a link to the new address confirms it, and
//! the old address is told once it has changed. Until the link is used nothing changes.
//!
//! The rules, and why:
//! - Asking costs the same limits as asking for a sign-in link (an email with a link to an
//!   address someone typed), and answers the same whether or not the new address is someone
//!   else's: an address that belongs to another account gets no email, so the form cannot be
//!   used to find out who has an account.
//! - The confirmation link is as strong as a sign-in link (256 random bits, only a keyed hash
//!   stored, the same lifetime) and opening it only shows a page; the change is a CSRF-checked
//!   post from that page, so a mail scanner that opens links changes nothing.
//! - Confirming needs the account that asked, signed in in the confirming browser (as Phoenix
//!   does): otherwise an attacker could ask to move their own account to a victim's address,
//!   and a victim pressing the button in an email they did not ask for would hand the attacker
//!   an account that signs in with the victim's address. The email says so plainly.
//! - Confirming marks the change used, changes the address, ends the account's other sessions,
//!   retires unused sign-in links of the old address and queues the notice, in one transaction.

use std::net::IpAddr;

use chrono::TimeDelta;
use domain::audit::{AuditKind, RequestOrigin};
use domain::{EmailAddress, LinkToken, LinkTokenHash, User};
use url::Url;

use super::{LimitScope, SignIn, SignUpPolicy};
use crate::mailer::EmailContent;
use crate::random::os_random;
use crate::sessions::ActiveSession;
use crate::stores::{AddressChangeOutcome, NewAddressChange};

/// How long the notice to the old address may wait for delivery before it is dropped: long
/// enough to outlast a provider's outage, since it is the owner's warning.
const NOTICE_LIFETIME: TimeDelta = TimeDelta::days(7);

/// A request to change the sign-in address, already parsed at the edge.
#[derive(Debug, Clone)]
pub struct ChangeAddress {
    /// The address to sign in with from now on.
    pub new_email: EmailAddress,
    /// The client's address, for the per-client limit.
    pub client: Option<IpAddr>,
    /// The language of the page, in which the confirmation email is written.
    pub lang: String,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// A confirmation queued (or, for an address that is someone else's, pretended to be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationQueued {
    /// Where the confirmation link went.
    pub new_email: EmailAddress,
    /// Whole minutes until the link expires.
    pub expires_in_minutes: i64,
}

/// Why no confirmation was queued.
#[derive(Debug, thiserror::Error)]
pub enum ChangeAddressError {
    /// The new address is the one the account has.
    #[error("that is already the sign-in address")]
    SameAddress,
    /// The sign-up policy is an allowlist of domains, and the new address is not at one of
    /// them. (This depends on the domain alone, so it says nothing about accounts.)
    #[error("addresses at that domain cannot sign in here")]
    NotAllowed,
    /// The sign-in is not recent enough: confirm it is you (a fresh link, or the password)
    /// first.
    #[error("confirm it is you first")]
    ReauthenticationRequired,
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

/// An opened confirmation link, already parsed at the edge.
#[derive(Debug)]
pub struct ConfirmAddress {
    /// The token from the link.
    pub token: LinkToken,
    /// The client's address, for the limit on failed redemptions.
    pub client: Option<IpAddr>,
    /// The language of the page, in which the notice to the old address is written.
    pub lang: String,
    /// The session of the confirming browser, if any: it must be the account that asked, and
    /// it is the one session of that account that outlives the change.
    pub signed_in: Option<ActiveSession>,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// The change a confirmation link would make, for the page that asks to confirm it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressChangePreview {
    /// The address the account will sign in with.
    pub new_email: EmailAddress,
}

/// Why a confirmation link changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ConfirmAddressError {
    /// The link is malformed, unknown, replaced by a newer request, or outdated.
    #[error("confirmation link not valid")]
    Invalid,
    /// The link's time is up.
    #[error("confirmation link expired")]
    Expired,
    /// The link was used before.
    #[error("confirmation link already used")]
    AlreadyUsed,
    /// The new address belongs to another account by now. (Whoever holds this link has shown
    /// they read that address's mail, so saying so tells them nothing new.)
    #[error("the new address belongs to another account")]
    AddressTaken,
    /// The confirming browser is not signed in to the account that asked for the change;
    /// nothing was used up.
    #[error("sign in to the account that asked for the change first")]
    NotTheRequester,
    /// Too many failed redemptions from this client; nothing was tried.
    #[error("too many failed attempts from this client")]
    RateLimited {
        /// How long until it may try again.
        retry_after: TimeDelta,
    },
    /// Storage or randomness failed; nothing changed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl SignIn {
    /// Emails a confirmation link to `request.new_email`, to make it the signed-in person's
    /// sign-in address once opened. Nothing about the account changes yet.
    ///
    /// # Errors
    /// [`ChangeAddressError::SameAddress`], [`ChangeAddressError::NotAllowed`],
    /// [`ChangeAddressError::ReauthenticationRequired`], [`ChangeAddressError::RateLimited`],
    /// or [`ChangeAddressError::Unexpected`] (then nothing was stored).
    pub async fn request_address_change(
        &self,
        active: &ActiveSession,
        request: ChangeAddress,
    ) -> Result<ConfirmationQueued, ChangeAddressError> {
        if request.new_email == active.user.email {
            return Err(ChangeAddressError::SameAddress);
        }
        if !self.sessions.is_recent(active) {
            return Err(ChangeAddressError::ReauthenticationRequired);
        }
        if let SignUpPolicy::Allowlist(domains) = &self.settings.sign_up {
            if !domains.iter().any(|domain| domain == request.new_email.domain()) {
                return Err(ChangeAddressError::NotAllowed);
            }
        }
        let now = self.clock.now();
        if let Some((scope, retry_after)) = self.admit_email_to(&request.new_email, request.client, now).await? {
            return Err(ChangeAddressError::RateLimited { scope, retry_after });
        }
        let expires = self.settings.link_policy.expires_at(now);
        let queued = ConfirmationQueued {
            new_email: request.new_email.clone(),
            expires_in_minutes: self.settings.link_policy.max_age_minutes(),
        };
        if self.users.find_by_email(&request.new_email).await?.is_some() {
            tracing::info!(user.id = %active.user.id.as_str(), to = %request.new_email.masked(), "no confirmation sent: the address belongs to another account");
            return Ok(queued);
        }
        let token = LinkToken::from_random_bytes(os_random()?);
        let token_hash = token.hash(self.settings.secrets.current());
        let content = EmailContent::ConfirmNewAddress { link: self.confirm_address_url(&token) };
        let email = self.outgoing(&request.new_email, &request.lang, token_hash.clone(), &content, expires, now)?;
        let change = NewAddressChange {
            token_hash,
            user_id: active.user.id.clone(),
            new_email: request.new_email,
            expires,
            created_at: now,
        };
        // The new address is masked even here: the person sees their own log unmasked, but
        // support and `audit` readers need not.
        let audit = self
            .sessions
            .account_event(active, AuditKind::AddressChangeRequested, &request.origin)
            .with_detail(change.new_email.masked());
        let outbox_id = self.users.request_address_change(&change, &email, &audit).await?;
        self.after_commit(email, outbox_id);
        tracing::info!(user.id = %active.user.id.as_str(), to = %change.new_email.masked(), "address change requested");
        Ok(queued)
    }

    /// What a confirmation link would change, changing nothing: for the page that shows a
    /// button rather than confirming on a GET a mail scanner could make.
    ///
    /// # Errors
    /// As [`SignIn::confirm_address_change`] would fail, except that nothing is counted.
    pub async fn preview_address_change(
        &self,
        token: &LinkToken,
        signed_in: Option<&ActiveSession>,
    ) -> Result<AddressChangePreview, ConfirmAddressError> {
        let (_, pending) = self.find_address_change(token).await?.ok_or(ConfirmAddressError::Invalid)?;
        if pending.used {
            return Err(ConfirmAddressError::AlreadyUsed);
        }
        if domain::link::is_expired(pending.expires, self.clock.now()) {
            return Err(ConfirmAddressError::Expired);
        }
        if signed_in.is_none_or(|active| active.user.id != pending.user_id) {
            return Err(ConfirmAddressError::NotTheRequester);
        }
        Ok(AddressChangePreview { new_email: pending.new_email })
    }

    /// Confirms an address change: the account signs in with the new address from now on, its
    /// other sessions end (the confirming one stays), and its old address is told. Only the
    /// account that asked, signed in in the confirming browser, can confirm.
    ///
    /// # Errors
    /// A [`ConfirmAddressError`] saying why nothing changed.
    pub async fn confirm_address_change(&self, request: ConfirmAddress) -> Result<User, ConfirmAddressError> {
        let now = self.clock.now();
        if let Some(retry_after) = self.failure_wait(request.client, now).await? {
            return Err(ConfirmAddressError::RateLimited { retry_after });
        }
        let Some((token_hash, pending)) = self.find_address_change(&request.token).await? else {
            self.count_failure(request.client, now).await?;
            return Err(ConfirmAddressError::Invalid);
        };
        // Checked before anything is used up: a person who opens a link they did not ask for
        // (or is signed in to another account) changes nothing and can try again signed in.
        let Some(confirming) = request.signed_in.filter(|active| active.user.id == pending.user_id) else {
            tracing::info!(user.id = %pending.user_id.as_str(), "address change not confirmed: the browser is not signed in to the account that asked");
            return Err(ConfirmAddressError::NotTheRequester);
        };
        let Some(user) = self.users.find(&pending.user_id).await? else {
            return Err(ConfirmAddressError::Invalid);
        };
        // The notice is stored by the same transaction as the change: it is sent exactly when
        // the address changed. It has no link; its seal is bound to a random id instead.
        let content = EmailContent::AddressChanged { new_address: pending.new_email.clone() };
        let seal_id = LinkTokenHash::from_bytes(os_random()?);
        let notice = self.outgoing(&user.email, &request.lang, seal_id, &content, now + NOTICE_LIFETIME, now)?;
        let notice = self.settings.notify_address_change.then_some(notice);
        let audit = self
            .sessions
            .account_event(&confirming, AuditKind::AddressChanged, &request.origin)
            .with_detail(format!("{} -> {}", user.email.masked(), pending.new_email.masked()));
        match self
            .users
            .confirm_address_change(&token_hash, &user.email, &confirming.session_id, notice.as_ref(), &audit, now)
            .await?
        {
            AddressChangeOutcome::Changed { user: changed, notice: notice_id } => {
                if let (Some(notice), Some(notice_id)) = (notice, notice_id) {
                    self.after_commit(notice, notice_id);
                }
                tracing::info!(user.id = %changed.id.as_str(), from = %user.email.masked(), to = %changed.email.masked(), "sign-in address changed");
                Ok(changed)
            }
            AddressChangeOutcome::AlreadyUsed => Err(ConfirmAddressError::AlreadyUsed),
            AddressChangeOutcome::Expired => Err(ConfirmAddressError::Expired),
            AddressChangeOutcome::AddressTaken => Err(ConfirmAddressError::AddressTaken),
            AddressChangeOutcome::Unknown => Err(ConfirmAddressError::Invalid),
        }
    }

    /// The stored change a token names, under the current secret or a previous one.
    async fn find_address_change(
        &self,
        token: &LinkToken,
    ) -> anyhow::Result<Option<(LinkTokenHash, crate::stores::PendingAddressChange)>> {
        for hash in self.link_hashes(token) {
            if let Some(pending) = self.users.find_address_change(&hash).await? {
                return Ok(Some((hash, pending)));
            }
        }
        Ok(None)
    }

    fn confirm_address_url(&self, token: &LinkToken) -> Url {
        let mut link = self.settings.confirm_address_endpoint.clone();
        link.query_pairs_mut().append_pair("token", &token.encode());
        link
    }
}
