//! The OpenID Provider over the real wiring and stores, as an app (the relying party) meets it:
//! a person signs in to an app through magiclink (signed in already, or through magiclink's
//! own link first), the app exchanges the code, checks the ID token against the published keys,
//! reads userinfo, refreshes and revokes; and every refusal with its OAuth error code: wrong or
//! reused code, wrong verifier, `plain` PKCE, unregistered redirect URI, wrong client secret,
//! expired code, reused refresh token (family revoked), `prompt=none` signed out, consent
//! denied, CSRF on the consent form. The flow runs on SQLite, PostgreSQL and MariaDB; the
//! refusals on SQLite. The clients no one here wrote (openid-client, authlib) are in
//! `oidc_clients.rs`.

use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::TimeDelta;
use domain::oidc::{Client, ClientId, ClientKind, ClientSecret, SigningAlgorithm};
use poem::http::StatusCode;
use serde_json::Value;
use sha2::Digest as _;
use system_tests::{Reply, TestApp};

const APP_CALLBACK: &str = "https://app.example.com/oauth/callback";
const APP_LOGGED_OUT: &str = "https://app.example.com/signed-out";
const AUTHORIZE: &str = "/api/auth/oidc/authorize";
const TOKEN: &str = "/api/auth/oidc/token";
const USERINFO: &str = "/api/auth/oidc/userinfo";
const EMAIL: &str = "ada@example.com";
/// RFC 7636's example verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A registered app.
struct App {
    id: String,
    secret: Option<String>,
}

/// Registers an app directly in the store (the `clients` command is tested in xtask's CLI
/// tests): confidential unless `public`, asking for consent unless `first_party`.
async fn register(app: &TestApp, public: bool, first_party: bool, algorithm: SigningAlgorithm) -> App {
    let secret = ClientSecret::from_random_bytes(ports::random::os_random().expect("randomness"));
    let id = if public { "public-app" } else { "web-app" };
    let client = Client {
        id: ClientId::parse(id).expect("id"),
        name: "Grafana".to_owned(),
        kind: if public { ClientKind::Public } else { ClientKind::Confidential },
        secret_hash: (!public).then(|| secret.hash()),
        redirect_uris: vec![url::Url::parse(APP_CALLBACK).expect("URL")],
        post_logout_redirect_uris: vec![url::Url::parse(APP_LOGGED_OUT).expect("URL")],
        first_party,
        backchannel_logout_uri: None,
        id_token_algorithm: algorithm,
        from_config: false,
        created_at: chrono::Utc::now(),
    };
    assert_eq!(app.database.clients.add_client(&client).await.expect("stored"), ports::ClientAdded::Added);
    App { id: id.to_owned(), secret: (!public).then(|| secret.encode()) }
}

