//! The OpenID Provider proven with relying-party libraries no one here wrote, each against the
//! real server on a loopback port: openid-client (Node; panva's OpenID-certified library) as a
//! public client with PKCE and `none` authentication, and Authlib (Python) as a confidential
//! client with `client_secret_post`. Each library does what an app does (discovery, the
//! authorization URL, the code exchange with its own ID-token checks, userinfo, refresh,
//! revocation); the test plays the browser, which is signed in to magiclink already, and for
//! openid-client follows the end-session URL it built. The browser in between is not the
//! point here (`oidc.rs` has the pages); the libraries' acceptance is.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};

use domain::oidc::{Client, ClientId, ClientKind, ClientSecret, SigningAlgorithm};
use serde_json::Value;
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

async fn register(server: &RunningServer, id: &str, public: bool) -> Option<String> {
    let secret = ClientSecret::from_random_bytes(ports::random::os_random().expect("randomness"));
    let client = Client {
        id: ClientId::parse(id).expect("id"),
        name: id.to_owned(),
        kind: if public { ClientKind::Public } else { ClientKind::Confidential },
        secret_hash: (!public).then(|| secret.hash()),
        redirect_uris: vec![url::Url::parse(REGISTERED_CALLBACK).expect("URL")],
        post_logout_redirect_uris: vec![url::Url::parse(SIGNED_OUT).expect("URL")],
        first_party: true,
        id_token_algorithm: SigningAlgorithm::Rs256,
        created_at: chrono::Utc::now(),
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
    register(&server, "node-app", true).await;
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
    let secret = register(&server, "python-app", false).await.expect("a confidential client's secret");
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
