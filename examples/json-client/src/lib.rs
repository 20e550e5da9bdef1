//! Signing in to magiclink through its JSON API alone, as a mobile app or any program would:
//! a CSRF token, a link requested with a JSON body, the emailed code typed back in, the session
//! read, and sign-out. The client keeps magiclink's cookies itself (reqwest without a cookie
//! store: three cookies, kept by hand, show exactly what a client must carry).
//!
//! Where a person would read the code from their email, this example reads it from the
//! development mailbox (`/dev/mailbox`, present only with the development mailer).

use std::collections::BTreeMap;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

/// A client of one magiclink, with the cookies it was given.
pub struct Client {
    http: reqwest::Client,
    base: String,
    cookies: BTreeMap<String, String>,
    csrf_token: String,
}

impl Client {
    /// A client of the magiclink at `base` (e.g. `http://127.0.0.1:3000`), with a CSRF token.
    ///
    /// # Errors
    /// When magiclink cannot be reached or answers unexpectedly.
    pub async fn connect(base: &str) -> anyhow::Result<Self> {
        let mut client = Self {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?,
            base: base.trim_end_matches('/').to_owned(),
            cookies: BTreeMap::new(),
            csrf_token: String::new(),
        };
        let csrf = client.call(reqwest::Method::GET, "/api/auth/csrf", None).await?;
        client.csrf_token = csrf["csrfToken"].as_str().context("no csrfToken")?.to_owned();
        Ok(client)
    }

    /// Asks for a sign-in link and code for `email`; answers how many minutes they last.
    ///
    /// # Errors
    /// A problem document's title and detail when magiclink refuses (e.g. rate limited).
    pub async fn request_code(&mut self, email: &str) -> anyhow::Result<i64> {
        let sent = self.call(reqwest::Method::POST, "/api/auth/signin/email", Some(json!({ "email": email }))).await?;
        sent["expiresInMinutes"].as_i64().context("no expiresInMinutes")
    }

    /// Signs in with the code from the email.
    ///
    /// # Errors
    /// When the code is wrong, used up or expired (the problem document says which).
    pub async fn sign_in_with_code(&mut self, code: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/api/auth/callback/email", Some(json!({ "code": code }))).await?;
        Ok(())
    }

    /// The signed-in person's address, or `None` when signed out.
    ///
    /// # Errors
    /// When magiclink cannot answer.
    pub async fn signed_in_as(&mut self) -> anyhow::Result<Option<String>> {
        let session = self.call(reqwest::Method::GET, "/api/auth/session", None).await?;
        Ok(session["user"]["email"].as_str().map(str::to_owned))
    }

    /// Signs out: the session ends on the server and its cookie is dropped here.
    ///
    /// # Errors
    /// When magiclink refuses or cannot answer.
    pub async fn sign_out(&mut self) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/api/auth/signout", Some(json!({}))).await?;
        Ok(())
    }

    /// The newest code sent to `email`, from the development mailbox (a person reads it from
    /// their email instead).
    ///
    /// # Errors
    /// When there is no development mailbox or no message yet.
    pub async fn code_from_dev_mailbox(&mut self, email: &str) -> anyhow::Result<String> {
        let path = format!("/dev/mailbox?to={email}");
        let messages = self.call(reqwest::Method::GET, &path, None).await?;
        Ok(messages[0]["code"].as_str().context("no message with a code yet")?.to_owned())
    }

    /// One JSON request with the kept cookies (and the CSRF token on changes); keeps the
    /// answer's cookies; a problem document becomes an error.
    async fn call(&mut self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let cookie = self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json")
            .header("cookie", cookie);
        if let Some(body) = body {
            request = request.header("x-csrf-token", &self.csrf_token).json(&body);
        }
        let response = request.send().await.with_context(|| format!("{path} did not answer"))?;
        for line in response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let Some((name, value)) = line.split(';').next().and_then(|pair| pair.split_once('=')) else { continue };
            if line.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let answer: Value = response.json().await.with_context(|| format!("{path} answered {status} without JSON"))?;
        if !status.is_success() {
            bail!("{path}: {status} {}: {}", answer["title"], answer["detail"]);
        }
        Ok(answer)
    }
}
