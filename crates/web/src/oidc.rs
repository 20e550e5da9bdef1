//! The OpenID Provider's endpoints: discovery, the key set, authorization (with its consent
//! page), token, userinfo, revocation and RP-initiated logout. They speak OAuth, not this
//! service's JSON API: parameters come as query strings and forms, token errors are RFC 6749
//! `{"error": ...}` bodies, and the client libraries find every endpoint through discovery,
//! so they are plain poem handlers outside the OpenAPI document.
//!
//! What is decided here is only HTTP: which parameters came, how the client authenticated
//! (`Authorization: Basic` or the body), where a person is sent. The rules are
//! [`ports::Authorization`]'s; refusals are mapped in [`crate::errors`] like every other.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use poem::http::StatusCode;
use poem::web::{Data, Form, Json, Query, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use ports::{
    Authorization, AuthorizationRequest, Authorized, ClientAuthentication, EndSessionRequest, TokenError, TokenGrant,
};
use serde::{Deserialize, Serialize};
use tera::Context;

use crate::errors::{respond, OAuthRefusal, WebError};
use crate::render::page;
use crate::{auth, csrf, AppState};

/// The provider, or 404 when `oidc.enabled` is off.
fn provider(state: &AppState) -> Result<&Arc<Authorization>, WebError> {
    state.oidc.as_ref().ok_or(WebError::NotFound)
}

/// Where each endpoint is, under the auth base path.
pub(crate) mod paths {
    /// The authorization endpoint (and the consent page's form).
    pub const AUTHORIZE: &str = "/oidc/authorize";
    /// The token endpoint.
    pub const TOKEN: &str = "/oidc/token";
    /// The userinfo endpoint.
    pub const USERINFO: &str = "/oidc/userinfo";
    /// The key set.
    pub const JWKS: &str = "/oidc/jwks.json";
    /// The revocation endpoint (RFC 7009).
    pub const REVOKE: &str = "/oidc/revoke";
    /// The end-session endpoint (RP-initiated logout).
    pub const END_SESSION: &str = "/oidc/end-session";
}

/// The discovery document's path on this site: under the issuer's own path.
pub fn discovery_path(settings: &crate::WebSettings) -> String {
    format!("{}/.well-known/openid-configuration", settings.base_url.path().trim_end_matches('/'))
}

/// CORS for the endpoints a browser app calls itself (token, userinfo, discovery, the key set):
/// the answer names the request's `Origin` only when it is a registered public client's
/// ([`Authorization::allows_origin`]); any other page's script cannot read it. Never on the
/// authorization or end-session endpoints, which are navigated to, not fetched.
async fn with_cors(req: &Request, state: &AppState, mut response: Response) -> Response {
    let Some(origin) = req.header("origin") else { return response };
    let allowed = match &state.oidc {
        Some(provider) => provider.allows_origin(origin).await.unwrap_or_else(|error| {
            tracing::warn!(error = %format!("{error:#}"), "cannot check a CORS origin; not allowed");
            false
        }),
        None => false,
    };
    let headers = response.headers_mut();
    headers.insert(poem::http::header::VARY, poem::http::HeaderValue::from_static("Origin"));
    if allowed {
        if let Ok(value) = poem::http::HeaderValue::from_str(origin) {
            headers.insert(poem::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        }
    }
    response
}

/// `OPTIONS` on the token, userinfo, discovery and key-set endpoints: the CORS preflight a
/// browser sends before a request with `Authorization` (userinfo's Bearer token).
#[handler]
pub async fn preflight(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(poem::http::header::ACCESS_CONTROL_ALLOW_METHODS, poem::http::HeaderValue::from_static("GET, POST"));
    headers.insert(
        poem::http::header::ACCESS_CONTROL_ALLOW_HEADERS,
        poem::http::HeaderValue::from_static("Authorization, Content-Type"),
    );
    headers.insert(poem::http::header::ACCESS_CONTROL_MAX_AGE, poem::http::HeaderValue::from_static("600"));
    with_cors(req, &state, response).await
}

/// `GET /.well-known/openid-configuration` (OpenID Connect Discovery 1.0).
#[handler]
pub async fn discovery(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let result = provider(&state).map(|provider| {
        let endpoint = |path: &str| state.settings.absolute(&state.settings.auth_path(path));
        let document = serde_json::json!({
            "issuer": provider.issuer(),
            "authorization_endpoint": endpoint(paths::AUTHORIZE),
            "token_endpoint": endpoint(paths::TOKEN),
            "userinfo_endpoint": endpoint(paths::USERINFO),
            "jwks_uri": endpoint(paths::JWKS),
            "revocation_endpoint": endpoint(paths::REVOKE),
            "end_session_endpoint": endpoint(paths::END_SESSION),
            // Back-Channel Logout 1.0 §2.1: every ID token carries `sid`, and so does every
            // logout token.
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA"],
            "scopes_supported": ["openid", "email", "profile", "offline_access"],
            "claims_supported": [
                "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "amr", "sid", "email", "email_verified", "name"
            ],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "prompt_values_supported": ["none", "login", "consent", "select_account"],
            "authorization_response_iss_parameter_supported": true,
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        });
        json_response(document.to_string())
    });
    with_cors(req, &state, respond(req, &state, result)).await
}

/// `GET {base}/oidc/jwks.json`: every published public key.
#[handler]
pub async fn jwks(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let result = async {
        let key_set = provider(&state)?.signer().key_set().await?;
        Ok(json_response(key_set))
    };
    let response = respond(req, &state, result.await);
    with_cors(req, &state, response).await
}

fn json_response(body: String) -> Response {
    Response::builder().content_type("application/json").body(body)
}

/// The authorization request's parameters, from the query (GET) or the form (POST), with the
/// consent page's own fields.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    login_after: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
    /// The consent page's answer: `approve` or `deny`.
    decision: Option<String>,
    /// The consent page's CSRF token.
    #[serde(rename = "csrfToken")]
    csrf_token: Option<String>,
}

impl AuthorizeParams {
    fn to_request(&self) -> AuthorizationRequest {
        AuthorizationRequest {
            client_id: self.client_id.clone(),
            redirect_uri: self.redirect_uri.clone(),
            response_type: self.response_type.clone(),
            scope: self.scope.clone(),
            state: self.state.clone(),
            nonce: self.nonce.clone(),
            code_challenge: self.code_challenge.clone(),
            code_challenge_method: self.code_challenge_method.clone(),
            prompt: self.prompt.clone(),
            max_age: self.max_age.clone(),
            login_hint: self.login_hint.clone(),
            login_after: self.login_after.clone(),
            request_object: self.request.is_some() || self.request_uri.is_some(),
        }
    }

    /// The request's own parameters, to carry through a sign-in or the consent form. With
    /// `fresh_after`, `prompt=login` and `max_age` are replaced by `login_after`, so the
    /// fresh sign-in they asked for satisfies them when the person comes back.
    fn carried(&self, fresh_after: Option<i64>) -> Vec<(&'static str, String)> {
        let mut carried: Vec<(&'static str, String)> = [
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("response_type", &self.response_type),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
            ("login_hint", &self.login_hint),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
        .collect();
        match fresh_after {
            Some(at) => {
                let prompt: Vec<&str> = self
                    .prompt
                    .as_deref()
                    .unwrap_or_default()
                    .split(' ')
                    .filter(|p| !p.is_empty() && !matches!(*p, "login" | "select_account"))
                    .collect();
                if !prompt.is_empty() {
                    carried.push(("prompt", prompt.join(" ")));
                }
                carried.push(("login_after", at.to_string()));
            }
            None => {
                for (name, value) in
                    [("prompt", &self.prompt), ("max_age", &self.max_age), ("login_after", &self.login_after)]
                {
                    if let Some(value) = value {
                        carried.push((name, value.clone()));
                    }
                }
            }
        }
        carried
    }
}

/// `GET {base}/oidc/authorize`.
#[handler]
pub async fn authorize(
    req: &Request,
    state: Data<&Arc<AppState>>,
    params: poem::Result<Query<AuthorizeParams>>,
) -> Response {
    let result = async {
        let Query(params) = params.map_err(|error| WebError::BadQuery(error.to_string()))?;
        begin(req, &state, &params).await
    };
    respond(req, &state, result.await)
}

/// `POST {base}/oidc/authorize`: an authorization request sent as a form (OpenID Connect Core
/// §3.1.2.1 asks for it), or the consent page's answer (with `decision` and its CSRF token).
#[handler]
pub async fn authorize_post(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<AuthorizeParams>>,
) -> Response {
    let result = async {
        let Form(params) = form.map_err(|error| WebError::BadForm(error.to_string()))?;
        match params.decision.as_deref() {
            None => begin(req, &state, &params).await,
            Some(decision) => {
                auth::check_csrf(req, &state, params.csrf_token.as_deref())?;
                let session = auth::current_session(req, &state).await?.ok_or(WebError::SignedOut)?;
                let approved = decision == "approve";
                let outcome = provider(&state)?.decide(&params.to_request(), &session, approved).await?;
                answer(req, &state, &params, outcome, Some(session.user.email.as_str()))
            }
        }
    };
    respond(req, &state, result.await)
}

async fn begin(req: &Request, state: &AppState, params: &AuthorizeParams) -> Result<Response, WebError> {
    let session = auth::current_session(req, state).await?;
    let outcome = provider(state)?.authorize(&params.to_request(), session.as_ref()).await?;
    answer(req, state, params, outcome, session.as_ref().map(|session| session.user.email.as_str()))
}

/// One scope as the consent page lists it.
#[derive(Serialize)]
struct ScopeShown {
    name: &'static str,
    sentence: &'static str,
}

fn answer(
    req: &Request,
    state: &AppState,
    params: &AuthorizeParams,
    outcome: Authorized,
    user_email: Option<&str>,
) -> Result<Response, WebError> {
    match outcome {
        Authorized::Redirect(target) => Ok(Redirect::see_other(target.as_str()).into_response()),
        Authorized::SignIn { fresh_after, login_hint } => {
            let fresh_after = fresh_after.map(|at| at.timestamp());
            let back = format!(
                "{}?{}",
                state.settings.auth_path(paths::AUTHORIZE),
                encode_pairs(&params.carried(fresh_after))
            );
            let mut sign_in = vec![("callbackUrl", back)];
            if let Some(hint) = login_hint {
                sign_in.push(("email", hint));
            }
            Ok(Redirect::see_other(format!("{}?{}", state.settings.pages.sign_in, encode_pairs(&sign_in)))
                .into_response())
        }
        Authorized::Consent { client_name, scopes } => {
            let mut context = Context::new();
            let shown: Vec<ScopeShown> = scopes
                .iter()
                .filter_map(|scope| {
                    crate::account::scope_sentence(scope).map(|sentence| ScopeShown { name: scope.as_str(), sentence })
                })
                .collect();
            let hidden = hidden_fields(params.carried(None));
            context.insert("client_name", &client_name);
            context.insert("user_email", &user_email);
            context.insert("scopes", &shown);
            context.insert("hidden", &hidden);
            context.insert("action", &state.settings.auth_path(paths::AUTHORIZE));
            context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
            Ok(page(req, state, StatusCode::OK, "consent.html", context)?)
        }
    }
}

/// A request's parameters as the hidden fields of a page's form (the consent and logout pages
/// post them back as they came).
fn hidden_fields(pairs: impl IntoIterator<Item = (&'static str, String)>) -> Vec<serde_json::Value> {
    pairs.into_iter().map(|(name, value)| serde_json::json!({ "name": name, "value": value })).collect()
}

/// `name=value&...`, form-encoded.
fn encode_pairs(pairs: &[(&str, String)]) -> String {
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        encoded.append_pair(name, value);
    }
    encoded.finish()
}

/// The token and revocation endpoints' form: the grant, and the client's credentials when it
/// sends them in the body (`client_secret_post`, or `none` with only `client_id`).
#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// The revocation endpoint's token.
    token: Option<String>,
}

/// How the client authenticated: HTTP Basic (`client_secret_basic`, id and secret each
/// form-encoded first, RFC 6749 §2.3.1), else the body. Using both is refused, as RFC 6749
/// asks.
fn client_authentication(req: &Request, form: &TokenForm) -> Result<ClientAuthentication, OAuthRefusal> {
    let basic = req.header("authorization").and_then(|value| {
        let (scheme, credentials) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| credentials.trim().to_owned())
    });
    if let Some(credentials) = basic {
        if form.client_secret.is_some() {
            return Err(OAuthRefusal::request("use one way of client authentication, not two"));
        }
        let decoded = STANDARD
            .decode(credentials)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(OAuthRefusal::InvalidClient)?;
        let (id, secret) = decoded.split_once(':').ok_or(OAuthRefusal::InvalidClient)?;
        let decode = |part: &str| {
            url::form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        let client_id = decode(id);
        if form.client_id.as_ref().is_some_and(|named| *named != client_id) {
            return Err(OAuthRefusal::request("client_id differs from the Authorization header's"));
        }
        return Ok(ClientAuthentication::Secret { client_id, secret: decode(secret) });
    }
    match (&form.client_id, &form.client_secret) {
        (Some(client_id), Some(secret)) => {
            Ok(ClientAuthentication::Secret { client_id: client_id.clone(), secret: secret.clone() })
        }
        (Some(client_id), None) => Ok(ClientAuthentication::None { client_id: client_id.clone() }),
        (None, _) => Err(OAuthRefusal::InvalidClient),
    }
}

/// The token response (RFC 6749 §5.1, OpenID Connect Core §3.1.3.3).
#[derive(Serialize)]
struct TokenBody {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    scope: String,
}

/// `POST {base}/oidc/token`.
#[handler]
pub async fn token_endpoint(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<TokenForm>>,
) -> Response {
    let result = async {
        let provider = provider(&state)?;
        let Form(form) = form.map_err(|_| OAuthRefusal::request("the body must be a form with each parameter once"))?;
        let client = client_authentication(req, &form)?;
        let grant = match form.grant_type.as_deref() {
            Some("authorization_code") => TokenGrant::AuthorizationCode {
                code: form.code.clone().ok_or(OAuthRefusal::request("code is missing"))?,
                redirect_uri: form.redirect_uri.clone(),
                code_verifier: form.code_verifier.clone(),
            },
            Some("refresh_token") => TokenGrant::RefreshToken {
                refresh_token: form.refresh_token.clone().ok_or(OAuthRefusal::request("refresh_token is missing"))?,
                scope: form.scope.clone(),
            },
            Some(_) => return Err(OAuthRefusal::UnsupportedGrantType.into()),
            None => return Err(OAuthRefusal::request("grant_type is missing").into()),
        };
        let tokens = provider.token(&client, grant).await?;
        let body = TokenBody {
            access_token: tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            id_token: tokens.id_token,
            refresh_token: tokens.refresh_token,
            scope: tokens.scope,
        };
        let mut response = Json(body).into_response();
        response.headers_mut().insert("pragma", poem::http::HeaderValue::from_static("no-cache"));
        Ok(response)
    };
    let response = respond(req, &state, result.await);
    with_cors(req, &state, response).await
}

/// `POST {base}/oidc/revoke` (RFC 7009): 200 whether or not the token was known.
#[handler]
pub async fn revoke(req: &Request, state: Data<&Arc<AppState>>, form: poem::Result<Form<TokenForm>>) -> Response {
    let result = async {
        let provider = provider(&state)?;
        let Form(form) = form.map_err(|_| OAuthRefusal::request("the body must be a form with each parameter once"))?;
        let client = client_authentication(req, &form)?;
        let token = form.token.clone().ok_or(OAuthRefusal::request("token is missing"))?;
        provider.revoke(&client, &token).await?;
        Ok(StatusCode::OK.into_response())
    };
    let response = respond(req, &state, result.await);
    with_cors(req, &state, response).await
}

/// The userinfo response (OpenID Connect Core §5.3.2).
#[derive(Serialize)]
struct UserInfoBody {
    sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verified: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

/// `GET` and `POST {base}/oidc/userinfo`, with `Authorization: Bearer`.
#[handler]
pub async fn userinfo(req: &Request, state: Data<&Arc<AppState>>) -> Response {
    let result = async {
        let provider = provider(&state)?;
        let token = req
            .header("authorization")
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned())
            .ok_or(OAuthRefusal::InvalidToken)?;
        let info = provider.user_info(&token).await?;
        let (email, email_verified) =
            info.email.map_or((None, None), |(email, verified)| (Some(email), Some(verified)));
        Ok(Json(UserInfoBody { sub: info.sub, email, email_verified, name: info.name }).into_response())
    };
    let response = respond(req, &state, result.await);
    with_cors(req, &state, response).await
}

/// The end-session endpoint's parameters, and the confirmation form's.
#[derive(Debug, Default, Deserialize)]
pub struct EndSessionParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    /// The confirmation form's CSRF token.
    #[serde(rename = "csrfToken")]
    csrf_token: Option<String>,
}

