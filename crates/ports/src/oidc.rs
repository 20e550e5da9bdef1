//! The OpenID Provider: any app on any domain signs people in with magiclink through OpenID
//! Connect's authorization code flow. The person signs in the way they sign in here (link,
//! code, password, passkey); the app gets an ID token saying who and how, and tokens for
//! userinfo.
//!
//! The rules, and why (OpenID Connect Core 1.0, RFC 6749, RFC 9700):
//! - A client and its redirect URI are checked before anything is sent anywhere: an unknown
//!   client or an unregistered URI is [`AuthorizeError`] (an error page), never a redirect,
//!   so the endpoint cannot be made an open redirector. Every other refusal goes back to the
//!   app as `error=...` with its `state` and the `iss` of RFC 9207 (mix-up defence).
//! - Only the code flow, only PKCE S256 (`plain` refused); public clients must use it.
//! - A code lives 60 seconds, is bound to its client, redirect URI, PKCE challenge and nonce,
//!   and is spent by the database: the second use is `invalid_grant` and revokes everything
//!   the first use got.
//! - Refresh tokens (with `offline_access`) rotate on every use; presenting a spent one
//!   revokes its whole family, since one of the two holders is not the app.
//! - Codes, tokens and client secrets are stored only as hashes; secrets compare in constant
//!   time; the token endpoint is rate limited per client.
//! - Apps that are not the team's own (`first_party`) get the person's consent first, which
//!   is remembered per person, app and scopes, and can be withdrawn from the account page.

pub mod logout;
pub mod store;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use domain::oidc::{
    amr, person_claims, AccessToken, AccessTokenClaims, AccessTokenFormat, AccessTokenHash, AuthorizationCode, Client,
    ClientId, ClientKind, CodeChallenge, CodeGrant, IdTokenClaims, RefreshToken, Scope, Scopes,
};
use domain::{Quota, ServerSecret, UserId};
use url::Url;

use crate::clock::Clock;
use crate::random::os_random;
use crate::rate_limit::{Admission, Bucket, RateLimiter};
use crate::sessions::ActiveSession;
use crate::stores::UserStore;
use store::{
    ClientStore, CodeRedeemed, Consent, GrantStore, LiveGrant, NewCode, NewTokens, RefreshRotated, TokenSigner,
};

/// How the provider issues.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer: `server.base_url`, without a trailing slash.
    pub issuer: String,
    /// How long a code can be exchanged (60 seconds).
    pub code_lifetime: TimeDelta,
    /// How long an access token works.
    pub access_token_lifetime: TimeDelta,
    /// Opaque access tokens, or RFC 9068 JWTs.
    pub access_token_format: AccessTokenFormat,
    /// How long an ID token is valid.
    pub id_token_lifetime: TimeDelta,
    /// How long a refresh token works unless used (each use issues a new one).
    pub refresh_token_lifetime: TimeDelta,
    /// Token requests one client may make; `None` turns the limit off.
    pub token_requests_per_client: Option<Quota>,
    /// Keys the names of the rate-limit counters.
    pub secret: ServerSecret,
}

/// The OpenID Provider's use cases.
pub struct Authorization {
    clients: Arc<dyn ClientStore>,
    grants: Arc<dyn GrantStore>,
    users: Arc<dyn UserStore>,
    signer: Arc<dyn TokenSigner>,
    limiter: Arc<dyn RateLimiter>,
    clock: Arc<dyn Clock>,
    settings: OidcSettings,
}

