//! A minimal W3C WebDriver client over HTTP, enough to drive headless Chromium through
//! chromedriver: open a page, type, click, read text, take screenshots.
//!
//! Hand-written rather than a WebDriver crate because the ones on crates.io pull in a TLS stack
//! and a second HTTP client for what is six JSON calls to a loopback port.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::{json, Value};

/// The key under which WebDriver returns element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running chromedriver, killed when dropped, after it has closed the browsers of every
/// session still open (a test that failed before `quit`): killing chromedriver alone leaves
/// its Chromium running.
pub struct Driver {
    process: Child,
    port: u16,
    open_sessions: OpenSessions,
}

/// The paths (`/session/ID`) of a driver's sessions not yet quit.
type OpenSessions = Arc<Mutex<Vec<String>>>;

impl Driver {
    /// Starts chromedriver on a free loopback port and waits for its "started" line.
    ///
    /// # Errors
    /// Fails if chromedriver cannot be started.
    pub fn start(chromedriver: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut process = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", chromedriver.display()))?;
        // chromedriver prints one line once it listens; reading it is the synchronisation.
        let stdout = process.stdout.take().context("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            anyhow::ensure!(reader.read_line(&mut line)? > 0, "chromedriver exited before it started");
            if line.contains("started successfully") {
                break;
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Ok(Self { process, port, open_sessions: OpenSessions::default() })
    }

    /// Opens a headless Chromium session.
    ///
    /// # Errors
    /// Fails if the browser does not start.
    pub async fn session(&self, chromium: &Path, profile_dir: &Path) -> anyhow::Result<Browser> {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{}", self.port);
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--window-size=1000,800",
                        format!("--user-data-dir={}", profile_dir.display()),
                    ]
                }
            }}
        });
        let reply = call(&http, reqwest::Method::POST, &format!("{base}/session"), Some(capabilities)).await?;
        let id = reply["sessionId"].as_str().context("no session id")?.to_owned();
        let path = format!("/session/{id}");
        self.open_sessions.lock().unwrap_or_else(PoisonError::into_inner).push(path.clone());
        Ok(Browser { http, session: format!("{base}{path}"), path, open_sessions: Arc::clone(&self.open_sessions) })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let open = std::mem::take(&mut *self.open_sessions.lock().unwrap_or_else(PoisonError::into_inner));
        for path in open {
            delete_waiting(self.port, &path);
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `DELETE path` on chromedriver, waiting for its whole answer, which comes once the browser
/// has quit. Plain blocking I/O: it runs in `Drop`, where no async runtime can be relied on.
/// chromedriver keeps the connection open after answering, so the answer is read by its
/// `Content-Length`, not to the end of the stream.
fn delete_waiting(port: u16, path: &str) {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return };
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(20)));
    let request = format!("DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    let mut answer = Vec::new();
    let mut chunk = [0_u8; 4096];
    loop {
        if let Some(head_end) = answer.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0);
            if answer.len() >= head_end + 4 + length {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(read) => answer.extend_from_slice(&chunk[..read]),
        }
    }
}

/// One browser session. Its driver closes the browser when the test ends without [`Browser::quit`].
pub struct Browser {
    http: reqwest::Client,
    session: String,
    /// `/session/ID`, as the driver lists it among its open sessions.
    path: String,
    open_sessions: OpenSessions,
}

/// A reference to an element on the current page.
pub struct Element(String);

