//! The person's own data: `GET {base}/account/export` (one JSON document of everything kept
//! about them, their activity included: GDPR articles 15 and 20) and `DELETE {base}/account`
//! (article 17: the account and everything tied to it, with a goodbye email). Both need a recent
//! sign-in; deleting also needs the account's address typed again. The account page offers
//! both (`crate::account`).

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use ports::ActiveSession;

use crate::activity_api::ActivityItem;
use crate::api::{Problem, ProblemStatuses, SessionItem, INTERNAL, NOT_JSON, SIGNED_OUT, UNAVAILABLE};
use crate::errors::WebError;
use crate::passkey::PasskeyItem;
use crate::AppState;

/// The person's data JSON API; it shares the application state with the rest.
pub struct AccountDataApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// The person as stored.
#[derive(Debug, Object)]
pub struct ExportedUser {
    /// Their id (also in their audit events and the apps' `sub`).
    pub id: String,
    /// The address they sign in with.
    pub email: String,
    /// Their display name, if set.
    #[oai(nullable)]
    pub name: Option<String>,
    /// When the address was first proven by a link (RFC 3339).
    #[oai(rename = "emailVerified", nullable)]
    pub email_verified: Option<String>,
    /// Whether a password is set (its hash is not exported: it is of no use to anyone).
    #[oai(rename = "hasPassword")]
    pub has_password: bool,
}

/// An app the person let in.
#[derive(Debug, Object)]
pub struct ExportedApp {
    /// Its client id.
    #[oai(rename = "clientId")]
    pub client_id: String,
    /// Its name.
    pub name: String,
    /// What it receives (`openid`, `email`, `profile`, `offline_access`).
    pub scopes: Vec<String>,
    /// When it was let in (RFC 3339).
    #[oai(rename = "grantedAt")]
    pub granted_at: String,
}

/// Everything kept about the person.
#[derive(Debug, Object)]
pub struct AccountExport {
    /// When this document was made (RFC 3339).
    #[oai(rename = "exportedAt")]
    pub exported_at: String,
    /// The account.
    pub user: ExportedUser,
    /// Their live sessions.
    pub sessions: Vec<SessionItem>,
    /// Their passkeys.
    pub passkeys: Vec<PasskeyItem>,
    /// The apps they let in.
    pub apps: Vec<ExportedApp>,
    /// Their security activity, newest first, as long as it is kept (`audit.retention_days`).
    pub activity: Vec<ActivityItem>,
}

/// The export, as a file to save.
#[derive(Debug, ApiResponse)]
pub enum Exported {
    /// The document, named `{site}-account.json` for the browser to save.
    #[oai(status = 200)]
    Document(Json<AccountExport>, #[oai(header = "Content-Disposition")] String),
}

/// `DELETE {base}/account` as JSON.
#[derive(Debug, Object)]
pub struct DeleteAccountBody {
    /// The account's sign-in address, typed again to confirm.
    #[oai(rename = "confirmEmail")]
    pub confirm_email: String,
}

/// The account was deleted.
#[derive(Debug, ApiResponse)]
pub enum AccountDeleted {
    /// Deleted, with everything tied to it; the session cookie is cleared and a goodbye email
    /// queued.
    #[oai(status = 204)]
    Deleted,
}

/// Exporting: signed in, recently.
pub struct ExportProblems;
impl ProblemStatuses for ExportProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        SIGNED_OUT,
        (403, "The sign-in is not recent enough (`reauthentication-required`): confirm it is you first."),
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Deleting: signed in, recently, with the address typed, the CSRF header and a JSON body.
pub struct DeleteProblems;
impl ProblemStatuses for DeleteProblems {
    const STATUSES: &'static [(u16, &'static str)] = &[
        (
            400,
            "`confirmEmail` is not the account's address (`confirmation-mismatch`), or the body is not JSON this \
             operation reads (`bad-request`); nothing was deleted.",
        ),
        SIGNED_OUT,
        (
            403,
            "The CSRF token is missing or wrong, or the request came from another site; or the sign-in is not \
             recent enough (`reauthentication-required`).",
        ),
        INTERNAL,
        UNAVAILABLE,
        NOT_JSON,
    ];
}

