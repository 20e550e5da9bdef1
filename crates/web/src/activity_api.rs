//! `GET {base}/activity`: the signed-in person's security activity as JSON, the twin of the
//! account page's "Recent security activity" (`crate::activity`).

use std::sync::Arc;

use chrono::SecondsFormat;
use poem::Request;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::activity::{next_page, ACTIVITY_PAGE};
use crate::api::{Problem, ProblemStatuses, INTERNAL, SIGNED_OUT, UNAVAILABLE};
use crate::AppState;

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
            events: events.into_iter().map(|recorded| ActivityItem::of(recorded, &active.session_id)).collect(),
            next,
        }))
    }
}

impl ActivityItem {
    /// `recorded` as the person reads it, from the session `reading`.
    pub(crate) fn of(recorded: ports::RecordedEvent, reading: &domain::SessionId) -> Self {
        let event = recorded.event;
        Self {
            id: recorded.id,
            at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            kind: event.kind.as_str().to_owned(),
            outcome: event.outcome.as_str().to_owned(),
            reason: event.outcome.reason().map(str::to_owned),
            method: event.method.map(|method| method.as_str().to_owned()),
            client_address: event.origin.client_address,
            user_agent: event.origin.user_agent,
            detail: event.detail,
            this_session: event.session_id.as_ref() == Some(reading),
        }
    }
}
