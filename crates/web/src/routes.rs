//! The route table and the middleware every response passes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use poem::endpoint::BoxEndpoint;
use poem::middleware::{CookieJarManager, SetHeader};
use poem::{get, post, Endpoint, EndpointExt, IntoResponse, PathPattern, Response, Route};
use poem_openapi::OpenApiService;
use tracing::Instrument as _;

use crate::account_data::AccountDataApi;
use crate::activity_api::ActivityApi;
use crate::api::AuthApi;
use crate::errors::{router_error, Format, WebError};
use crate::passkey::PasskeyApi;
use crate::{account, auth, forward_auth, oidc, pages, passkey, password, telemetry, AppState};

/// No scripts at all; inline styles only; forms post only to us; nobody may frame us.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The pages with passkey controls (the sign-in and account pages, when `passkey.enabled` is
/// on): as [`CONTENT_SECURITY_POLICY`], plus this site's own script (`{base}/passkey.js`, no
/// inline script, nothing from elsewhere) and its requests to this site's JSON API.
const PASSKEY_PAGE_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; \
     style-src 'unsafe-inline'; img-src 'self' data:; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The API docs page (`{base}/docs`) only: Swagger UI is one page with its script and styles
/// inline (embedded in the binary, nothing loaded from elsewhere), and it calls the API on this
/// site when asked to try a request. It holds no form and no secret.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Pages hold CSRF tokens and personal data: no caching anywhere.
const NO_STORE: &str = "no-store";

/// The API docs page (Swagger UI, about 1.6 MB) is the same for everyone and changes only with
/// the API: cached for a day, then revalidated against its ETag ([`docs_etag`]).
const DOCS_CACHE_CONTROL: &str = "public, max-age=86400";

