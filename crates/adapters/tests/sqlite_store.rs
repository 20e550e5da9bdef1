//! The SQLite stores against real temporary databases with the real migrations.

use std::sync::Arc;

use adapters::sqlite::SqliteStore;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{EmailAddress, LinkToken, LinkTokenHash, ServerSecret, SessionToken, SignInCode, SignInCodeHash};
use ports::{
    CodeRedemption, LinkStore, NewLink, NewOutboxMessage, NewSession, Redemption, SessionStore, StoreHealth, UserStore,
};

/// A migrated database in its own temporary folder, removed when dropped.
struct TestDb {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

async fn test_db() -> TestDb {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("nested/folder/test.sqlite").display());
    let store = SqliteStore::connect(&url, 4).await.expect("database opens");
    let applied = store.migrate().await.expect("migrations apply");
    assert!(!applied.is_empty(), "a fresh database gets every migration");
    TestDb { store, _dir: dir }
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0).single().expect("valid date")
}

fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("valid address")
}

fn secret() -> ServerSecret {
    ServerSecret::new(*b"sqlite-test-secret-sqlite-test-s")
}

fn hash_of(byte: u8) -> LinkTokenHash {
    LinkToken::from_random_bytes([byte; 32]).hash(&secret())
}

/// The code stored with the link made from `byte` (and the hash a person typing it produces).
fn code_of(byte: u8, link: &LinkTokenHash) -> SignInCodeHash {
    SignInCode::from_random_bytes([byte; 8]).hash(&secret(), link)
}

/// The byte every stored link's code is made from; any other byte makes a wrong code.
const CODE_BYTE: u8 = 42;

/// Stores a link and its (placeholder) outbox row, as the request use case does.
async fn store_link(store: &SqliteStore, token_hash: &LinkTokenHash, to: &str, created: DateTime<Utc>) {
    let link = NewLink {
        identifier: address(to),
        token_hash: token_hash.clone(),
        code_hash: code_of(CODE_BYTE, token_hash),
        expires: created + TimeDelta::minutes(10),
        created_at: created,
    };
    let email = NewOutboxMessage {
        recipient: address(to),
        link_token_hash: token_hash.clone(),
        sealed_link: vec![0; 40],
        link_expires: link.expires,
        created_at: created,
    };
    store.insert_with_email(&link, &email).await.expect("link stored");
}

async fn insert_link(store: &SqliteStore, byte: u8, to: &str, created: DateTime<Utc>) -> LinkTokenHash {
    let token_hash = hash_of(byte);
    store_link(store, &token_hash, to, created).await;
    token_hash
}

#[tokio::test]
async fn migrating_twice_applies_nothing_the_second_time_and_status_lists_them() {
    let db = test_db().await;

    let second = db.store.migrate().await.expect("second run");
    let status = db.store.migration_status().await.expect("status");

    assert!(second.is_empty());
    assert!(!status.is_empty() && status.iter().all(|m| m.applied_at.is_some()), "{status:?}");
}

#[tokio::test]
async fn the_database_runs_in_wal_mode_with_foreign_keys_enforced() {
    let db = test_db().await;

    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(db.store.pool()).await.expect("pragma");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys").fetch_one(db.store.pool()).await.expect("pragma");
    let orphan = sqlx::query(
        "INSERT INTO sessions (id, session_token, user_id, expires, created_at, updated_at) VALUES ('s', 't', 'nobody', 0, 0, 0)",
    )
    .execute(db.store.pool())
    .await;

    assert_eq!(journal, "wal");
    assert_eq!(foreign_keys, 1);
    assert!(orphan.is_err(), "a session for a missing user is refused");
    db.store.ping().await.expect("healthy");
}

#[tokio::test]
async fn a_link_is_redeemed_once_and_then_reads_as_used() {
    let db = test_db().await;
    let token_hash = insert_link(&db.store, 1, "a@example.com", t0()).await;
    let at = t0() + TimeDelta::minutes(5);

    let first = db.store.redeem(&token_hash, &address("a@example.com"), at).await.expect("redeem");
    let second = db.store.redeem(&token_hash, &address("a@example.com"), at).await.expect("redeem");

    assert_eq!(first, Redemption::Redeemed);
    assert_eq!(second, Redemption::AlreadyUsed);
    let used_at: Option<i64> = sqlx::query_scalar("SELECT used_at FROM verification_tokens WHERE token = ?")
        .bind(token_hash.to_hex())
        .fetch_one(db.store.pool())
        .await
        .expect("row kept after use");
    assert_eq!(used_at, Some(at.timestamp_millis()));
}

