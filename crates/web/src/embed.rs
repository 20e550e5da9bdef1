//! magiclink inside a poem application: its routes mounted beside the application's own, a
//! [`SignedIn`] extractor for handlers that need the person, and a [`RequireSignIn`]
//! middleware for routes that only signed-in people may reach.
//!
//! ```ignore
//! let magiclink = Magiclink::new(state);
//! let app = Route::new()
//!     .at("/reports", get(reports).with(RequireSignIn))
//!     .at("/whoami", get(whoami)) // async fn whoami(person: SignedIn) -> String
//!     .nest("/", magiclink.routes());
//! let app = magiclink.attach(app);
//! ```
//!
//! `examples/protected-app` is that application, built and tested in CI.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::middleware::{AddDataEndpoint, CookieJarManager, CookieJarManagerEndpoint};
use poem::web::Redirect;
use poem::{Endpoint, EndpointExt, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};
use ports::ActiveSession;
use url::form_urlencoded;

use crate::errors::{Format, WebError};
use crate::{auth, AppState};

/// magiclink's state, shared between its own routes and the application that embeds it.
#[derive(Clone)]
pub struct Magiclink {
    state: Arc<AppState>,
}

impl Magiclink {
    /// magiclink built from its state (the composition root, `xtask::wiring`, makes it).
    pub fn new(state: AppState) -> Self {
        Self { state: Arc::new(state) }
    }

    /// magiclink's routes (pages, the Auth.js-style routes, the JSON API, `/healthz`), at the
    /// paths the settings give them: nest them at `/` of the application's `Route`.
    pub fn routes(&self) -> impl Endpoint<Output = Response> {
        crate::routes::build_shared_app(Arc::clone(&self.state))
    }

    /// The application with magiclink attached, so that [`SignedIn`] and [`RequireSignIn`] work
    /// in it: magiclink's state in every request, and the cookie jar that re-issues an extended
    /// session's cookie.
    pub fn attach<E: Endpoint>(&self, app: E) -> CookieJarManagerEndpoint<AddDataEndpoint<E, Arc<AppState>>> {
        app.data(Arc::clone(&self.state)).with(CookieJarManager::new())
    }
}

/// The signed-in person making the request. As an extractor it refuses a request without a live
/// session: a person (a browser) is sent to the sign-in page and back, a program gets a 401
/// problem document.
#[derive(Debug, Clone)]
pub struct SignedIn(pub ActiveSession);

impl SignedIn {
    /// The session behind the request, or the refusal to answer with.
    async fn check(req: &Request) -> Result<Self, Response> {
        // Already checked by [`RequireSignIn`] on the way in: no second database read.
        if let Some(signed_in) = req.extensions().get::<SignedIn>() {
            return Ok(signed_in.clone());
        }
        let Some(state) = req.data::<Arc<AppState>>() else {
            tracing::error!("SignedIn used on a route magiclink is not attached to (Magiclink::attach)");
            return Err("magiclink is not attached to this application"
                .with_status(StatusCode::INTERNAL_SERVER_ERROR)
                .into_response());
        };
        match auth::current_session(req, state).await {
            Ok(Some(active)) => Ok(SignedIn(active)),
            Ok(None) => Err(refusal(req, state)),
            Err(error) => Err(error.into_response(Format::of(req), req, state)),
        }
    }
}

/// Without a session: to the sign-in page and back to this path (people), or 401 (programs).
fn refusal(req: &Request, state: &AppState) -> Response {
    match Format::of(req) {
        Format::Json => WebError::SignedOut.into_response(Format::Json, req, state),
        Format::Html => {
            let back = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let query = form_urlencoded::Serializer::new(String::new()).append_pair("callbackUrl", back).finish();
            Redirect::see_other(format!("{}?{query}", state.settings.pages.sign_in)).into_response()
        }
    }
}

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Self::check(req).await.map_err(poem::Error::from_response)
    }
}

/// Lets a request through to the endpoint only with a live session (refused as [`SignedIn`]
/// refuses); the endpoint may then take [`SignedIn`] without another database read.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireSignIn;

impl<E: Endpoint> Middleware<E> for RequireSignIn {
    type Output = RequireSignInEndpoint<E>;

    fn transform(&self, endpoint: E) -> Self::Output {
        RequireSignInEndpoint { inner: endpoint }
    }
}

/// The endpoint [`RequireSignIn`] makes.
pub struct RequireSignInEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RequireSignInEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        match SignedIn::check(&req).await {
            Ok(signed_in) => {
                req.extensions_mut().insert(signed_in);
                self.inner.call(req).await.map(IntoResponse::into_response)
            }
            Err(refusal) => Ok(refusal),
        }
    }
}