/// An authorization request's query: the usual parameters, with `extra` added or replacing.
fn authorize_path(client: &App, extra: &[(&str, &str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", client.id.as_str()),
        ("redirect_uri", APP_CALLBACK),
        ("response_type", "code"),
        ("scope", "openid email profile offline_access"),
        ("state", "app-state-1"),
        ("nonce", "nonce-1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in extra {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish();
    format!("{AUTHORIZE}?{query}")
}

/// The query parameters of a redirect to the app.
fn redirect_params(reply: &Reply) -> HashMap<String, String> {
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let location = url::Url::parse(reply.location()).expect("an absolute redirect");
    assert_eq!(
        format!("{}://{}{}", location.scheme(), location.host_str().unwrap_or_default(), location.path()),
        APP_CALLBACK
    );
    location.query_pairs().into_owned().collect()
}

/// Exchanges `code` with HTTP Basic client authentication (or `none` for a public client).
async fn exchange(app: &TestApp, client: &App, code: &str, verifier: &str) -> Reply {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", APP_CALLBACK),
        ("code_verifier", verifier),
    ];
    if client.secret.is_none() {
        fields.push(("client_id", client.id.as_str()));
    }
    token_request(app, client, &fields).await
}

async fn token_request(app: &TestApp, client: &App, fields: &[(&str, &str)]) -> Reply {
    client_post(app, client, TOKEN, fields, &[]).await
}

/// A form POST to `path` as `client` makes it: HTTP Basic when it has a secret, with `extra`
/// headers (a browser app's `Origin`).
async fn client_post(
    app: &TestApp,
    client: &App,
    path: &str,
    fields: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let length = body.len().to_string();
    let basic =
        client.secret.as_ref().map(|secret| format!("Basic {}", STANDARD.encode(format!("{}:{secret}", client.id))));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded"), ("content-length", length.as_str())];
    if let Some(basic) = &basic {
        headers.push(("authorization", basic.as_str()));
    }
    headers.extend_from_slice(extra);
    app.send_body(poem::http::Method::POST, path, &headers, body).await
}

async fn userinfo(app: &TestApp, access_token: &str) -> Reply {
    let bearer = format!("Bearer {access_token}");
    app.send(poem::http::Method::GET, USERINFO, &[("authorization", bearer.as_str())]).await
}

/// The `error` of an OAuth error body.
fn oauth_error(reply: &Reply) -> String {
    reply.json()["error"].as_str().unwrap_or_default().to_owned()
}

/// Checks an ID token's signature against the published key set and returns its claims.
async fn verified_claims(app: &TestApp, id_token: &str, audience: &str) -> Value {
    let header = jsonwebtoken::decode_header(id_token).expect("a JWS header");
    let keys = app.get("/api/auth/oidc/jwks.json").await;
    assert_eq!(keys.status, StatusCode::OK);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&keys.body).expect("a JWK set");
    let jwk = set.find(header.kid.as_deref().expect("a kid")).expect("the signing key is published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.base_url.as_str()]);
    // The tests' clock starts in the past; the signature and the claims are what count here.
    validation.validate_exp = false;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("a usable key");
    jsonwebtoken::decode::<Value>(id_token, &key, &validation).expect("the ID token verifies").claims
}

/// Signs `EMAIL` in to magiclink in this app's "browser".
async fn sign_in(app: &TestApp) {
    let reply = app.sign_in(EMAIL, "/").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
}

async fn a_signed_in_person_signs_in_to_a_first_party_app_which_gets_tokens_userinfo_and_refreshes(app: TestApp) {
    let client = register(&app, false, true, SigningAlgorithm::Rs256).await;
    sign_in(&app).await;
    let params = redirect_params(&app.get(&authorize_path(&client, &[])).await);
    assert_eq!(params["state"], "app-state-1");
    assert_eq!(params["iss"], app.base_url, "RFC 9207: the issuer comes with the code");
    let tokens = exchange(&app, &client, &params["code"], VERIFIER).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_eq!(tokens.header("pragma"), "no-cache");
    assert!(tokens.header("cache-control").contains("no-store"));
    let tokens = tokens.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "openid email profile offline_access");
    let claims = verified_claims(&app, tokens["id_token"].as_str().expect("id_token"), &client.id).await;
    let user = app.database.users.find_by_email(&domain::EmailAddress::parse(EMAIL).expect("address")).await;
    let user = user.expect("read").expect("the person exists");
    assert_eq!(claims["sub"], user.id.as_str(), "sub is the stable user id, never the address");
    assert_eq!(claims["email"], EMAIL);
    assert_eq!(claims["email_verified"], true);
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["amr"], serde_json::json!(["link"]));
    assert!(claims["sid"].is_string() && claims["auth_time"].is_i64());

    let info = userinfo(&app, tokens["access_token"].as_str().expect("access_token")).await;
    assert_eq!(info.status, StatusCode::OK, "{}", info.body);
    assert_eq!(info.json()["sub"], user.id.as_str());
    assert_eq!(info.json()["email"], EMAIL);

    let refresh_token = tokens["refresh_token"].as_str().expect("offline_access gives a refresh token");
    let refreshed =
        token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let refreshed = refreshed.json();
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"], "refresh tokens rotate");
    assert_eq!(userinfo(&app, refreshed["access_token"].as_str().expect("new access")).await.status, StatusCode::OK);

    // The spent refresh token again: a copy is in someone else's hands, so the family ends.
    let replayed =
        token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await;
    assert_eq!((replayed.status, oauth_error(&replayed).as_str()), (StatusCode::BAD_REQUEST, "invalid_grant"));
    let newest = refreshed["refresh_token"].as_str().expect("new refresh");
    let after = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", newest)]).await;
    assert_eq!(oauth_error(&after), "invalid_grant", "the newest refresh token is revoked with its family");
    let info = userinfo(&app, refreshed["access_token"].as_str().expect("new access")).await;
    assert_eq!(info.status, StatusCode::UNAUTHORIZED, "and so are its access tokens");
    assert!(info.header("www-authenticate").contains("invalid_token"));
}