#[tokio::test]
async fn expired_unknown_and_wrong_address_links_sign_nobody_in() {
    let db = test_db().await;
    let token_hash = insert_link(&db.store, 2, "a@example.com", t0()).await;
    let expiry = t0() + TimeDelta::minutes(10);

    let wrong_address = db.store.redeem(&token_hash, &address("b@example.com"), t0()).await.expect("redeem");
    let unknown = db.store.redeem(&hash_of(99), &address("a@example.com"), t0()).await.expect("redeem");
    let at_expiry = db.store.redeem(&token_hash, &address("a@example.com"), expiry).await.expect("redeem");
    let just_before = db
        .store
        .redeem(&token_hash, &address("a@example.com"), expiry - TimeDelta::milliseconds(1))
        .await
        .expect("redeem");

    assert_eq!(wrong_address, Redemption::Unknown);
    assert_eq!(unknown, Redemption::Unknown);
    assert_eq!(at_expiry, Redemption::Expired);
    assert_eq!(just_before, Redemption::Redeemed, "the expired attempt did not consume the link");
}

#[tokio::test]
async fn racing_redemptions_of_one_link_yield_exactly_one_winner() {
    let db = test_db().await;
    let token_hash = insert_link(&db.store, 3, "race@example.com", t0()).await;
    let store = Arc::new(db.store.clone());

    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            let token_hash = token_hash.clone();
            tokio::spawn(async move { store.redeem(&token_hash, &address("race@example.com"), t0()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.expect("task").expect("redeem"));
    }

    assert_eq!(outcomes.iter().filter(|o| **o == Redemption::Redeemed).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Redemption::Redeemed | Redemption::AlreadyUsed)));
}

#[tokio::test]
async fn the_right_code_redeems_the_link_once_and_uses_up_its_link_too() {
    let db = test_db().await;
    let link = insert_link(&db.store, 20, "code@example.com", t0()).await;
    let right = code_of(CODE_BYTE, &link);
    let at = t0() + TimeDelta::minutes(1);

    let first = db.store.redeem_code(&link, &right, 5, at).await.expect("redeem");
    let again = db.store.redeem_code(&link, &right, 5, at).await.expect("redeem");
    let by_link = db.store.redeem(&link, &address("code@example.com"), at).await.expect("redeem");

    assert_eq!(first, CodeRedemption::Redeemed { identifier: address("code@example.com") });
    assert_eq!(again, CodeRedemption::AlreadyUsed);
    assert_eq!(by_link, Redemption::AlreadyUsed);
}

#[tokio::test]
async fn wrong_codes_count_down_and_then_even_the_right_code_fails() {
    let db = test_db().await;
    let link = insert_link(&db.store, 21, "guess@example.com", t0()).await;
    let at = t0() + TimeDelta::minutes(1);

    let mut outcomes = Vec::new();
    for wrong in 1..=6_u8 {
        outcomes.push(db.store.redeem_code(&link, &code_of(wrong, &link), 5, at).await.expect("redeem"));
    }
    let right_too_late = db.store.redeem_code(&link, &code_of(CODE_BYTE, &link), 5, at).await.expect("redeem");

    let expected: Vec<CodeRedemption> =
        [4, 3, 2, 1, 0].map(|attempts_left| CodeRedemption::Wrong { attempts_left }).into_iter().collect();
    assert_eq!(outcomes[..5], expected[..]);
    assert_eq!(outcomes[5], CodeRedemption::Exhausted);
    assert_eq!(right_too_late, CodeRedemption::Exhausted);
    assert_eq!(
        db.store.redeem(&link, &address("guess@example.com"), at).await.expect("redeem"),
        Redemption::Redeemed,
        "the link in the email still works on the device that has it"
    );
}