/// An authorization request's parameters as they came (query or form), unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `response_type`.
    pub response_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`, repeated to the app.
    pub state: Option<String>,
    /// `nonce`, repeated in the ID token.
    pub nonce: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// `prompt`: `none`, `login`, `consent` (space-separated).
    pub prompt: Option<String>,
    /// `max_age`, in seconds.
    pub max_age: Option<String>,
    /// `login_hint`: an address to prefill.
    pub login_hint: Option<String>,
    /// magiclink's own: set on the way back from a sign-in that `prompt=login` or `max_age`
    /// asked for, so that the fresh sign-in (at or after this Unix time) satisfies them.
    pub login_after: Option<String>,
    /// `request` or `request_uri` was sent (request objects are not supported).
    pub request_object: bool,
}

/// The longest `state` or `nonce` carried (they come back in URLs and tokens).
pub const MAX_ECHOED_PARAMETER: usize = 1024;

/// What the authorization endpoint does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// Back to the app: with a code, or with an OAuth error.
    Redirect(Url),
    /// The person signs in first, then comes back to the same request.
    SignIn {
        /// When a session exists but the request wants a fresh sign-in (`prompt=login`,
        /// `max_age`): only a sign-in at or after this instant satisfies it. The request comes
        /// back with it as `login_after`, in place of what asked for it, so it is asked once.
        fresh_after: Option<DateTime<Utc>>,
        /// The address to prefill, when the app gave one.
        login_hint: Option<String>,
    },
    /// The person is asked whether the app may have these scopes.
    Consent {
        /// The app's name.
        client_name: String,
        /// What it asks for.
        scopes: Scopes,
    },
}

/// An authorization request that cannot be answered by redirecting to the app: shown to the
/// person as an error page.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    /// `client_id` is missing, malformed or not registered.
    #[error("unknown client")]
    UnknownClient,
    /// `redirect_uri` is missing or not one the client registered.
    #[error("redirect_uri is not registered for this client")]
    UnregisteredRedirectUri,
    /// Storage or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// How a client authenticated at the token or revocation endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuthentication {
    /// `client_secret_basic` or `client_secret_post`: an id and a secret.
    Secret {
        /// The id.
        client_id: String,
        /// The secret.
        secret: String,
    },
    /// `none`: a public client names itself.
    None {
        /// The id.
        client_id: String,
    },
}

/// A token request's grant, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenGrant {
    /// `grant_type=authorization_code`.
    AuthorizationCode {
        /// `code`.
        code: String,
        /// `redirect_uri`, which must repeat the authorization request's.
        redirect_uri: Option<String>,
        /// `code_verifier`.
        code_verifier: Option<String>,
    },
    /// `grant_type=refresh_token`.
    RefreshToken {
        /// `refresh_token`.
        refresh_token: String,
        /// `scope`, which may only narrow what was granted.
        scope: Option<String>,
    },
}

/// A successful token response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The access token.
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// The signed ID token.
    pub id_token: String,
    /// A new refresh token, with `offline_access`.
    pub refresh_token: Option<String>,
    /// The scopes granted.
    pub scope: String,
}

/// A token request refused, as RFC 6749 §5.2 names it.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The client is unknown or its secret wrong (401).
    #[error("invalid_client")]
    InvalidClient,
    /// The code or refresh token is unknown, spent, expired, another client's, or the PKCE
    /// verifier or redirect URI does not match. The description says which, for the app's
    /// developer; it names nothing of the person.
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    /// A parameter is missing or malformed.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// A refresh asked for scopes beyond those granted.
    #[error("invalid_scope")]
    InvalidScope,
    /// Too many token requests from this client.
    #[error("rate limited")]
    RateLimited {
        /// How long until it may ask again.
        retry_after: TimeDelta,
    },
    /// Storage, signing or randomness failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// What userinfo says (OpenID Connect Core §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user's id.
    pub sub: String,
    /// With `email`: the address, verified.
    pub email: Option<(String, bool)>,
    /// With `profile`: the name.
    pub name: Option<String>,
}

/// Why userinfo answered nothing.
#[derive(Debug, thiserror::Error)]
pub enum UserInfoError {
    /// The access token is missing, unknown, expired or revoked (`invalid_token`, 401).
    #[error("invalid_token")]
    InvalidToken,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// An RP-initiated logout request (OpenID Connect RP-Initiated Logout 1.0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndSessionRequest {
    /// `id_token_hint`.
    pub id_token_hint: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `post_logout_redirect_uri`.
    pub post_logout_redirect_uri: Option<String>,
    /// `state`.
    pub state: Option<String>,
}

/// Where a logout leads, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndSession {
    /// The registered `post_logout_redirect_uri` with `state`, if one was asked for.
    pub redirect: Option<Url>,
    /// The person the hint names, when a valid hint came: a session of theirs may be ended
    /// at once; otherwise the person confirms first (a logout link is no CSRF tool).
    pub hinted_user: Option<UserId>,
}

/// Why a logout request was refused (an error page; nothing is redirected to).
#[derive(Debug, thiserror::Error)]
pub enum EndSessionError {
    /// The `id_token_hint` is not an ID token of ours.
    #[error("id_token_hint is not an ID token this provider issued")]
    InvalidHint,
    /// `post_logout_redirect_uri` without a client to check it against, or not registered.
    #[error("post_logout_redirect_uri is not registered for this client")]
    UnregisteredRedirectUri,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Why an app's access was not withdrawn.
#[derive(Debug, thiserror::Error)]
pub enum RevokeAppError {
    /// The person had not signed in to that app.
    #[error("no such app")]
    NotFound,
    /// Storage failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Tokens just made for a client, before they are written into its answer.
struct Minted {
    access: AccessToken,
    refresh: Option<RefreshToken>,
}

/// A request's `prompt`, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Prompt {
    none: bool,
    login: bool,
    consent: bool,
}

/// An authorization request that passed every check that does not need the person.
#[derive(Debug)]
struct Checked {
    client: Client,
    redirect_uri: String,
    target: Url,
    scopes: Scopes,
    state: Option<String>,
    nonce: Option<String>,
    challenge: Option<CodeChallenge>,
    prompt: Prompt,
    max_age: Option<i64>,
    login_after: Option<i64>,
    login_hint: Option<String>,
}

impl Authorization {
    /// The provider over its stores, signer and limiter.
    pub fn new(
        clients: Arc<dyn ClientStore>,
        grants: Arc<dyn GrantStore>,
        users: Arc<dyn UserStore>,
        signer: Arc<dyn TokenSigner>,
        limiter: Arc<dyn RateLimiter>,
        clock: Arc<dyn Clock>,
        settings: OidcSettings,
    ) -> Self {
        Self { clients, grants, users, signer, limiter, clock, settings }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The signer, for the JWKS endpoint.
    pub fn signer(&self) -> &Arc<dyn TokenSigner> {
        &self.signer
    }

    /// Answers an authorization request for the person signed in with `session` (if any).
    ///
    /// # Errors
    /// An [`AuthorizeError`] when the client or redirect URI cannot be trusted with a redirect.
    pub async fn authorize(
        &self,
        request: &AuthorizationRequest,
        session: Option<&ActiveSession>,
    ) -> Result<Authorized, AuthorizeError> {
        let checked = match self.check(request).await? {
            Ok(checked) => checked,
            Err(refusal) => return Ok(Authorized::Redirect(refusal)),
        };
        let now = self.clock.now();
        let Some(session) = session else {
            if checked.prompt.none {
                return Ok(self.refuse(&checked, "login_required", "the person is not signed in"));
            }
            return Ok(Authorized::SignIn { fresh_after: None, login_hint: checked.login_hint });
        };
        let signed_in_after = |at: i64| session.signed_in_at.timestamp() >= at;
        let fresh_enough = checked.login_after.is_some_and(signed_in_after);
        let too_old = checked.max_age.is_some_and(|max_age| (now - session.signed_in_at).num_seconds() > max_age);
        // `login_after` stands for the `prompt=login` or `max_age` it replaced.
        let wants_fresh = checked.prompt.login || too_old || checked.login_after.is_some();
        if wants_fresh && !fresh_enough {
            if checked.prompt.none {
                return Ok(self.refuse(&checked, "login_required", "a fresh sign-in is needed"));
            }
            return Ok(Authorized::SignIn { fresh_after: Some(now), login_hint: checked.login_hint });
        }
        if !checked.client.first_party {
            let remembered = self.grants.find_consent(&session.user.id, &checked.client.id).await?;
            let covered = remembered.is_some_and(|granted| granted.includes(&checked.scopes));
            if checked.prompt.consent || !covered {
                if checked.prompt.none {
                    return Ok(self.refuse(&checked, "consent_required", "the person has not consented"));
                }
                return Ok(Authorized::Consent { client_name: checked.client.name, scopes: checked.scopes });
            }
        }
        Ok(Authorized::Redirect(self.issue_code(checked, session, now).await?))
    }

    /// The person's answer on the consent page: a code (and the consent remembered) when they
    /// approved, `access_denied` to the app when not.
    ///
    /// # Errors
    /// As [`Authorization::authorize`].
    pub async fn decide(
        &self,
        request: &AuthorizationRequest,
        session: &ActiveSession,
        approved: bool,
    ) -> Result<Authorized, AuthorizeError> {
        let checked = match self.check(request).await? {
            Ok(checked) => checked,
            Err(refusal) => return Ok(Authorized::Redirect(refusal)),
        };
        if !approved {
            return Ok(self.refuse(&checked, "access_denied", "the person declined"));
        }
        let now = self.clock.now();
        self.grants.save_consent(&session.user.id, &checked.client.id, &checked.scopes, now).await?;
        Ok(Authorized::Redirect(self.issue_code(checked, session, now).await?))
    }

    /// Checks what can be checked without the person. `Err` for a client or redirect URI that
    /// cannot be redirected to; `Ok(Err(url))` for a refusal that goes back to the app.
    async fn check(&self, request: &AuthorizationRequest) -> Result<Result<Checked, Url>, AuthorizeError> {
        let client_id = request.client_id.as_deref().ok_or(AuthorizeError::UnknownClient)?;
        let client_id = ClientId::parse(client_id).map_err(|_| AuthorizeError::UnknownClient)?;
        let client = self.clients.find_client(&client_id).await?.ok_or(AuthorizeError::UnknownClient)?;
        let redirect_uri = request.redirect_uri.clone().ok_or(AuthorizeError::UnregisteredRedirectUri)?;
        if !domain::oidc::redirect_uri_matches(&client.redirect_uris, &redirect_uri) {
            return Err(AuthorizeError::UnregisteredRedirectUri);
        }
        let target = Url::parse(&redirect_uri).map_err(|_| AuthorizeError::UnregisteredRedirectUri)?;
        let state = request.state.clone().filter(|state| !state.is_empty());
        let back = |error: &str, description: &str| {
            Err(error_redirect(&target, error, description, state.as_deref(), &self.settings.issuer))
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_ECHOED_PARAMETER) {
            return Ok(back("invalid_request", "state is too long"));
        }
        if request.request_object {
            return Ok(back("request_not_supported", "request objects are not supported"));
        }
        if request.response_type.as_deref() != Some("code") {
            return Ok(back("unsupported_response_type", "only response_type=code is supported"));
        }
        let Ok(scopes) = Scopes::parse(request.scope.as_deref().unwrap_or_default()) else {
            return Ok(back("invalid_scope", "the scope must include openid"));
        };
        let challenge = match &request.code_challenge {
            Some(challenge) => match CodeChallenge::parse(challenge, request.code_challenge_method.as_deref()) {
                Ok(challenge) => Some(challenge),
                Err(refusal) => return Ok(back("invalid_request", &refusal.to_string())),
            },
            None if client.kind == ClientKind::Public => {
                return Ok(back("invalid_request", "a public client must use PKCE (code_challenge, S256)"))
            }
            None => None,
        };
        let Some(prompt) = parse_prompt(request.prompt.as_deref()) else {
            return Ok(back("invalid_request", "prompt is none, login or consent, and none stands alone"));
        };
        let max_age = match request.max_age.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(seconds)) if seconds >= 0 => Some(seconds),
            Some(_) => return Ok(back("invalid_request", "max_age is a number of seconds")),
        };
        let nonce = request.nonce.clone().filter(|nonce| !nonce.is_empty());
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_ECHOED_PARAMETER) {
            return Ok(back("invalid_request", "nonce is too long"));
        }
        Ok(Ok(Checked {
            client,
            redirect_uri,
            target,
            scopes,
            state,
            nonce,
            challenge,
            prompt,
            max_age,
            login_after: request.login_after.as_deref().and_then(|at| at.parse().ok()),
            login_hint: request.login_hint.clone().filter(|hint| !hint.is_empty()),
        }))
    }

    fn refuse(&self, checked: &Checked, error: &str, description: &str) -> Authorized {
        Authorized::Redirect(error_redirect(
            &checked.target,
            error,
            description,
            checked.state.as_deref(),
            &self.settings.issuer,
        ))
    }

    async fn issue_code(&self, checked: Checked, session: &ActiveSession, now: DateTime<Utc>) -> anyhow::Result<Url> {
        let code = AuthorizationCode::from_random_bytes(os_random()?);
        self.grants
            .save_code(&NewCode {
                hash: code.hash(),
                grant: CodeGrant {
                    client_id: checked.client.id,
                    redirect_uri: checked.redirect_uri,
                    challenge: checked.challenge,
                    nonce: checked.nonce,
                    scopes: checked.scopes,
                    user_id: session.user.id.clone(),
                    session_id: session.session_id.clone(),
                    auth_time: session.signed_in_at,
                    method: session.method,
                    expires: now + self.settings.code_lifetime,
                },
                created_at: now,
            })
            .await?;
        Ok(answer_to_app(&checked.target, &[("code", &code.encode())], checked.state.as_deref(), &self.settings.issuer))
    }

    /// Answers a token request.
    ///
    /// # Errors
    /// A [`TokenError`], with the OAuth error code it stands for.
    pub async fn token(&self, client: &ClientAuthentication, grant: TokenGrant) -> Result<Tokens, TokenError> {
        let client = self.authenticate(client).await?;
        let now = self.clock.now();
        match grant {
            TokenGrant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                self.exchange_code(&client, &code, redirect_uri.as_deref(), code_verifier.as_deref(), now).await
            }
            TokenGrant::RefreshToken { refresh_token, scope } => {
                self.refresh(&client, &refresh_token, scope.as_deref(), now).await
            }
        }
    }

    /// Checks a client's credentials, counting the request against its limit first (so secrets
    /// cannot be guessed faster than the limit).
    async fn authenticate(&self, authentication: &ClientAuthentication) -> Result<Client, TokenError> {
        let (client_id, secret) = match authentication {
            ClientAuthentication::Secret { client_id, secret } => (client_id, Some(secret)),
            ClientAuthentication::None { client_id } => (client_id, None),
        };
        let client_id = ClientId::parse(client_id).map_err(|_| TokenError::InvalidClient)?;
        if let Some(quota) = self.settings.token_requests_per_client {
            let bucket = Bucket::keyed(&self.settings.secret, "oidc-token-client", client_id.as_str(), quota);
            if let Admission::Refused { retry_after, .. } = self.limiter.acquire(&[bucket], self.clock.now()).await? {
                return Err(TokenError::RateLimited { retry_after });
            }
        }
        let client = self.clients.find_client(&client_id).await?.ok_or(TokenError::InvalidClient)?;
        let authenticated = match (client.kind, secret) {
            (ClientKind::Confidential, Some(secret)) => client.secret_matches(secret),
            (ClientKind::Public, None) => true,
            _ => false,
        };
        if authenticated {
            Ok(client)
        } else {
            Err(TokenError::InvalidClient)
        }
    }

    async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Tokens, TokenError> {
        let code = AuthorizationCode::parse(code).map_err(|_| TokenError::InvalidGrant("unknown code"))?;
        let (grant, grant_id) = match self.grants.redeem_code(&code.hash(), now).await? {
            CodeRedeemed::Redeemed(grant, grant_id) => (*grant, grant_id),
            CodeRedeemed::Reused => {
                tracing::warn!(client = %client.id, "an authorization code was used twice: its tokens are revoked");
                return Err(TokenError::InvalidGrant("the code was used already"));
            }
            CodeRedeemed::Unknown => return Err(TokenError::InvalidGrant("unknown code")),
        };
        if grant.client_id != client.id {
            return Err(TokenError::InvalidGrant("the code was issued to another client"));
        }
        if grant.expires <= now {
            return Err(TokenError::InvalidGrant("the code expired"));
        }
        if redirect_uri != Some(grant.redirect_uri.as_str()) {
            return Err(TokenError::InvalidGrant("redirect_uri differs from the authorization request's"));
        }
        match (&grant.challenge, verifier) {
            (Some(challenge), Some(verifier)) => match challenge.verify(verifier) {
                Ok(true) => {}
                Ok(false) => return Err(TokenError::InvalidGrant("code_verifier does not match the challenge")),
                Err(_) => return Err(TokenError::InvalidRequest("code_verifier is malformed")),
            },
            (Some(_), None) => return Err(TokenError::InvalidGrant("code_verifier is missing")),
            (None, Some(_)) => return Err(TokenError::InvalidGrant("the authorization request had no challenge")),
            (None, None) => {}
        }
        let Some(user) = self.users.find(&grant.user_id).await? else {
            return Err(TokenError::InvalidGrant("the person's account was removed"));
        };
        let live = LiveGrant {
            id: grant_id,
            client_id: grant.client_id,
            user,
            scopes: grant.scopes,
            session_id: grant.session_id,
            auth_time: grant.auth_time,
            method: grant.method,
        };
        let (minted, stored) = self.mint(live.scopes.contains(Scope::OfflineAccess), now)?;
        self.grants.save_tokens(&live.id, &stored).await?;
        self.finish(client, &live, grant.nonce, minted, now).await
    }

    async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Tokens, TokenError> {
        let presented =
            RefreshToken::parse(refresh_token).map_err(|_| TokenError::InvalidGrant("unknown refresh token"))?;
        let (minted, replacement) = self.mint(true, now)?;
        let live = match self.grants.rotate_refresh_token(&client.id, &presented.hash(), &replacement, now).await? {
            RefreshRotated::Rotated(live) => *live,
            RefreshRotated::Reused => {
                tracing::warn!(client = %client.id, "a spent refresh token was presented: its family is revoked");
                return Err(TokenError::InvalidGrant("the refresh token was used already"));
            }
            RefreshRotated::Invalid => {
                return Err(TokenError::InvalidGrant("unknown, expired or revoked refresh token"))
            }
        };
        if let Some(asked) = scope {
            let asked = Scopes::parse(asked).map_err(|_| TokenError::InvalidScope)?;
            if !live.scopes.includes(&asked) {
                return Err(TokenError::InvalidScope);
            }
        }
        self.finish(client, &live, None, minted, now).await
    }

    /// A new access token (and refresh token, with `with_refresh`): the tokens for the client,
    /// and their hashes and expiries for the store.
    fn mint(&self, with_refresh: bool, now: DateTime<Utc>) -> anyhow::Result<(Minted, NewTokens)> {
        let access = AccessToken::from_random_bytes(os_random()?);
        let refresh = with_refresh.then(|| os_random().map(RefreshToken::from_random_bytes)).transpose()?;
        let stored = NewTokens {
            access: (access.hash(), now + self.settings.access_token_lifetime),
            refresh: refresh.as_ref().map(|token| (token.hash(), now + self.settings.refresh_token_lifetime)),
            created_at: now,
        };
        Ok((Minted { access, refresh }, stored))
    }

    /// The token response for `minted` tokens of a grant: the ID token signed, and the access
    /// token as the configured format has it.
    async fn finish(
        &self,
        client: &Client,
        live: &LiveGrant,
        nonce: Option<String>,
        minted: Minted,
        now: DateTime<Utc>,
    ) -> Result<Tokens, TokenError> {
        let (email, name) = person_claims(&live.user.email, live.user.name.as_ref(), &live.scopes);
        let claims = IdTokenClaims {
            iss: self.settings.issuer.clone(),
            sub: live.user.id.as_str().to_owned(),
            aud: client.id.as_str().to_owned(),
            exp: (now + self.settings.id_token_lifetime).timestamp(),
            iat: now.timestamp(),
            auth_time: live.auth_time.timestamp(),
            nonce,
            amr: amr(live.method),
            sid: live.session_id.as_str().to_owned(),
            email,
            name,
        };
        let id_token = self.signer.sign_id_token(&claims, client.id_token_algorithm).await?;
        let access_token = match self.settings.access_token_format {
            AccessTokenFormat::Opaque => minted.access.encode(),
            // The store keeps the minted token's hash; the app gets a JWT naming that hash,
            // which only this provider's key could have signed.
            AccessTokenFormat::Jwt => {
                let access = AccessTokenClaims {
                    iss: self.settings.issuer.clone(),
                    sub: live.user.id.as_str().to_owned(),
                    client_id: client.id.as_str().to_owned(),
                    exp: (now + self.settings.access_token_lifetime).timestamp(),
                    iat: now.timestamp(),
                    auth_time: live.auth_time.timestamp(),
                    jti: minted.access.hash().to_hex(),
                    scope: live.scopes.to_parameter(),
                };
                self.signer.sign_access_token(&access).await?
            }
        };
        Ok(Tokens {
            access_token,
            expires_in: self.settings.access_token_lifetime.num_seconds(),
            id_token,
            refresh_token: minted.refresh.map(|token| token.encode()),
            scope: live.scopes.to_parameter(),
        })
    }

    /// The stored hash an access token stands for: an opaque token's own, or the one a JWT of
    /// ours names (`None` for anything else).
    async fn access_token_hash(&self, presented: &str) -> anyhow::Result<Option<AccessTokenHash>> {
        if let Ok(opaque) = AccessToken::parse(presented) {
            return Ok(Some(opaque.hash()));
        }
        if presented.split('.').count() != 3 {
            return Ok(None);
        }
        let jti = self.signer.check_access_token(presented, &self.settings.issuer).await?;
        Ok(jti.and_then(|jti| AccessTokenHash::from_hex(&jti).ok()))
    }

    /// Revokes a token of the authenticated client (RFC 7009): a refresh token takes its whole
    /// family with it. An unknown token, or another client's, changes nothing and is no error.
    ///
    /// # Errors
    /// [`TokenError::InvalidClient`] or a storage failure.
    pub async fn revoke(&self, client: &ClientAuthentication, token: &str) -> Result<(), TokenError> {
        let client = self.authenticate(client).await?;
        let now = self.clock.now();
        if let Ok(refresh) = RefreshToken::parse(token) {
            self.grants.revoke_refresh_token(&client.id, &refresh.hash(), now).await?;
        }
        if let Some(access) = self.access_token_hash(token).await? {
            self.grants.revoke_access_token(&client.id, &access).await?;
        }
        Ok(())
    }

    /// Who an access token speaks for, by the scopes it was granted.
    ///
    /// # Errors
    /// [`UserInfoError::InvalidToken`] for anything but a live access token.
    pub async fn user_info(&self, access_token: &str) -> Result<UserInfo, UserInfoError> {
        let hash = self.access_token_hash(access_token).await?.ok_or(UserInfoError::InvalidToken)?;
        let live = self.grants.find_access_token(&hash, self.clock.now()).await?;
        let live = live.ok_or(UserInfoError::InvalidToken)?;
        let (email, name) = person_claims(&live.user.email, live.user.name.as_ref(), &live.scopes);
        Ok(UserInfo { sub: live.user.id.as_str().to_owned(), email, name })
    }

    /// Checks a logout request: where it may lead afterwards, and whom its hint names.
    ///
    /// # Errors
    /// An [`EndSessionError`] for a hint that is not ours or an unregistered redirect.
    pub async fn end_session(&self, request: &EndSessionRequest) -> Result<EndSession, EndSessionError> {
        let hint = match request.id_token_hint.as_deref().filter(|hint| !hint.is_empty()) {
            Some(token) => Some(
                self.signer
                    .check_id_token_hint(token, &self.settings.issuer)
                    .await?
                    .ok_or(EndSessionError::InvalidHint)?,
            ),
            None => None,
        };
        let named = request.client_id.as_deref().map(ClientId::parse).transpose().ok().flatten();
        if let (Some(hint), Some(named)) = (&hint, &named) {
            if hint.client_id != *named {
                return Err(EndSessionError::InvalidHint);
            }
        }
        let redirect = match request.post_logout_redirect_uri.as_deref() {
            None => None,
            Some(uri) => {
                let client_id = hint
                    .as_ref()
                    .map(|h| h.client_id.clone())
                    .or(named)
                    .ok_or(EndSessionError::UnregisteredRedirectUri)?;
                let client =
                    self.clients.find_client(&client_id).await?.ok_or(EndSessionError::UnregisteredRedirectUri)?;
                if !client.post_logout_redirect_uris.iter().any(|allowed| allowed.as_str() == uri) {
                    return Err(EndSessionError::UnregisteredRedirectUri);
                }
                let mut target = Url::parse(uri).map_err(|_| EndSessionError::UnregisteredRedirectUri)?;
                if let Some(state) =
                    request.state.as_deref().filter(|s| !s.is_empty() && s.len() <= MAX_ECHOED_PARAMETER)
                {
                    target.query_pairs_mut().append_pair("state", state);
                }
                Some(target)
            }
        };
        Ok(EndSession { redirect, hinted_user: hint.map(|hint| hint.user_id) })
    }

    /// Whether a browser page at `origin` (`https://spa.example.com`) may read the answers of
    /// the token, userinfo, discovery and key-set endpoints (CORS): only a registered public
    /// client's, the origin of one of its redirect URIs. A confidential client calls from its
    /// server, where CORS does not apply, so its origins are not opened.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn allows_origin(&self, origin: &str) -> anyhow::Result<bool> {
        let clients = self.clients.list_clients().await?;
        Ok(clients.iter().filter(|client| client.kind == ClientKind::Public).any(|client| {
            client
                .redirect_uris
                .iter()
                .any(|uri| uri.origin().is_tuple() && uri.origin().ascii_serialization() == origin)
        }))
    }

    /// The apps the person let in, newest first.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn apps(&self, user_id: &UserId) -> anyhow::Result<Vec<Consent>> {
        self.grants.list_consents(user_id).await
    }

    /// Withdraws the person's consent to an app, and its refresh tokens with it.
    ///
    /// # Errors
    /// [`RevokeAppError::NotFound`] when they had none.
    pub async fn revoke_app(&self, user_id: &UserId, client_id: &str) -> Result<(), RevokeAppError> {
        let client_id = ClientId::parse(client_id).map_err(|_| RevokeAppError::NotFound)?;
        if self.grants.revoke_consent(user_id, &client_id, self.clock.now()).await? {
            Ok(())
        } else {
            Err(RevokeAppError::NotFound)
        }
    }

    /// Deletes expired codes and tokens, and revoked grants, older than `cutoff`.
    ///
    /// # Errors
    /// On a storage failure.
    pub async fn purge_expired(&self, cutoff: DateTime<Utc>) -> anyhow::Result<u64> {
        self.grants.purge_expired_grants(cutoff).await
    }
}

