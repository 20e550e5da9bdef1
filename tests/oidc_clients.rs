//! The OpenID Provider proven with relying-party libraries no one here wrote, each against the
//! real server on a loopback port: openid-client (Node; panva's OpenID-certified library) as a
//! public client with PKCE and `none` authentication, and Authlib (Python) as a confidential
//! client with `client_secret_post`. Each library does what an app does (discovery, the
//! authorization URL, the code exchange with its own ID-token checks, userinfo, refresh,
//! revocation); the test plays the browser, which is signed in to magiclink already, and for
//! openid-client follows the end-session URL it built. And Auth.js itself (`@auth/express`,
//! the framework of the tutorial this project grew from), configured as `docs/integration.md`
//! shows, in real Chromium: a person signs in to the Auth.js app through magiclink's link and
//! lands signed in there.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use domain::oidc::{Client, ClientId, ClientKind, ClientSecret, SigningAlgorithm};
use serde_json::Value;
use system_tests::child::{lines_of, next_line, StopOnDrop};
use system_tests::RunningServer;
use xtask::tasks::require;

/// The app's callback: a loopback IP registered without a port, so the library's port is
/// accepted (RFC 8252 §7.3). Nothing listens there: the test reads the redirect itself.
const REGISTERED_CALLBACK: &str = "http://127.0.0.1/callback";
const CALLBACK: &str = "http://127.0.0.1:53682/callback";
const SIGNED_OUT: &str = "http://127.0.0.1:53682/signed-out";

fn scripts() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("support/oidc")
}

async fn register(server: &RunningServer, id: &str, public: bool, redirect_uri: &str) -> Option<String> {
    let secret = ClientSecret::from_random_bytes(ports::random::os_random().expect("randomness"));
    let client = Client {
        kind: if public { ClientKind::Public } else { ClientKind::Confidential },
        secret_hash: (!public).then(|| secret.hash()),
        redirect_uris: vec![url::Url::parse(redirect_uri).expect("URL")],
        ..public_client(id)
    };
    server.database.clients.add_client(&client).await.expect("registered");
    (!public).then(|| secret.encode())
}

