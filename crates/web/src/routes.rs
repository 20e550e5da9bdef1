//! The route table and the middleware every response passes through.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use poem::endpoint::BoxEndpoint;
use poem::middleware::{CookieJarManager, SetHeader};
use poem::{get, post, Endpoint, EndpointExt, IntoResponse, PathPattern, Response, Route};
use poem_openapi::OpenApiService;
use tracing::Instrument as _;

use crate::api::AuthApi;
use crate::errors::{router_error, Format, WebError};
use crate::{account, auth, forward_auth, pages, password, telemetry, AppState};

/// No scripts at all; inline styles only; forms post only to us; nobody may frame us.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
     frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The API docs page (`{base}/docs`) only: Swagger UI is one page with its script and styles
/// inline (embedded in the binary, nothing loaded from elsewhere), and it calls the API on this
/// site when asked to try a request. It holds no form and no secret.
const DOCS_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'none'; \
     frame-ancestors 'none'; base-uri 'none'";

/// The headers every response carries, error pages included.
fn security_headers(settings: &crate::WebSettings) -> SetHeader {
    // The Content-Security-Policy is set per path, in `build_app`.
    let headers = SetHeader::new()
        .overriding("X-Content-Type-Options", "nosniff")
        // Links carry tokens: never leak a URL to another site through Referer.
        .overriding("Referrer-Policy", "no-referrer")
        .overriding("X-Frame-Options", "DENY")
        // Pages hold CSRF tokens and personal data: no caching anywhere.
        .overriding("Cache-Control", "no-store");
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

/// Builds the whole application: pages, Auth.js-style routes, the JSON API and `/healthz`.
pub fn build_app(state: AppState) -> impl Endpoint<Output = Response> {
    build_shared_app(Arc::new(state))
}

/// As [`build_app`], on state shared with an application that embeds magiclink
/// ([`crate::embed::Magiclink`]).
pub fn build_shared_app(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    let settings = &state.settings;
    let base = settings.auth_base_path.trim_end_matches('/').to_owned();
    let api = OpenApiService::new(AuthApi { state: Arc::clone(&state) }, "magiclink", env!("CARGO_PKG_VERSION"))
        .server(settings.absolute(&base));
    let spec = api.spec_endpoint();
    let mut allowed = AllowedMethods::from_spec(&base, &api.spec());
    let docs_path = format!("{base}/docs");
    let docs = api.swagger_ui();
    // The page routes' methods, for `Allow` on a 405 (the JSON API's come from its document).
    for (path, methods) in [
        ("/".to_owned(), "GET, HEAD"),
        (settings.pages.sign_in.clone(), "GET, HEAD"),
        (format!("{base}/signin"), "GET, HEAD"),
        (format!("{base}/signout"), "GET, HEAD, POST"),
        (settings.pages.verify_request.clone(), "GET, HEAD"),
        (settings.pages.error.clone(), "GET, HEAD"),
        ("/healthz".to_owned(), "GET, HEAD"),
        (settings.pages.account.clone(), "GET, HEAD"),
        (format!("{}/name", settings.pages.account), "POST"),
        (format!("{}/email", settings.pages.account), "POST"),
        (format!("{}/email/confirm", settings.pages.account), "GET, HEAD, POST"),
        (format!("{}/password", settings.pages.account), "POST"),
        (format!("{}/reauthenticate", settings.pages.account), "POST"),
        (format!("{}/reauthenticate/link", settings.pages.account), "POST"),
        (format!("{}/sessions/revoke", settings.pages.account), "POST"),
        (format!("{}/sessions/revoke-others", settings.pages.account), "POST"),
        (format!("{base}/callback/email"), "GET, HEAD, POST"),
        (format!("{base}/forward-auth"), "GET, HEAD"),
        ("/dev/mailbox".to_owned(), "GET, HEAD"),
    ] {
        allowed.add(&path, methods);
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

    let mut routes = Route::new()
        .at("/", get(pages::home))
        .at(&settings.pages.sign_in, get(pages::sign_in))
        .at(format!("{base}/signin"), get(pages::sign_in))
        .at(format!("{base}/signout"), get(pages::sign_out_confirm).post(FormOrJson::new(auth::sign_out, &api)))
        .at(&settings.pages.verify_request, get(pages::check_email))
        .at(&settings.pages.error, get(pages::auth_error))
        .at("/healthz", get(auth::healthz))
        .at(&settings.pages.account, get(account::show))
        .at(format!("{}/name", settings.pages.account), post(account::rename))
        .at(format!("{}/email", settings.pages.account), post(account::change_email))
        .at(
            format!("{}/email/confirm", settings.pages.account),
            get(account::confirm_email_page).post(account::confirm_email),
        )
        .at(format!("{}/password", settings.pages.account), post(password::set))
        .at(format!("{}/reauthenticate", settings.pages.account), post(password::reauthenticate))
        .at(format!("{}/reauthenticate/link", settings.pages.account), post(password::reauthenticate_with_link))
        .at(format!("{base}/callback/password"), post(FormOrJson::new(password::sign_in, &api)))
        .at(format!("{}/sessions/revoke", settings.pages.account), post(account::revoke))
        .at(format!("{}/sessions/revoke-others", settings.pages.account), post(account::revoke_others))
        .at(format!("{base}/signin/email"), post(FormOrJson::new(auth::sign_in_email, &api)))
        .at(
            format!("{base}/callback/email"),
            // HEAD routed to the same handler as itself, not turned into a GET by the router:
            // the handler must know a HEAD never uses the link up.
            get(auth::callback_email).head(auth::callback_email).post(FormOrJson::new(auth::callback_email_post, &api)),
        )
        .at(format!("{base}/forward-auth"), get(forward_auth::forward_auth))
        .at(format!("{base}/openapi.json"), spec)
        .nest(docs_path.as_str(), docs)
        .nest_no_strip(base.as_str(), Arc::clone(&api));
    // The development mailbox exists only while the development mailer is configured.
    if state.mailbox.is_some() {
        routes = routes.at("/dev/mailbox", get(pages::mailbox));
    }

    let fallback_state = Arc::clone(&state);
    let allowed = Arc::clone(&allowed);
    let docs_prefix = format!("{docs_path}/");
    routes
        // Inside the header middleware, so the router's own 404 and 405 get the headers too.
        .around(move |endpoint, mut req| {
            let state = Arc::clone(&fallback_state);
            let allowed = Arc::clone(&allowed);
            let started = Instant::now();
            let id = request_id(&req);
            // Every line the request logs carries its id; the id goes back in the response.
            let span = tracing::info_span!("request", request_id = %id);
            let method = req.method().clone();
            let path = req.uri().path().to_owned();
            let policy = if path == docs_path || path.starts_with(&docs_prefix) {
                DOCS_CONTENT_SECURITY_POLICY
            } else {
                CONTENT_SECURITY_POLICY
            };
            let lang = crate::lang::choose(&mut req, &state);
            async move {
                let format = Format::of(&req);
                let limits = state.settings.limits;
                let mut response = if let Err(refusal) = check_body_size(&req, limits.max_body_bytes) {
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
                tracing::debug!(
                    method = %method,
                    path = %path,
                    status = response.status().as_u16(),
                    ms = seconds * 1000.0,
                    "request"
                );
                Ok(response)
            }
            .instrument(span)
        })
        .with(CookieJarManager::new())
        .with(security_headers(&state.settings))
        .data(state)
        .map_to_response()
}