#[tokio::test]
async fn codes_of_expired_unknown_and_other_links_sign_nobody_in() {
    let db = test_db().await;
    let link = insert_link(&db.store, 22, "late@example.com", t0()).await;
    let other = insert_link(&db.store, 23, "other@example.com", t0()).await;
    let unknown = hash_of(24);

    let late = t0() + TimeDelta::minutes(10);
    let expired = db.store.redeem_code(&link, &code_of(CODE_BYTE, &link), 5, late).await.expect("redeem");
    let nowhere = db.store.redeem_code(&unknown, &code_of(CODE_BYTE, &unknown), 5, t0()).await.expect("redeem");
    // The right code of one link, tried against another: bound to its link, it is wrong there.
    let crossed = db.store.redeem_code(&other, &code_of(CODE_BYTE, &link), 5, t0()).await.expect("redeem");

    assert_eq!(expired, CodeRedemption::Expired);
    assert_eq!(nowhere, CodeRedemption::Unknown);
    assert_eq!(crossed, CodeRedemption::Wrong { attempts_left: 4 });
}

#[tokio::test]
async fn racing_code_redemptions_yield_exactly_one_winner() {
    let db = test_db().await;
    let link = insert_link(&db.store, 25, "race-code@example.com", t0()).await;
    let store = Arc::new(db.store.clone());

    let attempts: Vec<_> = (0..16)
        .map(|_| {
            let store = Arc::clone(&store);
            let link = link.clone();
            tokio::spawn(async move { store.redeem_code(&link, &code_of(CODE_BYTE, &link), 5, t0()).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.expect("task").expect("redeem"));
    }

    let winners = outcomes.iter().filter(|o| matches!(o, CodeRedemption::Redeemed { .. })).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, CodeRedemption::Redeemed { .. } | CodeRedemption::AlreadyUsed)));
}

#[tokio::test]
async fn redeeming_by_code_retires_the_other_unused_links_of_that_address() {
    let db = test_db().await;
    let older = insert_link(&db.store, 26, "both@example.com", t0()).await;
    let newer = insert_link(&db.store, 27, "both@example.com", t0()).await;

    db.store.redeem_code(&newer, &code_of(CODE_BYTE, &newer), 5, t0()).await.expect("redeem");

    assert_eq!(db.store.redeem(&older, &address("both@example.com"), t0()).await.expect("redeem"), Redemption::Unknown);
}

#[tokio::test]
async fn redeeming_one_link_retires_the_other_unused_links_of_that_address() {
    let db = test_db().await;
    let older = insert_link(&db.store, 4, "a@example.com", t0()).await;
    let newer = insert_link(&db.store, 5, "a@example.com", t0() + TimeDelta::minutes(1)).await;
    let someone_else = insert_link(&db.store, 6, "b@example.com", t0()).await;
    let at = t0() + TimeDelta::minutes(2);

    assert_eq!(db.store.redeem(&newer, &address("a@example.com"), at).await.expect("redeem"), Redemption::Redeemed);

    assert_eq!(db.store.redeem(&older, &address("a@example.com"), at).await.expect("redeem"), Redemption::Unknown);
    assert_eq!(
        db.store.redeem(&someone_else, &address("b@example.com"), at).await.expect("redeem"),
        Redemption::Redeemed,
        "other addresses keep their links"
    );
}

#[tokio::test]
async fn only_the_keyed_hash_is_stored_never_the_token() {
    let db = test_db().await;
    let token = LinkToken::from_random_bytes([7; 32]);
    let token_hash = token.hash(&ServerSecret::new(*b"sqlite-test-secret-sqlite-test-s"));
    store_link(&db.store, &token_hash, "a@example.com", t0()).await;

    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token FROM verification_tokens").fetch_all(db.store.pool()).await.expect("rows");

    assert_eq!(stored, vec![token_hash.to_hex()]);
    assert!(!stored[0].contains(&token.encode()));
}

#[tokio::test]
async fn users_are_created_once_per_address_and_keep_their_first_verification() {
    let db = test_db().await;
    let later = t0() + TimeDelta::days(3);

    let created = db.store.find_or_create_verified(&address("u@example.com"), t0()).await.expect("created");
    let again = db.store.find_or_create_verified(&address("u@example.com"), later).await.expect("found");
    let by_id = UserStore::find(&db.store, &created.id).await.expect("read").expect("exists");

    assert_eq!(created.id, again.id);
    assert_eq!(again.email_verified, Some(t0()));
    assert_eq!(by_id, created);
    assert!(uuid::Uuid::parse_str(created.id.as_str()).is_ok_and(|id| id.get_version_num() == 7));
}