#[OpenApi]
impl AccountDataApi {
    /// Download your data
    ///
    /// Everything kept about the signed-in person as one JSON document: the account, live
    /// sessions, passkeys, the apps they let in, and their security activity. Needs a recent
    /// sign-in.
    #[oai(path = "/account/export", method = "get")]
    async fn export(&self, req: &Request) -> Result<Exported, Problem<ExportProblems>> {
        let active = crate::api::signed_in(req, &self.state).await?;
        if !self.state.sessions.is_recent(&active) {
            return Err(Problem::new(req, &self.state, WebError::ReauthenticationRequired));
        }
        let export = export(&self.state, &active).await.map_err(|e| Problem::new(req, &self.state, e))?;
        let name = self.state.settings.site_name.chars().filter(char::is_ascii_alphanumeric).collect::<String>();
        let disposition =
            format!("attachment; filename=\"{}-account.json\"", if name.is_empty() { "my" } else { &name });
        Ok(Exported::Document(Json(export), disposition))
    }

    /// Delete your account
    ///
    /// Deletes the signed-in person's account and everything tied to it (sessions, passkeys,
    /// password, the apps' access, pending emails); their audit events stay, without the
    /// address, until they age out. A goodbye email goes to the address. Needs a recent
    /// sign-in, the address typed again as `confirmEmail`, and the `X-CSRF-Token` header.
    #[oai(path = "/account", method = "delete")]
    async fn delete(
        &self,
        req: &Request,
        body: Json<DeleteAccountBody>,
    ) -> Result<AccountDeleted, Problem<DeleteProblems>> {
        let active = crate::api::signed_in_to_change(req, &self.state).await?;
        crate::account::delete_account(req, &self.state, &active, &body.0.confirm_email)
            .await
            .map_err(|e| Problem::new(req, &self.state, e))?;
        Ok(AccountDeleted::Deleted)
    }
}

/// Everything kept about `active`'s person.
async fn export(state: &AppState, active: &ActiveSession) -> Result<AccountExport, WebError> {
    let user = &active.user;
    let rfc3339 = |at: chrono::DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let has_password = match &state.passwords {
        Some(passwords) => passwords.has_password(active).await?,
        None => false,
    };
    let passkeys = match &state.passkeys {
        Some(passkeys) => passkeys.list(active).await?.into_iter().map(PasskeyItem::from).collect(),
        None => Vec::new(),
    };
    let apps = match &state.oidc {
        Some(oidc) => oidc
            .apps(&user.id)
            .await?
            .into_iter()
            .map(|consent| ExportedApp {
                client_id: consent.client_id.as_str().to_owned(),
                name: consent.client_name,
                scopes: consent.scopes.iter().map(|scope| scope.as_str().to_owned()).collect(),
                granted_at: rfc3339(consent.granted_at),
            })
            .collect(),
        None => Vec::new(),
    };
    // Every page of the activity the log still keeps.
    let mut activity = Vec::new();
    let mut before = None;
    loop {
        let page = state.sessions.activity(active, before, ports::MAX_ACTIVITY_PAGE).await?;
        let full = page.len() == ports::MAX_ACTIVITY_PAGE as usize;
        before = page.last().map(|last| last.id.clone());
        activity.extend(page.into_iter().map(|recorded| ActivityItem::of(recorded, &active.session_id)));
        if !full {
            break;
        }
    }
    Ok(AccountExport {
        exported_at: rfc3339(Utc::now()),
        user: ExportedUser {
            id: user.id.as_str().to_owned(),
            email: user.email.as_str().to_owned(),
            name: user.name.as_ref().map(|name| name.as_str().to_owned()),
            email_verified: user.email_verified.map(rfc3339),
            has_password,
        },
        sessions: state
            .sessions
            .list(active)
            .await?
            .into_iter()
            .map(|session| SessionItem::of(session, &active.session_id))
            .collect(),
        passkeys,
        apps,
        activity,
    })
}
