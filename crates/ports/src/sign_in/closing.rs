//! A person deleting their own account: behind a recent sign-in and their address typed again
//! (so a borrowed, unlocked browser or one careless click cannot do it), it removes them and
//! everything tied to them, exactly as an operator's `users delete` does, queues a goodbye
//! email to the address in the same transaction, and ends every session, this one included.
//! Their audit events stay, without the address, until they age out.

use chrono::TimeDelta;
use domain::audit::{AuditKind, RequestOrigin};
use domain::LinkTokenHash;

use super::SignIn;
use crate::mailer::{EmailContent, SecurityAlert};
use crate::random::os_random;
use crate::sessions::ActiveSession;

/// How long the goodbye email may wait for delivery before it is dropped.
const FAREWELL_LIFETIME: TimeDelta = TimeDelta::days(7);

/// A request to delete the signed-in person's account, already parsed at the edge.
#[derive(Debug, Clone)]
pub struct DeleteAccount {
    /// What the person typed to confirm: their sign-in address.
    pub confirmation: String,
    /// The language of the page, in which the goodbye email is written.
    pub lang: String,
    /// Where the request came from, for the audit log.
    pub origin: RequestOrigin,
}

/// Why the account was not deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteAccountError {
    /// The sign-in is not recent enough: confirm it is you first.
    #[error("confirm it is you first")]
    ReauthenticationRequired,
    /// What was typed is not the account's address.
    #[error("the typed address is not the account's")]
    ConfirmationMismatch,
    /// Storage or randomness failed; nothing was deleted.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl SignIn {
    /// Deletes the signed-in person's account and everything tied to it, with a goodbye email.
    ///
    /// # Errors
    /// [`DeleteAccountError::ReauthenticationRequired`] unless the sign-in is recent;
    /// [`DeleteAccountError::ConfirmationMismatch`] when the typed address is not theirs
    /// (compared as addresses are: case and surrounding spaces do not matter).
    pub async fn delete_account(
        &self,
        active: &ActiveSession,
        request: DeleteAccount,
    ) -> Result<(), DeleteAccountError> {
        if !self.sessions.is_recent(active) {
            return Err(DeleteAccountError::ReauthenticationRequired);
        }
        let typed = domain::EmailAddress::parse(request.confirmation.trim());
        if typed.as_ref() != Ok(&active.user.email) {
            return Err(DeleteAccountError::ConfirmationMismatch);
        }
        let now = self.clock.now();
        let site = self.settings.callback_endpoint.join("/").map_err(anyhow::Error::from)?;
        let content = EmailContent::SecurityAlert { alert: SecurityAlert::AccountDeleted, account_url: site };
        let seal_id = LinkTokenHash::from_bytes(os_random()?);
        let mut farewell =
            self.outgoing(&active.user.email, &request.lang, seal_id, &content, now + FAREWELL_LIFETIME, now)?;
        // Stored due, not leased: the worker is woken once the deletion committed.
        farewell.leased_until = None;
        let audit = self
            .sessions
            .account_event(active, AuditKind::UserDeleted, &request.origin)
            .with_detail("by the person, from their account page");
        if self.users.remove(&active.user.email, Some(&farewell), &audit).await?.is_some() {
            self.delivery.wake();
            tracing::info!(user.id = %active.user.id.as_str(), "account deleted by its owner");
        }
        Ok(())
    }
}