#[tokio::test]
async fn sessions_are_stored_by_hash_found_extended_and_deleted() {
    let db = test_db().await;
    let user = db.store.find_or_create_verified(&address("s@example.com"), t0()).await.expect("user");
    let token = SessionToken::from_random_bytes([8; 32]);
    let created = db
        .store
        .create(&NewSession {
            token_hash: token.hash(),
            user_id: user.id.clone(),
            expires: t0() + TimeDelta::days(30),
            user_agent: Some("test-agent".to_owned()),
            created_at: t0(),
        })
        .await
        .expect("created");

    let (found, found_user) = SessionStore::find(&db.store, &token.hash()).await.expect("read").expect("exists");
    assert_eq!(found, created);
    assert_eq!(found_user, user);
    let stored: String =
        sqlx::query_scalar("SELECT session_token FROM sessions").fetch_one(db.store.pool()).await.expect("row");
    assert_eq!(stored, token.hash().to_hex());

    let extended_to = t0() + TimeDelta::days(31);
    db.store.extend(&created.id, extended_to, t0() + TimeDelta::days(1)).await.expect("extended");
    let (found, _) = SessionStore::find(&db.store, &token.hash()).await.expect("read").expect("exists");
    assert_eq!(found.expires, extended_to);

    assert_eq!(SessionStore::purge_expired(&db.store, t0() + TimeDelta::days(31)).await.expect("purge"), 0);
    SessionStore::delete(&db.store, &token.hash()).await.expect("deleted");
    assert!(SessionStore::find(&db.store, &token.hash()).await.expect("read").is_none());
}

#[tokio::test]
async fn purging_removes_only_what_expired_before_the_cutoff() {
    let db = test_db().await;
    let old = insert_link(&db.store, 10, "a@example.com", t0()).await;
    let fresh = insert_link(&db.store, 11, "b@example.com", t0() + TimeDelta::hours(2)).await;

    let purged = LinkStore::purge_expired(&db.store, t0() + TimeDelta::hours(1)).await.expect("purge");

    assert_eq!(purged, 1);
    let at = t0() + TimeDelta::hours(2);
    assert_eq!(db.store.redeem(&old, &address("a@example.com"), at).await.expect("redeem"), Redemption::Unknown);
    assert_eq!(db.store.redeem(&fresh, &address("b@example.com"), at).await.expect("redeem"), Redemption::Redeemed);
}

/// Every lookup the stores make is answered by an index, never a table scan.
#[tokio::test]
async fn every_lookup_uses_an_index() {
    let db = test_db().await;
    let lookups = [
        "SELECT used_at, expires FROM verification_tokens WHERE token = 'x' AND identifier = 'y'",
        "UPDATE verification_tokens SET used_at = 1 WHERE token = 'x' AND identifier = 'y' AND used_at IS NULL AND expires > 1",
        "UPDATE verification_tokens SET used_at = 1 WHERE token = 'x' AND used_at IS NULL AND expires > 1 AND code_attempts < 5 AND code_hash = 'c'",
        "UPDATE verification_tokens SET code_attempts = code_attempts + 1 WHERE token = 'x' AND used_at IS NULL",
        "DELETE FROM verification_tokens WHERE identifier = 'y' AND used_at IS NULL",
        "DELETE FROM verification_tokens WHERE expires < 1",
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.session_token = 'x'",
        "UPDATE sessions SET expires = 1 WHERE id = 'x'",
        "DELETE FROM sessions WHERE expires < 1",
        "SELECT id FROM users WHERE id = 'x'",
        "SELECT id FROM users WHERE email = 'x'",
        "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= 1 ORDER BY next_attempt_at LIMIT 5",
        "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'",
        "UPDATE outbox SET status = 'sent' WHERE id = 'x'",
        "SELECT id FROM outbox WHERE status = 'failed' ORDER BY created_at DESC LIMIT 5",
        "SELECT id FROM outbox ORDER BY created_at DESC LIMIT 5",
    ];
    for lookup in lookups {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {lookup}")).fetch_all(db.store.pool()).await.expect("plan");
        let details: Vec<&str> = plan.iter().map(|row| row.3.as_str()).collect();
        // An ordered walk of an index under LIMIT ("SCAN t USING INDEX i") reads only the rows
        // it returns; a bare "SCAN t" reads the whole table.
        let scans_table =
            |d: &&str| d.starts_with("SCAN") && !d.contains("USING INDEX") && !d.contains("COVERING INDEX");
        assert!(!details.iter().any(scans_table), "{lookup} scans a table: {details:?}");
    }
}
