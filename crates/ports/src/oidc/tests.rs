//! Unit tests of the OpenID Provider's use cases against mockall mocks of every port: what is
//! decided before any redirect, what a code and a refresh token may and may not do, and that a
//! refusal never reaches a store it should not.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::oidc::{Client, ClientId, ClientKind, ClientSecret, CodeChallenge, CodeGrant, Scopes, SigningAlgorithm};
use domain::{EmailAddress, ServerSecret, SessionId, SignInMethod, User, UserId};
use mockall::predicate::always;

use super::store::{
    CodeRedeemed, GrantId, LiveGrant, MockClientStore, MockGrantStore, MockTokenSigner, RefreshRotated,
};
use super::{
    Authorization, AuthorizationRequest, AuthorizeError, Authorized, ClientAuthentication, OidcSettings, TokenError,
    TokenGrant,
};
use crate::clock::MockClock;
use crate::rate_limit::MockRateLimiter;
use crate::stores::MockUserStore;

const CALLBACK: &str = "https://app.example.com/cb";
/// RFC 7636's example.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).single().expect("valid date")
}

fn user() -> User {
    User {
        id: UserId::parse("01900000-0000-7000-8000-0000000000aa").expect("an id"),
        email: EmailAddress::parse("a@example.com").expect("valid"),
        name: None,
        image: None,
        email_verified: Some(now()),
    }
}

fn secret() -> ClientSecret {
    ClientSecret::from_random_bytes([5; 32])
}

fn client(kind: ClientKind, first_party: bool) -> Client {
    Client {
        id: ClientId::parse("app").expect("id"),
        name: "App".to_owned(),
        kind,
        secret_hash: (kind == ClientKind::Confidential).then(|| secret().hash()),
        redirect_uris: vec![url::Url::parse(CALLBACK).expect("URL")],
        post_logout_redirect_uris: vec![],
        first_party,
        backchannel_logout_uri: None,
        id_token_algorithm: SigningAlgorithm::Rs256,
        from_config: false,
        created_at: now(),
    }
}

fn session(signed_in_minutes_ago: i64) -> crate::ActiveSession {
    crate::ActiveSession {
        session_id: SessionId::parse("01900000-0000-7000-8000-000000000001").expect("an id"),
        user: user(),
        expires: now() + TimeDelta::days(1),
        signed_in_at: now() - TimeDelta::minutes(signed_in_minutes_ago),
        extended: false,
        method: SignInMethod::Passkey,
    }
}

fn request(extra: &[(&str, &str)]) -> AuthorizationRequest {
    let mut request = AuthorizationRequest {
        client_id: Some("app".to_owned()),
        redirect_uri: Some(CALLBACK.to_owned()),
        response_type: Some("code".to_owned()),
        scope: Some("openid email".to_owned()),
        state: Some("s".to_owned()),
        nonce: Some("n".to_owned()),
        code_challenge: Some(CHALLENGE.to_owned()),
        code_challenge_method: Some("S256".to_owned()),
        ..AuthorizationRequest::default()
    };
    for (name, value) in extra {
        let value = (!value.is_empty()).then(|| (*value).to_owned());
        match *name {
            "client_id" => request.client_id = value,
            "redirect_uri" => request.redirect_uri = value,
            "prompt" => request.prompt = value,
            "max_age" => request.max_age = value,
            "code_challenge" => request.code_challenge = value,
            _ => panic!("unknown parameter {name}"),
        }
    }
    request
}

/// The ports a test sets expectations on; any call without an expectation fails the test.
#[derive(Default)]
struct Ports {
    clients: MockClientStore,
    grants: MockGrantStore,
    users: MockUserStore,
    signer: MockTokenSigner,
    limiter: MockRateLimiter,
}

impl Ports {
    fn with_client(mut self, client: Client) -> Self {
        self.clients.expect_find_client().returning(move |_| Ok(Some(client.clone())));
        self
    }

    fn build(self) -> Authorization {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        Authorization::new(
            Arc::new(self.clients),
            Arc::new(self.grants),
            Arc::new(self.users),
            Arc::new(self.signer),
            Arc::new(self.limiter),
            Arc::new(clock),
            OidcSettings {
                issuer: "https://auth.example.com".to_owned(),
                code_lifetime: TimeDelta::seconds(60),
                access_token_lifetime: TimeDelta::hours(1),
                access_token_format: domain::oidc::AccessTokenFormat::Opaque,
                id_token_lifetime: TimeDelta::hours(1),
                refresh_token_lifetime: TimeDelta::days(30),
                token_requests_per_client: None,
                secret: ServerSecret::new(*b"oidc-test-secret-oidc-test-secre"),
            },
        )
    }
}

