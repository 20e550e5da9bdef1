//! A real SMTP server process for the tests (`support/smtp_server.py`, on aiosmtpd), and
//! throwaway TLS certificates for it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

/// A certificate authority and a server certificate for 127.0.0.1 that it signed.
pub struct TestCertificates {
    /// The CA certificate, PEM: what a client must trust.
    pub ca_pem: String,
    /// Folder holding `server.pem` and `server.key`.
    dir: tempfile::TempDir,
}

impl TestCertificates {
    /// Generates fresh keys and certificates.
    pub fn generate() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "magiclink test CA");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).expect("server params");
        let server = server_params.signed_by(&server_key, &ca, &ca_key).expect("server certificate");
        let dir = tempfile::tempdir().expect("certificate folder");
        std::fs::write(dir.path().join("server.pem"), server.pem()).expect("write certificate");
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).expect("write key");
        Self { ca_pem: ca.pem(), dir }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

/// The decoded text/plain part of a raw message, as a mail client shows it.
pub fn text_part(raw: &[u8]) -> String {
    let message = mailparse::parse_mail(raw).expect("a MIME message");
    let part = message.subparts.iter().find(|part| part.ctype.mimetype == "text/plain").expect("a text part");
    part.get_body().expect("decodable")
}

/// A running `smtp_server.py`, stopped when dropped.
pub struct SmtpServer {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    maildir: tempfile::TempDir,
    deliveries: mpsc::UnboundedReceiver<String>,
    child: Child,
    stdin: Option<ChildStdin>,
}

/// How the test SMTP server talks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTls {
    /// Offer and require STARTTLS.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl SmtpServer {
    /// Starts the server, with STARTTLS required when `tls` is given. `None` when aiosmtpd is
    /// not installed (after [`crate::require`] has said so, or failed the test in CI).
    pub fn start(tls: Option<&TestCertificates>) -> Option<Self> {
        Self::start_with(tls.map(|certificates| (certificates, ServerTls::StartTls)), None)
    }

    /// Starts the server with the given TLS mode and, when `login` is given, required AUTH.
    pub fn start_with(tls: Option<(&TestCertificates, ServerTls)>, login: Option<(&str, &str)>) -> Option<Self> {
        // Debian's `python3-aiosmtpd` installs it for /usr/bin/python3.
        let python = crate::require(&xtask::tasks::AIOSMTPD)?;
        let maildir = tempfile::tempdir().expect("maildir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/smtp_server.py");
        let mut command = Command::new(python);
        command.arg(script).arg("--maildir").arg(maildir.path().join("mail"));
        if let Some((certificates, mode)) = tls {
            command.arg("--tls-cert").arg(certificates.cert_path()).arg("--tls-key").arg(certificates.key_path());
            if mode == ServerTls::Implicit {
                command.arg("--implicit-tls");
            }
        }
        if let Some((user, password)) = login {
            command.arg("--auth").arg(format!("{user}:{password}"));
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the SMTP server starts");
        let stdin = child.stdin.take();
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // The server's first line says it listens: reading it is the synchronisation.
        let ready = lines.next().expect("the SMTP server printed nothing").expect("readable");
        let port = ready.strip_prefix("READY ").and_then(|p| p.parse().ok()).expect("READY <port>");
        let (sender, deliveries) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Some(recipient) = line.strip_prefix("DELIVERED ") {
                    let _ = sender.send(recipient.to_owned());
                }
            }
        });
        Some(Self { port, maildir, deliveries, child, stdin })
    }

    /// Waits for the server to store the next message and returns its recipient.
    pub async fn next_delivery(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.deliveries.recv())
            .await
            .expect("a message arrives within 30 s")
            .expect("the SMTP server is running")
    }

    /// Every stored message, raw.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let new = self.maildir.path().join("mail/new");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&new)
            .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|file| std::fs::read(file).expect("readable message")).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Points `settings` at the plain-text SMTP server on `port` of loopback (no STARTTLS), as the
/// tests that send real mail through the whole service do.
pub fn send_through(settings: &mut xtask::settings::Settings, port: u16) {
    settings.mailer.kind = xtask::settings::MailerKind::Smtp;
    settings.mailer.from = "magiclink <no-reply@example.com>".to_owned();
    settings.mailer.smtp.url = format!("smtp://127.0.0.1:{port}").into();
    settings.mailer.smtp.starttls = xtask::settings::StartTlsSetting::Off;
}