#[tokio::test]
async fn a_signed_in_person_signs_in_to_a_first_party_app_on_sqlite() {
    a_signed_in_person_signs_in_to_a_first_party_app_which_gets_tokens_userinfo_and_refreshes(TestApp::spawn().await)
        .await;
}

#[tokio::test]
async fn a_signed_in_person_signs_in_to_a_first_party_app_on_postgres() {
    if let Some(app) = TestApp::spawn_on(adapters::database::Dialect::Postgres).await {
        a_signed_in_person_signs_in_to_a_first_party_app_which_gets_tokens_userinfo_and_refreshes(app).await;
    }
}

#[tokio::test]
async fn a_signed_in_person_signs_in_to_a_first_party_app_on_mariadb() {
    if let Some(app) = TestApp::spawn_on(adapters::database::Dialect::MySql).await {
        a_signed_in_person_signs_in_to_a_first_party_app_which_gets_tokens_userinfo_and_refreshes(app).await;
    }
}

#[tokio::test]
async fn signed_out_the_person_signs_in_by_link_and_comes_back_to_the_app_with_a_code() {
    let app = TestApp::spawn().await;
    let client = register(&app, true, true, SigningAlgorithm::Es256).await;
    let path = authorize_path(&client, &[("login_hint", EMAIL)]);
    let reply = app.get(&path).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    let sign_in = url::Url::parse(&format!("http://x{}", reply.location())).expect("a path");
    assert_eq!(sign_in.path(), "/signin");
    let query: HashMap<String, String> = sign_in.query_pairs().into_owned().collect();
    assert_eq!(query["email"], EMAIL, "login_hint prefills the address");
    let back = &query["callbackUrl"];
    assert!(back.starts_with(AUTHORIZE), "{back}");
    // The link brings the person back to the authorization request, which now issues a code.
    let opened = app.sign_in(EMAIL, back).await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER);
    assert_eq!(opened.location(), back.as_str());
    let params = redirect_params(&app.get(back).await);
    let tokens = exchange(&app, &client, &params["code"], VERIFIER).await;
    assert_eq!(tokens.status, StatusCode::OK, "a public client exchanges with PKCE alone: {}", tokens.body);
    let id_token = tokens.json()["id_token"].as_str().expect("id_token").to_owned();
    assert_eq!(jsonwebtoken::decode_header(&id_token).expect("header").alg, jsonwebtoken::Algorithm::ES256);
    verified_claims(&app, &id_token, &client.id).await;
}

#[tokio::test]
async fn an_unknown_client_or_an_unregistered_redirect_uri_gets_a_page_and_is_never_redirected_to() {
    let app = TestApp::spawn().await;
    let client = register(&app, false, true, SigningAlgorithm::Rs256).await;
    sign_in(&app).await;
    let unknown = App { id: "no-such-app".to_owned(), secret: None };
    for (path, kind) in [
        (authorize_path(&unknown, &[]), "oidc-unknown-client"),
        (
            authorize_path(&client, &[("redirect_uri", "https://evil.example/oauth/callback")]),
            "oidc-redirect-uri-unregistered",
        ),
        (
            authorize_path(&client, &[("redirect_uri", "https://app.example.com/oauth/callback/../x")]),
            "oidc-redirect-uri-unregistered",
        ),
        (authorize_path(&client, &[("redirect_uri", "")]), "oidc-redirect-uri-unregistered"),
    ] {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(page.header("location").is_empty(), "never redirected: {path}");
        assert!(page.header("content-type").starts_with("text/html"));
        let problem = app.get_json(&path).await;
        assert_eq!(problem.json()["type"], format!("urn:magiclink:problem:{kind}"), "{path}");
    }
}