fn query(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn an_unknown_client_or_redirect_uri_is_refused_before_anything_is_stored_or_redirected() {
    let mut ports = Ports::default();
    ports
        .clients
        .expect_find_client()
        .returning(|id| Ok((id.as_str() == "app").then(|| client(ClientKind::Public, true))));
    let provider = ports.build();
    let session = session(1);
    let unknown = provider.authorize(&request(&[("client_id", "other")]), Some(&session)).await;
    assert!(matches!(unknown, Err(AuthorizeError::UnknownClient)));
    let missing = provider.authorize(&request(&[("client_id", "")]), Some(&session)).await;
    assert!(matches!(missing, Err(AuthorizeError::UnknownClient)));
    for uri in ["https://evil.example/cb", "https://app.example.com/cb/x", ""] {
        let refused = provider.authorize(&request(&[("redirect_uri", uri)]), Some(&session)).await;
        assert!(matches!(refused, Err(AuthorizeError::UnregisteredRedirectUri)), "{uri}");
    }
}

#[tokio::test]
async fn a_first_party_app_gets_a_code_bound_to_the_request_and_the_session() {
    let mut ports = Ports::default().with_client(client(ClientKind::Public, true));
    ports
        .grants
        .expect_save_code()
        .withf(|code| {
            let grant = &code.grant;
            grant.redirect_uri == CALLBACK
                && grant.nonce.as_deref() == Some("n")
                && grant.challenge.as_ref().map(CodeChallenge::encode).as_deref() == Some(CHALLENGE)
                && grant.expires == now() + TimeDelta::seconds(60)
                && grant.method == SignInMethod::Passkey
                && grant.scopes.to_parameter() == "openid email"
        })
        .times(1)
        .returning(|_| Ok(()));
    let outcome = ports.build().authorize(&request(&[]), Some(&session(1))).await.expect("authorized");
    let Authorized::Redirect(target) = outcome else { panic!("a redirect, not {outcome:?}") };
    let params = query(&target);
    assert_eq!(params["state"], "s");
    assert_eq!(params["iss"], "https://auth.example.com");
    assert_eq!(params["code"].len(), 43);
}

#[tokio::test]
async fn signed_out_or_stale_sessions_sign_in_first_and_prompt_none_says_so_to_the_app() {
    let provider = Ports::default().with_client(client(ClientKind::Public, true)).build();
    let signed_out = provider.authorize(&request(&[]), None).await.expect("answered");
    assert_eq!(signed_out, Authorized::SignIn { fresh_after: None, login_hint: None });
    let stale = provider.authorize(&request(&[("max_age", "300")]), Some(&session(10))).await.expect("answered");
    assert_eq!(stale, Authorized::SignIn { fresh_after: Some(now()), login_hint: None });
    let login = provider.authorize(&request(&[("prompt", "login")]), Some(&session(0))).await.expect("answered");
    assert_eq!(login, Authorized::SignIn { fresh_after: Some(now()), login_hint: None });
    let silent = provider.authorize(&request(&[("prompt", "none")]), None).await.expect("answered");
    let Authorized::Redirect(target) = silent else { panic!("a redirect") };
    assert_eq!(query(&target)["error"], "login_required");
}

#[tokio::test]
async fn another_app_needs_consent_unless_remembered_for_every_scope_it_asks() {
    let mut ports = Ports::default().with_client(client(ClientKind::Confidential, false));
    ports.grants.expect_find_consent().returning(|_, _| Ok(Some(Scopes::parse("openid").expect("scopes"))));
    let outcome = ports.build().authorize(&request(&[]), Some(&session(1))).await.expect("answered");
    assert!(matches!(outcome, Authorized::Consent { ref client_name, .. } if client_name == "App"), "{outcome:?}");
}

#[tokio::test]
async fn a_public_client_without_pkce_goes_back_with_invalid_request_and_no_code() {
    let provider = Ports::default().with_client(client(ClientKind::Public, true)).build();
    let outcome = provider.authorize(&request(&[("code_challenge", "")]), Some(&session(1))).await;
    let Ok(Authorized::Redirect(target)) = outcome else { panic!("a redirect") };
    assert_eq!(query(&target)["error"], "invalid_request");
}

fn grant(expires_in: i64) -> CodeGrant {
    CodeGrant {
        client_id: ClientId::parse("app").expect("id"),
        redirect_uri: CALLBACK.to_owned(),
        challenge: Some(CodeChallenge::parse(CHALLENGE, Some("S256")).expect("challenge")),
        nonce: Some("n".to_owned()),
        scopes: Scopes::parse("openid email offline_access").expect("scopes"),
        user_id: user().id,
        session_id: session(1).session_id,
        auth_time: now() - TimeDelta::minutes(1),
        method: SignInMethod::Passkey,
        expires: now() + TimeDelta::seconds(expires_in),
    }
}

fn grant_id() -> GrantId {
    GrantId::parse("01900000-0000-7000-8000-0000000000dd").expect("an id")
}

fn exchange(verifier: &str) -> TokenGrant {
    TokenGrant::AuthorizationCode {
        code: domain::oidc::AuthorizationCode::from_random_bytes([8; 32]).encode(),
        redirect_uri: Some(CALLBACK.to_owned()),
        code_verifier: Some(verifier.to_owned()),
    }
}

fn with_secret() -> ClientAuthentication {
    ClientAuthentication::Secret { client_id: "app".to_owned(), secret: secret().encode() }
}

#[tokio::test]
async fn a_code_exchange_signs_an_id_token_with_the_claims_of_the_sign_in() {
    let mut ports = Ports::default().with_client(client(ClientKind::Confidential, true));
    ports.grants.expect_redeem_code().returning(|_, _| Ok(CodeRedeemed::Redeemed(Box::new(grant(30)), grant_id())));
    ports.users.expect_find().returning(|_| Ok(Some(user())));
    ports
        .grants
        .expect_save_tokens()
        .withf(|id, tokens| *id == grant_id() && tokens.refresh.is_some())
        .times(1)
        .returning(|_, _| Ok(()));
    ports
        .signer
        .expect_sign_id_token()
        .withf(|claims, algorithm| {
            claims.amr == vec!["passkey"]
                && claims.nonce.as_deref() == Some("n")
                && claims.aud == "app"
                && claims.sub == user().id.as_str()
                && claims.email == Some(("a@example.com".to_owned(), true))
                && claims.auth_time == (now() - TimeDelta::minutes(1)).timestamp()
                && *algorithm == SigningAlgorithm::Rs256
        })
        .returning(|_, _| Ok("signed".to_owned()));
    let tokens = ports.build().token(&with_secret(), exchange(VERIFIER)).await.expect("tokens");
    assert_eq!(tokens.id_token, "signed");
    assert!(tokens.refresh_token.is_some());
    assert_eq!(tokens.scope, "openid email offline_access");
}

#[tokio::test]
async fn a_spent_expired_or_mismatched_code_is_invalid_grant_and_issues_nothing() {
    for (redeemed, verifier) in [
        (CodeRedeemed::Reused, VERIFIER),
        (CodeRedeemed::Unknown, VERIFIER),
        (CodeRedeemed::Redeemed(Box::new(grant(0)), grant_id()), VERIFIER),
        (CodeRedeemed::Redeemed(Box::new(grant(30)), grant_id()), "wrong-verifier-of-the-right-length-wrong-verifier"),
    ] {
        let mut ports = Ports::default().with_client(client(ClientKind::Confidential, true));
        let answer = redeemed.clone();
        ports.grants.expect_redeem_code().returning(move |_, _| Ok(answer.clone()));
        // No expectation on save_tokens or the signer: a call would fail the test.
        let refused = ports.build().token(&with_secret(), exchange(verifier)).await;
        assert!(matches!(refused, Err(TokenError::InvalidGrant(_))), "{redeemed:?}: {refused:?}");
    }
}

#[tokio::test]
async fn a_wrong_or_missing_secret_is_invalid_client_before_the_code_is_touched() {
    for authentication in [
        ClientAuthentication::Secret {
            client_id: "app".to_owned(),
            secret: ClientSecret::from_random_bytes([6; 32]).encode(),
        },
        ClientAuthentication::None { client_id: "app".to_owned() },
        ClientAuthentication::Secret { client_id: "bad id!".to_owned(), secret: secret().encode() },
    ] {
        let provider = Ports::default().with_client(client(ClientKind::Confidential, true)).build();
        let refused = provider.token(&authentication, exchange(VERIFIER)).await;
        assert!(matches!(refused, Err(TokenError::InvalidClient)), "{authentication:?}");
    }
}

#[tokio::test]
async fn a_reused_refresh_token_is_invalid_grant_and_a_narrower_scope_is_allowed() {
    let mut ports = Ports::default().with_client(client(ClientKind::Confidential, true));
    ports
        .grants
        .expect_rotate_refresh_token()
        .with(always(), always(), always(), always())
        .times(1)
        .returning(|_, _, _, _| Ok(RefreshRotated::Reused));
    let refresh = TokenGrant::RefreshToken {
        refresh_token: domain::oidc::RefreshToken::from_random_bytes([9; 32]).encode(),
        scope: None,
    };
    let refused = ports.build().token(&with_secret(), refresh).await;
    assert!(matches!(refused, Err(TokenError::InvalidGrant(_))));

    let mut ports = Ports::default().with_client(client(ClientKind::Confidential, true));
    ports.grants.expect_rotate_refresh_token().returning(|_, _, _, _| {
        Ok(RefreshRotated::Rotated(Box::new(LiveGrant {
            id: grant_id(),
            client_id: ClientId::parse("app").expect("id"),
            user: user(),
            scopes: Scopes::parse("openid email offline_access").expect("scopes"),
            session_id: session(1).session_id,
            auth_time: now(),
            method: SignInMethod::Link,
        })))
    });
    ports.signer.expect_sign_id_token().withf(|claims, _| claims.nonce.is_none()).returning(|_, _| Ok("t".to_owned()));
    let provider = ports.build();
    let narrower = TokenGrant::RefreshToken {
        refresh_token: domain::oidc::RefreshToken::from_random_bytes([9; 32]).encode(),
        scope: Some("openid email".to_owned()),
    };
    assert!(provider.token(&with_secret(), narrower).await.is_ok());
}
