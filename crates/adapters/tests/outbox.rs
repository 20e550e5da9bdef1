//! The outbox over a real SQLite database: the request use case queues, the delivery use case
//! sends, with a scripted mailer and a clock moved by hand.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use adapters::clock::ManualClock;
use adapters::sqlite::SqliteStore;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{CallbackPath, EmailAddress, LinkPolicy, ServerSecret, SessionPolicy};
use ports::{
    Deliverer, DeliverySettings, DeliveryState, DeliveryWaker, MailError, Mailer, Outbox, RequestLink, RetryPolicy,
    SentReceipt, SignIn, SignInEmail, SignInSettings,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 8, 1, 8, 0, 0).single().expect("valid date")
}

fn secret() -> ServerSecret {
    ServerSecret::new(*b"outbox-test-secret-outbox-test-s")
}

/// A mailer that answers from a script (then succeeds) and records what it accepted.
#[derive(Default)]
struct ScriptedMailer {
    script: Mutex<VecDeque<Result<(), MailError>>>,
    attempts: Mutex<u32>,
    delivered: Mutex<Vec<SignInEmail>>,
}

impl ScriptedMailer {
    fn failing_transiently(times: usize) -> Self {
        let script = (0..times).map(|_| Err(MailError::transient(anyhow::anyhow!("451 try again later")))).collect();
        Self { script: Mutex::new(script), ..Self::default() }
    }

    fn delivered(&self) -> Vec<SignInEmail> {
        self.delivered.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl Mailer for ScriptedMailer {
    async fn send_sign_in_link(&self, email: &SignInEmail, key: &str) -> Result<SentReceipt, MailError> {
        *self.attempts.lock().expect("lock") += 1;
        if let Some(answer) = self.script.lock().expect("lock").pop_front() {
            answer?;
        }
        self.delivered.lock().expect("lock").push(email.clone());
        Ok(SentReceipt { provider_message_id: Some(format!("provider-{key}")) })
    }
}

struct NoWaker;
impl DeliveryWaker for NoWaker {
    fn wake(&self) {}
}

struct Fixture {
    store: SqliteStore,
    clock: Arc<ManualClock>,
    sign_in: SignIn,
    url: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("outbox.sqlite").display());
    let store = SqliteStore::connect(&url, 4).await.expect("opens");
    store.migrate().await.expect("migrates");
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let store_port = Arc::new(store.clone());
    let sign_in = SignIn::new(
        store_port.clone(),
        store_port.clone(),
        store_port.clone(),
        Arc::new(NoWaker),
        store_port,
        clock.clone(),
        SignInSettings {
            secret: secret(),
            previous_secrets: Vec::new(),
            link_policy: LinkPolicy::new(600),
            session_policy: SessionPolicy::new(86_400, 3_600),
            callback_endpoint: url::Url::parse("http://127.0.0.1:3000/api/auth/callback/email").expect("valid"),
            link_retention: TimeDelta::days(1),
            limits: ports::SignInLimits::default(),
            sign_up: ports::SignUpPolicy::Open,
        },
    );
    Fixture { store, clock, sign_in, url, _dir: dir }
}

fn deliverer(store: &SqliteStore, mailer: Arc<dyn Mailer>, clock: Arc<ManualClock>) -> Deliverer {
    Deliverer::new(
        Arc::new(store.clone()),
        mailer,
        clock,
        DeliverySettings {
            secret: secret(),
            previous_secrets: Vec::new(),
            retry: RetryPolicy {
                max_attempts: 8,
                base_delay: TimeDelta::seconds(2),
                max_delay: TimeDelta::seconds(60),
            },
            concurrency: 4,
            lease: TimeDelta::minutes(2),
            site_name: "magiclink".to_owned(),
            host: "127.0.0.1".to_owned(),
        },
    )
}

async fn queue(fixture: &Fixture, to: &str) {
    let request =
        RequestLink { email: EmailAddress::parse(to).expect("valid"), callback: CallbackPath::root(), client: None };
    fixture.sign_in.request_link(request).await.expect("queued");
}

async fn rows(store: &SqliteStore) -> Vec<(String, Option<Vec<u8>>, i64, Option<String>)> {
    sqlx::query_as("SELECT status, sealed_body, attempts, last_error FROM outbox ORDER BY created_at")
        .fetch_all(store.pool())
        .await
        .expect("rows")
}

/// Advances the clock past the next due row.
async fn advance_to_next_due(fixture: &Fixture) {
    let due = fixture.store.next_due().await.expect("read").expect("something is pending");
    fixture.clock.advance((due - ports::Clock::now(&*fixture.clock)).max(TimeDelta::zero()));
}

#[tokio::test]
async fn a_mailer_that_fails_three_times_then_succeeds_delivers_exactly_once() {
    let fixture = fixture().await;
    queue(&fixture, "a@example.com").await;
    let mailer = Arc::new(ScriptedMailer::failing_transiently(3));
    let worker = deliverer(&fixture.store, mailer.clone(), fixture.clock.clone());

    let mut retried = 0;
    loop {
        let report = worker.deliver_due().await.expect("batch runs");
        retried += report.retried;
        if report.sent == 1 {
            break;
        }
        assert_eq!(report.retried, 1, "a transient failure is rescheduled: {report:?}");
        advance_to_next_due(&fixture).await;
    }

    assert_eq!(retried, 3);
    assert_eq!(*mailer.attempts.lock().expect("lock"), 4);
    assert_eq!(mailer.delivered().len(), 1, "delivered exactly once");
    let report = worker.deliver_due().await.expect("batch runs");
    assert_eq!(report.claimed, 0, "nothing left to send");
    let rows = rows(&fixture.store).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1.is_none(), rows[0].2), ("sent", true, 4));
}

