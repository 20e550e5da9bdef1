//! The read-only JSON endpoints under the auth base path, described with poem-openapi:
//! `GET {base}/csrf`, `GET {base}/providers`, `GET {base}/session`.
//!
//! The shapes are Auth.js's, so clients written for it work unchanged. The OpenAPI document is
//! served at `{base}/openapi.json`.

use std::sync::Arc;

use chrono::SecondsFormat;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

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
            expires: active.expires.to_rfc3339_opts(SecondsFormat::Millis, true),
        })))
    }
}

impl AuthApi {
    /// Routes a failure through the one mapping, as a problem document.
    fn problem(&self, req: &Request, error: WebError) -> poem::Error {
        poem::Error::from_response(error.into_response(Format::Json, req, &self.state))
    }
}
