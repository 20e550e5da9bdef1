//! A minimal HTTP/1.1 client for the load generator: one keep-alive connection per simulated
//! client (hyper's connection-level API, no pool), and a cookie jar just big enough for the
//! sign-in flow.

use std::net::SocketAddr;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, SET_COOKIE};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// A response, read whole.
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (lossy: only ever checked, never trusted).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// One open connection to a server.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    /// Connects to `address`.
    pub async fn open(address: SocketAddr) -> anyhow::Result<Self> {
        let stream =
            tokio::net::TcpStream::connect(address).await.with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the server or this client closes the connection.
            let _ = connection.await;
        });
        Ok(Self { sender, host: HeaderValue::from_str(&address.to_string())? })
    }

    /// Sends `method path` with `headers` and `body`, and reads the whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder().method(method).uri(path).header("host", self.host.clone());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.map(Bytes::from).unwrap_or_default()))?;
        self.sender.ready().await.context("the connection closed")?;
        let response = self.sender.send_request(request).await.with_context(|| format!("{path} failed"))?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.context("cannot read the body")?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

/// Cookies set by one server for one simulated browser.
#[derive(Default)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Keeps what the answer's `Set-Cookie` headers set, and forgets what they clear.
    pub fn absorb(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let first = value.split(';').next().unwrap_or_default();
            let Some((name, content)) = first.split_once('=') else { continue };
            let cleared = content.is_empty() || value.to_ascii_lowercase().contains("max-age=0");
            self.cookies.retain(|(kept, _)| kept != name);
            if !cleared {
                self.cookies.push((name.to_owned(), content.to_owned()));
            }
        }
    }

    /// The `Cookie` header to send.
    pub fn header(&self) -> String {
        self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
    }

    /// Whether a cookie of this name is held.
    pub fn has(&self, name: &str) -> bool {
        self.cookies.iter().any(|(kept, _)| kept == name)
    }
}
