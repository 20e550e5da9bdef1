//! The Prometheus metrics listener (`metrics.bind`, off by default): `GET /metrics` on its own
//! address, so that it can stay on a private interface while the service faces the world.
//!
//! The web layer counts requests, sign-ins and sessions ([`web::telemetry`]); the delivery
//! worker counts emails ([`record_batch`]); the gauges that describe the present (outbox depth,
//! the oldest pending email's age, database connections) are read from the store at each
//! scrape, so they cost nothing between scrapes.

use std::sync::OnceLock;

use anyhow::Context as _;
use chrono::Utc;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::http::StatusCode;
use poem::{get, handler, web::Data, EndpointExt as _, IntoResponse, Response, Route};
use ports::BatchReport;

/// Emails the delivery worker finished with, by `outcome` (`sent`, `retried`, `failed`,
/// `dropped`).
pub const EMAILS: &str = "magiclink_emails_total";
/// Emails waiting in the outbox.
pub const OUTBOX_PENDING: &str = "magiclink_outbox_pending";
/// Seconds since the oldest waiting email was queued (0 with none waiting).
pub const OUTBOX_OLDEST_AGE: &str = "magiclink_outbox_oldest_pending_age_seconds";
/// Database connections open, by `state` (`in-use`, `idle`).
pub const DB_CONNECTIONS: &str = "magiclink_db_connections";
/// The most database connections the pools may open.
pub const DB_CONNECTIONS_MAX: &str = "magiclink_db_connections_max";

/// Latency buckets in seconds: a session check takes well under a millisecond, a sign-in a few.
const LATENCY_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The process's recorder, installed once: the `metrics` facade has one global recorder, and a
/// process (a test binary) may build several services.
///
/// # Errors
/// When the recorder cannot be built or another recorder was installed first.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .context("latency buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Counts what one delivery batch did.
pub fn record_batch(report: &BatchReport) {
    for (outcome, count) in
        [("sent", report.sent), ("retried", report.retried), ("failed", report.failed), ("dropped", report.dropped)]
    {
        if count > 0 {
            metrics::counter!(EMAILS, "outcome" => outcome).increment(u64::from(count));
        }
    }
}

/// The metrics listener's application: `GET /metrics`.
pub fn app(handle: PrometheusHandle, store: adapters::database::Database) -> impl poem::Endpoint<Output = Response> {
    Route::new().at("/metrics", get(scrape)).data(handle).data(store)
}

#[handler]
async fn scrape(handle: Data<&PrometheusHandle>, store: Data<&adapters::database::Database>) -> Response {
    match store.outbox.counts().await {
        Ok(counts) => {
            metrics::gauge!(OUTBOX_PENDING).set(counts.pending as f64);
            let age = counts
                .oldest_pending
                .map_or(0.0, |queued| ((Utc::now() - queued).num_milliseconds().max(0) as f64) / 1000.0);
            metrics::gauge!(OUTBOX_OLDEST_AGE).set(age);
        }
        // The rest still renders; the outbox gauges keep their last values.
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "metrics: cannot read the outbox"),
    }
    let pools = store.pool_usage();
    metrics::gauge!(DB_CONNECTIONS, "state" => "in-use").set(f64::from(pools.open.saturating_sub(pools.idle)));
    metrics::gauge!(DB_CONNECTIONS, "state" => "idle").set(f64::from(pools.idle));
    metrics::gauge!(DB_CONNECTIONS_MAX).set(f64::from(pools.max));
    // Histograms keep their samples until upkeep folds them in; a scrape is the natural moment.
    handle.run_upkeep();
    handle.render().with_content_type("text/plain; version=0.0.4").with_status(StatusCode::OK).into_response()
}
