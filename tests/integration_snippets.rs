//! `docs/integration.md`'s snippets, run against a real magiclink: each backend answers 401
//! without a session, greets the signed-in person with one, and passes magiclink's
//! `Set-Cookie` on. The page must contain each snippet file verbatim.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use system_tests::{require, RunningServer};
use xtask::wiring::Parts;

#[path = "../docs/integration/session_check.rs"]
mod session_check;

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// A snippet backend process, killed when dropped.
struct Backend {
    child: Child,
    origin: String,
}

impl Backend {
    /// Starts `program script` on a free port and waits for its `listening on PORT` line.
    fn start(program: &Path, script: &Path, magiclink: &str) -> Self {
        let mut child = Command::new(program)
            .arg(script)
            .env("MAGICLINK_URL", magiclink)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the snippet starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("a first line");
        let port = line.trim().strip_prefix("listening on ").expect("`listening on PORT`");
        Self { child, origin: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// magiclink with sessions extended on every read, so that every answer carries a Set-Cookie.
async fn magiclink() -> RunningServer {
    RunningServer::start_with(|settings| settings.session.update_age = 0, Parts::default()).await
}

/// Asks a snippet backend as a browser would, with and without the session cookie.
async fn assert_backend_behaves(backend: &Backend, session_cookie: &str, email: &str) {
    let http = reqwest::Client::new();
    let anonymous = http.get(&backend.origin).send().await.expect("answers");
    let signed_in = http.get(&backend.origin).header("cookie", session_cookie).send().await.expect("answers");

    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(signed_in.status(), reqwest::StatusCode::OK);
    let cookie_name = session_cookie.split('=').next().unwrap_or_default();
    let passed_on = signed_in.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(passed_on.starts_with(&format!("{cookie_name}=")), "magiclink's Set-Cookie passed on: {passed_on:?}");
    assert_eq!(signed_in.text().await.expect("text"), format!("Hello, {email}\n"));
}

#[test]
fn the_page_shows_each_snippet_file_verbatim() {
    let page = std::fs::read_to_string(docs().join("integration.md")).expect("docs/integration.md");
    for file in ["check-session.mjs", "check_session.py", "session_check.rs", "spa.html"] {
        let snippet = std::fs::read_to_string(docs().join("integration").join(file)).expect("snippet");
        assert!(page.contains(&snippet), "docs/integration.md does not show docs/integration/{file} as it is");
    }
    for example in ["protected-app/src/lib.rs", "json-client/src/lib.rs"] {
        let code = std::fs::read_to_string(docs().join("../examples").join(example)).expect("the example");
        assert!(page.contains(&code), "docs/integration.md does not show examples/{example} as it is");
    }
}

#[tokio::test]
async fn the_node_snippet_greets_the_signed_in_person_and_passes_cookies_on() {
    let Some(node) = require(&xtask::tasks::NODE) else { return };
    let server = magiclink().await;
    let cookie = server.sign_in_over_http("node@example.com").await;
    let backend = Backend::start(&node, &docs().join("integration/check-session.mjs"), &server.base_url);

    assert_backend_behaves(&backend, &cookie, "node@example.com").await;
}

#[tokio::test]
async fn the_python_snippet_greets_the_signed_in_person_and_passes_cookies_on() {
    let Some(python) = require(&xtask::tasks::PYTHON) else { return };
    let server = magiclink().await;
    let cookie = server.sign_in_over_http("python@example.com").await;
    let backend = Backend::start(&python, &docs().join("integration/check_session.py"), &server.base_url);

    assert_backend_behaves(&backend, &cookie, "python@example.com").await;
}

#[tokio::test]
async fn the_rust_snippet_reads_the_session_and_the_cookies_to_pass_on() {
    let server = magiclink().await;
    let cookie = server.sign_in_over_http("rust@example.com").await;
    let http = reqwest::Client::new();

    let (nobody, nothing_to_pass) =
        session_check::current_session(&http, &server.base_url, None).await.expect("magiclink answers");
    let (session, to_pass_on) =
        session_check::current_session(&http, &server.base_url, Some(&cookie)).await.expect("magiclink answers");

    assert!(nobody.is_none() && nothing_to_pass.is_empty());
    let session = session.expect("signed in");
    assert_eq!(session.user.email, "rust@example.com");
    assert!(!session.user.id.is_empty());
    assert!(chrono::DateTime::parse_from_rfc3339(&session.expires).is_ok(), "{}", session.expires);
    assert_eq!(to_pass_on.len(), 1, "{to_pass_on:?}");
    assert!(to_pass_on[0].starts_with("magiclink.session-token="), "{to_pass_on:?}");
}