/// The docs page's ETag: a digest of the OpenAPI document it shows (and this release), so it
/// changes exactly when the page does.
fn docs_etag(spec: &str) -> String {
    use std::hash::{Hash as _, Hasher as _};
    // Not a security measure, only a version: the standard library's SipHash with its fixed
    // keys gives every instance of a release the same value.
    let mut hasher = std::hash::DefaultHasher::new();
    (env!("CARGO_PKG_VERSION"), spec).hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// The headers every response carries, error pages included.
fn security_headers(settings: &crate::WebSettings) -> SetHeader {
    // The Content-Security-Policy and Cache-Control are set per path, in `build_app`.
    let headers = SetHeader::new()
        .overriding("X-Content-Type-Options", "nosniff")
        // Links carry tokens: never leak a URL to another site through Referer.
        .overriding("Referrer-Policy", "no-referrer")
        .overriding("X-Frame-Options", "DENY");
    let hsts = settings.limits.hsts_max_age;
    if settings.is_https() && hsts > 0 {
        headers.overriding("Strict-Transport-Security", format!("max-age={hsts}"))
    } else {
        headers
    }
}

/// Refuses a body over `limit` bytes from its declared length, before any of it is read, and a
/// body without a declared length (chunked), which could not be refused that way.
///
/// # Errors
/// [`WebError::PayloadTooLarge`] or [`WebError::LengthRequired`].
fn check_body_size(req: &poem::Request, limit: u64) -> Result<(), WebError> {
    let headers = req.headers();
    match headers.get(poem::http::header::CONTENT_LENGTH) {
        Some(length) => match length.to_str().ok().and_then(|l| l.trim().parse::<u64>().ok()) {
            Some(length) if length <= limit => Ok(()),
            Some(_) => Err(WebError::PayloadTooLarge { limit }),
            None => Err(WebError::Refused(poem::http::StatusCode::BAD_REQUEST)),
        },
        None if headers.contains_key(poem::http::header::TRANSFER_ENCODING) => Err(WebError::LengthRequired),
        None => Ok(()),
    }
}

/// The header that carries a request's id, in and out.
const REQUEST_ID: &str = "x-request-id";

/// The id of this request: the one a proxy in front gave it (nginx's `$request_id`, a load
/// balancer's), when it is a plain token of at most 64 letters, digits, `-`, `_` or `.` (nothing
/// that could forge a log line), or else a fresh one ([`fresh_request_id`]).
fn request_id(req: &poem::Request) -> String {
    let given = req.header(REQUEST_ID).filter(|id| {
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    });
    match given {
        Some(id) => id.to_owned(),
        None => fresh_request_id(),
    }
}

/// A new request id: a random prefix drawn once per process, then a counter. Not a secret,
/// only unique across requests, restarts and instances, without a system call per request.
fn fresh_request_id() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // All zeros if the OS generator failed at the first request; the counter still tells
    // this process's requests apart.
    let prefix = PREFIX.get_or_init(|| domain::hex::encode(&ports::random::os_random::<6>().unwrap_or_default()));
    format!("{prefix}{:012x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A state-changing route that people post forms to and programs post JSON to: a form body
/// (`application/x-www-form-urlencoded`, what every browser form sends) goes to the form
/// handler, anything else to the JSON API's twin of it (described in the OpenAPI document),
/// which answers a body it cannot take with a problem document.
struct FormOrJson<F> {
    form: F,
    json: Arc<BoxEndpoint<'static, Response>>,
}

impl<F> FormOrJson<F> {
    fn new(form: F, json: &Arc<BoxEndpoint<'static, Response>>) -> Self {
        Self { form, json: Arc::clone(json) }
    }
}

impl<F: Endpoint> Endpoint for FormOrJson<F> {
    type Output = Response;

    async fn call(&self, mut req: poem::Request) -> poem::Result<Response> {
        let form = req.content_type().is_some_and(|kind| {
            kind.split(';')
                .next()
                .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        });
        if !form {
            // The JSON API is a router of its own, which labels the request with its own full
            // pattern; this route's pattern would be prefixed to it.
            req.extensions_mut().remove::<PathPattern>();
            self.json.call(req).await
        } else {
            self.form.call(req).await.map(IntoResponse::into_response)
        }
    }
}

/// The JSON API's own front door. Every answer is JSON: what the API itself refuses (a body it
/// cannot read, a `Content-Type` it does not take, a method or path it does not have) becomes a
/// problem document, whatever `Accept` said, and a 405 names the methods that would do
/// (`Allow`). A body that names a key twice, at any depth, is refused with a 400 problem:
/// serde (and so poem-openapi) would silently keep the last, letting a proxy that reads the
/// first and the service disagree about what was asked; form bodies are already refused for
/// it. The body has passed the size limit, so reading it whole is bounded.
async fn json_api<E: Endpoint>(
    endpoint: Arc<E>,
    mut req: poem::Request,
    state: Arc<AppState>,
    allowed: Arc<AllowedMethods>,
) -> poem::Result<Response> {
    let path = req.uri().path().to_owned();
    let is_json = req.content_type().is_some_and(|kind| kind.to_ascii_lowercase().contains("json"));
    if is_json {
        let body = req.take_body().into_bytes().await?;
        if let Err(reason) = crate::json::without_duplicate_keys(&body) {
            return Ok(WebError::BadJson(reason).standalone_response(Format::Json, &path, i18n::DEFAULT, &state));
        }
        req.set_body(body);
    }
    match endpoint.call(req).await {
        Ok(response) => Ok(response.into_response()),
        Err(error) if error.is_from_response() => Ok(error.into_response()),
        Err(error) => Ok(allowed.refusal(&error, Format::Json, &path, i18n::DEFAULT, &state)),
    }
}

/// The methods each path takes, for the `Allow` header a 405 must carry (RFC 9110).
#[derive(Debug, Default)]
struct AllowedMethods {
    /// Paths split into segments (`None` for a `{parameter}`), with their methods.
    paths: Vec<(Vec<Option<String>>, String)>,
}

impl AllowedMethods {
    /// The JSON API's paths and methods, read from its OpenAPI document, under `base`.
    fn from_spec(base: &str, spec: &str) -> Self {
        let mut allowed = Self::default();
        let document: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        if let Some(paths) = document["paths"].as_object() {
            for (path, operations) in paths {
                let mut methods: Vec<String> = operations
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(method, _)| method.to_ascii_uppercase())
                    .collect();
                if methods.iter().any(|method| method == "GET") {
                    methods.push("HEAD".to_owned());
                }
                allowed.add(&format!("{base}{path}"), &methods.join(", "));
            }
        }
        allowed
    }

    fn add(&mut self, path: &str, methods: &str) {
        let segments = path
            .split('/')
            .map(|segment| (!(segment.starts_with('{') && segment.ends_with('}'))).then(|| segment.to_owned()))
            .collect();
        self.paths.push((segments, methods.to_owned()));
    }

    /// What the router or an extractor refused, answered as the site answers (see
    /// [`router_error`]), with `Allow` on a 405 and the route's pattern kept for the metrics.
    fn refusal(&self, error: &poem::Error, format: Format, path: &str, lang: &str, state: &AppState) -> Response {
        let mut response = router_error(error, format, path, lang, state);
        self.tell(&mut response, path);
        if let Some(pattern) = error.data::<PathPattern>() {
            response.set_data(pattern.clone());
        }
        response
    }

    /// Sets `Allow` on a 405 for `path`, when the path is known.
    fn tell(&self, response: &mut Response, path: &str) {
        if response.status() != poem::http::StatusCode::METHOD_NOT_ALLOWED {
            return;
        }
        let asked: Vec<&str> = path.split('/').collect();
        let found = self.paths.iter().find(|(segments, _)| {
            segments.len() == asked.len()
                && segments
                    .iter()
                    .zip(&asked)
                    .all(|(known, asked)| known.as_deref().is_none_or(|known| known == *asked))
        });
        if let Some(value) = found.and_then(|(_, methods)| poem::http::HeaderValue::from_str(methods).ok()) {
            response.headers_mut().insert(poem::http::header::ALLOW, value);
        }
    }
}

/// A route of the table: its path, the methods it takes, and what answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRoute {
    /// The path as configured (`pages.*`, `auth.base_path`).
    pub path: String,
    /// The methods it takes, as `Allow` lists them.
    pub methods: &'static str,
    handler: Handler,
}