/// `GET {base}/oidc/end-session`: signs the person out of magiclink and returns them to the
/// app's registered `post_logout_redirect_uri`. Without an ID token hint naming the person
/// signed in here, they confirm first, so a link on another site cannot sign anyone out.
#[handler]
pub async fn end_session(
    req: &Request,
    state: Data<&Arc<AppState>>,
    params: poem::Result<Query<EndSessionParams>>,
) -> Response {
    let result = async {
        let Query(params) = params.map_err(|error| WebError::BadQuery(error.to_string()))?;
        log_out(req, &state, &params, false).await
    };
    respond(req, &state, result.await)
}

/// `POST {base}/oidc/end-session`: the confirmation form (with its CSRF token), or a logout
/// request sent as a form.
#[handler]
pub async fn end_session_post(
    req: &Request,
    state: Data<&Arc<AppState>>,
    form: poem::Result<Form<EndSessionParams>>,
) -> Response {
    let result = async {
        let Form(params) = form.map_err(|error| WebError::BadForm(error.to_string()))?;
        let confirmed = params.csrf_token.is_some();
        if confirmed {
            auth::check_csrf(req, &state, params.csrf_token.as_deref())?;
        }
        log_out(req, &state, &params, confirmed).await
    };
    respond(req, &state, result.await)
}

