//! The JSON endpoints under the auth base path, described with poem-openapi: Auth.js's
//! `GET {base}/csrf`, `GET {base}/providers` and `GET {base}/session` (same shapes, so clients
//! written for it work unchanged), and the signed-in person's sessions: `GET {base}/sessions`,
//! `DELETE {base}/sessions/{id}`, `POST {base}/sessions/revoke-others`.
//!
//! The session endpoints are authenticated by the session cookie, so the two that change
//! something also need the CSRF token (`X-CSRF-Token`, from `GET {base}/csrf`) and a same-origin
//! request, as every state-changing form does ([`crate::csrf`]). The OpenAPI document is served
//! at `{base}/openapi.json`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use domain::SessionId;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use ports::ActiveSession;

use crate::errors::{Format, WebError};
use crate::{auth, csrf, AppState};

/// The JSON API; it shares the application state with the page handlers.
pub struct AuthApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A CSRF token to send back as `csrfToken` with state-changing requests.
#[derive(Debug, Object)]
pub struct CsrfBody {
    /// The token; its cookie is set on the same response.
    #[oai(rename = "csrfToken")]
    pub csrf_token: String,
}

/// One sign-in provider.
#[derive(Debug, Object)]
pub struct ProviderBody {
    /// Provider id (`email`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Provider type (`email`).
    #[oai(rename = "type")]
    pub kind: String,
    /// Where to POST the sign-in form.
    #[oai(rename = "signinUrl")]
    pub signin_url: String,
    /// Where the emailed link points.
    #[oai(rename = "callbackUrl")]
    pub callback_url: String,
}

/// The providers this service offers, keyed by id.
#[derive(Debug, Object)]
pub struct ProvidersBody {
    /// Magic links by email.
    pub email: ProviderBody,
}

/// The signed-in user as the session endpoint shows it.
#[derive(Debug, Object)]
pub struct SessionUser {
    /// Stable user id (UUIDv7).
    pub id: String,
    /// The address the user signs in with.
    pub email: String,
    /// Display name, if known.
    pub name: Option<String>,
    /// Avatar URL, if known.
    pub image: Option<String>,
}

/// A live session.
#[derive(Debug, Object)]
pub struct SessionBody {
    /// Who is signed in.
    pub user: SessionUser,
    /// When the session expires, RFC 3339.
    pub expires: String,
}

/// One of the signed-in person's sessions. Never its token.
#[derive(Debug, Object)]
pub struct SessionItem {
    /// The session's id, to revoke it.
    pub id: String,
    /// When it was created (the sign-in), RFC 3339.
    #[oai(rename = "createdAt")]
    pub created_at: String,
    /// When it was last seen in use, RFC 3339: recorded when a use extends the session (at
    /// most once per `session.update_age`), so it is exact to within that.
    #[oai(rename = "lastUsedAt")]
    pub last_used_at: String,
    /// When it ends unless used again, RFC 3339.
    pub expires: String,
    /// The browser's `User-Agent` at sign-in, if it sent one.
    #[oai(rename = "userAgent")]
    pub user_agent: Option<String>,
    /// Whether it is the session making this request.
    pub current: bool,
}

/// The signed-in person's live sessions, most recently used first.
#[derive(Debug, Object)]
pub struct SessionsBody {
    /// The sessions.
    pub sessions: Vec<SessionItem>,
}

/// How many sessions were ended.
#[derive(Debug, Object)]
pub struct RevokedBody {
    /// Sessions ended.
    pub revoked: u64,
}

/// A session was ended.
#[derive(Debug, ApiResponse)]
pub enum SessionRevoked {
    /// Ended; if it was the current session, its cookie is cleared too.
    #[oai(status = 204)]
    Revoked,
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[OpenApi]
impl AuthApi {
    /// A CSRF token (and its cookie) for the sign-in and sign-out forms.
    #[oai(path = "/csrf", method = "get")]
    async fn csrf(&self, req: &Request) -> poem::Result<Json<CsrfBody>> {
        let token =
            csrf::token_for_form(req.cookie(), &self.state.settings).map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(CsrfBody { csrf_token: token }))
    }

