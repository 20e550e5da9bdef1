//! A real Caddy (Debian's package) in front of the tiny upstream app of [`crate::nginx`],
//! configured with the forward-auth snippet from `docs/integration/Caddyfile`.
//!
//! Caddy runs in the foreground and says when it serves: the test reads its log until the line
//! `serving initial configuration`, which Caddy writes once its listeners are bound.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The snippet as shipped in the docs.
pub fn forward_auth_snippet() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/integration/Caddyfile");
    std::fs::read_to_string(path).expect("docs/integration/Caddyfile")
}

/// A running Caddy, killed when dropped.
pub struct Caddy {
    process: Child,
    _dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub origin: String,
}

impl Caddy {
    /// Serves the docs' snippet on `port` of loopback, pointing it at magiclink (`magiclink`,
    /// e.g. `http://127.0.0.1:3000`) and at the app on `app_port`. `None` when Caddy is not
    /// installed (after [`crate::require`] has said so, or failed the test in CI).
    pub async fn start_forward_auth(port: u16, magiclink: &str, app_port: u16) -> Option<Self> {
        let program = crate::require(&xtask::tasks::CADDY)?;
        let origin = format!("http://127.0.0.1:{port}");
        // The site on plain HTTP on loopback, no admin endpoint (tests run side by side), nothing
        // written outside the test's own folder.
        let site = forward_auth_snippet()
            .replace("app.example.com {", &format!("{origin} {{"))
            .replace("127.0.0.1:3000", magiclink.trim_start_matches("http://"))
            .replace("127.0.0.1:8000", &format!("127.0.0.1:{app_port}"));
        let dir = tempfile::tempdir().expect("Caddy folder");
        let config = dir.path().join("Caddyfile");
        std::fs::write(&config, format!("{{\n\tadmin off\n\tauto_https off\n}}\n\n{site}")).expect("config written");
        let mut process = Command::new(program)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&config)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Caddy runs");
        let log = BufReader::new(process.stderr.take().expect("piped"));
        // A thread reads the log (to its end, so Caddy never blocks on a full pipe) and says
        // when Caddy serves, or hands back everything it said if it exits first.
        let (serving, said) = tokio::sync::oneshot::channel::<Result<(), String>>();
        std::thread::spawn(move || {
            let mut serving = Some(serving);
            let mut seen = Vec::new();
            for line in log.lines().map_while(Result::ok) {
                if line.contains("\"serving initial configuration\"") {
                    if let Some(serving) = serving.take() {
                        let _ = serving.send(Ok(()));
                    }
                } else if serving.is_some() {
                    seen.push(line);
                }
            }
            if let Some(serving) = serving {
                let _ = serving.send(Err(seen.join("\n")));
            }
        });
        let caddy = Self { process, _dir: dir, origin };
        match tokio::time::timeout(std::time::Duration::from_secs(20), said).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(log))) => panic!("Caddy stopped before serving:\n{log}"),
            Ok(Err(_)) | Err(_) => panic!("Caddy did not say it serves within 20 s"),
        }
        Some(caddy)
    }
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