/// `prompt`'s values: `none`, `login`, `consent` (and `select_account`, which magiclink, with
/// one account per browser, treats as `login`). `None` for an unknown value or `none` with
/// another.
fn parse_prompt(parameter: Option<&str>) -> Option<Prompt> {
    let mut prompt = Prompt::default();
    let mut count = 0;
    for value in parameter.unwrap_or_default().split(' ').filter(|value| !value.is_empty()) {
        count += 1;
        match value {
            "none" => prompt.none = true,
            "login" | "select_account" => prompt.login = true,
            "consent" => prompt.consent = true,
            _ => return None,
        }
    }
    (!prompt.none || count == 1).then_some(prompt)
}

/// The app's redirect URI with an OAuth error, its `state` and our `iss`.
fn error_redirect(target: &Url, error: &str, description: &str, state: Option<&str>, issuer: &str) -> Url {
    answer_to_app(target, &[("error", error), ("error_description", description)], state, issuer)
}

/// The app's redirect URI with the authorization response's parameters (a code, or an
/// error), then its `state` and our `iss` (RFC 9207), as every answer to the app carries them.
fn answer_to_app(target: &Url, parameters: &[(&str, &str)], state: Option<&str>, issuer: &str) -> Url {
    let mut target = target.clone();
    {
        let mut query = target.query_pairs_mut();
        query.extend_pairs(parameters);
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    target
}
