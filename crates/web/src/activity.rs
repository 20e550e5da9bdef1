//! The signed-in person's "Recent security activity": their sign-ins, failed attempts on their
//! account and changes to it, newest first and paged, read from the audit log. The account page
//! shows it ([`activity_rows`]); `GET {base}/activity` (`crate::activity_api`) is its JSON twin.
//!
//! The person sees what the log keeps and no more: the client address as `audit.client_address`
//! cut it down (the approximate place), the browser summary, never a token or a whole
//! `User-Agent`.

use domain::audit::{AuditKind, AuditOutcome};
use ports::{ActiveSession, RecordedEvent};
use serde::Serialize;

use crate::AppState;

/// How many events a page shows unless asked for another number.
pub const ACTIVITY_PAGE: u32 = 20;

/// The message id that names `kind` on the page, as the person would say it.
fn kind_sentence(kind: AuditKind) -> &'static str {
    match kind {
        AuditKind::LinkRequested => "activity-link-requested",
        AuditKind::LinkRedeemed => "activity-link-redeemed",
        AuditKind::CodeRedeemed => "activity-code-redeemed",
        AuditKind::PasswordSignIn => "activity-password-sign-in",
        AuditKind::PasskeySignIn => "activity-passkey-sign-in",
        AuditKind::SignedOut => "activity-signed-out",
        AuditKind::SessionRevoked => "activity-session-revoked",
        AuditKind::AddressChangeRequested => "activity-address-change-requested",
        AuditKind::AddressChanged => "activity-address-changed",
        AuditKind::PasswordSet => "activity-password-set",
        AuditKind::PasskeyAdded => "activity-passkey-added",
        AuditKind::PasskeyRemoved => "activity-passkey-removed",
        AuditKind::UserCreated => "activity-user-created",
        AuditKind::UserDisabled => "activity-user-disabled",
        AuditKind::UserEnabled => "activity-user-enabled",
        AuditKind::UserDeleted => "activity-user-deleted",
        AuditKind::OperatorCommand => "activity-operator-command",
    }
}

/// One event as the account page shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ActivityRow {
    /// The message id of what happened.
    what: &'static str,
    /// Whether it was refused (a failed attempt).
    refused: bool,
    /// The browser and system, when known.
    device: Option<String>,
    /// The client address as kept (the approximate place).
    place: Option<String>,
    /// When, to the minute.
    when: String,
    /// Whether it happened in the session reading the page.
    this_session: bool,
}

/// One page of the person's activity for the account page, and the id to ask the next page
/// with when there may be one.
pub(crate) async fn activity_rows(
    state: &AppState,
    active: &ActiveSession,
    before: Option<String>,
) -> Result<(Vec<ActivityRow>, Option<String>), crate::errors::WebError> {
    let events = state.sessions.activity(active, before, ACTIVITY_PAGE).await?;
    let next = next_page(&events, ACTIVITY_PAGE);
    let rows = events
        .into_iter()
        .map(|recorded| {
            let event = recorded.event;
            ActivityRow {
                what: kind_sentence(event.kind),
                refused: matches!(event.outcome, AuditOutcome::Refused(_)),
                device: event.origin.user_agent,
                place: event.origin.client_address,
                when: event.at.format("%Y-%m-%d %H:%M UTC").to_string(),
                this_session: event.session_id.as_ref() == Some(&active.session_id),
            }
        })
        .collect();
    Ok((rows, next))
}

/// The id of the last event when the page is full: there may be older ones.
pub(crate) fn next_page(events: &[RecordedEvent], limit: u32) -> Option<String> {
    (events.len() as u64 == u64::from(limit)).then(|| events.last().map(|last| last.id.clone())).flatten()
}
