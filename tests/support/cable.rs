//! A cable the tests can pull: a TCP forwarder on loopback between the service and a real
//! database or Redis server, switched between passing traffic, refusing connections (the
//! server is down), and silently swallowing them (packets dropped on the way).
//!
//! The service is pointed at [`Cable::address`] instead of the server; nothing else about it
//! changes, so the faults it meets are the ones an operator pulling a cable would cause.

use std::net::SocketAddr;

use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the cable does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Passes every byte both ways.
    Connected,
    /// Nothing listens: new connections are refused, open ones are closed.
    Refusing,
    /// Connections are accepted and held open, and nothing is answered: a network that drops
    /// packets without a word.
    Swallowing,
}

/// A switchable forwarder to one upstream server; stops when dropped.
pub struct Cable {
    address: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Cable {
    /// A connected cable to `upstream` (`host:port`), listening on a free loopback port.
    pub async fn to(upstream: &str) -> Self {
        let upstream: SocketAddr =
            tokio::net::lookup_host(upstream).await.expect("the upstream resolves").next().expect("to an address");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("bound");
        let (mode, watching) = watch::channel(Mode::Connected);
        let task = tokio::spawn(serve(listener, address, upstream, watching));
        Self { address, mode, task }
    }

    /// Where the service should connect instead of the server.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Switches the cable; connections open at the time follow the new mode at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts while the mode is not [`Mode::Refusing`]; when it is, the listener is closed so
/// that the port refuses, and bound again on the same port when the mode changes back.
async fn serve(listener: TcpListener, address: SocketAddr, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let mut listener = Some(listener);
    loop {
        let current = *mode.borrow_and_update();
        match (&listener, current) {
            (Some(_), Mode::Refusing) => listener = None,
            (None, Mode::Connected | Mode::Swallowing) => {
                listener = Some(TcpListener::bind(address).await.expect("the cable's port again"));
            }
            _ => {}
        }
        let Some(open) = &listener else {
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            accepted = open.accept() => {
                if let Ok((client, _)) = accepted {
                    tokio::spawn(carry(client, upstream, mode.clone()));
                }
            }
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
}

/// One connection through the cable, for as long as the mode lets it live.
async fn carry(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow_and_update() == Mode::Connected {
        let Ok(mut server) = TcpStream::connect(upstream).await else { return };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = wait_until(&mut mode, |m| m != Mode::Connected) => {}
        }
        // The server's side is gone with `server`; the client's follows the new mode.
    }
    if *mode.borrow() == Mode::Swallowing {
        let mut sink = [0_u8; 4096];
        loop {
            tokio::select! {
                read = client.read(&mut sink) => if matches!(read, Ok(0) | Err(_)) { return },
                _ = wait_until(&mut mode, |m| m != Mode::Swallowing) => return,
            }
        }
    }
    // Refusing: dropping the socket closes it.
}

/// Waits until the mode satisfies `wanted` (forever, if the cable is gone).
async fn wait_until(mode: &mut watch::Receiver<Mode>, wanted: impl Fn(Mode) -> bool) {
    if mode.wait_for(|m| wanted(*m)).await.is_err() {
        std::future::pending::<()>().await;
    }
}