#[tokio::test]
async fn refusals_after_the_redirect_uri_is_trusted_go_back_to_the_app_with_their_oauth_code() {
    let app = TestApp::spawn().await;
    let public = register(&app, true, true, SigningAlgorithm::Rs256).await;
    let error_of = |reply: &Reply| {
        let params = redirect_params(reply);
        assert_eq!(params["state"], "app-state-1");
        assert_eq!(params.get("iss").map(String::as_str), Some(app.base_url.as_str()));
        assert!(!params.contains_key("code"));
        params["error"].clone()
    };
    // Signed out, prompt=none: the app hears login_required, the person sees nothing.
    assert_eq!(error_of(&app.get(&authorize_path(&public, &[("prompt", "none")])).await), "login_required");
    sign_in(&app).await;
    let plain = authorize_path(&public, &[("code_challenge", VERIFIER), ("code_challenge_method", "plain")]);
    assert_eq!(error_of(&app.get(&plain).await), "invalid_request", "plain PKCE is refused");
    let no_pkce = authorize_path(&public, &[("code_challenge", ""), ("code_challenge_method", "")]);
    assert_eq!(error_of(&app.get(&no_pkce).await), "invalid_request", "a public client must use PKCE");
    assert_eq!(
        error_of(&app.get(&authorize_path(&public, &[("response_type", "token")])).await),
        "unsupported_response_type"
    );
    assert_eq!(error_of(&app.get(&authorize_path(&public, &[("scope", "email")])).await), "invalid_scope");
    assert_eq!(error_of(&app.get(&authorize_path(&public, &[("prompt", "none login")])).await), "invalid_request");
}

async fn fresh_code(app: &TestApp, path: &str) -> String {
    redirect_params(&app.get(path).await)["code"].clone()
}

#[tokio::test]
async fn codes_are_single_use_bound_to_their_verifier_redirect_uri_and_client_and_expire_in_a_minute() {
    let app = TestApp::spawn().await;
    let client = register(&app, false, true, SigningAlgorithm::EdDsa).await;
    sign_in(&app).await;
    let path = authorize_path(&client, &[]);

    let wrong_verifier = exchange(&app, &client, &fresh_code(&app, &path).await, &"x".repeat(43)).await;
    assert_eq!(
        (wrong_verifier.status, oauth_error(&wrong_verifier).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );

    let first_code = fresh_code(&app, &path).await;
    let wrong_redirect = token_request(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &first_code),
            ("redirect_uri", "https://app.example.com/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(oauth_error(&wrong_redirect), "invalid_grant");

    // A reused code: refused, and what its first use got is revoked.
    let reused = fresh_code(&app, &path).await;
    let first = exchange(&app, &client, &reused, VERIFIER).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let access = first.json()["access_token"].as_str().expect("access").to_owned();
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::OK);
    let second = exchange(&app, &client, &reused, VERIFIER).await;
    assert_eq!(oauth_error(&second), "invalid_grant");
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::UNAUTHORIZED, "the first use's tokens are revoked");

    // Expired: 60 seconds.
    let late = fresh_code(&app, &path).await;
    app.clock.advance(TimeDelta::seconds(61));
    assert_eq!(oauth_error(&exchange(&app, &client, &late, VERIFIER).await), "invalid_grant");

    // Another client's secret, or a wrong one: invalid_client, with the Basic challenge.
    let fresh = fresh_code(&app, &path).await;
    let wrong_secret = App { id: client.id.clone(), secret: Some(ClientSecret::from_random_bytes([1; 32]).encode()) };
    let refused = exchange(&app, &wrong_secret, &fresh, VERIFIER).await;
    assert_eq!((refused.status, oauth_error(&refused).as_str()), (StatusCode::UNAUTHORIZED, "invalid_client"));
    assert!(refused.header("www-authenticate").starts_with("Basic"));
    let garbage = exchange(&app, &client, "not-a-code", VERIFIER).await;
    assert_eq!(oauth_error(&garbage), "invalid_grant");
    let unsupported = token_request(&app, &client, &[("grant_type", "password")]).await;
    assert_eq!(oauth_error(&unsupported), "unsupported_grant_type");
}

