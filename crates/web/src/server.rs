//! The HTTP/1.1 server loop: the poem application behind hyper, with the limits a public service
//! needs and poem's own `Server` does not expose.
//!
//! - **A cap on open connections.** Each connection holds a semaphore permit; at the cap the
//!   loop stops accepting and new connections wait in the kernel's backlog, so a flood of idle
//!   connections can neither exhaust file descriptors nor starve a later `/healthz`.
//! - **A cap per client, below it.** One client (an IPv4 address, an IPv6 /64) holding many
//!   connections open would otherwise take the whole cap and keep everyone else, `/healthz`
//!   included, waiting. Connections past the client's share are closed as soon as they are
//!   accepted. Trusted proxies are exempt: every client behind them shares their address, so
//!   the proxy in front must cap connections per client itself (`docs/deployment.md`).
//! - **A header-read timeout.** A client must send a request's whole head within it, or the
//!   connection is closed (slowloris). Hyper also runs it while a keep-alive connection waits
//!   for its next request, which makes it the idle timeout too.
//! - **Caps on header size and count**, answered 431 by hyper before any handler runs.
//!
//! The body-size cap and the whole-request timeout are middleware (`routes.rs`), where the
//! answer can be the site's own page or problem document. Only HTTP/1.1 is spoken: browsers
//! speak HTTP/2 only over TLS, which the reverse proxy in front terminates.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::http::uri::Scheme;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint, EndpointExt as _, Response};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits on connections and request heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// Connections one client may hold at once (0: no cap of its own); more are closed.
    pub max_connections_per_client: usize,
    /// Time allowed for a request's head to arrive, and for an idle keep-alive connection to
    /// start its next request.
    pub header_read_timeout: Duration,
    /// Bytes allowed in a request's head (request line and headers).
    pub max_header_bytes: usize,
    /// Header fields allowed in a request.
    pub max_headers: usize,
}

/// The smallest head buffer hyper accepts.
const MIN_HEAD_BUFFER: usize = 8192;

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets requests in
/// flight finish for up to `grace`, and returns.
///
/// # Errors
/// Only if the listener's address cannot be read; accept errors (such as running out of file
/// descriptors) are logged and retried.
pub async fn serve(
    listener: TcpListener,
    app: impl Endpoint<Output = Response> + 'static,
    limits: ConnectionLimits,
    trusted_proxies: Vec<ipnet::IpNet>,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) -> std::io::Result<()> {
    let per_client = Arc::new(PerClient::new(limits.max_connections_per_client, trusted_proxies));
    let local_addr = LocalAddr(Addr::from(listener.local_addr()?));
    let app: Arc<dyn poem::endpoint::DynEndpoint<Output = Response>> =
        Arc::new(poem::endpoint::ToDynEndpoint(app.map_to_response()));
    let max_connections = limits.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it was accepted: keep
                // serving the connections we have, and try again shortly rather than spin.
                tracing::warn!(error = %error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(share) = per_client.admit(peer.ip()) else {
            // Over this client's share: closed at once, and the permit is free again.
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = Arc::clone(&app);
        let local_addr = local_addr.clone();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            // Held for the connection's life: dropping them lets the loop accept another, and
            // this client one more.
            let _permit = permit;
            let _share = share;
            serve_connection(stream, peer, local_addr, app, limits, &mut stopping).await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends: getting them all back means all ended.
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace, permits.acquire_many(all)).await;
    Ok(())
}

/// The connections each client holds, for [`ConnectionLimits::max_connections_per_client`].
struct PerClient {
    cap: usize,
    trusted_proxies: Vec<ipnet::IpNet>,
    open: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// One client's connection, counted until dropped.
struct Share {
    clients: Arc<PerClient>,
    key: String,
}

impl PerClient {
    fn new(cap: usize, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        Self { cap, trusted_proxies, open: std::sync::Mutex::default() }
    }

    /// Counts a connection from `peer`, or `None` when that client already holds its share.
    /// No cap, or a trusted proxy: always admitted, and not counted.
    #[allow(clippy::option_option)] // None: refused; Some(None): admitted uncounted.
    fn admit(self: &Arc<Self>, peer: std::net::IpAddr) -> Option<Option<Share>> {
        if self.cap == 0 || self.trusted_proxies.iter().any(|proxy| proxy.contains(&peer)) {
            return Some(None);
        }
        // The same "one client" as the rate limits: an IPv4 address, an IPv6 /64.
        let key = domain::rate_limit::client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = open.entry(key.clone()).or_insert(0);
        if *held >= self.cap {
            return None;
        }
        *held += 1;
        Some(Some(Share { clients: Arc::clone(self), key }))
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = open.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.key);
            }
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    local_addr: LocalAddr,
    app: Arc<dyn poem::endpoint::DynEndpoint<Output = Response>>,
    limits: ConnectionLimits,
    stopping: &mut watch::Receiver<bool>,
) {
    let remote_addr = RemoteAddr(Addr::from(peer));
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let app = Arc::clone(&app);
        let request = poem::Request::from((request, local_addr.clone(), remote_addr.clone(), Scheme::HTTP));
        async move { Ok::<_, Infallible>(hyper::Response::from(app.get_response(request).await)) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEAD_BUFFER));
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let stop_requested = async {
        // The guard `wait_for` returns must not live across an await: keep only the fact.
        let _ = stopping.wait_for(|stop| *stop).await.map(drop);
    };
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stop_requested => {
            // Finish the request in flight, if any, then close.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