/// The handlers of the route table, one per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    Home,
    SignInPage,
    SignOut,
    CheckEmail,
    AuthError,
    Health,
    Account,
    Rename,
    ChangeEmail,
    ConfirmEmail,
    SetPassword,
    Reauthenticate,
    ReauthenticateWithLink,
    PasswordSignIn,
    RevokeSession,
    RevokeOtherSessions,
    LinkRequest,
    LinkCallback,
    ForwardAuth,
    Mailbox,
    PasskeyScript,
    OidcDiscovery,
    OidcJwks,
    OidcAuthorize,
    OidcToken,
    OidcUserInfo,
    OidcRevoke,
    OidcEndSession,
    RevokeApp,
    DeleteAccount,
}

impl Handler {
    /// The endpoint; the routes people post forms to send other bodies to the JSON API's twin.
    fn endpoint(self, api: &Arc<BoxEndpoint<'static, Response>>) -> BoxEndpoint<'static, Response> {
        match self {
            Handler::Home => get(pages::home).boxed(),
            Handler::SignInPage => get(pages::sign_in).boxed(),
            Handler::SignOut => get(pages::sign_out_confirm).post(FormOrJson::new(auth::sign_out, api)).boxed(),
            Handler::CheckEmail => get(pages::check_email).boxed(),
            Handler::AuthError => get(pages::auth_error).boxed(),
            Handler::Health => get(auth::healthz).boxed(),
            Handler::Account => get(account::show).boxed(),
            Handler::Rename => post(account::rename).boxed(),
            Handler::ChangeEmail => post(account::change_email).boxed(),
            Handler::ConfirmEmail => get(account::confirm_email_page).post(account::confirm_email).boxed(),
            Handler::SetPassword => post(password::set).boxed(),
            Handler::Reauthenticate => post(password::reauthenticate).boxed(),
            Handler::ReauthenticateWithLink => post(password::reauthenticate_with_link).boxed(),
            Handler::PasswordSignIn => post(FormOrJson::new(password::sign_in, api)).boxed(),
            Handler::RevokeSession => post(account::revoke).boxed(),
            Handler::RevokeOtherSessions => post(account::revoke_others).boxed(),
            Handler::LinkRequest => post(FormOrJson::new(auth::sign_in_email, api)).boxed(),
            // HEAD routed to the same handler as itself, not turned into a GET by the router:
            // the handler must know a HEAD never uses the link up.
            Handler::LinkCallback => get(auth::callback_email)
                .head(auth::callback_email)
                .post(FormOrJson::new(auth::callback_email_post, api))
                .boxed(),
            Handler::ForwardAuth => get(forward_auth::forward_auth).boxed(),
            Handler::Mailbox => get(pages::mailbox).boxed(),
            Handler::PasskeyScript => get(passkey::script).boxed(),
            Handler::OidcDiscovery => get(oidc::discovery).options(oidc::preflight).boxed(),
            Handler::OidcJwks => get(oidc::jwks).options(oidc::preflight).boxed(),
            Handler::OidcAuthorize => get(oidc::authorize).post(oidc::authorize_post).boxed(),
            Handler::OidcToken => post(oidc::token_endpoint).options(oidc::preflight).boxed(),
            Handler::OidcUserInfo => get(oidc::userinfo).post(oidc::userinfo).options(oidc::preflight).boxed(),
            Handler::OidcRevoke => post(oidc::revoke).options(oidc::preflight).boxed(),
            Handler::OidcEndSession => get(oidc::end_session).post(oidc::end_session_post).boxed(),
            Handler::RevokeApp => post(account::revoke_app).boxed(),
            Handler::DeleteAccount => post(account::delete).boxed(),
        }
    }
}

/// Every route magiclink serves besides the JSON API's (nested under `auth.base_path`, with its
/// OpenAPI document and docs page): the one table the router is built from, `Allow` is read
/// from, and [`proxied_locations`] is derived from. The development mailbox is served only
/// while the development mailer is configured.
pub fn served_routes(settings: &crate::WebSettings, dev_mailbox: bool) -> Vec<ServedRoute> {
    let base = settings.auth_base_path.trim_end_matches('/');
    let account = settings.pages.account.as_str();
    let route = |path: String, methods, handler| ServedRoute { path, methods, handler };
    let mut routes = vec![
        route("/".to_owned(), "GET, HEAD", Handler::Home),
        route(settings.pages.sign_in.clone(), "GET, HEAD", Handler::SignInPage),
        route(format!("{base}/signin"), "GET, HEAD", Handler::SignInPage),
        route(format!("{base}/signout"), "GET, HEAD, POST", Handler::SignOut),
        route(settings.pages.verify_request.clone(), "GET, HEAD", Handler::CheckEmail),
        route(settings.pages.error.clone(), "GET, HEAD", Handler::AuthError),
        route("/healthz".to_owned(), "GET, HEAD", Handler::Health),
        route(account.to_owned(), "GET, HEAD", Handler::Account),
        route(format!("{account}/name"), "POST", Handler::Rename),
        route(format!("{account}/email"), "POST", Handler::ChangeEmail),
        route(format!("{account}/email/confirm"), "GET, HEAD, POST", Handler::ConfirmEmail),
        route(format!("{account}/password"), "POST", Handler::SetPassword),
        route(format!("{account}/reauthenticate"), "POST", Handler::Reauthenticate),
        route(format!("{account}/reauthenticate/link"), "POST", Handler::ReauthenticateWithLink),
        route(format!("{account}/sessions/revoke"), "POST", Handler::RevokeSession),
        route(format!("{account}/sessions/revoke-others"), "POST", Handler::RevokeOtherSessions),
        route(format!("{account}/delete"), "POST", Handler::DeleteAccount),
        route(format!("{base}/callback/password"), "POST", Handler::PasswordSignIn),
        route(format!("{base}/signin/email"), "POST", Handler::LinkRequest),
        route(format!("{base}/callback/email"), "GET, HEAD, POST", Handler::LinkCallback),
        route(format!("{base}/forward-auth"), "GET, HEAD", Handler::ForwardAuth),
    ];
    if settings.passkeys {
        routes.push(route(format!("{base}/passkey.js"), "GET, HEAD", Handler::PasskeyScript));
    }
    if settings.oidc {
        use crate::oidc::paths;
        routes.push(route(crate::oidc::discovery_path(settings), "GET, HEAD, OPTIONS", Handler::OidcDiscovery));
        routes.push(route(format!("{base}{}", paths::JWKS), "GET, HEAD, OPTIONS", Handler::OidcJwks));
        routes.push(route(format!("{base}{}", paths::AUTHORIZE), "GET, HEAD, POST", Handler::OidcAuthorize));
        routes.push(route(format!("{base}{}", paths::TOKEN), "POST, OPTIONS", Handler::OidcToken));
        routes.push(route(format!("{base}{}", paths::USERINFO), "GET, HEAD, POST, OPTIONS", Handler::OidcUserInfo));
        routes.push(route(format!("{base}{}", paths::REVOKE), "POST, OPTIONS", Handler::OidcRevoke));
        routes.push(route(format!("{base}{}", paths::END_SESSION), "GET, HEAD, POST", Handler::OidcEndSession));
        routes.push(route(format!("{account}/apps/revoke"), "POST", Handler::RevokeApp));
    }
    if dev_mailbox {
        routes.push(route("/dev/mailbox".to_owned(), "GET, HEAD", Handler::Mailbox));
    }
    routes
}

/// A location a reverse proxy must send to magiclink when magiclink shares a host name with an
/// app (`docs/deployment.md`): one path, or everything under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxiedLocation {
    /// This path only (nginx `location = /signin`).
    Exact(String),
    /// Every path starting with this one, which ends in `/` (nginx `location /api/auth/`).
    Prefix(String),
}