async fn log_out(
    req: &Request,
    state: &AppState,
    params: &EndSessionParams,
    confirmed: bool,
) -> Result<Response, WebError> {
    let request = EndSessionRequest {
        id_token_hint: params.id_token_hint.clone(),
        client_id: params.client_id.clone(),
        post_logout_redirect_uri: params.post_logout_redirect_uri.clone(),
        state: params.state.clone(),
    };
    let checked = provider(state)?.end_session(&request).await?;
    let onward = checked.redirect.as_ref().map_or_else(|| "/".to_owned(), |url| url.to_string());
    let Some(session) = auth::current_session(req, state).await? else {
        return Ok(Redirect::see_other(onward).into_response());
    };
    if confirmed || checked.hinted_user.as_ref() == Some(&session.user.id) {
        auth::end_session(req, state).await?;
        return Ok(Redirect::see_other(onward).into_response());
    }
    let mut context = Context::new();
    let hidden = hidden_fields(
        [
            ("id_token_hint", &params.id_token_hint),
            ("client_id", &params.client_id),
            ("post_logout_redirect_uri", &params.post_logout_redirect_uri),
            ("state", &params.state),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|value| (name, value))),
    );
    context.insert("user", &serde_json::json!({ "email": session.user.email.as_str() }));
    context.insert("hidden", &hidden);
    context.insert("action", &state.settings.auth_path(paths::END_SESSION));
    context.insert("csrf_token", &csrf::token_for_form(req.cookie(), &state.settings)?);
    Ok(page(req, state, StatusCode::OK, "oidc_logout.html", context)?)
}

impl From<TokenError> for WebError {
    fn from(error: TokenError) -> Self {
        WebError::OAuth(match error {
            TokenError::InvalidClient => OAuthRefusal::InvalidClient,
            TokenError::InvalidGrant(description) => OAuthRefusal::InvalidGrant(description),
            TokenError::InvalidRequest(description) => OAuthRefusal::InvalidRequest(description),
            TokenError::InvalidScope => OAuthRefusal::InvalidScope,
            TokenError::RateLimited { retry_after } => OAuthRefusal::RateLimited { retry_after },
            TokenError::Unexpected(inner) => return WebError::Unexpected(inner),
        })
    }
}
