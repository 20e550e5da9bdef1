//! The signed-in person's "Recent security activity": their sign-ins, failed attempts on their
//! account and changes to it, newest first and paged, read from the audit log. The account page
//! shows it ([`activity_rows`]); `GET {base}/activity` ([`ActivityApi`]) is its JSON twin.
//!
//! The person sees what the log keeps and no more: the client address as `audit.client_address`
//! cut it down (the approximate place), the browser summary, never a token or a whole
//! `User-Agent`.

use std::sync::Arc;

use chrono::SecondsFormat;
use domain::audit::{AuditKind, AuditOutcome};
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use ports::{ActiveSession, RecordedEvent};
use serde::Serialize;

use crate::api::{Problem, ProblemStatuses, INTERNAL, SIGNED_OUT, UNAVAILABLE};
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
fn next_page(events: &[RecordedEvent], limit: u32) -> Option<String> {
    (events.len() as u64 == u64::from(limit)).then(|| events.last().map(|last| last.id.clone())).flatten()
}

/// Reading a page of activity: the query may be malformed.
pub struct ActivityProblems;
impl ProblemStatuses for ActivityProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (400, "`limit` is not a whole number from 0 to 4294967295 (`bad-request`)."),
        SIGNED_OUT,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// The security-activity JSON API; it shares the application state with the rest.
pub struct ActivityApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// One event of the person's security activity.
#[derive(Debug, Object)]
pub struct ActivityItem {
    /// The event's id (ordered by time), to page from.
    pub id: String,
    /// When (RFC 3339).
    pub at: String,
    /// What happened: `link.requested`, `link.redeemed`, `code.redeemed`, `password.sign_in`,
    /// `passkey.sign_in`, `session.signed_out`, `session.revoked`, `address.change_requested`,
    /// `address.changed`, `password.set`, `passkey.added`, `passkey.removed`, `user.created`,
    /// `user.disabled`, `user.enabled`, `user.deleted` or `operator.command`.
    pub kind: String,
    /// `succeeded` or `refused`.
    pub outcome: String,
    /// Why it was refused (`expired`, `wrong_code`, `rate_limited`, ...).
    #[oai(nullable)]
    pub reason: Option<String>,
    /// How the person signed in: `link`, `code`, `password` or `passkey`.
    #[oai(nullable)]
    pub method: Option<String>,
    /// The client's address as the service keeps it (by default its /24 or /48 network).
    #[oai(rename = "clientAddress", nullable)]
    pub client_address: Option<String>,
    /// The browser and system ("Chrome on Linux").
    #[oai(rename = "userAgent", nullable)]
    pub user_agent: Option<String>,
    /// A few words more (a masked address, a passkey's name).
    #[oai(nullable)]
    pub detail: Option<String>,
    /// Whether it happened in the session making this request.
    #[oai(rename = "thisSession")]
    pub this_session: bool,
}

/// A page of the person's security activity.
#[derive(Debug, Object)]
pub struct ActivityBody {
    /// The events, newest first.
    pub events: Vec<ActivityItem>,
    /// Pass as `before` for the next (older) page; absent when this page is the last.
    #[oai(nullable)]
    pub next: Option<String>,
}

#[OpenApi]
impl ActivityApi {
    /// Your security activity
    ///
    /// The signed-in person's sign-ins, failed attempts on their account and changes to it,
    /// newest first: `limit` events (20 unless asked, at most 100), older than the event
    /// `before` when given (the `next` of the previous page).
    #[oai(path = "/activity", method = "get")]
    async fn activity(
        &self,
        req: &Request,
        before: Query<Option<String>>,
        limit: Query<Option<u32>>,
    ) -> Result<Json<ActivityBody>, Problem<ActivityProblems>> {
        let active = crate::api::signed_in(req, &self.state).await?;
        let limit = limit.0.unwrap_or(ACTIVITY_PAGE).clamp(1, ports::MAX_ACTIVITY_PAGE);
        let events = self
            .state
            .sessions
            .activity(&active, before.0, limit)
            .await
            .map_err(|e| Problem::new(req, &self.state, e.into()))?;
        let next = next_page(&events, limit);
        Ok(Json(ActivityBody {
            events: events
                .into_iter()
                .map(|recorded| {
                    let event = recorded.event;
                    ActivityItem {
                        id: recorded.id,
                        at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
                        kind: event.kind.as_str().to_owned(),
                        outcome: event.outcome.as_str().to_owned(),
                        reason: event.outcome.reason().map(str::to_owned),
                        method: event.method.map(|method| method.as_str().to_owned()),
                        client_address: event.origin.client_address,
                        user_agent: event.origin.user_agent,
                        detail: event.detail,
                        this_session: event.session_id.as_ref() == Some(&active.session_id),
                    }
                })
                .collect(),
            next,
        }))
    }
}