    /// The configured sign-in providers.
    #[oai(path = "/providers", method = "get")]
    async fn providers(&self) -> Json<ProvidersBody> {
        let settings = &self.state.settings;
        Json(ProvidersBody {
            email: ProviderBody {
                id: "email".to_owned(),
                name: "Email".to_owned(),
                kind: "email".to_owned(),
                signin_url: settings.absolute(&settings.auth_path("/signin/email")),
                callback_url: settings.absolute(&settings.auth_path("/callback/email")),
            },
        })
    }

    /// The current session, or `null` when signed out.
    #[oai(path = "/session", method = "get")]
    async fn session(&self, req: &Request) -> poem::Result<Json<Option<SessionBody>>> {
        let session = auth::current_session(req, &self.state).await.map_err(|e| self.problem(req, e))?;
        Ok(Json(session.map(|active| SessionBody {
            user: SessionUser {
                id: active.user.id.as_str().to_owned(),
                email: active.user.email.as_str().to_owned(),
                name: active.user.name,
                image: active.user.image,
            },
            expires: rfc3339(active.expires),
        })))
    }

    /// The signed-in person's live sessions, most recently used first. 401 when signed out.
    #[oai(path = "/sessions", method = "get")]
    async fn sessions(&self, req: &Request) -> poem::Result<Json<SessionsBody>> {
        let active = self.signed_in(req).await?;
        let listed = self.state.sign_in.list_sessions(&active).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(SessionsBody {
            sessions: listed
                .into_iter()
                .map(|session| SessionItem {
                    current: session.id == active.session_id,
                    id: session.id.as_str().to_owned(),
                    created_at: rfc3339(session.created_at),
                    last_used_at: rfc3339(session.last_used),
                    expires: rfc3339(session.expires),
                    user_agent: session.user_agent,
                })
                .collect(),
        }))
    }

    /// Ends one of the signed-in person's sessions (this one included, which signs this client
    /// out). Needs the `X-CSRF-Token` header. 404 when the person has no session with that id.
    #[oai(path = "/sessions/:id", method = "delete")]
    async fn revoke_session(&self, req: &Request, id: Path<String>) -> poem::Result<SessionRevoked> {
        let active = self.signed_in_to_change(req).await?;
        // A malformed id names none of the person's sessions, like an unknown one.
        let session_id = SessionId::parse(&id.0).map_err(|_| self.problem(req, WebError::NoSuchSession))?;
        self.state.sign_in.revoke_session(&active, &session_id).await.map_err(|e| self.problem(req, e.into()))?;
        if session_id == active.session_id {
            crate::cookies::clear(req.cookie(), &self.state.settings, crate::cookies::Kind::Session);
        }
        Ok(SessionRevoked::Revoked)
    }

    /// Ends every session of the signed-in person but this one ("sign out everywhere else").
    /// Needs the `X-CSRF-Token` header.
    #[oai(path = "/sessions/revoke-others", method = "post")]
    async fn revoke_other_sessions(&self, req: &Request) -> poem::Result<Json<RevokedBody>> {
        let active = self.signed_in_to_change(req).await?;
        let revoked =
            self.state.sign_in.revoke_other_sessions(&active).await.map_err(|e| self.problem(req, e.into()))?;
        Ok(Json(RevokedBody { revoked }))
    }
}

impl AuthApi {
    /// The session making this request, or a 401 problem.
    async fn signed_in(&self, req: &Request) -> poem::Result<ActiveSession> {
        match auth::current_session(req, &self.state).await {
            Ok(Some(active)) => Ok(active),
            Ok(None) => Err(self.problem(req, WebError::SignedOut)),
            Err(error) => Err(self.problem(req, error)),
        }
    }

    /// The session making a state-changing request, once its CSRF token and origin check out
    /// (checked first: a forged request learns nothing, not even whether anyone is signed in).
    async fn signed_in_to_change(&self, req: &Request) -> poem::Result<ActiveSession> {
        if !csrf::verify(req, &self.state.settings, req.header("x-csrf-token")) {
            return Err(self.problem(req, WebError::Csrf));
        }
        self.signed_in(req).await
    }

    /// Routes a failure through the one mapping, as a problem document.
    fn problem(&self, req: &Request, error: WebError) -> poem::Error {
        poem::Error::from_response(error.into_response(Format::Json, req, &self.state))
    }
}