#[tokio::test]
async fn a_restart_between_attempts_still_delivers() {
    let fixture = fixture().await;
    queue(&fixture, "restart@example.com").await;
    let first = deliverer(&fixture.store, Arc::new(ScriptedMailer::failing_transiently(1)), fixture.clock.clone());
    assert_eq!(first.deliver_due().await.expect("batch").retried, 1);
    drop(first);
    fixture.store.close().await;

    // A new process: a new pool on the same file, a new worker, a working mailer.
    let reopened = SqliteStore::connect(&fixture.url, 2).await.expect("reopens");
    let mailer = Arc::new(ScriptedMailer::default());
    let second = deliverer(&reopened, mailer.clone(), fixture.clock.clone());
    let due = reopened.next_due().await.expect("read").expect("still pending after the restart");
    fixture.clock.advance(due - t0());
    assert_eq!(second.deliver_due().await.expect("batch").sent, 1);

    let delivered = mailer.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].to.as_str(), "restart@example.com");
    assert!(delivered[0].link.as_str().contains("token="), "the unsealed link is whole");
}

#[tokio::test]
async fn a_message_whose_link_expired_is_dropped_never_sent_and_erased() {
    let fixture = fixture().await;
    queue(&fixture, "late@example.com").await;
    fixture.clock.advance(TimeDelta::minutes(10));
    let mailer = Arc::new(ScriptedMailer::default());

    let report = deliverer(&fixture.store, mailer.clone(), fixture.clock.clone()).deliver_due().await.expect("batch");

    assert_eq!(report.dropped, 1);
    assert!(mailer.delivered().is_empty());
    let rows = rows(&fixture.store).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1.is_none()), ("dropped", true));
    assert!(rows[0].3.as_deref().is_some_and(|e| e.contains("expired")));
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_with_its_reason_and_the_body_erased() {
    let fixture = fixture().await;
    queue(&fixture, "gone@example.com").await;
    let mailer = ScriptedMailer::default();
    mailer.script.lock().expect("lock").push_back(Err(MailError::Permanent(anyhow::anyhow!("550 5.1.1 no such user"))));

    let report = deliverer(&fixture.store, Arc::new(mailer), fixture.clock.clone()).deliver_due().await.expect("batch");

    assert_eq!(report.failed, 1);
    let rows = rows(&fixture.store).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1.is_none()), ("failed", true));
    assert!(rows[0].3.as_deref().is_some_and(|e| e.contains("550 5.1.1 no such user")), "{:?}", rows[0].3);
    let listed = fixture.store.list(Some(DeliveryState::Failed), 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(fixture.store.counts().await.expect("counts").failed, 1);
}

#[tokio::test]
async fn the_database_never_holds_a_usable_link_in_clear() {
    let fixture = fixture().await;
    queue(&fixture, "raw@example.com").await;
    let mailer = Arc::new(ScriptedMailer::default());

    // While pending: the body is sealed; neither the link nor its token appears in any row.
    let dump: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT recipient, sealed_body FROM outbox")
        .fetch_all(fixture.store.pool())
        .await
        .expect("rows");
    deliverer(&fixture.store, mailer.clone(), fixture.clock.clone()).deliver_due().await.expect("batch");
    let link = mailer.delivered()[0].link.to_string();
    let token = link.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token").to_owned();
    let body = &dump[0].1;
    assert!(body.len() > link.len(), "the whole link is in there, sealed");
    for needle in [link.as_bytes(), token.as_bytes(), b"callback/email".as_slice()] {
        assert!(
            !body.windows(needle.len()).any(|w| w == needle),
            "sealed body leaks {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    let stored_tokens: Vec<String> = sqlx::query_scalar("SELECT token FROM verification_tokens")
        .fetch_all(fixture.store.pool())
        .await
        .expect("rows");
    assert!(stored_tokens.iter().all(|t| !t.contains(&token)));

    // Once sent the body is gone, and the database refuses to keep one on a finished row.
    assert!(rows(&fixture.store).await[0].1.is_none());
    let refused = sqlx::query("UPDATE outbox SET sealed_body = x'00'").execute(fixture.store.pool()).await;
    assert!(refused.is_err(), "CHECK keeps finished rows body-less");
}

#[tokio::test]
async fn concurrent_claims_never_take_a_row_twice() {
    let fixture = fixture().await;
    for n in 0..40 {
        queue(&fixture, &format!("c{n}@example.com")).await;
    }
    let lease = t0() + TimeDelta::minutes(2);

    let (a, b) = tokio::join!(fixture.store.claim_due(t0(), lease, 25), fixture.store.claim_due(t0(), lease, 25));

    let mut ids: Vec<String> =
        a.expect("claim").into_iter().chain(b.expect("claim")).map(|m| m.id.to_string()).collect();
    assert_eq!(ids.len(), 40);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no row claimed twice");
}

#[tokio::test]
async fn a_row_claimed_by_a_worker_that_died_is_retried_after_its_lease() {
    let fixture = fixture().await;
    queue(&fixture, "lease@example.com").await;
    let claimed = fixture.store.claim_due(t0(), t0() + TimeDelta::minutes(2), 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    // The worker dies here without recording anything.
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(&fixture.store, mailer.clone(), fixture.clock.clone());

    assert_eq!(worker.deliver_due().await.expect("batch").claimed, 0, "leased rows are left alone");
    fixture.clock.advance(TimeDelta::minutes(2));
    assert_eq!(worker.deliver_due().await.expect("batch").sent, 1);
    assert_eq!(rows(&fixture.store).await[0].2, 2, "the lost attempt counts");
}