impl ProxiedLocation {
    /// Whether a request for `path` is sent to magiclink by this location.
    pub fn covers(&self, path: &str) -> bool {
        match self {
            ProxiedLocation::Exact(exact) => path == exact,
            ProxiedLocation::Prefix(prefix) => path.starts_with(prefix.as_str()),
        }
    }
}

/// What a proxy sharing a host name with an app must send to magiclink, derived from
/// [`served_routes`]: everything under `auth.base_path` and under the account page as two
/// prefixes, each other page by its exact path. `/` stays the app's (people land on the app's
/// pages after signing in, and on `/` after signing out), and so does the development mailbox.
pub fn proxied_locations(settings: &crate::WebSettings) -> Vec<ProxiedLocation> {
    let base = format!("{}/", settings.auth_base_path.trim_end_matches('/'));
    let account = format!("{}/", settings.pages.account.trim_end_matches('/'));
    let mut locations = vec![ProxiedLocation::Prefix(base.clone())];
    for route in served_routes(settings, false) {
        let location = if route.path == "/" {
            continue;
        } else if route.path.starts_with(&base) {
            ProxiedLocation::Prefix(base.clone())
        } else if route.path.starts_with(&account) {
            ProxiedLocation::Prefix(account.clone())
        } else {
            ProxiedLocation::Exact(route.path)
        };
        if !locations.contains(&location) {
            locations.push(location);
        }
    }
    locations
}

