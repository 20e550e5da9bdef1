//! Session lookups per second with 1,000 and with 1,000,000 users and sessions, in one run, on
//! SQLite and (when it is reachable) PostgreSQL: the growth check of docs/benchmarks.md.
//! `cargo xtask bench` runs it and prints the ratio of the two sizes.
#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use std::sync::Arc;

use adapters::database::{Database, Dialect, OpenMode, PoolSettings};
use adapters::sql::seeded_session_token;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use system_tests::scratch::ScratchDatabase;

/// The database sizes compared: users, and as many sessions.
const SIZES: [(u64, &str); 2] = [(1_000, "1k"), (1_000_000, "1M")];

/// A seeded scratch database of `rows` users and sessions, or `None` when its server is absent.
fn seeded(runtime: &tokio::runtime::Runtime, dialect: Dialect, rows: u64) -> Option<(ScratchDatabase, Database)> {
    runtime.block_on(async {
        let scratch = match ScratchDatabase::create(dialect).await {
            Ok(scratch) => scratch,
            Err(error) => {
                eprintln!("skipping {}: {error:#}", dialect.name());
                return None;
            }
        };
        let database = Database::open(&scratch.url(), PoolSettings::new(4), OpenMode::CreateIfMissing).await.ok()??;
        database.migrate().await.ok()?;
        database.seed(rows, rows, chrono::Utc::now(), chrono::TimeDelta::days(30)).await.ok()?;
        Some((scratch, database))
    })
}

fn session_lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let mut group = c.benchmark_group("session_lookup");
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        for (rows, label) in SIZES {
            let Some((scratch, database)) = seeded(&runtime, dialect, rows) else { continue };
            let sessions = Arc::clone(&database.sessions);
            // Lookups walk the seeded sessions in a scattered order (a multiplicative step).
            let mut n: u64 = 0;
            group.bench_function(BenchmarkId::new(dialect.name(), label), |b| {
                b.iter(|| {
                    n = (n + 7_919) % rows;
                    let hash = seeded_session_token(n).hash();
                    let found = runtime.block_on(sessions.find(&hash)).expect("lookup");
                    assert!(found.is_some(), "seeded session {n} exists");
                });
            });
            runtime.block_on(database.close());
            drop(scratch);
        }
    }
    group.finish();
}

criterion_group!(benches, session_lookup);
criterion_main!(benches);
