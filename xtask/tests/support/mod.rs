//! Helpers shared by the tests of the `magiclink` binary: a `serve` child process read line by
//! line, and a plain HTTP/1.1 request over a socket.

// Each test file uses a different part of this module.
#![allow(dead_code)]

/// A `magiclink serve` child process, killed when dropped, with its stdout read line by line.
pub struct Serving {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Serving {
    /// Starts `magiclink serve ARGS` in `dir` with only `env` set of magiclink's variables.
    pub fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        use std::io::BufRead as _;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_magiclink"));
        command
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env("MAGICLINK_CONFIG_DIR", dir.join("no-config"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for name in ["AUTH_SECRET", "AUTH_URL", "DATABASE_URL", "MAGICLINK_PROFILE", "RUST_LOG", "NO_COLOR"] {
            command.env_remove(name);
        }
        command.envs(env.iter().copied());
        let mut child = command.spawn().expect("magiclink starts");
        let (sender, lines) = std::sync::mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Self { child, lines }
    }

    /// Waits for `Listening on http://...` and returns that origin.
    pub fn origin(&self) -> String {
        let lines = self.read_until("Listening on http://");
        lines.last().and_then(|line| line.strip_prefix("Listening on ")).expect("an origin").to_owned()
    }

    /// The process id, to read its memory from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line up to and including the first that contains `wanted` (30 s at most).
    pub fn read_until(&self, wanted: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no line with {wanted:?}; saw {seen:#?}"));
            let found = line.contains(wanted);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over a plain HTTP/1.1 connection; the whole response as text.
pub fn http_get(origin: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let host = origin.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).expect("the server accepts connections");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("request sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response read");
    response
}
