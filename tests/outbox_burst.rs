//! A burst of 1,000 sign-in requests against the real server while the mailer is stuck: every
//! request is answered although the delivery worker is already blocked inside the mailer (so no
//! answer waits for a send), and once the mailer is released every email is delivered once.
//!
//! The figures (requests answered per second, time to deliver all 1,000) are printed for the
//! record; the test asserts behaviour, never timings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt as _};
use ports::{MailError, Mailer, OutgoingEmail, SentReceipt};
use system_tests::RunningServer;
use tokio::sync::watch;
use xtask::wiring::Parts;

const REQUESTS: usize = 1_000;
/// Emails the delivery worker sends at once.
const CONCURRENCY: u32 = 50;

/// A mailer stuck until its gate opens: it counts the sends that entered it and the ones it
/// finished, per address.
struct GatedMailer {
    gate: watch::Receiver<bool>,
    entered: watch::Sender<usize>,
    delivered: Mutex<HashMap<String, u32>>,
    count: watch::Sender<usize>,
}

#[async_trait::async_trait]
impl Mailer for GatedMailer {
    async fn send(&self, email: &OutgoingEmail, _key: &str) -> Result<SentReceipt, MailError> {
        self.entered.send_modify(|entered| *entered += 1);
        let mut gate = self.gate.clone();
        gate.wait_for(|open| *open).await.map_err(MailError::transient)?;
        *self.delivered.lock().expect("lock").entry(email.to.as_str().to_owned()).or_default() += 1;
        self.count.send_modify(|count| *count += 1);
        Ok(SentReceipt::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_is_answered_at_once_and_every_email_delivered_once() {
    let (open_gate, gate) = watch::channel(false);
    let (entered, mut entered_count) = watch::channel(0usize);
    let (count, mut delivered_count) = watch::channel(0usize);
    let mailer = Arc::new(GatedMailer { gate, entered, delivered: Mutex::default(), count });
    let server = RunningServer::start_with(
        |settings| {
            settings.outbox.concurrency = CONCURRENCY;
            // 64 requests in flight from the one loopback address stand for 64 people.
            settings.server.max_connections_per_client = 0;
        },
        Parts { mailer: Some(mailer.clone()), ..Parts::default() },
    )
    .await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let csrf = http.get(format!("{}/api/auth/csrf", server.base_url)).send().await.expect("csrf");
    let cookie = csrf.headers()["set-cookie"].to_str().expect("ascii").split(';').next().expect("pair").to_owned();
    let token = csrf.json::<serde_json::Value>().await.expect("json")["csrfToken"].as_str().expect("token").to_owned();

    // The burst, 64 requests in flight at a time, while the mailer cannot send anything.
    let started = Instant::now();
    // Were an answer to wait for its send, the closed gate would hold it forever.
    let burst = stream::iter(0..REQUESTS)
        .map(|n| {
            let request = http
                .post(format!("{}/api/auth/signin/email", server.base_url))
                .header("cookie", &cookie)
                .form(&[("email", format!("burst{n}@example.com")), ("csrfToken", token.clone())]);
            async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(64)
        .collect::<Vec<u16>>();
    let statuses = tokio::time::timeout(Duration::from_secs(60), burst)
        .await
        .expect("every request answered while the mailer is stuck");
    let answered_in = started.elapsed();

    assert!(statuses.iter().all(|status| *status == 303), "every request answered with a redirect");
    // The worker took up a full batch and is stuck in the mailer with it: the answers above did
    // not wait for any send. (Nothing is delivered until the gate opens below.)
    tokio::time::timeout(Duration::from_secs(30), entered_count.wait_for(|n| *n >= 1))
        .await
        .expect("the worker is sending while the answers are already out")
        .expect("the mailer is alive");
    let stuck_in_mailer = *entered_count.borrow();
    assert!(stuck_in_mailer <= CONCURRENCY as usize, "{stuck_in_mailer} sends at once, over outbox.concurrency");

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
        "burst: {REQUESTS} sign-in requests answered in {:.2} s ({:.0} requests/s) with the mailer blocked \
         ({stuck_in_mailer} sends stuck in it); \
         all {REQUESTS} delivered {:.2} s after it was released (outbox.concurrency = {CONCURRENCY})",
        answered_in.as_secs_f64(),
        REQUESTS as f64 / answered_in.as_secs_f64(),
        delivered_in.as_secs_f64(),
    );
}
