//! A burst of 1,000 sign-in requests against the real server while the mailer is slow: every
//! request is answered without waiting for the mailer, and every email is delivered once.
//!
//! The figures (requests answered per second, time to deliver all 1,000) are printed for the
//! record; the test asserts behaviour, never timings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use ports::{MailError, Mailer, SentReceipt, SignInEmail};
use system_tests::RunningServer;
use tokio::sync::watch;
use xtask::wiring::Parts;

const REQUESTS: usize = 1_000;
const SEND_TIME: Duration = Duration::from_millis(200);

/// A mailer that holds every send until its gate opens, then takes 200 ms per message.
struct SlowGatedMailer {
    gate: watch::Receiver<bool>,
    delivered: Mutex<HashMap<String, u32>>,
    count: watch::Sender<usize>,
}

#[async_trait::async_trait]
impl Mailer for SlowGatedMailer {
    async fn send_sign_in_link(&self, email: &SignInEmail, _key: &str) -> Result<SentReceipt, MailError> {
        let mut gate = self.gate.clone();
        gate.wait_for(|open| *open).await.map_err(MailError::transient)?;
        // The provider's latency, simulated.
        tokio::time::sleep(SEND_TIME).await;
        *self.delivered.lock().expect("lock").entry(email.to.as_str().to_owned()).or_default() += 1;
        self.count.send_modify(|count| *count += 1);
        Ok(SentReceipt::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_is_answered_at_once_and_every_email_delivered_once() {
    let (open_gate, gate) = watch::channel(false);
    let (count, mut delivered_count) = watch::channel(0usize);
    let mailer = Arc::new(SlowGatedMailer { gate, delivered: Mutex::default(), count });
    let server = RunningServer::start_with(
        |settings| settings.outbox.concurrency = 50,
        Parts { mailer: Some(mailer.clone()), ..Parts::default() },
    )
    .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let csrf = http.get(format!("{}/api/auth/csrf", server.base_url)).send().await.expect("csrf");
    let cookie = csrf.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let token = csrf.json::<serde_json::Value>().await.expect("json")["csrfToken"].as_str().expect("token").to_owned();

    // The burst, 64 requests in flight at a time, while the mailer cannot send anything.
    let started = Instant::now();
    let statuses: Vec<u16> = stream::iter(0..REQUESTS)
        .map(|n| {
            let request = http
                .post(format!("{}/api/auth/signin/email", server.base_url))
                .header("cookie", &cookie)
                .form(&[("email", format!("burst{n}@example.com")), ("csrfToken", token.clone())]);
            async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let answered_in = started.elapsed();

    assert!(statuses.iter().all(|status| *status == 303), "every request answered with a redirect");
    assert_eq!(*delivered_count.borrow(), 0, "all answered while the mailer had sent nothing");

    // Let the mailer go and wait for the last delivery.
    let opened = Instant::now();
    open_gate.send(true).expect("gate");
    tokio::time::timeout(Duration::from_secs(120), delivered_count.wait_for(|n| *n >= REQUESTS))
        .await
        .expect("all delivered within 120 s")
        .expect("the mailer is alive");
    let delivered_in = opened.elapsed();

    let delivered = mailer.delivered.lock().expect("lock").clone();
    assert_eq!(delivered.len(), REQUESTS, "every address got its email");
    assert!(delivered.values().all(|times| *times == 1), "no email delivered twice");
    eprintln!(
        "burst: {REQUESTS} sign-in requests answered in {:.2} s ({:.0} requests/s) with the mailer blocked; \
         all {REQUESTS} delivered {:.2} s after it was released ({} ms per send, outbox.concurrency = 50)",
        answered_in.as_secs_f64(),
        REQUESTS as f64 / answered_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
        SEND_TIME.as_millis(),
    );
}