/// Builds the whole application: pages, Auth.js-style routes, the JSON API and `/healthz`.
pub fn build_app(state: AppState) -> impl Endpoint<Output = Response> {
    build_shared_app(Arc::new(state))
}

/// As [`build_app`], on state shared with an application that embeds magiclink
/// ([`crate::embed::Magiclink`]).
pub fn build_shared_app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let settings = &state.settings;
    let base = settings.auth_base_path.trim_end_matches('/').to_owned();
    let api = OpenApiService::new(
        (
            AuthApi { state: Arc::clone(&state) },
            PasskeyApi { state: Arc::clone(&state) },
            ActivityApi { state: Arc::clone(&state) },
            AccountDataApi { state: Arc::clone(&state) },
        ),
        "magiclink",
        env!("CARGO_PKG_VERSION"),
    )
    .server(settings.absolute(&base));
    let spec = api.spec_endpoint();
    let spec_text = api.spec();
    let docs_etag = docs_etag(&spec_text);
    let mut allowed = AllowedMethods::from_spec(&base, &spec_text);
    let docs_path = format!("{base}/docs");
    let docs = api.swagger_ui();
    let served = served_routes(settings, state.mailbox.is_some());
    // The page routes' methods, for `Allow` on a 405 (the JSON API's come from its document).
    for route in &served {
        allowed.add(&route.path, route.methods);
    }
    let allowed = Arc::new(allowed);
    // One JSON API, reached under the base path and by the form routes' JSON bodies.
    let json_state = Arc::clone(&state);
    let api_allowed = Arc::clone(&allowed);
    let api: Arc<BoxEndpoint<'static, Response>> = Arc::new(
        Route::new()
            .nest(base.as_str(), api)
            .around(move |endpoint, req| json_api(endpoint, req, Arc::clone(&json_state), Arc::clone(&api_allowed)))
            .boxed(),
    );

    let mut routes = Route::new();
    for route in served {
        routes = routes.at(route.path, route.handler.endpoint(&api));
    }
    let routes = routes
        .at(format!("{base}/openapi.json"), spec)
        .nest(docs_path.as_str(), docs)
        .nest_no_strip(base.as_str(), Arc::clone(&api));

    let fallback_state = Arc::clone(&state);
    let allowed = Arc::clone(&allowed);
    let docs_prefix = format!("{docs_path}/");
    // The pages that load the passkey script, when passkeys are on.
    let passkey_pages: Vec<String> = if state.passkeys.is_some() {
        vec![settings.pages.sign_in.clone(), format!("{base}/signin"), settings.pages.account.clone()]
    } else {
        Vec::new()
    };
    routes
        // Inside the header middleware, so the router's own 404 and 405 get the headers too.
        .around(move |endpoint, mut req| {
            let state = Arc::clone(&fallback_state);
            let allowed = Arc::clone(&allowed);
            let started = Instant::now();
            let id = request_id(&req);
            req.extensions_mut().insert(crate::client::RequestId(id.clone()));
            // Every line the request logs carries its id; the id goes back in the response.
            let span = tracing::info_span!("request", request_id = %id);
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let is_docs = path == docs_path || path.starts_with(&docs_prefix);
            let (policy, cache) = if is_docs {
                (DOCS_CONTENT_SECURITY_POLICY, DOCS_CACHE_CONTROL)
            } else if passkey_pages.contains(&path) {
                (PASSKEY_PAGE_CONTENT_SECURITY_POLICY, NO_STORE)
            } else {
                (CONTENT_SECURITY_POLICY, NO_STORE)
            };
            // Only a read can be answered "not modified".
            let is_read = matches!(*req.method(), poem::http::Method::GET | poem::http::Method::HEAD);
            let unchanged_docs = is_docs && is_read && req.header("if-none-match") == Some(docs_etag.as_str());
            let etag = is_docs.then(|| docs_etag.clone());
            let lang = crate::lang::choose(&mut req, &state);
            async move {
                let format = Format::of(&req);
                let limits = state.settings.limits;
                let mut response = if unchanged_docs {
                    poem::http::StatusCode::NOT_MODIFIED.into_response()
                } else if let Err(refusal) = check_body_size(&req, limits.max_body_bytes) {
                    refusal.standalone_response(format, &path, &lang, &state)
                } else {
                    match tokio::time::timeout(limits.request_timeout, endpoint.call(req)).await {
                        Err(_elapsed) => WebError::RequestTimeout.standalone_response(format, &path, &lang, &state),
                        Ok(Ok(response)) => response,
                        // Our own handlers' errors are finished responses already.
                        Ok(Err(error)) if error.is_from_response() => error.into_response(),
                        Ok(Err(error)) => allowed.refusal(&error, format, &path, &lang, &state),
                    }
                };
                let headers = response.headers_mut();
                headers.insert("content-security-policy", poem::http::HeaderValue::from_static(policy));
                headers.insert(poem::http::header::CACHE_CONTROL, poem::http::HeaderValue::from_static(cache));
                if let Some(value) = etag.and_then(|etag| poem::http::HeaderValue::from_str(&etag).ok()) {
                    headers.insert(poem::http::header::ETAG, value);
                }
                if let Ok(value) = poem::http::HeaderValue::from_str(&id) {
                    headers.insert(REQUEST_ID, value);
                }
                let seconds = started.elapsed().as_secs_f64();
                telemetry::request(
                    &state.settings,
                    response.data::<PathPattern>().map(|pattern| &*pattern.0),
                    method.as_str(),
                    response.status().as_u16(),
                    seconds,
                );
                // The path only: a query may carry a link's token or an address.
                if state.settings.access_log {
                    tracing::info!(
                        method = method.as_str(),
                        path = path.as_str(),
                        status = response.status().as_u16(),
                        ms = (seconds * 1_000_000.0).round() / 1000.0,
                        "request"
                    );
                }
                Ok(response)
            }
            .instrument(span)
        })
        .with(CookieJarManager::new())
        .with(security_headers(&state.settings))
        .data(state)
        .map_to_response()
}