impl Browser {
    /// Navigates and waits for the page to load.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.post("/url", json!({ "url": url })).await.map(drop)
    }

    /// The current URL.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self.get("/url").await?.as_str().context("url is a string")?.to_owned())
    }

    /// The first element matching a CSS selector.
    ///
    /// # Errors
    /// Fails if there is none.
    pub async fn find(&self, css: &str) -> anyhow::Result<Element> {
        let found = self.post("/element", json!({ "using": "css selector", "value": css })).await?;
        Ok(Element(found[ELEMENT_KEY].as_str().with_context(|| format!("no element {css}"))?.to_owned()))
    }

    /// Types into an element.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn type_into(&self, element: &Element, text: &str) -> anyhow::Result<()> {
        self.post(&format!("/element/{}/value", element.0), json!({ "text": text })).await.map(drop)
    }

    /// Clicks an element; a click that navigates returns once the new page has loaded.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn click(&self, element: &Element) -> anyhow::Result<()> {
        self.post(&format!("/element/{}/click", element.0), json!({})).await.map(drop)
    }

    /// The visible text of an element.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn text(&self, element: &Element) -> anyhow::Result<String> {
        Ok(self.get(&format!("/element/{}/text", element.0)).await?.as_str().unwrap_or_default().to_owned())
    }

    /// Waits until the element matching `css` shows `expected`, re-reading the page until it
    /// does or `within` runs out. A click that submits a form may return before the browser
    /// has swapped pages; this waits for the condition itself instead of guessing a delay.
    ///
    /// # Errors
    /// Fails with the last text seen when the condition never holds.
    pub async fn wait_for_text(&self, css: &str, expected: &str, within: std::time::Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(element) = self.find(css).await {
                seen = self.text(&element).await.unwrap_or_default();
                if seen == expected {
                    return Ok(());
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        anyhow::bail!("{css} never showed {expected:?}; last seen {seen:?}")
    }

    /// Runs a script in the page and returns what it returns (`arguments` are its arguments).
    ///
    /// # Errors
    /// Fails on a WebDriver or script error.
    pub async fn execute(&self, script: &str, arguments: Vec<Value>) -> anyhow::Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": arguments })).await
    }

    /// Resizes the window, e.g. to a phone's width.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn set_window_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        self.post("/window/rect", json!({ "width": width, "height": height })).await.map(drop)
    }

    /// Moves into an `<iframe>`: later finds and clicks act inside it.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn enter_frame(&self, frame: &Element) -> anyhow::Result<()> {
        self.post("/frame", json!({ "id": { ELEMENT_KEY: frame.0 } })).await.map(drop)
    }

    /// Moves back to the top-level page.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn leave_frames(&self) -> anyhow::Result<()> {
        self.post("/frame", json!({ "id": null })).await.map(drop)
    }

    /// Saves a PNG screenshot of the viewport and returns its path.
    ///
    /// # Errors
    /// Fails on a WebDriver or file error.
    pub async fn screenshot(&self, folder: &Path, name: &str) -> anyhow::Result<PathBuf> {
        let encoded = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD.decode(encoded.as_str().context("base64 screenshot")?)?;
        std::fs::create_dir_all(folder)?;
        let path = folder.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Adds a virtual authenticator (the WebDriver WebAuthn extension): CTAP2 over the
    /// platform's "internal" transport, holding discoverable credentials, verifying the person
    /// and consenting every time, as Touch ID or Windows Hello would. Returns its id.
    ///
    /// # Errors
    /// Fails on a WebDriver error (a driver without the extension).
    pub async fn add_virtual_authenticator(&self) -> anyhow::Result<String> {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserVerified": true,
            "isUserConsenting": true,
        });
        let id = self.post("/webauthn/authenticator", options).await?;
        Ok(id.as_str().context("the authenticator's id is a string")?.to_owned())
    }

    /// The credentials a virtual authenticator holds.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn virtual_credentials(&self, authenticator: &str) -> anyhow::Result<Vec<Value>> {
        let credentials = self.get(&format!("/webauthn/authenticator/{authenticator}/credentials")).await?;
        Ok(credentials.as_array().cloned().unwrap_or_default())
    }

    /// Adds a credential (as [`Browser::virtual_credentials`] lists one, private key included)
    /// to a virtual authenticator: a passkey synced from another device.
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn add_virtual_credential(&self, authenticator: &str, credential: &Value) -> anyhow::Result<()> {
        self.post(&format!("/webauthn/authenticator/{authenticator}/credential"), credential.clone()).await.map(drop)
    }

    /// Waits until `script` (a function body) returns `true` in the page, re-running it until
    /// it does or `within` runs out; for conditions no element's text shows.
    ///
    /// # Errors
    /// Fails with the last value seen when the condition never holds.
    pub async fn wait_until(&self, script: &str, within: std::time::Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Value::Null;
        while tokio::time::Instant::now() < deadline {
            if let Ok(value) = self.execute(script, Vec::new()).await {
                if value == Value::Bool(true) {
                    return Ok(());
                }
                seen = value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        anyhow::bail!("{script} never held; last returned {seen}")
    }

    /// Ends the session (closes the browser).
    ///
    /// # Errors
    /// Fails on a WebDriver error.
    pub async fn quit(self) -> anyhow::Result<()> {
        call(&self.http, reqwest::Method::DELETE, &self.session, None).await?;
        self.open_sessions.lock().unwrap_or_else(PoisonError::into_inner).retain(|open| *open != self.path);
        Ok(())
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        call(&self.http, reqwest::Method::GET, &format!("{}{path}", self.session), None).await
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        call(&self.http, reqwest::Method::POST, &format!("{}{path}", self.session), Some(body)).await
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let reply: Value = request.send().await?.json().await?;
    if let Some(error) = reply["value"].get("error") {
        anyhow::bail!("webdriver: {error}: {}", reply["value"]["message"]);
    }
    Ok(if reply.get("sessionId").is_some() { reply } else { reply["value"].clone() })
}
