//! At scale the lookups stay index-bound: with 1,000,000 users and 1,000,000 sessions (seeded
//! as `cargo xtask seed` does), on SQLite and on PostgreSQL, the query plans of a session
//! lookup and of a link redemption use indexes, never a table scan. How fast they stay is a
//! benchmark's question (`cargo xtask bench`, docs/benchmarks.md), not a test's.

use adapters::database::Dialect;
use sqlx::Row as _;
use system_tests::stores::scratch_store;

/// The store's lookups, with literal values, as the planner sees them.
const LOOKUPS: [&str; 8] = [
    "SELECT s.id, s.expires, u.id, u.email FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.session_token = 'x'",
    "UPDATE verification_tokens SET used_at = 1 WHERE token = 'x' AND identifier = 'y' AND used_at IS NULL AND expires > 1",
    "SELECT used_at, expires, code_attempts FROM verification_tokens WHERE token = 'x' AND identifier = 'y'",
    "DELETE FROM verification_tokens WHERE identifier = 'y' AND used_at IS NULL",
    "UPDATE sessions SET expires = 1, updated_at = 1 WHERE id = 'x'",
    "SELECT id FROM users WHERE email = 'seed-5@seed.example.com'",
    "DELETE FROM sessions WHERE expires < 1",
    "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= 1 ORDER BY next_attempt_at LIMIT 5",
];

/// Whether one line of a plan reads a whole table.
fn scans_a_table(dialect: Dialect, line: &str) -> bool {
    match dialect {
        // "SCAN t USING INDEX i" walks an index; a bare "SCAN t" reads the table.
        Dialect::Sqlite => line.contains("SCAN") && !line.contains("USING INDEX") && !line.contains("COVERING INDEX"),
        Dialect::Postgres | Dialect::MySql => line.contains("Seq Scan"),
    }
}

async fn lookups_stay_index_bound_with_a_million_rows(dialect: Dialect) {
    let Some(store) = scratch_store(dialect, 4).await else { return };
    let seeded = store
        .database
        .seed(1_000_000, 1_000_000, chrono::Utc::now(), chrono::TimeDelta::days(30))
        .await
        .expect("seeded");
    assert_eq!((seeded.users, seeded.sessions), (1_000_000, 1_000_000));
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM sessions")
        .fetch_one(&store.raw)
        .await
        .expect("count")
        .try_get(0)
        .expect("a number");
    assert_eq!(count, 1_000_000);

    for lookup in LOOKUPS {
        let rows = sqlx::query(&format!("{}{lookup}", dialect.explain())).fetch_all(&store.raw).await.expect("plan");
        let column = if dialect == Dialect::Sqlite { 3 } else { 0 };
        let plan: Vec<String> = rows.iter().map(|row| row.try_get(column).expect("plan text")).collect();
        assert!(!plan.is_empty(), "{lookup}: no plan");
        assert!(!plan.iter().any(|line| scans_a_table(dialect, line)), "{lookup} scans a table: {plan:#?}");
    }
    store.close().await;
}

/// A second seeding run adds to the first: its users and session tokens are numbered on.
#[tokio::test]
async fn seeding_twice_adds_users_and_sessions_after_those_already_there() {
    let Some(store) = scratch_store(Dialect::Sqlite, 2).await else { return };
    let now = chrono::Utc::now();
    store.database.seed(2, 10, now, chrono::TimeDelta::days(30)).await.expect("first run");
    store
        .database
        .seed(2, 10, now, chrono::TimeDelta::days(30))
        .await
        .expect("a second run does not collide with the first");

    let users = store.database.users.list(100).await.expect("users");
    assert_eq!(users.len(), 4);
    for n in 0..20 {
        let hash = adapters::sql::seeded_session_token(n).hash();
        assert!(store.database.sessions.find(&hash).await.expect("lookup").is_some(), "seeded session {n}");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lookups_stay_index_bound_with_a_million_users_and_sessions() {
    lookups_stay_index_bound_with_a_million_rows(Dialect::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lookups_stay_index_bound_with_a_million_users_and_sessions() {
    lookups_stay_index_bound_with_a_million_rows(Dialect::Postgres).await;
}
