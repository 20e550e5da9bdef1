//! A real nginx (Debian's package) in front of a tiny upstream app, configured with the forward
//! auth snippet from `docs/integration/nginx-forward-auth.conf`, for the forward-auth tests.
//!
//! nginx is started the way an operator starts it, daemonised: the command returns once the
//! listening socket is bound (nginx binds before it forks), so its exit is the readiness signal.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The snippet as shipped in the docs.
pub fn forward_auth_snippet() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integration/nginx-forward-auth.conf");
    std::fs::read_to_string(path).expect("docs/integration/nginx-forward-auth.conf")
}

/// A loopback port held for a server another program binds (nginx, Caddy), which cannot report
/// a port it chose itself. The socket is bound with `SO_REUSEPORT` and never listens: no other
/// socket can take the port meanwhile (a bind without `SO_REUSEPORT` conflicts with it, so
/// parallel tests cannot race for it), the program can (nginx with `reuseport` on its
/// `listen`, Caddy by default on Linux), and since it never listens it is sent no connection.
/// Hold it for the test's whole life.
pub struct ReservedPort {
    /// The port.
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

/// Reserves a loopback port (see [`ReservedPort`]).
pub fn reserve_port() -> ReservedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseport(true).expect("SO_REUSEPORT");
    socket.bind("127.0.0.1:0".parse().expect("an address")).expect("a loopback port");
    let port = socket.local_addr().expect("bound").port();
    ReservedPort { port, _socket: socket }
}

/// A running nginx, stopped when dropped.
pub struct Nginx {
    program: PathBuf,
    dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl Nginx {
    /// Serves the docs' snippet on `port` of loopback, pointing it at magiclink (`magiclink`,
    /// e.g. `http://127.0.0.1:3000`) and at the app on `app_port`. `None` when nginx is not
    /// installed (after [`crate::require`] has said so, or failed the test in CI).
    pub fn start_forward_auth(port: u16, magiclink: &str, app_port: u16) -> Option<Self> {
        let magiclink_address = magiclink.trim_start_matches("http://");
        let server = forward_auth_snippet()
            .replace("127.0.0.1:3000", magiclink_address)
            .replace("127.0.0.1:8000", &format!("127.0.0.1:{app_port}"))
            .replace("listen 80;", &format!("listen 127.0.0.1:{port} reuseport;"))
            .replace("https://auth.example.com", magiclink);
        Self::start(port, &server)
    }

    /// Serves `server` (one or more `server { ... }` blocks, and `upstream`s) on `port` of
    /// loopback. `None` when nginx is not installed (after [`crate::require`] has said so, or
    /// failed the test in CI).
    pub fn start(port: u16, server: &str) -> Option<Self> {
        let program = crate::require(&xtask::tasks::NGINX)?;
        let dir = tempfile::tempdir().expect("nginx folder");
        let conf = format!(
            "pid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\nworker_processes 1;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {dir}/body;\n    proxy_temp_path {dir}/proxy;\n\
             fastcgi_temp_path {dir}/fastcgi;\n    uwsgi_temp_path {dir}/uwsgi;\n    scgi_temp_path {dir}/scgi;\n\
             {server}\n}}\n",
            dir = dir.path().display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("config written");
        let started = Command::new(&program)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .output()
            .expect("nginx runs");
        assert!(started.status.success(), "nginx did not start: {}", String::from_utf8_lossy(&started.stderr));
        Some(Self { program, dir, origin: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(&self.program)
            .arg("-p")
            .arg(self.dir.path())
            .arg("-e")
            .arg(self.dir.path().join("error.log"))
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .args(["-s", "stop"])
            .output();
    }
}

/// The tiny app behind nginx: answers every request with the signed-in person nginx named in
/// `X-Auth-Request-Email` (`hello <address>`), or `hello nobody`. Runs until the test ends.
pub async fn start_upstream() -> u16 {
    use poem::listener::{Acceptor as _, TcpAcceptor};
    use poem::{handler, Request};

    #[handler]
    fn hello(req: &Request) -> String {
        format!("hello {}", req.header("x-auth-request-email").unwrap_or("nobody"))
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let acceptor = TcpAcceptor::from_tokio(listener).expect("acceptor");
    let port = acceptor.local_addr()[0].as_socket_addr().expect("a socket address").port();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(hello));
    port
}