#[tokio::test]
async fn another_teams_app_asks_for_consent_once_and_a_denial_goes_back_as_access_denied() {
    let app = TestApp::spawn().await;
    let client = register(&app, false, false, SigningAlgorithm::Rs256).await;
    sign_in(&app).await;
    let path = authorize_path(&client, &[]);
    // prompt=none cannot show the page: consent_required.
    let silent = redirect_params(&app.get(&authorize_path(&client, &[("prompt", "none")])).await);
    assert_eq!(silent["error"], "consent_required");

    let page = app.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Grafana") && page.body.contains("your email address"), "{}", page.body);
    let csrf = page.body.split("name=\"csrfToken\" value=\"").nth(1).and_then(|rest| rest.split('"').next());
    let csrf = csrf.expect("a CSRF token").to_owned();
    let fields = |decision: &'static str, csrf: &str| -> Vec<(String, String)> {
        let query = url::Url::parse(&format!("http://x{path}")).expect("path");
        let mut fields: Vec<(String, String)> = query.query_pairs().into_owned().collect();
        fields.push(("decision".to_owned(), decision.to_owned()));
        fields.push(("csrfToken".to_owned(), csrf.to_owned()));
        fields
    };
    let post = |fields: Vec<(String, String)>| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            app.post_form(AUTHORIZE, &pairs, None).await
        }
    };
    // Without the form's CSRF token: refused, and the app hears nothing.
    let forged = post(fields("approve", "forged")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.header("location").is_empty());
    let denied = redirect_params(&post(fields("deny", &csrf)).await);
    assert_eq!(denied["error"], "access_denied");
    let approved = redirect_params(&post(fields("approve", &csrf)).await);
    assert!(approved.contains_key("code"));
    // Remembered: no page the second time, unless the app asks with prompt=consent.
    let code = redirect_params(&app.get(&path).await)["code"].clone();
    assert_eq!(app.get(&authorize_path(&client, &[("prompt", "consent")])).await.status, StatusCode::OK);

    // The account page lists the app; removing its access ends its tokens and asks again.
    let tokens = exchange(&app, &client, &code, VERIFIER).await.json();
    let account = app.get("/account").await;
    assert!(account.body.contains("Apps you have signed in to") && account.body.contains("data-client-id=\"web-app\""));
    assert!(account.body.contains("your email address"));
    let token = app.csrf_token().await;
    let forged =
        app.post_form("/account/apps/revoke", &[("client_id", "web-app"), ("csrfToken", "forged")], None).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let removed = app.post_form("/account/apps/revoke", &[("client_id", "web-app"), ("csrfToken", &token)], None).await;
    assert_eq!((removed.status, removed.location()), (StatusCode::SEE_OTHER, "/account?done=app-revoked"));
    let refresh = tokens["refresh_token"].as_str().expect("refresh");
    let refused = token_request(&app, &client, &[("grant_type", "refresh_token"), ("refresh_token", refresh)]).await;
    assert_eq!(oauth_error(&refused), "invalid_grant", "its refresh token stopped working");
    assert_eq!(app.get(&path).await.status, StatusCode::OK, "the consent page again");
    assert!(!app.get("/account").await.body.contains("data-client-id=\"web-app\""));
    let again = app.post_form("/account/apps/revoke", &[("client_id", "web-app"), ("csrfToken", &token)], None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn prompt_login_and_max_age_send_a_signed_in_person_through_a_fresh_sign_in_once() {
    let app = TestApp::spawn().await;
    let client = register(&app, false, true, SigningAlgorithm::Rs256).await;
    sign_in(&app).await;
    app.clock.advance(TimeDelta::seconds(120));
    for extra in [[("prompt", "login")], [("max_age", "60")]] {
        let reply = app.get(&authorize_path(&client, &extra)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER);
        let sign_in = url::Url::parse(&format!("http://x{}", reply.location())).expect("a path");
        assert_eq!(sign_in.path(), "/signin", "{extra:?}");
        let back: HashMap<String, String> = sign_in.query_pairs().into_owned().collect();
        let back = back["callbackUrl"].clone();
        assert!(back.contains("login_after=") && !back.contains("prompt=login") && !back.contains("max_age"), "{back}");
        // The old session does not satisfy it; a fresh sign-in does, once, without a loop.
        assert_eq!(app.get(&back).await.location().split('?').next(), Some("/signin"));
        app.clock.advance(TimeDelta::seconds(1));
        assert_eq!(app.sign_in(EMAIL, &back).await.location(), back.as_str());
        assert!(redirect_params(&app.get(&back).await).contains_key("code"), "{extra:?}");
        app.clock.advance(TimeDelta::seconds(120));
    }
}

#[tokio::test]
async fn an_app_signs_the_person_out_with_its_id_token_and_returns_to_a_registered_address_only() {
    let app = TestApp::spawn().await;
    let client = register(&app, false, true, SigningAlgorithm::Rs256).await;
    sign_in(&app).await;
    let params = redirect_params(&app.get(&authorize_path(&client, &[])).await);
    let tokens = exchange(&app, &client, &params["code"], VERIFIER).await.json();
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let logout = |redirect: &str| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("id_token_hint", id_token), ("post_logout_redirect_uri", redirect), ("state", "bye")])
            .finish();
        format!("/api/auth/oidc/end-session?{query}")
    };
    let unregistered = app.get(&logout("https://evil.example/")).await;
    assert_eq!(unregistered.status, StatusCode::BAD_REQUEST);
    assert!(unregistered.header("location").is_empty());
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], EMAIL, "still signed in");
    let forged =
        app.get(&format!("/api/auth/oidc/end-session?id_token_hint={}x", &id_token[..id_token.len() - 1])).await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST, "a hint with a broken signature is refused");

    let out = app.get(&logout(APP_LOGGED_OUT)).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), format!("{APP_LOGGED_OUT}?state=bye"));
    assert!(app.get_json("/api/auth/session").await.json()["user"].is_null(), "signed out of magiclink");

    // Without a hint naming them, a signed-in person confirms first: a link elsewhere cannot
    // sign anyone out.
    sign_in(&app).await;
    let asked = app.get(&format!("/api/auth/oidc/end-session?client_id={}", client.id)).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert!(asked.body.contains("id=\"oidc-signout\""));
    assert_eq!(app.get_json("/api/auth/session").await.json()["user"]["email"], EMAIL);
}