/// Runs a client script: reads the authorization URL it prints, opens it as the signed-in
/// browser (`cookie`), hands the redirect back, and returns the JSON it prints last. Reading
/// the script's output blocks, so it happens off the runtime's workers (`block_in_place`) while
/// the server, on the same runtime, answers the script.
async fn run_relying_party(mut command: Command, cookie: &str) -> Value {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("the client starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    let read_line = |stdout: &mut BufReader<std::process::ChildStdout>, line: &mut String| {
        line.clear();
        tokio::task::block_in_place(|| stdout.read_line(line)).expect("reads the client's output");
        serde_json::from_str::<Value>(line.trim()).ok()
    };
    let Some(first) = read_line(&mut stdout, &mut line) else {
        let output = child.wait_with_output().expect("the client ends");
        panic!("the client printed no authorization URL: {}", String::from_utf8_lossy(&output.stderr));
    };
    let authorize = first["authorize"].as_str().expect("an authorization URL").to_owned();
    assert!(authorize.contains("code_challenge_method=S256"), "{authorize}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let answer = http.get(&authorize).header("cookie", cookie).send().await.expect("authorize answers");
    assert_eq!(answer.status(), reqwest::StatusCode::SEE_OTHER);
    let redirect = answer.headers()["location"].to_str().expect("a location").to_owned();
    assert!(redirect.starts_with(CALLBACK) && redirect.contains("code="), "{redirect}");
    writeln!(stdin, "{redirect}").expect("hands the redirect back");
    let result = read_line(&mut stdout, &mut line);
    drop(stdin);
    let output = tokio::task::block_in_place(|| child.wait_with_output()).expect("the client ends");
    result.unwrap_or_else(|| {
        panic!("the client failed: {line}\n{}", String::from_utf8_lossy(&output.stderr));
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_a_person_in_as_a_public_client_and_signs_them_out() {
    let Some(node) = require(&xtask::tasks::NODE) else { return };
    if require(&xtask::tasks::OPENID_CLIENT).is_none() {
        return;
    }
    let server = RunningServer::start().await;
    register(&server, "node-app", true, REGISTERED_CALLBACK).await;
    let cookie = server.sign_in_over_http("node@example.com").await;
    let mut command = Command::new(node);
    command
        .arg(scripts().join("openid_client.mjs"))
        .args([server.base_url.as_str(), "node-app", CALLBACK, SIGNED_OUT])
        .env(
            "OPENID_CLIENT_MODULE",
            format!("{}/node_modules/openid-client/build/index.js", xtask::tasks::OPENID_CLIENT_DIR),
        );
    let result = run_relying_party(command, &cookie).await;

    assert_eq!(result["claims"]["iss"], server.base_url);
    assert_eq!(result["claims"]["aud"], "node-app");
    assert_eq!(result["claims"]["email"], "node@example.com");
    assert_eq!(result["claims"]["amr"], serde_json::json!(["link"]));
    assert_eq!(result["userinfo"]["email"], "node@example.com");
    assert_eq!(result["userinfo"]["sub"], result["claims"]["sub"]);
    assert_eq!(result["refreshed"], true);
    assert_eq!(result["refreshedSub"], result["claims"]["sub"]);
    assert_eq!(result["afterRevocation"], "invalid_grant", "a revoked refresh token no longer works");

    // The end-session URL the library built signs the person out and returns to the app.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let end = result["endSession"].as_str().expect("an end-session URL");
    let out = http.get(end).header("cookie", &cookie).send().await.expect("end-session answers");
    assert_eq!(out.status(), reqwest::StatusCode::SEE_OTHER);
    assert_eq!(out.headers()["location"], format!("{SIGNED_OUT}?state=bye").as_str());
    let session = http
        .get(format!("{}/api/auth/session", server.base_url))
        .header("cookie", &cookie)
        .header("accept", "application/json")
        .send()
        .await
        .expect("session answers");
    assert!(session.json::<Value>().await.expect("JSON")["user"].is_null(), "signed out of magiclink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_signs_a_person_in_as_a_confidential_client_with_client_secret_post() {
    let Some(python) = require(&xtask::tasks::AUTHLIB) else { return };
    let server = RunningServer::start().await;
    let secret =
        register(&server, "python-app", false, REGISTERED_CALLBACK).await.expect("a confidential client's secret");
    let cookie = server.sign_in_over_http("python@example.com").await;
    let mut command = Command::new(python);
    command.arg(scripts().join("authlib_client.py")).args([
        server.base_url.as_str(),
        "python-app",
        secret.as_str(),
        CALLBACK,
    ]);
    let result = run_relying_party(command, &cookie).await;

    assert_eq!(result["claims"]["iss"], server.base_url);
    assert_eq!(result["claims"]["aud"], "python-app");
    assert_eq!(result["claims"]["email"], "python@example.com");
    assert_eq!(result["userinfo"]["email"], "python@example.com");
    assert_eq!(result["refreshed"], true);
    assert_eq!(result["afterRevocation"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_to_an_authjs_app_through_magiclinks_link_in_chromium() {
    let Some(node) = require(&xtask::tasks::NODE) else { return };
    if require(&xtask::tasks::AUTHJS).is_none() {
        return;
    }
    let Some((browser, _driver, _profile)) = crate::browser::chromium().await else { return };
    let server = RunningServer::start().await;
    let secret = ClientSecret::from_random_bytes(ports::random::os_random().expect("randomness"));
    let mut app = StopOnDrop(
        Command::new(node)
            .arg(scripts().join("authjs_app.mjs"))
            .args([server.base_url.as_str(), "authjs-app", secret.encode().as_str()])
            .env("AUTHJS_MODULES", format!("{}/node_modules", xtask::tasks::AUTHJS_DIR))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the Auth.js app starts"),
    );
    let mut ready = String::new();
    let mut stdout = BufReader::new(app.0.stdout.take().expect("stdout"));
    tokio::task::block_in_place(|| stdout.read_line(&mut ready)).expect("the app says it is ready");
    let port = serde_json::from_str::<Value>(&ready).expect("JSON")["port"].as_u64().expect("a port");
    // The app is reached by a host name of its own: its cookies and magiclink's stay apart, as
    // on two domains.
    let app_base = format!("http://localhost:{port}");
    let client = Client {
        id: ClientId::parse("authjs-app").expect("id"),
        name: "Auth.js app".to_owned(),
        kind: ClientKind::Confidential,
        secret_hash: Some(secret.hash()),
        redirect_uris: vec![url::Url::parse(&format!("{app_base}/auth/callback/magiclink")).expect("URL")],
        post_logout_redirect_uris: vec![],
        first_party: true,
        backchannel_logout_uri: None,
        id_token_algorithm: SigningAlgorithm::Rs256,
        from_config: false,
        created_at: chrono::Utc::now(),
    };
    server.database.clients.add_client(&client).await.expect("registered");

    let shots = crate::browser::screenshots();
    browser.goto(&format!("{app_base}/")).await.expect("the app");
    browser.wait_for_text("#who", "Not signed in", crate::browser::WAIT).await.expect("signed out at first");
    browser.goto(&format!("{app_base}/auth/signin?callbackUrl=%2F")).await.expect("Auth.js's sign-in page");
    browser.screenshot(&shots, "authjs-1-signin").await.expect("screenshot");
    let button = browser.find("form[action$='/auth/signin/magiclink'] button").await.expect("the magiclink button");
    browser.click(&button).await.expect("clicked");

    // On magiclink's own sign-in page: the address, then the link from the mailbox.
    let email = "authjs@example.com";
    let mut delivered = server.mailbox.as_ref().expect("the development mailer").subscribe();
    let before = *delivered.borrow_and_update();
    browser
        .wait_until("return document.querySelector('#email') !== null", crate::browser::WAIT)
        .await
        .expect("magiclink's sign-in page");
    let field = browser.find("#email").await.expect("magiclink's sign-in page");
    assert!(browser.url().await.expect("url").starts_with(&format!("{}/signin", server.base_url)));
    browser.type_into(&field, email).await.expect("typed");
    browser.click(&browser.find("#submit").await.expect("submit")).await.expect("submitted");
    let mail = server.mail_after(&mut delivered, before, email).await;
    browser.screenshot(&shots, "authjs-2-check-your-email").await.expect("screenshot");
    browser.goto(mail[0]["link"].as_str().expect("a link")).await.expect("the link opened");

    // The link signs in to magiclink, which sends the person on to the app with a code; Auth.js
    // exchanges it, checks the ID token, and the person lands signed in to the app.
    browser.wait_for_text("#who", &format!("Signed in as {email}"), crate::browser::WAIT).await.expect("signed in");
    assert!(browser.url().await.expect("url").starts_with(&app_base));
    browser.screenshot(&shots, "authjs-3-signed-in").await.expect("screenshot");
    browser.quit().await.expect("browser quits");
}

/// The RFC 7636 example verifier and its S256 challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// The claims of a compact JWS, unverified (the test reads its own ID token).
fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_tells_the_app_by_a_logout_token_that_jose_verifies_even_after_the_app_was_down() {
    let Some(node) = require(&xtask::tasks::NODE) else { return };
    if require(&xtask::tasks::JOSE).is_none() {
        return;
    }
    // Retries a second apart, so that an app down for two attempts is told within seconds.
    let server = RunningServer::start_with(
        |settings| {
            settings.outbox.base_delay = 1;
            settings.outbox.max_delay = 2;
        },
        xtask::wiring::Parts::default(),
    )
    .await;
    let mut receiver = StopOnDrop(
        Command::new(node)
            .arg(scripts().join("backchannel_receiver.mjs"))
            .args([server.base_url.as_str(), "bc-app", &format!("{}/api/auth/oidc/jwks.json", server.base_url), "2"])
            .env("JOSE_MODULE", format!("{}/node_modules/jose/dist/webapi/index.js", xtask::tasks::OPENID_CLIENT_DIR))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the receiver starts"),
    );
    let lines = lines_of(receiver.0.stdout.take().expect("stdout"));
    let port = next_line(&lines, "its port")["port"].as_u64().expect("a port");
    let client = Client {
        backchannel_logout_uri: Some(
            url::Url::parse(&format!("http://127.0.0.1:{port}/backchannel-logout")).expect("URL"),
        ),
        ..public_client("bc-app")
    };
    server.database.clients.add_client(&client).await.expect("registered");

    // The person signs in to the app; its ID token names the session.
    let cookie = server.sign_in_over_http("bc@example.com").await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let base = &server.base_url;
    let authorized = http
        .get(format!("{base}/api/auth/oidc/authorize"))
        .query(&[
            ("client_id", "bc-app"),
            ("redirect_uri", CALLBACK),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "s"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ])
        .header("cookie", &cookie)
        .send()
        .await
        .expect("authorize answers");
    assert_eq!(authorized.status(), reqwest::StatusCode::SEE_OTHER);
    let location = url::Url::parse(authorized.headers()["location"].to_str().expect("text")).expect("a URL");
    let code = location.query_pairs().find(|(name, _)| name == "code").expect("a code").1.into_owned();
    let tokens: Value = http
        .post(format!("{base}/api/auth/oidc/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("client_id", "bc-app"),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token answers")
        .json()
        .await
        .expect("JSON");
    let id_token = claims_of(tokens["id_token"].as_str().expect("an ID token"));

    // The app signs the person out of magiclink; the app is down for two attempts, then up.
    let out = http
        .get(format!("{base}/api/auth/oidc/end-session"))
        .query(&[("id_token_hint", tokens["id_token"].as_str().expect("an ID token"))])
        .header("cookie", &cookie)
        .send()
        .await
        .expect("end-session answers");
    assert!(out.status().is_success() || out.status().is_redirection(), "{}", out.status());
    assert_eq!(next_line(&lines, "the first attempt"), serde_json::json!({ "refused": 503 }));
    assert_eq!(next_line(&lines, "the second attempt"), serde_json::json!({ "refused": 503 }));
    let told = next_line(&lines, "the third attempt");
    let verified = &told["verified"];
    assert!(verified.is_object(), "jose refused the logout token: {told}");
    assert_eq!(verified["iss"], server.base_url.as_str());
    assert_eq!(verified["aud"], "bc-app");
    assert_eq!(verified["sid"], id_token["sid"], "the session the ID token named");
    assert_eq!(verified["sub"], id_token["sub"]);
    assert_eq!(told["alg"], "RS256", "the app's ID-token algorithm");
    // A logout token is typed as one: it never passes for an ID token, here as a logout hint.
    let replayed = http
        .get(format!("{base}/api/auth/oidc/end-session"))
        .query(&[("id_token_hint", told["token"].as_str().expect("the token"))])
        .send()
        .await
        .expect("end-session answers");
    assert_eq!(replayed.status(), reqwest::StatusCode::BAD_REQUEST);
}

/// A first-party public app at the test's callback, signing out to the test's address.
fn public_client(id: &str) -> Client {
    Client {
        id: ClientId::parse(id).expect("id"),
        name: id.to_owned(),
        kind: ClientKind::Public,
        secret_hash: None,
        redirect_uris: vec![url::Url::parse(REGISTERED_CALLBACK).expect("URL")],
        post_logout_redirect_uris: vec![url::Url::parse(SIGNED_OUT).expect("URL")],
        first_party: true,
        backchannel_logout_uri: None,
        id_token_algorithm: SigningAlgorithm::Rs256,
        from_config: false,
        created_at: chrono::Utc::now(),
    }
}