#[tokio::test]
async fn the_discovery_document_names_every_endpoint_and_only_the_safe_choices() {
    let app = TestApp::spawn().await;
    let reply = app.get("/.well-known/openid-configuration").await;
    assert_eq!(reply.status, StatusCode::OK);
    let document = reply.json();
    assert_eq!(document["issuer"], app.base_url);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "end_session_endpoint",
    ] {
        let url = document[endpoint].as_str().unwrap_or_else(|| panic!("{endpoint}"));
        assert!(url.starts_with(&app.base_url), "{endpoint}: {url}");
    }
    assert_eq!(document["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(document["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(document["authorization_response_iss_parameter_supported"], true);
    let disabled = TestApp::spawn_with(|settings| settings.oidc.enabled = false).await;
    assert_eq!(disabled.get("/.well-known/openid-configuration").await.status, StatusCode::NOT_FOUND);
    assert_eq!(disabled.get(AUTHORIZE).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_token_endpoint_is_rate_limited_per_client_before_its_secret_is_checked() {
    let app = TestApp::spawn_with(|settings| settings.oidc.token_requests_per_client_per_minute = 3).await;
    let client = register(&app, false, true, SigningAlgorithm::Rs256).await;
    let guesser = App { id: client.id.clone(), secret: Some(ClientSecret::from_random_bytes([2; 32]).encode()) };
    for _ in 0..3 {
        assert_eq!(oauth_error(&exchange(&app, &guesser, "x", VERIFIER).await), "invalid_client");
    }
    let limited = exchange(&app, &guesser, "x", VERIFIER).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(!limited.header("retry-after").is_empty());
}

#[tokio::test]
async fn browser_apps_read_the_token_userinfo_discovery_and_keys_only_from_a_registered_public_clients_origin() {
    let app = TestApp::spawn().await;
    let public = register(&app, true, true, SigningAlgorithm::Rs256).await;
    let spa = "https://app.example.com";
    for path in
        ["/.well-known/openid-configuration", "/api/auth/oidc/jwks.json", USERINFO, TOKEN, "/api/auth/oidc/revoke"]
    {
        for (origin, allowed) in [(spa, true), ("https://evil.example", false), ("https://app.example.com:8443", false)]
        {
            let preflight = app
                .send(
                    poem::http::Method::OPTIONS,
                    path,
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "POST"),
                        ("access-control-request-headers", "authorization"),
                    ],
                )
                .await;
            assert_eq!(preflight.status, StatusCode::NO_CONTENT, "{path}");
            let shown = preflight.header("access-control-allow-origin");
            assert_eq!(shown == origin, allowed, "{path} from {origin}: {shown:?}");
            assert!(preflight.header("access-control-allow-headers").contains("Authorization"));
        }
    }
    // The answers themselves, refusals included, name the origin for the public client's page.
    let refused = app.send(poem::http::Method::GET, USERINFO, &[("origin", spa)]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.header("access-control-allow-origin"), spa);
    sign_in(&app).await;
    let params = redirect_params(&app.get(&authorize_path(&public, &[])).await);
    let fields = [
        ("grant_type", "authorization_code"),
        ("code", params["code"].as_str()),
        ("redirect_uri", APP_CALLBACK),
        ("code_verifier", VERIFIER),
        ("client_id", public.id.as_str()),
    ];
    let tokens = client_post(&app, &public, TOKEN, &fields, &[("origin", spa)]).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_eq!(tokens.header("access-control-allow-origin"), spa);
    // The authorization endpoint is navigated to, never fetched: no CORS there.
    let authorize = app.get_with(&authorize_path(&public, &[]), &[("origin", spa)]).await;
    assert!(authorize.header("access-control-allow-origin").is_empty());
}

#[tokio::test]
async fn jwt_access_tokens_follow_rfc_9068_verify_against_the_key_set_and_stay_revocable() {
    let app = TestApp::spawn_with(|settings| {
        settings.oidc.access_token_format = xtask::settings::AccessTokenFormatSetting::Jwt;
    })
    .await;
    let client = register(&app, false, true, SigningAlgorithm::Es256).await;
    sign_in(&app).await;
    let params = redirect_params(&app.get(&authorize_path(&client, &[])).await);
    let tokens = exchange(&app, &client, &params["code"], VERIFIER).await.json();
    let access = tokens["access_token"].as_str().expect("an access token").to_owned();
    let header = jsonwebtoken::decode_header(&access).expect("a JWT");
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let claims = verified_claims(&app, &access, &client.id).await;
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["scope"], "openid email profile offline_access");
    let jti = claims["jti"].as_str().expect("a jti").to_owned();
    assert_eq!(jti.len(), 64);
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::OK);

    // Only the whole token, signed by us, as an access token, works.
    let mut forged = access.clone().into_bytes();
    let middle = access.find('.').expect("a dot") + 5;
    forged[middle] = if forged[middle] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("text");
    for refused in [forged.as_str(), jti.as_str(), tokens["id_token"].as_str().expect("id token")] {
        assert_eq!(userinfo(&app, refused).await.status, StatusCode::UNAUTHORIZED);
    }

    // Revoked through the revocation endpoint, the JWT no longer works at userinfo.
    let revoked = client_post(&app, &client, "/api/auth/oidc/revoke", &[("token", access.as_str())], &[]).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn clients_listed_in_the_configuration_are_kept_in_step_and_keep_their_grants() {
    let app = TestApp::spawn().await;
    let secret = ClientSecret::from_random_bytes([4; 32]);
    let listed = |name: &str, uri: &str| xtask::settings::ConfiguredClient {
        id: "web-app".to_owned(),
        name: name.to_owned(),
        redirect_uris: vec![uri.to_owned()],
        post_logout_redirect_uris: vec![],
        secret_hash: secret.hash().to_hex(),
        public: false,
        first_party: true,
        id_token_alg: "RS256".to_owned(),
        backchannel_logout_uri: String::new(),
    };
    let public = xtask::settings::ConfiguredClient {
        id: "spa".to_owned(),
        secret_hash: String::new(),
        public: true,
        ..listed("SPA", "https://spa.example.com/cb")
    };
    let mut settings = xtask::settings::Settings::default();
    settings.oidc.clients = vec![listed("Wiki", APP_CALLBACK), public];
    xtask::wiring::sync_configured_clients(&settings, &app.database).await.expect("in step");
    let client = App { id: "web-app".to_owned(), secret: Some(secret.encode()) };
    sign_in(&app).await;
    let params = redirect_params(&app.get(&authorize_path(&client, &[])).await);
    let tokens = exchange(&app, &client, &params["code"], VERIFIER).await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    let access = tokens.json()["access_token"].as_str().expect("access").to_owned();

    // Renamed in the file, the other one removed: updated in place (its tokens still work),
    // the removed one gone.
    settings.oidc.clients = vec![listed("Team wiki", APP_CALLBACK)];
    xtask::wiring::sync_configured_clients(&settings, &app.database).await.expect("in step");
    let stored = app.database.clients.list_clients().await.expect("listed");
    let names: Vec<(&str, &str, bool)> =
        stored.iter().map(|c| (c.id.as_str(), c.name.as_str(), c.from_config)).collect();
    assert_eq!(names, vec![("web-app", "Team wiki", true)]);
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::OK, "grants survive an update");
    // Emptied: the configured clients go, with what was issued to them.
    settings.oidc.clients = vec![];
    xtask::wiring::sync_configured_clients(&settings, &app.database).await.expect("in step");
    assert!(app.database.clients.list_clients().await.expect("listed").is_empty());
    assert_eq!(userinfo(&app, &access).await.status, StatusCode::UNAUTHORIZED);
}
