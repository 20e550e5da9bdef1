//! One conformance suite for every store: each contract below is written once against the
//! port traits and run against SQLite, PostgreSQL and MariaDB (the `sqlite`, `postgres` and
//! `mysql` modules at the end), each test on its own scratch database created and dropped by
//! the test.
//!
//! A contract reads like the port's documentation: unknown ids, addresses differing only in
//! case, expiry exactly at the boundary, retirement of the other links, purge cutoffs, the
//! outbox's claim, lease, retry and erasure, and what concurrent callers may see.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use adapters::clock::ManualClock;
use adapters::database::{Database, Dialect};
use adapters::mail::TemplateRenderer;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{
    CallbackPath, EmailAddress, LinkPolicy, LinkToken, LinkTokenHash, ServerSecret, SessionPolicy, SessionToken,
    SignInCode, SignInCodeHash,
};
use ports::{
    ChangeAddress, ChangeAddressError, CodeRedemption, ConfirmAddress, ConfirmAddressError, Deliverer, DeliveryQueue,
    DeliverySettings, DeliveryState, EmailContent, EmailKind, LinkState, MailError, Mailer, NewLink, NewOutboxMessage,
    NewSession, OutgoingEmail, Redemption, RequestLink, RetryPolicy, SentReceipt, SessionDraft, SignIn, SignInSettings,
    UserAdded,
};
use sqlx::Row as _;
use system_tests::stores::ScratchStore;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0).single().expect("valid date")
}

fn address(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).expect("valid address")
}

fn secret() -> ServerSecret {
    ServerSecret::new(*b"conformance-secret-conformance-s")
}

fn hash_of(byte: u8) -> LinkTokenHash {
    LinkToken::from_random_bytes([byte; 32]).hash(&secret())
}

/// The code stored with the link made from `byte` (and the hash a person typing it produces).
fn code_of(byte: u8, link: &LinkTokenHash) -> SignInCodeHash {
    SignInCode::from_random_bytes([byte; 8]).hash(&secret(), link)
}

/// A session for a redemption to open: a new token each time, so that no two collide.
fn a_session() -> SessionDraft {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let mut bytes = [0_u8; 32];
    bytes[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    SessionDraft {
        token_hash: SessionToken::from_random_bytes(bytes).hash(),
        expires: t0() + TimeDelta::days(30),
        user_agent: Some("conformance".to_owned()),
        method: domain::SignInMethod::Link,
        audit: audit(domain::audit::AuditKind::LinkRedeemed),
    }
}

/// The byte every stored link's code is made from; any other byte makes a wrong code.
const CODE_BYTE: u8 = 42;

/// How long a stored link lives.
const LINK_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// Stores a link and its (placeholder) outbox row, as the request use case does.
async fn store_link(db: &Database, token_hash: &LinkTokenHash, to: &str, created: DateTime<Utc>) {
    let link = NewLink {
        identifier: address(to),
        token_hash: token_hash.clone(),
        code_hash: code_of(CODE_BYTE, token_hash),
        expires: created + LINK_LIFETIME,
        created_at: created,
    };
    let email = NewOutboxMessage {
        kind: EmailKind::SignIn,
        lang: "en".to_owned(),
        recipient: address(to),
        link_token_hash: token_hash.clone(),
        sealed_body: vec![0; 40],
        expires: link.expires,
        created_at: created,
        leased_until: None,
    };
    db.links
        .insert_with_email(&link, &email, &audit(domain::audit::AuditKind::LinkRequested))
        .await
        .expect("link stored");
}

async fn insert_link(db: &Database, byte: u8, to: &str, created: DateTime<Utc>) -> LinkTokenHash {
    let token_hash = hash_of(byte);
    store_link(db, &token_hash, to, created).await;
    token_hash
}

/// One text column of every row a raw query returns.
/// An audit event of `kind`, succeeded at t0, from nowhere in particular: what a store method
/// is handed with the change it records.
fn audit(kind: domain::audit::AuditKind) -> domain::audit::AuditEvent {
    domain::audit::AuditEvent::new(
        kind,
        domain::audit::AuditOutcome::Succeeded,
        t0(),
        &domain::audit::RequestOrigin::default(),
    )
}

async fn raw_texts(store: &ScratchStore, query: &str) -> Vec<String> {
    let rows = sqlx::query(query).fetch_all(&store.raw).await.expect("raw query");
    rows.iter().map(|row| row.try_get::<String, _>(0).expect("a text column")).collect()
}

// ---------------------------------------------------------------------------------------------
// Migrations and health

async fn migrating_twice_applies_nothing_the_second_time_and_status_lists_every_migration(store: &ScratchStore) {
    let second = store.database.migrate().await.expect("second run");
    let status = store.database.migration_status().await.expect("status");

    assert!(second.is_empty());
    assert!(!status.is_empty() && status.iter().all(|m| m.applied_at.is_some()), "{status:?}");
    let known = Database::known_migrations(&store.scratch.url()).expect("known");
    assert_eq!(
        status.iter().map(|m| m.version).collect::<Vec<_>>(),
        known.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    let applied_at = status[0].applied_at.expect("applied");
    assert!((Utc::now() - applied_at).abs() < TimeDelta::minutes(5), "applied just now: {applied_at}");
    store.database.health.ping().await.expect("healthy");
}

async fn a_session_for_a_missing_user_is_refused_and_removing_a_user_ends_their_sessions(store: &ScratchStore) {
    let db = &store.database;
    let orphan = sqlx::query(
        "INSERT INTO sessions (id, session_token, user_id, expires, created_at, updated_at) \
         VALUES ('s', 't', 'nobody', 0, 0, 0)",
    )
    .execute(&store.raw)
    .await;
    assert!(orphan.is_err(), "foreign keys are enforced");

    let user = db.users.find_or_create_verified(&address("gone@example.com"), t0()).await.expect("user");
    let (_, token) = a_stored_session(db, &user, 3).await;
    assert!(db
        .users
        .remove(&address("gone@example.com"), None, &audit(domain::audit::AuditKind::UserDeleted))
        .await
        .expect("remove")
        .is_some());
    assert!(
        db.users
            .remove(&address("gone@example.com"), None, &audit(domain::audit::AuditKind::UserDeleted))
            .await
            .expect("remove")
            .is_none(),
        "removing twice finds nobody"
    );
    assert!(db.sessions.find(&token.hash()).await.expect("read").is_none(), "the session went with its user");
}

// ---------------------------------------------------------------------------------------------
// Links

async fn a_link_is_redeemed_once_and_then_reads_as_used(store: &ScratchStore) {
    let db = &store.database;
    let token_hash = insert_link(db, 1, "a@example.com", t0()).await;
    let at = t0() + TimeDelta::minutes(5);
    assert_eq!(db.links.state(&token_hash, &address("a@example.com"), at).await.expect("state"), LinkState::Unused);

    let first = db.links.redeem(&token_hash, &address("a@example.com"), &a_session(), at).await.expect("redeem");
    let second = db.links.redeem(&token_hash, &address("a@example.com"), &a_session(), at).await.expect("redeem");

    assert!(matches!(first, Redemption::Redeemed(_)), "{first:?}");
    assert_eq!(second, Redemption::AlreadyUsed);
    assert_eq!(db.links.state(&token_hash, &address("a@example.com"), at).await.expect("state"), LinkState::Used);
    let used_at =
        sqlx::query(&format!("SELECT used_at FROM verification_tokens WHERE token = '{}'", token_hash.to_hex()))
            .fetch_one(&store.raw)
            .await
            .expect("row kept after use")
            .try_get::<Option<i64>, _>(0)
            .expect("used_at");
    assert_eq!(used_at, Some(at.timestamp_millis()));
}

async fn expiry_is_exact_to_the_millisecond_and_unknown_or_wrong_address_links_sign_nobody_in(store: &ScratchStore) {
    let db = &store.database;
    let token_hash = insert_link(db, 2, "a@example.com", t0()).await;
    let expiry = t0() + LINK_LIFETIME;
    let just_before = expiry - TimeDelta::milliseconds(1);

    let wrong_address =
        db.links.redeem(&token_hash, &address("b@example.com"), &a_session(), t0()).await.expect("redeem");
    let unknown = db.links.redeem(&hash_of(99), &address("a@example.com"), &a_session(), t0()).await.expect("redeem");
    let at_expiry =
        db.links.redeem(&token_hash, &address("a@example.com"), &a_session(), expiry).await.expect("redeem");
    let state_at_expiry = db.links.state(&token_hash, &address("a@example.com"), expiry).await.expect("state");
    let state_unknown = db.links.state(&hash_of(99), &address("a@example.com"), t0()).await.expect("state");
    let redeemed =
        db.links.redeem(&token_hash, &address("a@example.com"), &a_session(), just_before).await.expect("redeem");

    assert_eq!(wrong_address, Redemption::Unknown);
    assert_eq!(unknown, Redemption::Unknown);
    assert_eq!(at_expiry, Redemption::Expired);
    assert_eq!(state_at_expiry, LinkState::Expired);
    assert_eq!(state_unknown, LinkState::Unknown);
    assert!(matches!(redeemed, Redemption::Redeemed(_)), "the expired attempt did not consume the link");
}

async fn fifty_concurrent_redemptions_of_one_link_yield_exactly_one_redeemed(store: &ScratchStore) {
    let db = &store.database;
    let token_hash = insert_link(db, 3, "race@example.com", t0()).await;

    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let links = Arc::clone(&db.links);
            let token_hash = token_hash.clone();
            tokio::spawn(
                async move { links.redeem(&token_hash, &address("race@example.com"), &a_session(), t0()).await },
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.expect("task").expect("redeem"));
    }

    assert_eq!(outcomes.iter().filter(|o| matches!(o, Redemption::Redeemed(_))).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, Redemption::Redeemed(_) | Redemption::AlreadyUsed)));
}

/// Sixty-four writers at once, as a busy service sends them: thirty-two people each opening
/// their own link while thirty-two openings race for one contested link. Whether the store
/// commits each write alone or many together (SQLite's group commit), every writer gets its
/// own outcome, nothing more and nothing less is stored, and the losers' rolled-back writes
/// undo nothing of the winners'.
async fn sixty_four_concurrent_writers_each_get_exactly_their_own_outcome(store: &ScratchStore) {
    let db = &store.database;
    let stored: Vec<_> = (0..32_u8)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(async move { insert_link(&db, 100 + n, &format!("writer{n}@example.com"), t0()).await })
        })
        .collect();
    let mut own_links = Vec::new();
    for link in stored {
        own_links.push(link.await.expect("task"));
    }
    let contested = insert_link(db, 200, "contested@example.com", t0()).await;

    let own = own_links.iter().enumerate().map(|(n, link)| (link.clone(), format!("writer{n}@example.com")));
    let racing = std::iter::repeat_n((contested.clone(), "contested@example.com".to_owned()), 32);
    let writers: Vec<_> = own
        .chain(racing)
        .map(|(link, to)| {
            let links = Arc::clone(&db.links);
            let draft = a_session();
            let token_hash = draft.token_hash.clone();
            tokio::spawn(async move { (links.redeem(&link, &address(&to), &draft, t0()).await, token_hash, to) })
        })
        .collect();
    let mut signed_in = Vec::new();
    let mut contested_outcomes = Vec::new();
    for writer in writers {
        let (outcome, token_hash, to) = writer.await.expect("task");
        let outcome = outcome.expect("a write never fails on the race");
        if to == "contested@example.com" {
            contested_outcomes.push(outcome.clone());
        } else {
            assert!(matches!(outcome, Redemption::Redeemed(_)), "{to}: {outcome:?}");
        }
        if matches!(outcome, Redemption::Redeemed(_)) {
            signed_in.push((token_hash, to));
        }
    }

    let winners = contested_outcomes.iter().filter(|o| matches!(o, Redemption::Redeemed(_))).count();
    assert_eq!(winners, 1, "{contested_outcomes:?}");
    assert!(contested_outcomes.iter().all(|o| matches!(o, Redemption::Redeemed(_) | Redemption::AlreadyUsed)));
    // Each sign-in's session is stored, for its own person, and nothing else is.
    assert_eq!(signed_in.len(), 33);
    for (token_hash, to) in &signed_in {
        let (_, user) = db.sessions.find(token_hash).await.expect("read").expect("the session was stored");
        assert_eq!(user.email.as_str(), to);
    }
    assert_eq!(count(store, "SELECT COUNT(*) FROM sessions").await, 33);
    assert_eq!(count(store, "SELECT COUNT(*) FROM users").await, 33);
    assert_eq!(count(store, "SELECT COUNT(*) FROM verification_tokens WHERE used_at IS NULL").await, 0);
}

async fn concurrent_redemptions_of_two_links_of_one_address_sign_in_once(store: &ScratchStore) {
    let db = &store.database;
    // Requested at the same moment: on a database that lets both requests commit without
    // seeing each other, both links may be live; either way one sign-in per batch of emails.
    let requests: Vec<_> = [30, 31]
        .map(|byte| {
            let links = db.clone();
            tokio::spawn(async move { insert_link(&links, byte, "pair@example.com", t0()).await })
        })
        .into_iter()
        .collect();
    let mut links = Vec::new();
    for request in requests {
        links.push(request.await.expect("task"));
    }

    let attempts: Vec<_> = links
        .into_iter()
        .cycle()
        .take(20)
        .map(|token_hash| {
            let links = Arc::clone(&db.links);
            tokio::spawn(
                async move { links.redeem(&token_hash, &address("pair@example.com"), &a_session(), t0()).await },
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.expect("task").expect("redeem"));
    }

    assert_eq!(outcomes.iter().filter(|o| matches!(o, Redemption::Redeemed(_))).count(), 1, "{outcomes:?}");
    assert!(
        outcomes.iter().all(|o| matches!(o, Redemption::Redeemed(_) | Redemption::AlreadyUsed | Redemption::Replaced)),
        "{outcomes:?}"
    );
}

async fn a_new_link_replaces_the_live_links_of_its_address_at_once(store: &ScratchStore) {
    let db = &store.database;
    let long_expired = insert_link(db, 3, "a@example.com", t0() - TimeDelta::hours(1)).await;
    let older = insert_link(db, 4, "a@example.com", t0()).await;
    let someone_else = insert_link(db, 6, "b@example.com", t0()).await;
    let at = t0() + TimeDelta::minutes(2);
    assert_eq!(db.links.state(&older, &address("a@example.com"), at).await.expect("state"), LinkState::Unused);

    let newer = insert_link(db, 5, "a@example.com", t0() + TimeDelta::minutes(1)).await;

    // Replaced the moment the newer one was stored, before anyone used anything.
    assert_eq!(db.links.state(&older, &address("a@example.com"), at).await.expect("state"), LinkState::Replaced);
    assert_eq!(
        db.links.redeem(&older, &address("a@example.com"), &a_session(), at).await.expect("redeem"),
        Redemption::Replaced
    );
    // Still "replaced" once its time is up too: that is what ended it.
    let later = t0() + TimeDelta::hours(1);
    assert_eq!(db.links.state(&older, &address("a@example.com"), later).await.expect("state"), LinkState::Replaced);
    // A link that had expired before the newer one was asked for says so.
    assert_eq!(db.links.state(&long_expired, &address("a@example.com"), at).await.expect("state"), LinkState::Expired);
    assert!(matches!(
        db.links.redeem(&newer, &address("a@example.com"), &a_session(), at).await.expect("redeem"),
        Redemption::Redeemed(_)
    ));
    assert!(
        matches!(
            db.links.redeem(&someone_else, &address("b@example.com"), &a_session(), at).await.expect("redeem"),
            Redemption::Redeemed(_)
        ),
        "other addresses keep their links"
    );
}

async fn a_redemption_stores_its_user_and_session_with_the_link_and_a_refused_one_stores_neither(store: &ScratchStore) {
    let db = &store.database;
    let at = t0() + TimeDelta::minutes(1);
    // Added by an operator, never signed in: the redemption verifies this user, not a new one.
    let UserAdded::Created(added) = db.users.add(&address("added@example.com"), t0()).await.expect("add") else {
        panic!("a new address makes a new user");
    };
    let link = insert_link(db, 40, "added@example.com", t0()).await;
    let session = a_session();

    let Redemption::Redeemed(record) =
        db.links.redeem(&link, &address("added@example.com"), &session, at).await.expect("redeem")
    else {
        panic!("an unused link redeems");
    };

    assert_eq!(record.user.id, added.id);
    assert_eq!(record.user.email_verified, Some(at));
    assert_eq!(record.session.user_id, added.id);
    assert_eq!(record.session.expires, session.expires);
    let (stored, user) = db.sessions.find(&session.token_hash).await.expect("read").expect("the session is stored");
    assert_eq!((stored, user), (record.session.clone(), record.user.clone()));
    assert_eq!(
        raw_texts(store, "SELECT user_agent FROM sessions").await,
        vec!["conformance".to_owned()],
        "the browser is kept with the session"
    );

    // A refused redemption stores no session.
    let late = a_session();
    let again = db.links.redeem(&link, &address("added@example.com"), &late, at).await.expect("redeem");
    assert_eq!(again, Redemption::AlreadyUsed);
    assert!(db.sessions.find(&late.token_hash).await.expect("read").is_none());

    // A code signs a first-time address up, in the same way.
    let coded = insert_link(db, 41, "first@example.com", t0()).await;
    let by_code = a_session();
    let CodeRedemption::Redeemed(record) =
        db.links.redeem_code(&coded, &code_of(CODE_BYTE, &coded), 5, &by_code, at).await.expect("redeem")
    else {
        panic!("the right code redeems");
    };
    assert_eq!(record.user.email, address("first@example.com"));
    assert_eq!(record.user.email_verified, Some(at));
    let found = db.users.find_by_email(&address("first@example.com")).await.expect("read").expect("created");
    assert_eq!(found, record.user);
    assert!(db.sessions.find(&by_code.token_hash).await.expect("read").is_some());
}

async fn a_redemption_whose_session_cannot_be_stored_leaves_the_link_unused(store: &ScratchStore) {
    let db = &store.database;
    let at = t0() + TimeDelta::minutes(1);
    let link = insert_link(db, 42, "atomic@example.com", t0()).await;
    // A session already holds this token hash, so storing the redemption's session fails.
    let taken = a_session();
    let holder = db.users.find_or_create_verified(&address("holder@example.com"), t0()).await.expect("user");
    db.sessions
        .create(&NewSession {
            token_hash: taken.token_hash.clone(),
            user_id: holder.id,
            expires: taken.expires,
            user_agent: None,
            created_at: t0(),
            method: domain::SignInMethod::Link,
            audit: audit(domain::audit::AuditKind::LinkRedeemed),
        })
        .await
        .expect("session");

    let failed = db.links.redeem(&link, &address("atomic@example.com"), &taken, at).await;

    assert!(failed.is_err(), "the clash is a storage failure: {failed:?}");
    assert_eq!(
        db.links.state(&link, &address("atomic@example.com"), at).await.expect("state"),
        LinkState::Unused,
        "the link's use was rolled back with the session"
    );
    assert!(db.users.find_by_email(&address("atomic@example.com")).await.expect("read").is_none());
    let retried = db.links.redeem(&link, &address("atomic@example.com"), &a_session(), at).await.expect("redeem");
    assert!(matches!(retried, Redemption::Redeemed(_)), "{retried:?}");
}

async fn only_the_keyed_hash_of_a_link_is_stored_never_the_token(store: &ScratchStore) {
    let token = LinkToken::from_random_bytes([7; 32]);
    let token_hash = token.hash(&secret());
    store_link(&store.database, &token_hash, "a@example.com", t0()).await;

    let stored = raw_texts(store, "SELECT token FROM verification_tokens").await;

    assert_eq!(stored, vec![token_hash.to_hex()]);
    assert!(!stored[0].contains(&token.encode()));
}

async fn purging_links_removes_only_those_that_expired_before_the_cutoff(store: &ScratchStore) {
    let db = &store.database;
    let old = insert_link(db, 10, "a@example.com", t0()).await;
    let boundary = insert_link(db, 12, "c@example.com", t0() + TimeDelta::minutes(50)).await;
    let fresh = insert_link(db, 11, "b@example.com", t0() + TimeDelta::hours(2)).await;

    // `boundary` expires exactly at the cutoff: not before it, so it stays.
    let purged = db.links.purge_expired(t0() + TimeDelta::hours(1)).await.expect("purge");

    assert_eq!(purged, 1);
    let at = t0() + TimeDelta::hours(2);
    assert_eq!(db.links.state(&old, &address("a@example.com"), at).await.expect("state"), LinkState::Unknown);
    assert_eq!(db.links.state(&boundary, &address("c@example.com"), at).await.expect("state"), LinkState::Expired);
    assert!(matches!(
        db.links.redeem(&fresh, &address("b@example.com"), &a_session(), at).await.expect("redeem"),
        Redemption::Redeemed(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// Codes

async fn the_right_code_redeems_the_link_once_and_uses_up_its_link_too(store: &ScratchStore) {
    let db = &store.database;
    let link = insert_link(db, 20, "code@example.com", t0()).await;
    let right = code_of(CODE_BYTE, &link);
    let at = t0() + TimeDelta::minutes(1);

    let first = db.links.redeem_code(&link, &right, 5, &a_session(), at).await.expect("redeem");
    let again = db.links.redeem_code(&link, &right, 5, &a_session(), at).await.expect("redeem");
    let by_link = db.links.redeem(&link, &address("code@example.com"), &a_session(), at).await.expect("redeem");

    assert!(
        matches!(&first, CodeRedemption::Redeemed(record) if record.user.email == address("code@example.com")),
        "{first:?}"
    );
    assert_eq!(again, CodeRedemption::AlreadyUsed);
    assert_eq!(by_link, Redemption::AlreadyUsed);
}

async fn wrong_codes_count_down_and_then_even_the_right_code_fails(store: &ScratchStore) {
    let db = &store.database;
    let link = insert_link(db, 21, "guess@example.com", t0()).await;
    let at = t0() + TimeDelta::minutes(1);

    let mut outcomes = Vec::new();
    for wrong in 1..=6_u8 {
        outcomes.push(db.links.redeem_code(&link, &code_of(wrong, &link), 5, &a_session(), at).await.expect("redeem"));
    }
    let right_too_late =
        db.links.redeem_code(&link, &code_of(CODE_BYTE, &link), 5, &a_session(), at).await.expect("redeem");

    let expected: Vec<CodeRedemption> =
        [4, 3, 2, 1, 0].map(|attempts_left| CodeRedemption::Wrong { attempts_left }).into_iter().collect();
    assert_eq!(outcomes[..5], expected[..]);
    assert_eq!(outcomes[5], CodeRedemption::Exhausted);
    assert_eq!(right_too_late, CodeRedemption::Exhausted);
    assert!(
        matches!(
            db.links.redeem(&link, &address("guess@example.com"), &a_session(), at).await.expect("redeem"),
            Redemption::Redeemed(_)
        ),
        "the link in the email still works on the device that has it"
    );
}

async fn codes_of_expired_unknown_and_other_links_sign_nobody_in(store: &ScratchStore) {
    let db = &store.database;
    let link = insert_link(db, 22, "late@example.com", t0()).await;
    let other = insert_link(db, 23, "other@example.com", t0()).await;
    let unknown = hash_of(24);

    let expired = db
        .links
        .redeem_code(&link, &code_of(CODE_BYTE, &link), 5, &a_session(), t0() + LINK_LIFETIME)
        .await
        .expect("redeem");
    let nowhere =
        db.links.redeem_code(&unknown, &code_of(CODE_BYTE, &unknown), 5, &a_session(), t0()).await.expect("redeem");
    // The right code of one link, tried against another: bound to its link, it is wrong there.
    let crossed =
        db.links.redeem_code(&other, &code_of(CODE_BYTE, &link), 5, &a_session(), t0()).await.expect("redeem");

    assert_eq!(expired, CodeRedemption::Expired);
    assert_eq!(nowhere, CodeRedemption::Unknown);
    assert_eq!(crossed, CodeRedemption::Wrong { attempts_left: 4 });
}

async fn concurrent_code_redemptions_yield_exactly_one_winner(store: &ScratchStore) {
    let db = &store.database;
    let link = insert_link(db, 25, "race-code@example.com", t0()).await;

    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let links = Arc::clone(&db.links);
            let link = link.clone();
            tokio::spawn(
                async move { links.redeem_code(&link, &code_of(CODE_BYTE, &link), 5, &a_session(), t0()).await },
            )
        })
        .collect();
    let mut outcomes = Vec::new();
    for attempt in attempts {
        outcomes.push(attempt.await.expect("task").expect("redeem"));
    }

    let winners = outcomes.iter().filter(|o| matches!(o, CodeRedemption::Redeemed(_))).count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| matches!(o, CodeRedemption::Redeemed(_) | CodeRedemption::AlreadyUsed)));
}

async fn concurrent_wrong_codes_never_get_more_tries_than_allowed(store: &ScratchStore) {
    let db = &store.database;
    let link = insert_link(db, 28, "brute@example.com", t0()).await;

    // Codes are `byte % 32` per character: 11..31 never makes the stored code (42 % 32 = 10).
    let attempts: Vec<_> = (11..31_u8)
        .map(|n| {
            let links = Arc::clone(&db.links);
            let link = link.clone();
            tokio::spawn(async move { links.redeem_code(&link, &code_of(n, &link), 5, &a_session(), t0()).await })
        })
        .collect();
    let mut wrong = 0;
    for attempt in attempts {
        match attempt.await.expect("task").expect("redeem") {
            CodeRedemption::Wrong { .. } => wrong += 1,
            CodeRedemption::Exhausted => {}
            other => panic!("a wrong code cannot be {other:?}"),
        }
    }

    assert_eq!(wrong, 5, "exactly the allowed tries were counted");
}

async fn the_code_of_a_replaced_link_says_replaced_and_counts_no_attempt(store: &ScratchStore) {
    let db = &store.database;
    let older = insert_link(db, 26, "both@example.com", t0()).await;
    let newer = insert_link(db, 27, "both@example.com", t0()).await;

    let right = db.links.redeem_code(&older, &code_of(CODE_BYTE, &older), 5, &a_session(), t0()).await;
    let wrong = db.links.redeem_code(&older, &code_of(1, &older), 5, &a_session(), t0()).await;

    assert_eq!(right.expect("redeem"), CodeRedemption::Replaced);
    assert_eq!(wrong.expect("redeem"), CodeRedemption::Replaced);
    let attempts =
        sqlx::query(&format!("SELECT code_attempts FROM verification_tokens WHERE token = '{}'", older.to_hex()))
            .fetch_one(&store.raw)
            .await
            .expect("row kept")
            .try_get::<i64, _>(0)
            .expect("code_attempts");
    assert_eq!(attempts, 0, "a dead link's code counts nothing");
    assert!(matches!(
        db.links.redeem_code(&newer, &code_of(CODE_BYTE, &newer), 5, &a_session(), t0()).await.expect("redeem"),
        CodeRedemption::Redeemed(_)
    ));
}

// ---------------------------------------------------------------------------------------------
// Users

async fn users_are_created_once_per_address_and_keep_their_first_verification(store: &ScratchStore) {
    let db = &store.database;
    let later = t0() + TimeDelta::days(3);

    let created = db.users.find_or_create_verified(&address("u@example.com"), t0()).await.expect("created");
    let again = db.users.find_or_create_verified(&address("u@example.com"), later).await.expect("found");
    let by_id = db.users.find(&created.id).await.expect("read").expect("exists");

    assert_eq!(created.id, again.id);
    assert_eq!(again.email_verified, Some(t0()));
    assert_eq!(by_id, created);
    assert!(created.id.as_str().as_bytes().get(14) == Some(&b'7'), "a UUIDv7: {}", created.id.as_str());
}

async fn addresses_differing_only_in_case_are_one_user_and_accents_are_not_folded(store: &ScratchStore) {
    let db = &store.database;

    let lower = db.users.find_or_create_verified(&address("case@example.com"), t0()).await.expect("user");
    let upper = db.users.find_or_create_verified(&address("CASE@Example.COM"), t0()).await.expect("user");
    let found = db.users.find_by_email(&address("Case@EXAMPLE.com")).await.expect("read");
    // A collation that folds accents (MySQL's default) would make these one user.
    let accented = db.users.add(&address("josé@example.com"), t0()).await.expect("add");
    let plain = db.users.add(&address("jose@example.com"), t0()).await.expect("add");

    assert_eq!(lower.id, upper.id);
    assert_eq!(found.map(|user| user.id), Some(lower.id));
    let (UserAdded::Created(accented), UserAdded::Created(plain)) = (accented, plain) else {
        panic!("both addresses are new users");
    };
    assert_ne!(accented.id, plain.id);
    assert_eq!(accented.email.as_str(), "josé@example.com", "stored and read back byte for byte");
}

async fn twenty_concurrent_first_sign_ins_of_one_address_make_one_user(store: &ScratchStore) {
    let db = &store.database;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let users = Arc::clone(&db.users);
            tokio::spawn(async move { users.find_or_create_verified(&address("crowd@example.com"), t0()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for attempt in attempts {
        ids.push(attempt.await.expect("task").expect("user").id);
    }

    ids.dedup();
    assert_eq!(ids.len(), 1, "every racer got the one user");
    let listed = db.users.list(100).await.expect("list");
    assert_eq!(listed.len(), 1);
}

async fn adding_listing_and_finding_users_by_unknown_ids_and_addresses(store: &ScratchStore) {
    let db = &store.database;
    let added = db.users.add(&address("b@example.com"), t0()).await.expect("add");
    let again = db.users.add(&address("b@example.com"), t0()).await.expect("add");
    db.users.add(&address("a@example.com"), t0()).await.expect("add");

    let UserAdded::Created(user) = added else { panic!("new address makes a new user") };
    assert_eq!(again, UserAdded::Existed(user.clone()));
    assert_eq!(user.email_verified, None, "added, never signed in");
    let listed: Vec<String> =
        db.users.list(10).await.expect("list").into_iter().map(|u| u.email.as_str().to_owned()).collect();
    assert_eq!(listed, ["a@example.com", "b@example.com"], "ordered by address");
    assert_eq!(db.users.list(1).await.expect("list").len(), 1, "limited");
    let unknown = domain::UserId::parse("01890a5d-ac96-774b-bcce-b302099a8057").expect("an id");
    assert!(db.users.find(&unknown).await.expect("read").is_none());
    assert!(db.users.find_by_email(&address("nobody@example.com")).await.expect("read").is_none());
}

// ---------------------------------------------------------------------------------------------
// Sessions

async fn sessions_are_stored_by_hash_found_extended_and_deleted(store: &ScratchStore) {
    let db = &store.database;
    let user = db.users.find_or_create_verified(&address("s@example.com"), t0()).await.expect("user");
    let token = SessionToken::from_random_bytes([8; 32]);
    let created = db
        .sessions
        .create(&NewSession {
            token_hash: token.hash(),
            user_id: user.id.clone(),
            expires: t0() + TimeDelta::days(30),
            user_agent: Some("x".repeat(2000)),
            created_at: t0(),
            method: domain::SignInMethod::Link,
            audit: audit(domain::audit::AuditKind::LinkRedeemed),
        })
        .await
        .expect("created");

    let (found, found_user) = db.sessions.find(&token.hash()).await.expect("read").expect("exists");
    assert_eq!(found, created);
    assert_eq!(found_user, user);
    assert_eq!(raw_texts(store, "SELECT session_token FROM sessions").await, [token.hash().to_hex()]);
    let agent = raw_texts(store, "SELECT user_agent FROM sessions").await;
    assert_eq!(agent[0].len(), adapters::sql::MAX_USER_AGENT, "a long User-Agent is cut, not refused");

    let extended_to = t0() + TimeDelta::days(31);
    db.sessions.extend(&created.id, extended_to, t0() + TimeDelta::days(1)).await.expect("extended");
    let (found, _) = db.sessions.find(&token.hash()).await.expect("read").expect("exists");
    assert_eq!(found.expires, extended_to);

    let unknown = SessionToken::from_random_bytes([9; 32]);
    assert!(db.sessions.find(&unknown.hash()).await.expect("read").is_none());
    db.sessions
        .delete(&unknown.hash(), &audit(domain::audit::AuditKind::SignedOut))
        .await
        .expect("deleting an unknown session is not an error");
    db.sessions.delete(&token.hash(), &audit(domain::audit::AuditKind::SignedOut)).await.expect("deleted");
    assert!(db.sessions.find(&token.hash()).await.expect("read").is_none());
}

/// Stores a session for `user_id` created at `created`, valid until `expires`.
async fn session_at(
    db: &Database,
    user_id: &domain::UserId,
    created: DateTime<Utc>,
    expires: DateTime<Utc>,
    user_agent: &str,
) -> domain::Session {
    let draft = a_session();
    db.sessions
        .create(&NewSession {
            token_hash: draft.token_hash,
            user_id: user_id.clone(),
            expires,
            user_agent: Some(user_agent.to_owned()),
            created_at: created,
            method: domain::SignInMethod::Link,
            audit: audit(domain::audit::AuditKind::LinkRedeemed),
        })
        .await
        .expect("session")
}

async fn a_display_name_is_set_changed_and_removed_for_that_user_only(store: &ScratchStore) {
    let db = &store.database;
    let alice = db.users.find_or_create_verified(&address("alice@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    let name = |typed: &str| domain::DisplayName::parse(typed).expect("valid").expect("not blank");
    let unicode = name("Zoë Ångström 🙂");

    db.users.rename(&alice.id, Some(name("Alice"))).await.expect("renamed");
    db.users.rename(&alice.id, Some(unicode.clone())).await.expect("renamed again");
    db.users.rename(&alice.id, Some(unicode)).await.expect("the same name again is fine");
    let renamed = db.users.find(&alice.id).await.expect("read").expect("alice");
    db.users.rename(&bob.id, Some(name("Bob"))).await.expect("renamed");
    db.users.rename(&bob.id, None).await.expect("name removed");
    let unnamed = db.users.find(&bob.id).await.expect("read").expect("bob");
    let nobody = domain::UserId::parse("018f0000-0000-7000-8000-000000000000").expect("an id");
    db.users.rename(&nobody, Some(name("Ghost"))).await.expect("no such user: nothing happens");

    assert_eq!(renamed.name.as_ref().map(domain::DisplayName::as_str), Some("Zoë Ångström 🙂"));
    assert_eq!(unnamed.name, None);
    assert_eq!(db.users.list(10).await.expect("list").len(), 2, "renaming creates nobody");

    // A name stored before today's rules (a text-direction override) reads back as no name.
    sqlx::query(&format!("UPDATE users SET name = 'Bob {}nimda' WHERE id = '{}'", '\u{202e}', bob.id.as_str()))
        .execute(&store.raw)
        .await
        .expect("an old row");
    let old = db.users.find(&bob.id).await.expect("read").expect("bob");
    assert_eq!(old.name, None, "a stored name the rules refuse is not shown");
}

async fn a_user_lists_and_revokes_only_their_own_live_sessions(store: &ScratchStore) {
    let db = &store.database;
    let alice = db.users.find_or_create_verified(&address("alice@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    let month = TimeDelta::days(30);
    let laptop = session_at(db, &alice.id, t0(), t0() + month, "laptop").await;
    let phone = session_at(db, &alice.id, t0() + TimeDelta::hours(1), t0() + month, "phone").await;
    let _ended = session_at(db, &alice.id, t0() - TimeDelta::days(40), t0() - TimeDelta::days(10), "old").await;
    let bobs = session_at(db, &bob.id, t0(), t0() + month, "bob's").await;
    // Used (extended) after the phone signed in: the laptop is now the most recently used.
    let used_at = t0() + TimeDelta::hours(2);
    db.sessions.extend(&laptop.id, used_at + month, used_at).await.expect("extend");

    let listed = db.sessions.list_for_user(&alice.id, t0() + TimeDelta::hours(3)).await.expect("list");

    let seen: Vec<_> = listed.iter().map(|s| (s.id.clone(), s.user_agent.clone().unwrap_or_default())).collect();
    assert_eq!(seen, vec![(laptop.id.clone(), "laptop".to_owned()), (phone.id.clone(), "phone".to_owned())]);
    assert_eq!((listed[0].created_at, listed[0].last_used, listed[0].expires), (t0(), used_at, used_at + month));
    assert_eq!(listed[1].last_used, t0() + TimeDelta::hours(1), "never extended: last used at sign-in");

    let revoked = audit(domain::audit::AuditKind::SessionRevoked);
    assert!(
        !db.sessions.delete_for_user(&alice.id, &bobs.id, &revoked).await.expect("delete"),
        "not alice's to revoke"
    );
    assert!(db.sessions.delete_for_user(&alice.id, &phone.id, &revoked).await.expect("delete"));
    assert!(!db.sessions.delete_for_user(&alice.id, &phone.id, &revoked).await.expect("delete"), "already gone");
    // The laptop stays; the ended session goes too.
    assert_eq!(
        db.sessions
            .delete_others(&alice.id, &laptop.id, &audit(domain::audit::AuditKind::SessionRevoked))
            .await
            .expect("delete"),
        1
    );
    let left = db.sessions.list_for_user(&alice.id, t0()).await.expect("list");
    assert_eq!(left.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), vec![laptop.id]);
    assert_eq!(db.sessions.list_for_user(&bob.id, t0()).await.expect("list").len(), 1, "bob keeps his session");
}

async fn purging_sessions_removes_only_those_that_expired_before_the_cutoff(store: &ScratchStore) {
    let db = &store.database;
    let user = db.users.find_or_create_verified(&address("p@example.com"), t0()).await.expect("user");
    let cutoff = t0() + TimeDelta::days(1);
    for (byte, expires) in [(1, cutoff - TimeDelta::milliseconds(1)), (2, cutoff), (3, cutoff + TimeDelta::days(1))] {
        db.sessions
            .create(&NewSession {
                token_hash: SessionToken::from_random_bytes([byte; 32]).hash(),
                user_id: user.id.clone(),
                expires,
                user_agent: None,
                created_at: t0(),
                method: domain::SignInMethod::Link,
                audit: audit(domain::audit::AuditKind::LinkRedeemed),
            })
            .await
            .expect("created");
    }

    assert_eq!(db.sessions.purge_expired(cutoff).await.expect("purge"), 1);
    assert!(db.sessions.find(&SessionToken::from_random_bytes([1; 32]).hash()).await.expect("read").is_none());
    assert!(db.sessions.find(&SessionToken::from_random_bytes([2; 32]).hash()).await.expect("read").is_some());
    assert_eq!(db.sessions.purge_expired(cutoff).await.expect("purge"), 0, "purging again finds nothing");
}

// ---------------------------------------------------------------------------------------------
// Rate limits

async fn the_rate_limiter_keeps_its_contract(store: &ScratchStore) {
    system_tests::limiter_contract::check_limiter(Arc::clone(&store.database.rate_limits)).await;
}

async fn purging_rate_limits_forgets_only_spent_counters(store: &ScratchStore) {
    let limiter = &store.database.rate_limits;
    let quota = domain::Quota::per(1, TimeDelta::hours(1)).expect("quota");
    let bucket = |key: &str| ports::Bucket { key: key.to_owned(), quota };
    limiter.acquire(&[bucket("early")], t0()).await.expect("acquire");
    limiter.acquire(&[bucket("late")], t0() + TimeDelta::minutes(30)).await.expect("acquire");

    assert_eq!(limiter.purge(t0() + TimeDelta::minutes(61)).await.expect("purge"), 1);
    assert_eq!(
        limiter.wait(&bucket("late"), t0() + TimeDelta::minutes(61)).await.expect("wait"),
        Some(TimeDelta::minutes(29))
    );
}

// ---------------------------------------------------------------------------------------------
// The outbox

/// A mailer that answers from a script (then succeeds) and records what it accepted.
#[derive(Default)]
struct ScriptedMailer {
    script: Mutex<VecDeque<Result<(), MailError>>>,
    attempts: Mutex<u32>,
    delivered: Mutex<Vec<OutgoingEmail>>,
}

impl ScriptedMailer {
    fn failing_transiently(times: usize) -> Self {
        let script = (0..times).map(|_| Err(MailError::transient(anyhow::anyhow!("451 try again later")))).collect();
        Self { script: Mutex::new(script), ..Self::default() }
    }

    fn delivered(&self) -> Vec<OutgoingEmail> {
        self.delivered.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl Mailer for ScriptedMailer {
    async fn send(&self, email: &OutgoingEmail, key: &str) -> Result<SentReceipt, MailError> {
        *self.attempts.lock().expect("lock") += 1;
        if let Some(answer) = self.script.lock().expect("lock").pop_front() {
            answer?;
        }
        self.delivered.lock().expect("lock").push(email.clone());
        Ok(SentReceipt { provider_message_id: Some(format!("provider-{key}")) })
    }
}

/// A delivery worker that is always backed up: every row is stored due, for `deliver_due`.
struct ClaimsOnly;
impl DeliveryQueue for ClaimsOnly {
    fn lease_for_new(&self, _now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        None
    }
    fn hand_over(&self, _message: ports::OutboxMessage) {
        unreachable!("nothing is leased, so nothing is handed over")
    }
    fn wake(&self) {}
}

/// The request use case on `db`, with a clock moved by hand, every row stored due.
fn sign_in(db: &Database, clock: Arc<ManualClock>) -> SignIn {
    sign_in_handing_to(db, clock, Arc::new(ClaimsOnly))
}

/// The request use case on `db`, handing new emails to `delivery`.
fn sign_in_handing_to(db: &Database, clock: Arc<ManualClock>, delivery: Arc<dyn DeliveryQueue>) -> SignIn {
    let sessions = Arc::new(ports::Sessions::new(
        Arc::clone(&db.sessions),
        Arc::clone(&db.audit),
        clock.clone(),
        ports::SessionSettings { policy: SessionPolicy::new(86_400, 3_600), recent_sign_in: TimeDelta::minutes(10) },
    ));
    SignIn::new(
        Arc::clone(&db.links),
        Arc::clone(&db.users),
        sessions,
        delivery,
        Arc::clone(&db.rate_limits),
        clock,
        SignInSettings {
            secrets: domain::SecretRing::single(secret()),
            link_policy: LinkPolicy::new(600),
            callback_endpoint: url::Url::parse("http://127.0.0.1:3000/api/auth/callback/email").expect("valid"),
            confirm_address_endpoint: url::Url::parse("http://127.0.0.1:3000/account/email/confirm").expect("valid"),
            link_retention: TimeDelta::days(1),
            limits: ports::SignInLimits::default(),
            sign_up: ports::SignUpPolicy::Open,
            notify_address_change: true,
        },
    )
}

fn deliverer(db: &Database, mailer: Arc<dyn Mailer>, clock: Arc<ManualClock>) -> Deliverer {
    Deliverer::new(
        Arc::clone(&db.outbox),
        Arc::new(TemplateRenderer::builtin().expect("templates parse")),
        mailer,
        clock,
        DeliverySettings {
            secrets: domain::SecretRing::single(secret()),
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

async fn queue(db: &Database, clock: &Arc<ManualClock>, to: &str) {
    let request = RequestLink {
        email: address(to),
        callback: CallbackPath::root(),
        client: None,
        lang: "en".to_owned(),
        origin: domain::audit::RequestOrigin::default(),
    };
    sign_in(db, Arc::clone(clock)).request_link(request).await.expect("queued");
}

/// Every outbox row: status, whether it still has a body, attempts, last error.
async fn outbox_rows(store: &ScratchStore) -> Vec<(String, bool, i64, Option<String>)> {
    let rows = sqlx::query("SELECT status, sealed_body, attempts, last_error FROM outbox ORDER BY created_at")
        .fetch_all(&store.raw)
        .await
        .expect("rows");
    rows.iter()
        .map(|row| {
            (
                row.try_get("status").expect("status"),
                row.try_get::<Option<Vec<u8>>, _>("sealed_body").expect("body").is_some(),
                row.try_get("attempts").expect("attempts"),
                row.try_get("last_error").expect("error"),
            )
        })
        .collect()
}

/// Advances the clock to the next due row.
async fn advance_to_next_due(db: &Database, clock: &ManualClock) {
    let due = db.outbox.next_due().await.expect("read").expect("something is pending");
    clock.advance((due - ports::Clock::now(clock)).max(TimeDelta::zero()));
}

async fn a_mailer_that_fails_three_times_then_succeeds_delivers_exactly_once(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "a@example.com").await;
    let mailer = Arc::new(ScriptedMailer::failing_transiently(3));
    let worker = deliverer(db, mailer.clone(), clock.clone());

    let mut retried = 0;
    loop {
        let report = worker.deliver_due().await.expect("batch runs");
        retried += report.retried;
        if report.sent == 1 {
            break;
        }
        assert_eq!(report.retried, 1, "a transient failure is rescheduled: {report:?}");
        advance_to_next_due(db, &clock).await;
    }

    assert_eq!(retried, 3);
    assert_eq!(*mailer.attempts.lock().expect("lock"), 4);
    assert_eq!(mailer.delivered().len(), 1, "delivered exactly once");
    assert_eq!(worker.deliver_due().await.expect("batch runs").claimed, 0, "nothing left to send");
    let rows = outbox_rows(store).await;
    assert_eq!(rows, [("sent".to_owned(), false, 4, None)]);
    assert_eq!(db.outbox.counts().await.expect("counts").sent, 1);
    assert_eq!(db.outbox.next_due().await.expect("read"), None);
}

async fn a_retry_is_scheduled_when_asked_and_never_reopens_a_finished_row(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "retry@example.com").await;
    let claimed = db.outbox.claim_due(t0(), t0() + TimeDelta::minutes(2), 10).await.expect("claim");
    let id = claimed[0].id.clone();
    let later = t0() + TimeDelta::seconds(30);

    db.outbox.mark_retry(&id, later, &"e".repeat(5000), t0()).await.expect("retry");

    assert_eq!(db.outbox.next_due().await.expect("read"), Some(later));
    assert!(db.outbox.claim_due(later - TimeDelta::milliseconds(1), later, 10).await.expect("claim").is_empty());
    let again = db.outbox.claim_due(later, later + TimeDelta::minutes(2), 10).await.expect("claim");
    assert_eq!((again.len(), again[0].attempts), (1, 2), "due exactly at its time, its attempts counted");
    let error = outbox_rows(store).await[0].3.clone().expect("error kept");
    assert_eq!(error.len(), adapters::sql::MAX_DELIVERY_ERROR, "a long error is cut, not refused");

    db.outbox
        .mark_sent(&[ports::SentMessage { id: id.clone(), provider_message_id: Some("provider-1".to_owned()) }], later)
        .await
        .expect("sent");
    db.outbox.mark_retry(&id, later + TimeDelta::hours(1), "late news", later).await.expect("retry");
    let entry = &db.outbox.list(None, 10).await.expect("list")[0];
    assert_eq!((entry.state, entry.provider_message_id.as_deref()), (DeliveryState::Sent, Some("provider-1")));
    assert_eq!(db.outbox.next_due().await.expect("read"), None, "a sent row stays sent");
}

/// A claimed email's recipient, masked as the operator's listing shows it.
fn recipient_of(message: &ports::OutboxMessage) -> String {
    match &message.payload {
        ports::Payload::Email(email) => email.recipient.masked(),
        ports::Payload::BackchannelLogout(notice) => format!("app {}", notice.client_id),
        ports::Payload::Webhook(webhook) => format!("webhook {}", webhook.endpoint),
    }
}

async fn a_batch_of_sent_emails_is_recorded_at_once_each_with_its_provider_id(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    for to in ["one@example.com", "two@example.com", "three@example.com"] {
        queue(db, &clock, to).await;
    }
    let claimed = db.outbox.claim_due(t0(), t0() + TimeDelta::minutes(2), 10).await.expect("claim");
    let sent: Vec<ports::SentMessage> = claimed
        .iter()
        .take(2)
        .map(|message| ports::SentMessage {
            id: message.id.clone(),
            provider_message_id: Some(format!("p-{}", recipient_of(message))),
        })
        .collect();

    db.outbox.mark_sent(&sent, t0()).await.expect("sent");

    let counts = db.outbox.counts().await.expect("counts");
    assert_eq!((counts.sent, counts.pending), (2, 1), "only the batch's rows");
    assert_eq!(counts.oldest_pending, Some(t0()), "when the one still pending was queued");
    for entry in db.outbox.list(Some(DeliveryState::Sent), 10).await.expect("list") {
        assert_eq!(entry.provider_message_id, Some(format!("p-{}", entry.recipient.masked())));
    }
    let bodies = outbox_rows(store).await.into_iter().filter(|row| row.1).count();
    assert_eq!(bodies, 1, "only the unsent row keeps its body");
}

async fn a_restart_between_attempts_still_delivers(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "restart@example.com").await;
    let first = deliverer(db, Arc::new(ScriptedMailer::failing_transiently(1)), clock.clone());
    assert_eq!(first.deliver_due().await.expect("batch").retried, 1);
    drop(first);

    // A new process: a new pool on the same database, a new worker, a working mailer.
    let reopened = store.reopen(2).await;
    let mailer = Arc::new(ScriptedMailer::default());
    let second = deliverer(&reopened, mailer.clone(), clock.clone());
    advance_to_next_due(&reopened, &clock).await;
    assert_eq!(second.deliver_due().await.expect("batch").sent, 1);
    reopened.close().await;

    let delivered = mailer.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].to.as_str(), "restart@example.com");
    assert!(delivered[0].content.link().expect("a link").as_str().contains("token="), "the unsealed link is whole");
}

async fn a_message_whose_link_expired_is_dropped_never_sent_and_erased(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "late@example.com").await;
    clock.advance(TimeDelta::minutes(10));
    let mailer = Arc::new(ScriptedMailer::default());

    let report = deliverer(db, mailer.clone(), clock.clone()).deliver_due().await.expect("batch");

    assert_eq!(report.dropped, 1);
    assert!(mailer.delivered().is_empty());
    let rows = outbox_rows(store).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("dropped", false));
    assert!(rows[0].3.as_deref().is_some_and(|e| e.contains("expired")));
}

async fn a_permanent_failure_is_recorded_with_its_reason_and_the_body_erased(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "gone@example.com").await;
    let mailer = ScriptedMailer::default();
    mailer.script.lock().expect("lock").push_back(Err(MailError::Permanent(anyhow::anyhow!("550 5.1.1 no such user"))));

    let report = deliverer(db, Arc::new(mailer), clock.clone()).deliver_due().await.expect("batch");

    assert_eq!(report.failed, 1);
    let rows = outbox_rows(store).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("failed", false));
    assert!(rows[0].3.as_deref().is_some_and(|e| e.contains("550 5.1.1 no such user")), "{:?}", rows[0].3);
    let listed = db.outbox.list(Some(DeliveryState::Failed), 10).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(db.outbox.list(Some(DeliveryState::Sent), 10).await.expect("list").is_empty());
    assert_eq!(db.outbox.counts().await.expect("counts").failed, 1);
}

async fn the_database_never_holds_a_usable_link_in_clear(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "raw@example.com").await;
    let mailer = Arc::new(ScriptedMailer::default());

    // While pending: the body is sealed; neither the link nor its token appears in any row.
    let body: Vec<u8> = sqlx::query("SELECT sealed_body FROM outbox")
        .fetch_one(&store.raw)
        .await
        .expect("row")
        .try_get(0)
        .expect("body");
    deliverer(db, mailer.clone(), clock.clone()).deliver_due().await.expect("batch");
    let link = mailer.delivered()[0].content.link().expect("a link").to_string();
    let token = link.split("token=").nth(1).and_then(|t| t.split('&').next()).expect("token").to_owned();
    assert!(body.len() > link.len(), "the whole link is in there, sealed");
    for needle in [link.as_bytes(), token.as_bytes(), b"callback/email".as_slice()] {
        assert!(
            !body.windows(needle.len()).any(|w| w == needle),
            "sealed body leaks {:?}",
            String::from_utf8_lossy(needle)
        );
    }
    let stored_tokens = raw_texts(store, "SELECT token FROM verification_tokens").await;
    assert!(stored_tokens.iter().all(|t| !t.contains(&token)));

    // Once sent the body is gone, and the database refuses to keep one on a finished row.
    assert!(!outbox_rows(store).await[0].1);
    let bytes = match store.scratch.dialect() {
        Dialect::Postgres => "'\\x00'::bytea",
        Dialect::Sqlite | Dialect::MySql => "x'00'",
    };
    let refused = sqlx::query(&format!("UPDATE outbox SET sealed_body = {bytes}")).execute(&store.raw).await;
    assert!(refused.is_err(), "CHECK keeps finished rows body-less");
}

async fn two_workers_claiming_at_once_never_take_the_same_row(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    for n in 0..40 {
        queue(db, &clock, &format!("c{n}@example.com")).await;
    }
    let lease = t0() + TimeDelta::minutes(2);
    let other_instance = store.reopen(4).await;

    let (a, b) = tokio::join!(db.outbox.claim_due(t0(), lease, 25), other_instance.outbox.claim_due(t0(), lease, 25));
    let mut ids: Vec<String> =
        a.expect("claim").into_iter().chain(b.expect("claim")).map(|m| m.id.to_string()).collect();
    let claimed = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), claimed, "no row claimed twice");
    // Whatever the first round left (a worker skips rows the other holds), a second takes.
    let rest = db.outbox.claim_due(t0(), lease, 40).await.expect("claim");
    assert_eq!(claimed + rest.len(), 40, "every row claimed once in all");
    other_instance.close().await;
}

async fn a_row_claimed_by_a_worker_that_died_is_retried_after_its_lease(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    queue(db, &clock, "lease@example.com").await;
    let claimed = db.outbox.claim_due(t0(), t0() + TimeDelta::minutes(2), 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    // The worker dies here without recording anything.
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), clock.clone());

    assert_eq!(worker.deliver_due().await.expect("batch").claimed, 0, "leased rows are left alone");
    clock.advance(TimeDelta::minutes(2));
    assert_eq!(worker.deliver_due().await.expect("batch").sent, 1);
    assert_eq!(outbox_rows(store).await[0].2, 2, "the lost attempt counts");
}

async fn a_handed_over_email_is_stored_leased_and_claimed_only_if_its_worker_dies(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let (queue, mut inbox) = adapters::handover::handover(16, TimeDelta::minutes(2));
    let requests = sign_in_handing_to(db, Arc::clone(&clock), queue);
    for to in ["sent@example.com", "lost@example.com"] {
        let request = RequestLink {
            email: address(to),
            callback: CallbackPath::root(),
            client: None,
            lang: "en".to_owned(),
            origin: domain::audit::RequestOrigin::default(),
        };
        requests.request_link(request).await.expect("queued");
    }
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), clock.clone());
    let mut handed = inbox.drain();
    assert_eq!(handed.len(), 2, "both were handed over");
    assert!(handed.iter().all(|message| message.attempts == 1));
    assert_eq!(worker.deliver_due().await.expect("batch").claimed, 0, "handed-over rows are leased, not due");

    // The first is sent from memory; the process dies before sending the second.
    let lost = handed.pop().expect("two");
    let report = worker.deliver_handed_over(handed).await;
    drop(lost);
    assert_eq!(report.sent, 1);
    clock.advance(TimeDelta::minutes(2));
    let recovered = worker.deliver_due().await.expect("batch");

    assert_eq!((recovered.claimed, recovered.sent), (1, 1), "only the unsent row is claimed after its lease");
    let sent_to: Vec<String> =
        mailer.delivered.lock().expect("lock").iter().map(|email| email.to.as_str().to_owned()).collect();
    assert_eq!(sent_to.len(), 2, "each email once: {sent_to:?}");
    assert_ne!(sent_to[0], sent_to[1]);
    let rows = outbox_rows(store).await;
    assert!(rows.iter().all(|(status, body, _, _)| status == "sent" && !body), "{rows:?}");
    assert_eq!(rows.iter().map(|row| row.2).max(), Some(2), "the lost attempt counts");
}

async fn a_stopping_worker_gives_back_what_it_did_not_send(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let (queue, mut inbox) = adapters::handover::handover(16, TimeDelta::minutes(2));
    let request = RequestLink {
        email: address("restart@example.com"),
        callback: CallbackPath::root(),
        client: None,
        lang: "en".to_owned(),
        origin: domain::audit::RequestOrigin::default(),
    };
    sign_in_handing_to(db, Arc::clone(&clock), queue).request_link(request).await.expect("queued");
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), clock.clone());

    let given_back = worker.release(inbox.drain()).await.expect("released");
    let next = worker.deliver_due().await.expect("batch");

    assert_eq!(given_back, 1);
    assert_eq!((next.claimed, next.sent), (1, 1), "claimed at once, not after the lease");
    assert_eq!(outbox_rows(store).await[0].2, 1, "the attempt it was leased for never happened");
    assert_eq!(db.outbox.release(&[next_id(store).await], t0()).await.expect("release"), 0, "a sent row stays sent");
}

async fn a_worker_whose_lease_ran_out_never_overwrites_what_the_next_worker_recorded(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let lease = TimeDelta::minutes(2);
    for round in 0..6_i64 {
        queue(db, &clock, &format!("late{round}@example.com")).await;
        let start = t0() + TimeDelta::minutes(10 * round);
        // Worker A claims the row and stalls past its lease; worker B claims it again.
        let stale = db.outbox.claim_due(start, start + lease, 1).await.expect("claim");
        let later = start + lease + TimeDelta::seconds(1);
        let fresh = db.outbox.claim_due(later, later + lease, 1).await.expect("claim");
        assert_eq!(stale.len(), 1);
        assert_eq!(fresh.iter().map(|m| &m.id).collect::<Vec<_>>(), [&stale[0].id], "the same row, leased again");
        let id = stale[0].id.clone();
        let sent = [ports::SentMessage { id: id.clone(), provider_message_id: Some(format!("by-b-{round}")) }];

        // B records it sent while A, waking, records a failure and asks for a retry: in either
        // order, or at once, the row ends sent with B's provider id.
        let (outbox_a, outbox_b) = (Arc::clone(&db.outbox), Arc::clone(&db.outbox));
        let id_a = id.clone();
        let a = async move {
            if round % 2 == 0 {
                outbox_a.mark_final(&id_a, DeliveryState::Failed, "550 from a stale worker", later).await?;
                outbox_a.mark_retry(&id_a, later + lease, "timeout", later).await
            } else {
                outbox_a.mark_retry(&id_a, later + lease, "timeout", later).await?;
                outbox_a.mark_final(&id_a, DeliveryState::Dropped, "expired for a stale worker", later).await
            }
        };
        let b = async move { outbox_b.mark_sent(&sent, later).await };
        let (a, b) = if round < 2 {
            (a.await, b.await)
        } else if round < 4 {
            let b = b.await;
            (a.await, b)
        } else {
            tokio::join!(a, b)
        };
        a.expect("A's writes are refused by their guard, not failed");
        b.expect("B's record");

        let row = sqlx::query(&format!(
            "SELECT status, provider_message_id, sealed_body FROM outbox WHERE id = '{}'",
            id.as_str()
        ))
        .fetch_one(&store.raw)
        .await
        .expect("the row");
        assert_eq!(row.try_get::<String, _>("status").expect("status"), "sent", "round {round}");
        assert_eq!(row.try_get::<Option<String>, _>("provider_message_id").expect("id"), Some(format!("by-b-{round}")));
        assert!(row.try_get::<Option<Vec<u8>>, _>("sealed_body").expect("body").is_none(), "the body is erased");
        let due = db.outbox.next_due().await.expect("read");
        assert_eq!(due, None, "round {round}: no finished row is due again");
    }
}

/// The id of the (first) outbox row.
async fn next_id(store: &ScratchStore) -> domain::OutboxId {
    let id: String =
        sqlx::query_scalar("SELECT id FROM outbox ORDER BY created_at").fetch_one(&store.raw).await.expect("a row");
    domain::OutboxId::parse(&id).expect("an id")
}

async fn purging_delivery_records_keeps_pending_rows_and_recent_ones(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    for to in ["old@example.com", "new@example.com", "waiting@example.com"] {
        queue(db, &clock, to).await;
    }
    let claimed = db.outbox.claim_due(t0(), t0() + TimeDelta::minutes(2), 2).await.expect("claim");
    db.outbox
        .mark_sent(&[ports::SentMessage { id: claimed[0].id.clone(), provider_message_id: None }], t0())
        .await
        .expect("sent");
    db.outbox
        .mark_final(&claimed[1].id, DeliveryState::Failed, "550", t0() + TimeDelta::hours(2))
        .await
        .expect("final");
    assert!(
        db.outbox.mark_final(&claimed[1].id, DeliveryState::Sent, "no", t0()).await.is_err(),
        "sent is not a failure"
    );

    let purged = db.outbox.purge_finished(t0() + TimeDelta::hours(1)).await.expect("purge");

    assert_eq!(purged, 1, "only the finished row older than the cutoff");
    let counts = db.outbox.counts().await.expect("counts");
    assert_eq!((counts.pending, counts.sent, counts.failed, counts.dropped), (1, 0, 1, 0));
}

// ---------------------------------------------------------------------------------------------
// Changing the sign-in address (the use case over the real store, delivery included)

/// A signed-in person's session as the use case sees it, for `email` (created if new): a
/// session stored for them now.
async fn signed_in_as(db: &Database, email: &str) -> ports::ActiveSession {
    let user = db.users.find_or_create_verified(&address(email), t0()).await.expect("user");
    let session = db.sessions.create(&new_session(&user.id, a_session().token_hash)).await.expect("a session");
    ports::ActiveSession {
        session_id: session.id,
        user,
        expires: session.expires,
        signed_in_at: t0(),
        extended: false,
        method: domain::SignInMethod::Link,
    }
}

fn change_to(new_email: &str) -> ChangeAddress {
    ChangeAddress { new_email: address(new_email), client: None, lang: "de".to_owned(), origin: Default::default() }
}

/// The token in the newest confirmation link `mailer` sent.
fn confirmation_token(mailer: &ScriptedMailer) -> LinkToken {
    let delivered = mailer.delivered();
    let link = delivered
        .iter()
        .rev()
        .find_map(|email| match &email.content {
            EmailContent::ConfirmNewAddress { link } => Some(link.clone()),
            _ => None,
        })
        .expect("a confirmation was sent");
    let token = link.query_pairs().find(|(name, _)| name == "token").expect("a token").1.into_owned();
    LinkToken::parse(&token).expect("a token")
}

/// Confirming with `token` in a browser signed in as `active`.
fn confirm(token: &LinkToken, active: &ports::ActiveSession) -> ConfirmAddress {
    ConfirmAddress {
        token: LinkToken::parse(&token.encode()).expect("a token"),
        client: None,
        lang: "de".to_owned(),
        signed_in: Some(active.clone()),
        origin: Default::default(),
    }
}

async fn an_address_change_waits_for_its_link_then_changes_once_and_tells_the_old_address(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = sign_in(db, Arc::clone(&clock));
    let active = signed_in_as(db, "old@example.com").await;
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), Arc::clone(&clock));

    core.request_address_change(&active, change_to("new@example.com")).await.expect("requested");
    assert_eq!(worker.deliver_due().await.expect("batch").sent, 1);
    let token = confirmation_token(&mailer);
    let sent = mailer.delivered();
    assert_eq!(sent[0].to.as_str(), "new@example.com");
    assert!(sent[0].rendered.text.contains("new@example.com"));
    let unchanged = db.users.find(&active.user.id).await.expect("read").expect("user");
    assert_eq!(unchanged.email.as_str(), "old@example.com", "nothing changes until the link is used");
    assert_eq!(
        core.preview_address_change(&token, Some(&active)).await.expect("previewed").new_email.as_str(),
        "new@example.com"
    );
    clock.advance(TimeDelta::seconds(1));

    let changed = core.confirm_address_change(confirm(&token, &active)).await.expect("confirmed");

    assert_eq!((changed.id.clone(), changed.email.as_str()), (active.user.id.clone(), "new@example.com"));
    assert_eq!(changed.email_verified, Some(t0() + TimeDelta::seconds(1)), "verified by its link");
    assert!(db.users.find_by_email(&address("old@example.com")).await.expect("read").is_none());
    assert!(matches!(
        core.confirm_address_change(confirm(&token, &active)).await,
        Err(ConfirmAddressError::AlreadyUsed)
    ));
    assert!(matches!(core.preview_address_change(&token, Some(&active)).await, Err(ConfirmAddressError::AlreadyUsed)));
    assert_eq!(worker.deliver_due().await.expect("batch").sent, 1, "the notice is queued with the change");
    let notice = mailer.delivered().pop().expect("the notice");
    assert_eq!(notice.to.as_str(), "old@example.com");
    assert_eq!(notice.content, EmailContent::AddressChanged { new_address: address("new@example.com") });
    let kinds = raw_texts(store, "SELECT kind FROM outbox ORDER BY created_at").await;
    assert_eq!(kinds, ["confirm_address", "address_changed"]);
    let langs = raw_texts(store, "SELECT lang FROM outbox ORDER BY created_at").await;
    assert_eq!(langs, ["de", "de"], "each email remembers the language it is to be written in");
    // Both steps are in the person's log, written with the change; the refused second
    // confirmation changed nothing and wrote nothing.
    let by_user = ports::AuditQuery { user_id: Some(active.user.id.clone()), ..everything() };
    let events: Vec<_> = audited(db, by_user).await.into_iter().map(|(kind, outcome, ..)| (kind, outcome)).collect();
    assert_eq!(
        events,
        [("address.changed", "succeeded"), ("address.change_requested", "succeeded"), ("link.redeemed", "succeeded")],
        "newest first, after the sign-in that opened the session"
    );
    let details = raw_texts(store, "SELECT detail FROM audit_events WHERE kind LIKE 'address.%' ORDER BY id").await;
    assert!(details.iter().all(|detail| !detail.contains("new@example.com") && !detail.contains("old@example.com")));
}

async fn an_address_that_is_taken_gets_no_email_and_one_taken_meanwhile_changes_nothing(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = sign_in(db, Arc::clone(&clock));
    let active = signed_in_as(db, "mine@example.com").await;
    signed_in_as(db, "theirs@example.com").await;
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), Arc::clone(&clock));

    let answer = core.request_address_change(&active, change_to("theirs@example.com")).await.expect("answered");
    assert_eq!(answer.new_email.as_str(), "theirs@example.com", "the same answer as for a free address");
    assert!(raw_texts(store, "SELECT kind FROM outbox").await.is_empty(), "no email to someone else's address");
    assert!(matches!(
        core.request_address_change(&active, change_to("mine@example.com")).await,
        Err(ChangeAddressError::SameAddress)
    ));

    core.request_address_change(&active, change_to("free@example.com")).await.expect("requested");
    worker.deliver_due().await.expect("batch");
    let token = confirmation_token(&mailer);
    signed_in_as(db, "free@example.com").await;
    let outcome = core.confirm_address_change(confirm(&token, &active)).await;

    assert!(matches!(outcome, Err(ConfirmAddressError::AddressTaken)), "{outcome:?}");
    let user = db.users.find(&active.user.id).await.expect("read").expect("user");
    assert_eq!(user.email.as_str(), "mine@example.com");
    assert_eq!(raw_texts(store, "SELECT kind FROM outbox").await, ["confirm_address"], "no notice");
}

async fn only_the_account_that_asked_confirms_and_its_other_sessions_end(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = sign_in(db, Arc::clone(&clock));
    let active = signed_in_as(db, "attacker@example.com").await;
    let elsewhere = signed_in_as(db, "attacker@example.com").await;
    let victim = signed_in_as(db, "someone-else@example.com").await;
    let mailer = Arc::new(ScriptedMailer::default());
    core.request_address_change(&active, change_to("victim@example.com")).await.expect("requested");
    deliverer(db, mailer.clone(), Arc::clone(&clock)).deliver_due().await.expect("batch");
    let token = confirmation_token(&mailer);

    // The owner of the new address presses the button: signed out, or signed in to their own
    // account. Nothing changes, and nothing is used up.
    let signed_out = ConfirmAddress { signed_in: None, ..confirm(&token, &active) };
    let as_someone_else = confirm(&token, &victim);
    assert!(matches!(core.preview_address_change(&token, None).await, Err(ConfirmAddressError::NotTheRequester)));
    assert!(matches!(core.confirm_address_change(signed_out).await, Err(ConfirmAddressError::NotTheRequester)));
    assert!(matches!(core.confirm_address_change(as_someone_else).await, Err(ConfirmAddressError::NotTheRequester)));
    let unchanged = db.users.find(&active.user.id).await.expect("read").expect("user");
    assert_eq!(unchanged.email.as_str(), "attacker@example.com");

    let changed = core.confirm_address_change(confirm(&token, &active)).await.expect("the account that asked");

    assert_eq!(changed.email.as_str(), "victim@example.com");
    let sessions = db.sessions.list_for_user(&active.user.id, t0()).await.expect("sessions");
    let ids: Vec<_> = sessions.iter().map(|session| session.id.clone()).collect();
    assert_eq!(ids, std::slice::from_ref(&active.session_id), "only the confirming browser stays signed in");
    assert!(!ids.contains(&elsewhere.session_id));
    let untouched = db.sessions.list_for_user(&victim.user.id, t0()).await.expect("sessions");
    assert_eq!(untouched.len(), 1, "another account's sessions are left alone");
}

async fn a_newer_request_replaces_the_older_link_and_links_expire(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = sign_in(db, Arc::clone(&clock));
    let active = signed_in_as(db, "a@example.com").await;
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), Arc::clone(&clock));
    core.request_address_change(&active, change_to("b@example.com")).await.expect("requested");
    worker.deliver_due().await.expect("batch");
    let older = confirmation_token(&mailer);

    core.request_address_change(&active, change_to("c@example.com")).await.expect("requested");
    worker.deliver_due().await.expect("batch");
    let newer = confirmation_token(&mailer);

    assert!(matches!(core.confirm_address_change(confirm(&older, &active)).await, Err(ConfirmAddressError::Invalid)));
    clock.advance(TimeDelta::minutes(10));
    assert!(matches!(core.preview_address_change(&newer, Some(&active)).await, Err(ConfirmAddressError::Expired)));
    assert!(matches!(core.confirm_address_change(confirm(&newer, &active)).await, Err(ConfirmAddressError::Expired)));
    let user = db.users.find(&active.user.id).await.expect("read").expect("user");
    assert_eq!(user.email.as_str(), "a@example.com");
    let purged = db.links.purge_expired(t0() + TimeDelta::minutes(11)).await.expect("purge");
    assert_eq!(purged, 1, "the expired change is purged with the links");
}

async fn concurrent_confirmations_change_the_address_once_and_retire_the_old_addresss_links(store: &ScratchStore) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = Arc::new(sign_in(db, Arc::clone(&clock)));
    let active = signed_in_as(db, "before@example.com").await;
    let old_link = insert_link(db, 9, "before@example.com", t0()).await;
    let mailer = Arc::new(ScriptedMailer::default());
    core.request_address_change(&active, change_to("after@example.com")).await.expect("requested");
    deliverer(db, mailer.clone(), Arc::clone(&clock)).deliver_due().await.expect("batch");
    let token = confirmation_token(&mailer);

    let attempts: Vec<_> = (0..10)
        .map(|_| {
            let core = Arc::clone(&core);
            let request = confirm(&token, &active);
            tokio::spawn(async move { core.confirm_address_change(request).await })
        })
        .collect();
    let mut changed = 0;
    for attempt in attempts {
        match attempt.await.expect("joined") {
            Ok(_) => changed += 1,
            Err(ConfirmAddressError::AlreadyUsed) => {}
            Err(other) => panic!("unexpected outcome {other:?}"),
        }
    }

    assert_eq!(changed, 1);
    assert_eq!(raw_texts(store, "SELECT kind FROM outbox WHERE kind = 'address_changed'").await.len(), 1);
    let state = db.links.state(&old_link, &address("before@example.com"), t0()).await.expect("state");
    assert_eq!(state, LinkState::Unknown, "a sign-in link to the old address no longer works");
}

async fn an_address_change_racing_first_sign_ins_of_that_address_is_taken_or_done_never_a_failure(
    store: &ScratchStore,
) {
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = Arc::new(sign_in(db, Arc::clone(&clock)));
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), Arc::clone(&clock));
    let (mut changed, mut taken) = (0, 0);
    for round in 0..12 {
        let contested = format!("contested{round}@example.com");
        let active = signed_in_as(db, &format!("mover{round}@example.com")).await;
        core.request_address_change(&active, change_to(&contested)).await.expect("requested");
        worker.deliver_due().await.expect("batch");
        let token = confirmation_token(&mailer);

        // The confirmation and first sign-ins of the same address, at once: the unique address
        // decides which wins, and the loser hears an outcome, never a storage failure.
        let confirming = {
            let (core, request) = (Arc::clone(&core), confirm(&token, &active));
            tokio::spawn(async move { core.confirm_address_change(request).await })
        };
        let signing_in: Vec<_> = (0..3)
            .map(|_| {
                let (users, email) = (Arc::clone(&db.users), address(&contested));
                tokio::spawn(async move { users.find_or_create_verified(&email, t0()).await })
            })
            .collect();
        match confirming.await.expect("joined") {
            Ok(_) => changed += 1,
            Err(ConfirmAddressError::AddressTaken) => taken += 1,
            Err(other) => panic!("round {round}: the change failed with {other:?}"),
        }
        let mut holders = Vec::new();
        for attempt in signing_in {
            holders.push(attempt.await.expect("joined").expect("a sign-in never fails on the race").id);
        }
        holders.dedup();
        assert_eq!(holders.len(), 1, "round {round}: every sign-in found the one holder of the address");
        let holder = db.users.find_by_email(&address(&contested)).await.expect("read").expect("a holder");
        assert_eq!(holders[0], holder.id);
    }
    assert_eq!(changed + taken, 12);
}

// ---------------------------------------------------------------------------------------------
// Passwords

fn phc(tag: &str) -> domain::PasswordHash {
    domain::PasswordHash::from_phc(format!("$argon2id$v=19$m=19456,t=2,p=1${tag}$aGFzaA"))
}

async fn a_password_is_found_with_its_user_by_address_only_and_replaced_whole(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");

    assert!(db.passwords.find_with_password(&address("nobody@example.com")).await.expect("read").is_none());
    let (found, hash) = db.passwords.find_with_password(&address("ada@example.com")).await.expect("read").expect("ada");
    assert_eq!((found, hash), (ada.clone(), None), "a user without a password");

    db.passwords
        .set_password(&ada.id, &phc("first"), &audit(domain::audit::AuditKind::PasswordSet), t0())
        .await
        .expect("set");
    db.passwords
        .set_password(
            &ada.id,
            &phc("second"),
            &audit(domain::audit::AuditKind::PasswordSet),
            t0() + TimeDelta::minutes(1),
        )
        .await
        .expect("changed");

    let (_, hash) = db.passwords.find_with_password(&address("ADA@example.com")).await.expect("read").expect("ada");
    assert_eq!(hash, Some(phc("second")), "found whatever the case of the address, the newest hash only");
    assert_eq!(db.passwords.password_of(&ada.id).await.expect("read"), Some(phc("second")));
    let (_, bobs) = db.passwords.find_with_password(&address("bob@example.com")).await.expect("read").expect("bob");
    assert_eq!(bobs, None, "another user's password is never returned");
    let rows = raw_texts(store, "SELECT hash FROM passwords").await;
    assert_eq!(rows, vec![phc("second").as_phc().to_owned()], "one row per user");

    assert!(db
        .users
        .remove(&address("ada@example.com"), None, &audit(domain::audit::AuditKind::UserDeleted))
        .await
        .expect("removed")
        .is_some());
    assert!(raw_texts(store, "SELECT hash FROM passwords").await.is_empty(), "removing a user removes the hash");
}

async fn a_rehash_replaces_only_the_hash_it_was_made_from(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    db.passwords
        .set_password(&ada.id, &phc("old"), &audit(domain::audit::AuditKind::PasswordSet), t0())
        .await
        .expect("set");

    assert!(db.passwords.replace_password_hash(&ada.id, &phc("old"), &phc("rehashed"), t0()).await.expect("ran"));
    // The person changed their password meanwhile: a late re-hash of the old one must not undo it.
    db.passwords
        .set_password(&ada.id, &phc("changed"), &audit(domain::audit::AuditKind::PasswordSet), t0())
        .await
        .expect("set");
    assert!(!db.passwords.replace_password_hash(&ada.id, &phc("rehashed"), &phc("late"), t0()).await.expect("ran"));

    assert_eq!(db.passwords.password_of(&ada.id).await.expect("read"), Some(phc("changed")));
}

async fn concurrent_first_passwords_for_one_user_leave_exactly_one(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let attempts = (0..12).map(|n| {
        let passwords = Arc::clone(&db.passwords);
        let id = ada.id.clone();
        tokio::spawn(async move {
            passwords
                .set_password(&id, &phc(&format!("p{n}")), &audit(domain::audit::AuditKind::PasswordSet), t0())
                .await
        })
    });
    for attempt in attempts {
        attempt.await.expect("joined").expect("every concurrent set succeeds");
    }

    let rows = raw_texts(store, "SELECT hash FROM passwords").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!((0..12).any(|n| rows[0] == phc(&format!("p{n}")).as_phc()), "one of the hashes set: {rows:?}");
}

async fn a_session_remembers_when_its_sign_in_happened(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let draft = a_session();
    let signed_in_at = t0() + TimeDelta::milliseconds(1_234);
    db.sessions
        .create(&NewSession {
            token_hash: draft.token_hash.clone(),
            user_id: ada.id.clone(),
            expires: t0() + TimeDelta::days(1),
            user_agent: None,
            created_at: signed_in_at,
            method: domain::SignInMethod::Link,
            audit: audit(domain::audit::AuditKind::LinkRedeemed),
        })
        .await
        .expect("stored");
    db.sessions
        .extend(
            &db.sessions.find(&draft.token_hash).await.expect("read").expect("found").0.id,
            t0() + TimeDelta::days(2),
            t0() + TimeDelta::hours(5),
        )
        .await
        .expect("extended");

    let (session, _) = db.sessions.find(&draft.token_hash).await.expect("read").expect("found");
    assert_eq!(session.created_at, signed_in_at, "extending a session does not make its sign-in recent");
}

// ---------------------------------------------------------------------------------------------
// Passkeys and their ceremonies.

fn credential(byte: u8) -> domain::CredentialId {
    domain::CredentialId::new(vec![byte; 48]).expect("a credential id")
}

fn new_passkey(user: &domain::User, byte: u8, created: DateTime<Utc>) -> ports::NewPasskey {
    ports::NewPasskey {
        user_id: user.id.clone(),
        credential_id: credential(byte),
        credential: ports::StoredCredential(format!("{{\"cred\":{byte}}}").into_bytes()),
        name: domain::PasskeyName::parse(&format!("Key {byte}")).expect("a name"),
        backed_up: false,
        sign_count: 5,
        created_at: created,
    }
}

/// A passkey for `user`, added as the use case does: after the user's handle is stored.
async fn add_passkey(db: &Database, user: &domain::User, byte: u8, created: DateTime<Utc>) -> domain::Passkey {
    let candidate = domain::UserHandle::from_random_bytes([byte.wrapping_add(100); 16]);
    db.passkeys.user_handle(&user.id, &candidate).await.expect("a handle");
    let event = audit(domain::audit::AuditKind::PasskeyAdded).of_user(&user.id);
    match db.passkeys.add(&new_passkey(user, byte, created), &event).await.expect("stored") {
        ports::PasskeyAdded::Added(passkey) => passkey,
        ports::PasskeyAdded::CredentialTaken => panic!("credential {byte} was taken"),
    }
}

async fn a_user_keeps_one_passkey_handle_whoever_asks_first(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let first = domain::UserHandle::from_random_bytes([1; 16]);
    let second = domain::UserHandle::from_random_bytes([2; 16]);
    assert_eq!(db.passkeys.user_handle(&ada.id, &first).await.expect("handle"), first);
    assert_eq!(db.passkeys.user_handle(&ada.id, &second).await.expect("handle"), first, "the stored one stays");
    // Racing first ceremonies of another person all get one handle.
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    let handles = futures_util::future::join_all((3..13_u8).map(|byte| {
        let passkeys = Arc::clone(&db.passkeys);
        let id = bob.id.clone();
        async move { passkeys.user_handle(&id, &domain::UserHandle::from_random_bytes([byte; 16])).await }
    }))
    .await;
    let handles: Vec<_> = handles.into_iter().map(|handle| handle.expect("handle")).collect();
    assert!(handles.iter().all(|handle| *handle == handles[0]), "one handle per user");
    assert_ne!(handles[0], first, "and never another user's");
    let stored =
        raw_texts(store, "SELECT passkey_handle FROM users WHERE passkey_handle IS NOT NULL ORDER BY email").await;
    assert_eq!(stored, [first.to_hex(), handles[0].to_hex()]);
}

async fn a_passkey_is_found_by_its_credential_id_with_its_owner_and_listed_for_them_only(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    let handle =
        db.passkeys.user_handle(&ada.id, &domain::UserHandle::from_random_bytes([7; 16])).await.expect("handle");
    let older = add_passkey(db, &ada, 1, t0()).await;
    let newer = add_passkey(db, &ada, 2, t0() + TimeDelta::seconds(1)).await;
    add_passkey(db, &bob, 3, t0()).await;

    let listed = db.passkeys.list(&ada.id).await.expect("listed");
    assert_eq!(listed, [(older.clone(), credential(1)), (newer, credential(2))], "oldest first, with their ids");
    let found = db.passkeys.find_for_sign_in(&credential(1)).await.expect("read").expect("found");
    assert_eq!((found.passkey, found.user, found.user_handle), (older, ada.clone(), handle));
    assert_eq!((found.credential.0, found.sign_count), (b"{\"cred\":1}".to_vec(), 5));
    assert_eq!(db.passkeys.find_for_sign_in(&credential(9)).await.expect("read"), None);
    // Only the credential id's digest is the key; the id itself is kept for the exclude list.
    let keys = raw_texts(store, "SELECT credential_key FROM passkeys ORDER BY credential_key").await;
    assert!(keys.contains(&credential(1).key()), "{keys:?}");
}

async fn a_credential_id_is_registered_once_across_every_account_however_they_race(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    add_passkey(db, &ada, 1, t0()).await;
    let again = db
        .passkeys
        .add(&new_passkey(&bob, 1, t0()), &audit(domain::audit::AuditKind::PasskeyAdded))
        .await
        .expect("answered");
    assert_eq!(again, ports::PasskeyAdded::CredentialTaken);

    let racers =
        futures_util::future::join_all(
            (0..10).map(|n| {
                let passkeys = Arc::clone(&db.passkeys);
                let owner = if n % 2 == 0 { ada.clone() } else { bob.clone() };
                async move {
                    passkeys.add(&new_passkey(&owner, 2, t0()), &audit(domain::audit::AuditKind::PasskeyAdded)).await
                }
            }),
        )
        .await;
    let added = racers.iter().filter(|outcome| matches!(outcome, Ok(ports::PasskeyAdded::Added(_)))).count();
    let taken = racers.iter().filter(|outcome| matches!(outcome, Ok(ports::PasskeyAdded::CredentialTaken))).count();
    assert_eq!((added, taken), (1, 9), "{racers:?}");
}

async fn a_use_is_recorded_only_while_the_counter_moves_forward(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let passkey = add_passkey(db, &ada, 1, t0()).await;
    let used = |count: u32, minutes: i64| ports::PasskeyUse {
        credential: ports::StoredCredential(format!("{{\"count\":{count}}}").into_bytes()),
        sign_count: count,
        backed_up: true,
        at: t0() + TimeDelta::minutes(minutes),
    };
    assert!(db.passkeys.record_use(&passkey.id, &used(6, 1)).await.expect("recorded"));
    assert!(!db.passkeys.record_use(&passkey.id, &used(6, 2)).await.expect("answered"), "the same counter again");
    assert!(!db.passkeys.record_use(&passkey.id, &used(3, 3)).await.expect("answered"), "a lower counter");
    let found = db.passkeys.find_for_sign_in(&credential(1)).await.expect("read").expect("found");
    assert_eq!(found.sign_count, 6);
    assert_eq!(found.credential.0, b"{\"count\":6}".to_vec());
    assert_eq!((found.passkey.last_used_at, found.passkey.backed_up), (Some(t0() + TimeDelta::minutes(1)), true));

    // Concurrent uses with one counter: one is recorded.
    let racers = futures_util::future::join_all((0..8).map(|_| {
        let passkeys = Arc::clone(&db.passkeys);
        let id = passkey.id.clone();
        let use_ = used(7, 4);
        async move { passkeys.record_use(&id, &use_).await }
    }))
    .await;
    assert_eq!(racers.iter().filter(|recorded| matches!(recorded, Ok(true))).count(), 1, "{racers:?}");

    // An authenticator that keeps no counter (always 0, as synced passkeys do) is never refused.
    let synced = add_passkey(db, &ada, 2, t0()).await;
    for minutes in [5, 6] {
        assert!(db.passkeys.record_use(&synced.id, &used(0, minutes)).await.expect("recorded"));
    }
}

async fn renaming_and_deleting_touch_only_the_owners_passkey_and_nothing_else(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    let adas = add_passkey(db, &ada, 1, t0()).await;
    session_at(db, &ada.id, t0(), t0() + TimeDelta::days(1), "a browser").await;
    let name = domain::PasskeyName::parse("Work laptop").expect("a name");

    assert_eq!(db.passkeys.rename(&bob.id, &adas.id, &name).await.expect("answered"), None, "not bob's");
    let renamed = db.passkeys.rename(&ada.id, &adas.id, &name).await.expect("renamed").expect("found");
    assert_eq!(renamed.name, name);
    let same = db.passkeys.rename(&ada.id, &adas.id, &name).await.expect("renamed again");
    assert_eq!(same.map(|passkey| passkey.name), Some(name), "an unchanged name is still found");

    assert!(
        !db.passkeys
            .delete(&bob.id, &adas.id, &audit(domain::audit::AuditKind::PasskeyRemoved))
            .await
            .expect("answered"),
        "not bob's"
    );
    assert!(db
        .passkeys
        .delete(&ada.id, &adas.id, &audit(domain::audit::AuditKind::PasskeyRemoved))
        .await
        .expect("deleted"));
    assert!(
        !db.passkeys
            .delete(&ada.id, &adas.id, &audit(domain::audit::AuditKind::PasskeyRemoved))
            .await
            .expect("answered"),
        "gone"
    );
    assert_eq!(db.passkeys.find_for_sign_in(&credential(1)).await.expect("read"), None);
    let sessions = db.sessions.list_for_user(&ada.id, t0()).await.expect("listed");
    assert_eq!(sessions.len(), 1, "deleting a passkey ends no session");
}

async fn a_users_passkeys_outlive_an_address_change_and_go_with_the_user(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    add_passkey(db, &ada, 1, t0()).await;
    sqlx::query("UPDATE users SET email = 'ada@example.org' WHERE email = 'ada@example.com'")
        .execute(&store.raw)
        .await
        .expect("address changed");
    let found = db.passkeys.find_for_sign_in(&credential(1)).await.expect("read").expect("still found");
    assert_eq!(found.user.email, address("ada@example.org"));
    assert!(db
        .users
        .remove(&address("ada@example.org"), None, &audit(domain::audit::AuditKind::UserDeleted))
        .await
        .expect("removed")
        .is_some());
    assert_eq!(db.passkeys.find_for_sign_in(&credential(1)).await.expect("read"), None);
}

async fn a_ceremony_is_taken_once_for_its_purpose_until_it_expires(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let token = |byte: u8| domain::CeremonyToken::from_random_bytes([byte; 32]);
    let save = |byte: u8, purpose, expires| {
        let ceremony = ports::NewCeremony {
            hash: token(byte).hash(),
            purpose,
            user_id: (purpose == ports::CeremonyPurpose::Registration).then(|| ada.id.clone()),
            state: format!("state {byte}").into_bytes(),
            expires,
        };
        async move { db.passkeys.save_ceremony(&ceremony).await.expect("saved") }
    };
    let (registration, sign_in) = (ports::CeremonyPurpose::Registration, ports::CeremonyPurpose::SignIn);
    let later = t0() + TimeDelta::minutes(5);
    save(1, registration, later).await;
    let taken = db.passkeys.take_ceremony(&token(1).hash(), registration, t0()).await.expect("taken");
    assert_eq!(taken, Some(ports::TakenCeremony { user_id: Some(ada.id.clone()), state: b"state 1".to_vec() }));
    assert_eq!(db.passkeys.take_ceremony(&token(1).hash(), registration, t0()).await.expect("answered"), None);

    save(2, sign_in, later).await;
    assert_eq!(db.passkeys.take_ceremony(&token(2).hash(), registration, t0()).await.expect("answered"), None);
    save(3, sign_in, later).await;
    assert_eq!(db.passkeys.take_ceremony(&token(3).hash(), sign_in, later).await.expect("answered"), None, "expired");
    assert_eq!(db.passkeys.take_ceremony(&token(4).hash(), sign_in, t0()).await.expect("answered"), None, "unknown");

    save(5, sign_in, later).await;
    let racers = futures_util::future::join_all((0..10).map(|_| {
        let passkeys = Arc::clone(&db.passkeys);
        async move { passkeys.take_ceremony(&token(5).hash(), sign_in, t0()).await }
    }))
    .await;
    assert_eq!(racers.iter().filter(|taken| matches!(taken, Ok(Some(_)))).count(), 1, "{racers:?}");

    save(6, sign_in, t0() + TimeDelta::minutes(1)).await;
    save(7, sign_in, t0() + TimeDelta::minutes(10)).await;
    let purged = db.passkeys.purge_expired_ceremonies(t0() + TimeDelta::minutes(2)).await.expect("purged");
    assert_eq!(purged, 1);
    assert!(db.passkeys.take_ceremony(&token(7).hash(), sign_in, t0()).await.expect("answered").is_some());
}

async fn a_session_remembers_how_its_person_signed_in(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    for (byte, method) in [(1_u8, domain::SignInMethod::Passkey), (2, domain::SignInMethod::Password)] {
        let mut bytes = [byte; 32];
        bytes[31] = 0xee;
        let token_hash = SessionToken::from_random_bytes(bytes).hash();
        let session = NewSession {
            token_hash: token_hash.clone(),
            user_id: ada.id.clone(),
            expires: t0() + TimeDelta::days(1),
            user_agent: None,
            created_at: t0(),
            method,
            audit: audit(domain::audit::AuditKind::PasswordSignIn),
        };
        assert_eq!(db.sessions.create(&session).await.expect("stored").method, method);
        assert_eq!(db.sessions.find(&token_hash).await.expect("read").expect("found").0.method, method);
    }
    let listed = db.sessions.list_for_user(&ada.id, t0()).await.expect("listed");
    let mut methods: Vec<_> = listed.iter().map(|session| session.method).collect();
    methods.sort_by_key(|method| method.as_str());
    assert_eq!(methods, [domain::SignInMethod::Passkey, domain::SignInMethod::Password]);
    // A link redemption's session says "link".
    let link = insert_link(db, 9, "ada@example.com", t0()).await;
    let draft = a_session();
    let redeemed = db.links.redeem(&link, &address("ada@example.com"), &draft, t0()).await.expect("redeemed");
    let Redemption::Redeemed(record) = redeemed else { panic!("{redeemed:?}") };
    assert_eq!(record.session.method, domain::SignInMethod::Link);
}

// ---------------------------------------------------------------------------------------------
// The suite, once per backend.

/// Runs each contract on a fresh scratch database of the backend, then drops it.
fn oidc_client(id: &str) -> domain::oidc::Client {
    domain::oidc::Client {
        id: domain::oidc::ClientId::parse(id).expect("id"),
        name: format!("App {id}"),
        kind: domain::oidc::ClientKind::Confidential,
        secret_hash: Some(domain::oidc::ClientSecret::from_random_bytes([1; 32]).hash()),
        redirect_uris: vec![
            url::Url::parse("https://app.example.com/cb").expect("URL"),
            url::Url::parse("http://127.0.0.1/cb").expect("URL"),
        ],
        post_logout_redirect_uris: vec![url::Url::parse("https://app.example.com/bye").expect("URL")],
        first_party: false,
        backchannel_logout_uri: None,
        id_token_algorithm: domain::oidc::SigningAlgorithm::Es256,
        from_config: false,
        created_at: t0(),
    }
}

/// A code for `user` at `client`, made from `byte`, expiring a minute after t0.
fn oidc_code(byte: u8, client: &str, user: &domain::User) -> ports::NewCode {
    ports::NewCode {
        hash: domain::oidc::AuthorizationCode::from_random_bytes([byte; 32]).hash(),
        grant: domain::oidc::CodeGrant {
            client_id: domain::oidc::ClientId::parse(client).expect("id"),
            redirect_uri: "https://app.example.com/cb".to_owned(),
            challenge: Some(
                domain::oidc::CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Some("S256"))
                    .expect("challenge"),
            ),
            nonce: Some("nonce ünïcode".to_owned()),
            scopes: domain::oidc::Scopes::parse("openid email offline_access").expect("scopes"),
            user_id: user.id.clone(),
            session_id: domain::SessionId::parse("01900000-0000-7000-8000-000000000001").expect("id"),
            auth_time: t0(),
            method: domain::SignInMethod::Passkey,
            expires: t0() + TimeDelta::minutes(1),
        },
        created_at: t0(),
    }
}

/// The refresh token [`oidc_tokens`] makes from `byte` (other bytes than its access token's:
/// tokens of both kinds share one table, keyed by hash).
fn refresh_hash(byte: u8) -> domain::oidc::RefreshTokenHash {
    domain::oidc::RefreshToken::from_random_bytes([byte ^ 0x80; 32]).hash()
}

fn oidc_tokens(byte: u8, refresh: bool) -> ports::NewTokens {
    ports::NewTokens {
        access: (domain::oidc::AccessToken::from_random_bytes([byte; 32]).hash(), t0() + TimeDelta::hours(1)),
        refresh: refresh.then(|| (refresh_hash(byte), t0() + TimeDelta::days(30))),
        created_at: t0(),
    }
}

/// A grant of `user` at the client `app`: code 1 stored and redeemed.
async fn a_grant(db: &Database, user: &domain::User) -> ports::GrantId {
    let code = oidc_code(1, "app", user);
    db.grants.save_code(&code).await.expect("saved");
    match db.grants.redeem_code(&code.hash, t0()).await.expect("redeemed") {
        ports::CodeRedeemed::Redeemed(_, grant_id) => grant_id,
        other => panic!("not redeemed: {other:?}"),
    }
}

/// A link sign-in's session for `user_id` with `token_hash`, opened at t0 for a day.
fn new_session(user_id: &domain::UserId, token_hash: domain::SessionTokenHash) -> NewSession {
    NewSession {
        token_hash,
        user_id: user_id.clone(),
        expires: t0() + TimeDelta::days(1),
        user_agent: None,
        created_at: t0(),
        method: domain::SignInMethod::Link,
        audit: audit(domain::audit::AuditKind::LinkRedeemed),
    }
}

/// A session of `user` opened at t0, with its token made from `byte`.
async fn a_stored_session(db: &Database, user: &domain::User, byte: u8) -> (domain::Session, SessionToken) {
    let token = SessionToken::from_random_bytes([byte; 32]);
    let session = db.sessions.create(&new_session(&user.id, token.hash())).await.expect("session");
    (session, token)
}

/// A grant of `user` at `client` in `session` (code `byte` stored and redeemed).
async fn a_grant_in(db: &Database, user: &domain::User, client: &str, session: &domain::Session, byte: u8) {
    let mut code = oidc_code(byte, client, user);
    code.grant.session_id = session.id.clone();
    db.grants.save_code(&code).await.expect("saved");
    assert!(matches!(
        db.grants.redeem_code(&code.hash, t0()).await.expect("redeemed"),
        ports::CodeRedeemed::Redeemed(..)
    ));
}

/// The logout notices due now, claimed, as (client, user, session) ids.
async fn claimed_notices(db: &Database) -> Vec<(String, String, String)> {
    let now = Utc::now() + TimeDelta::seconds(1);
    let mut notices: Vec<_> = db
        .outbox
        .claim_due(now, now + TimeDelta::minutes(2), 100)
        .await
        .expect("claim")
        .into_iter()
        .map(|message| match message.payload {
            ports::Payload::BackchannelLogout(notice) => (
                notice.client_id.as_str().to_owned(),
                notice.user_id.as_str().to_owned(),
                notice.session_id.as_str().to_owned(),
            ),
            ports::Payload::Email(email) => panic!("an email was queued: {:?}", email.kind),
            ports::Payload::Webhook(webhook) => panic!("a webhook was queued: {}", webhook.endpoint),
        })
        .collect();
    notices.sort();
    notices
}

async fn ending_a_session_queues_a_logout_notice_for_each_app_registered_for_one(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    let told = domain::oidc::Client {
        backchannel_logout_uri: Some(url::Url::parse("https://told.example.com/bc").expect("URL")),
        ..oidc_client("told")
    };
    db.clients.add_client(&told).await.expect("client");
    db.clients.add_client(&oidc_client("untold")).await.expect("client");
    let (first, first_token) = a_stored_session(db, &ada, 1).await;
    let (second, second_token) = a_stored_session(db, &ada, 2).await;
    let (third, _) = a_stored_session(db, &ada, 3).await;
    let (bobs, _) = a_stored_session(db, &bob, 4).await;
    a_grant_in(db, &ada, "told", &first, 1).await;
    a_grant_in(db, &ada, "told", &first, 2).await;
    a_grant_in(db, &ada, "untold", &first, 3).await;
    a_grant_in(db, &ada, "told", &second, 4).await;
    a_grant_in(db, &ada, "untold", &third, 5).await;
    a_grant_in(db, &bob, "told", &bobs, 6).await;
    let ids = |session: &domain::Session| {
        ("told".to_owned(), session.user_id.as_str().to_owned(), session.id.as_str().to_owned())
    };

    // "Everywhere else": the first and third end; only the first had the registered app,
    // twice, and it is told once.
    assert_eq!(
        db.sessions
            .delete_others(&ada.id, &second.id, &audit(domain::audit::AuditKind::SessionRevoked))
            .await
            .expect("revoked"),
        2
    );
    assert_eq!(claimed_notices(db).await, vec![ids(&first)]);
    // Signing out by cookie, and revoking from the list, each tell it of that session.
    db.sessions.delete(&second_token.hash(), &audit(domain::audit::AuditKind::SignedOut)).await.expect("signed out");
    assert_eq!(claimed_notices(db).await, vec![ids(&second)]);
    db.sessions
        .delete(&first_token.hash(), &audit(domain::audit::AuditKind::SignedOut))
        .await
        .expect("already gone: nothing to tell");
    assert_eq!(claimed_notices(db).await, vec![]);
    // Removing a person ends their sessions: the apps are told of them too.
    assert!(db
        .users
        .remove(&address("bob@example.com"), None, &audit(domain::audit::AuditKind::UserDeleted))
        .await
        .expect("removed")
        .is_some());
    assert_eq!(claimed_notices(db).await, vec![ids(&bobs)]);
    // The notice holds identifiers only, erased with the row once it is sent.
    let listed = db.outbox.list(None, 10).await.expect("list");
    assert!(listed.iter().all(|entry| entry.kind == ports::MessageKind::BackchannelLogout));
    assert!(listed.iter().all(|entry| entry.recipient == ports::Addressee::App(told.id.clone())));
    let ids: Vec<_> =
        listed.iter().map(|entry| ports::SentMessage { id: entry.id.clone(), provider_message_id: None }).collect();
    db.outbox.mark_sent(&ids, Utc::now()).await.expect("sent");
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE payload IS NOT NULL")
        .fetch_one(&store.raw)
        .await
        .expect("count");
    assert_eq!((listed.len(), kept), (3, 0), "three notices, sent, their payloads erased");
}

/// The audit log's events, newest first, as (kind, outcome, user id, session id).
async fn audited(
    db: &Database,
    query: ports::AuditQuery,
) -> Vec<(&'static str, &'static str, Option<String>, Option<String>)> {
    db.audit
        .list(&query)
        .await
        .expect("read")
        .into_iter()
        .map(|recorded| {
            let event = recorded.event;
            (
                event.kind.as_str(),
                event.outcome.as_str(),
                event.user_id.map(|id| id.as_str().to_owned()),
                event.session_id.map(|id| id.as_str().to_owned()),
            )
        })
        .collect()
}

fn everything() -> ports::AuditQuery {
    ports::AuditQuery { limit: 100, ..ports::AuditQuery::default() }
}

async fn audit_events_are_written_with_their_change_and_read_back_by_person_kind_and_time(store: &ScratchStore) {
    use domain::audit::AuditKind;
    let db = &store.database;
    // A link for an address nobody has yet: the event names no one.
    let first = insert_link(db, 1, "new@example.com", t0()).await;
    // Its redemption makes the user and the session: both events name them.
    let redeemed = db.links.redeem(&first, &address("new@example.com"), &a_session(), t0()).await.expect("redeemed");
    let Redemption::Redeemed(record) = redeemed else { panic!("{redeemed:?}") };
    let (user, session) = (Some(record.user.id.as_str().to_owned()), Some(record.session.id.as_str().to_owned()));
    // A second use is refused and rolled back: no event of the store's.
    let again = db.links.redeem(&first, &address("new@example.com"), &a_session(), t0()).await.expect("answered");
    assert_eq!(again, Redemption::AlreadyUsed);
    // A link for the address now known names its user.
    insert_link(db, 2, "new@example.com", t0() + TimeDelta::seconds(1)).await;
    // Signing out names the session and its user; an unknown session writes nothing.
    let token_of_session = sqlx::query_scalar::<_, String>("SELECT session_token FROM sessions")
        .fetch_one(&store.raw)
        .await
        .expect("the session");
    let token_hash = domain::SessionTokenHash::from_hex(&token_of_session).expect("hex");
    let mut signed_out = audit(AuditKind::SignedOut);
    signed_out.at = t0() + TimeDelta::seconds(2);
    db.sessions.delete(&token_hash, &signed_out).await.expect("signed out");
    db.sessions.delete(&token_hash, &signed_out).await.expect("nothing to end");
    // A refusal, recorded on its own.
    let mut refused = domain::audit::AuditEvent::new(
        AuditKind::CodeRedeemed,
        domain::audit::AuditOutcome::refused("wrong_code"),
        t0() + TimeDelta::seconds(3),
        &domain::audit::RequestOrigin {
            client_address: Some("203.0.113.0/24".to_owned()),
            user_agent: Some("Firefox on Linux".to_owned()),
            request_id: Some("req-7".to_owned()),
            lang: None,
        },
    );
    refused.detail = Some("n***@example.com".to_owned());
    db.audit.record(&refused).await.expect("recorded");

    assert_eq!(
        audited(db, everything()).await,
        vec![
            ("code.redeemed", "refused", None, None),
            ("session.signed_out", "succeeded", user.clone(), session.clone()),
            ("link.requested", "succeeded", user.clone(), None),
            ("link.redeemed", "succeeded", user.clone(), session.clone()),
            ("user.created", "succeeded", user.clone(), None),
            ("link.requested", "succeeded", None, None),
        ],
        "newest first; events of one instant by id, newest first (the user is made before its session)"
    );
    let newest = &db.audit.list(&everything()).await.expect("read")[0];
    assert_eq!(newest.event, refused, "every field reads back as written");

    // By person, by kind, since a moment, and page by page.
    let by_user = ports::AuditQuery { user_id: Some(record.user.id.clone()), ..everything() };
    assert_eq!(audited(db, by_user).await.len(), 4);
    let by_kind = ports::AuditQuery { kind: Some(AuditKind::LinkRequested), ..everything() };
    assert_eq!(audited(db, by_kind).await.len(), 2);
    let since = ports::AuditQuery { since: Some(t0() + TimeDelta::seconds(2)), ..everything() };
    assert_eq!(audited(db, since).await.len(), 2);
    let page = db.audit.list(&ports::AuditQuery { limit: 2, ..everything() }).await.expect("read");
    let next = ports::AuditQuery { before_id: Some(page[1].id.clone()), limit: 2, ..everything() };
    let next = db.audit.list(&next).await.expect("read");
    assert_eq!(next.len(), 2);
    assert!(next.iter().all(|later| page.iter().all(|earlier| later.id < earlier.id)), "older pages only");

    // Retention: only what is older than the cutoff goes.
    assert_eq!(db.audit.purge_before(t0() + TimeDelta::seconds(2)).await.expect("purged"), 4);
    assert_eq!(audited(db, everything()).await.len(), 2);

    // Turned off (audit.enabled = false, for measuring its cost), nothing more is written.
    db.configure_audit(adapters::sql::AuditOptions { enabled: false, log_json: false });
    db.audit.record(&refused).await.expect("accepted");
    insert_link(db, 3, "new@example.com", t0() + TimeDelta::seconds(4)).await;
    assert_eq!(audited(db, everything()).await.len(), 2);
}

/// How many rows `query` counts.
async fn count(store: &ScratchStore, query: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(query).fetch_one(&store.raw).await.expect("counted")
}

async fn a_disabled_account_signs_in_nowhere_until_enabled_and_a_deleted_one_leaves_only_its_events(
    store: &ScratchStore,
) {
    use domain::audit::AuditKind;
    use ports::AccountStatusChange;
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let (_, token) = a_stored_session(db, &ada, 7).await;
    db.passwords
        .set_password(&ada.id, &phc("ada"), &audit(AuditKind::PasswordSet).of_user(&ada.id), t0())
        .await
        .expect("set");
    add_passkey(db, &ada, 9, t0()).await;
    insert_link(db, 1, "ada@example.com", t0()).await;
    let bobs_link = insert_link(db, 2, "bob@example.com", t0()).await;

    let disabled =
        db.users.set_disabled(&address("ada@example.com"), true, &audit(AuditKind::UserDisabled), t0()).await;
    assert_eq!(
        disabled.expect("disabled"),
        AccountStatusChange::Changed { user_id: ada.id.clone(), sessions_ended: 1 }
    );

    // Nothing signs Ada in: no session, no new link, no password or passkey found.
    assert!(db.sessions.find(&token.hash()).await.expect("read").is_none(), "her session ended");
    let ada_texts = "SELECT COUNT(*) FROM verification_tokens WHERE identifier = 'ada@example.com'";
    assert_eq!(count(store, ada_texts).await, 0, "her unused link is gone");
    let pending = "SELECT COUNT(*) FROM outbox WHERE recipient = 'ada@example.com' AND status = 'pending'";
    assert_eq!(count(store, pending).await, 0, "the email carrying it will not be sent");
    let link = NewLink {
        identifier: address("ada@example.com"),
        token_hash: hash_of(3),
        code_hash: code_of(CODE_BYTE, &hash_of(3)),
        expires: t0() + LINK_LIFETIME,
        created_at: t0(),
    };
    let email = NewOutboxMessage {
        kind: EmailKind::SignIn,
        lang: "en".to_owned(),
        recipient: address("ada@example.com"),
        link_token_hash: hash_of(3),
        sealed_body: vec![0; 40],
        expires: link.expires,
        created_at: t0(),
        leased_until: None,
    };
    let refused = db.links.insert_with_email(&link, &email, &audit(AuditKind::LinkRequested)).await.expect("answered");
    assert_eq!(refused, ports::LinkIssued::AccountDisabled);
    assert_eq!(count(store, ada_texts).await, 0, "nothing stored for her address");
    assert!(db.passwords.find_with_password(&address("ada@example.com")).await.expect("read").is_none());
    assert!(db.passkeys.find_for_sign_in(&credential(9)).await.expect("read").is_none());
    let again = db.users.set_disabled(&address("ada@example.com"), true, &audit(AuditKind::UserDisabled), t0()).await;
    assert_eq!(again.expect("answered"), AccountStatusChange::Unchanged);
    assert_eq!(
        db.links.state(&bobs_link, &address("bob@example.com"), t0()).await.expect("state"),
        LinkState::Unused,
        "nobody else is touched"
    );

    // Enabled again, she signs in as before (with a new session: the old one stays ended).
    let enabled = db.users.set_disabled(&address("ada@example.com"), false, &audit(AuditKind::UserEnabled), t0()).await;
    assert!(matches!(enabled.expect("enabled"), AccountStatusChange::Changed { sessions_ended: 0, .. }));
    assert!(db.passwords.find_with_password(&address("ada@example.com")).await.expect("read").is_some());
    assert!(db.passkeys.find_for_sign_in(&credential(9)).await.expect("read").is_some());
    assert!(matches!(
        db.links.insert_with_email(&link, &email, &audit(AuditKind::LinkRequested)).await.expect("stored"),
        ports::LinkIssued::Queued(_)
    ));
    let nobody = db.users.set_disabled(&address("eve@example.com"), true, &audit(AuditKind::UserDisabled), t0()).await;
    assert_eq!(nobody.expect("answered"), AccountStatusChange::NoSuchUser);

    // Deleted: everything tied to her goes, the farewell is queued, her events stay.
    let (_, token) = a_stored_session(db, &ada, 8).await;
    let farewell = NewOutboxMessage { kind: EmailKind::AddressChanged, link_token_hash: hash_of(4), ..email.clone() };
    let deleted = db.users.remove(&address("ada@example.com"), Some(&farewell), &audit(AuditKind::UserDeleted)).await;
    assert_eq!(deleted.expect("deleted"), Some(ada.id.clone()));
    assert!(db.sessions.find(&token.hash()).await.expect("read").is_none());
    for table in ["sessions", "passwords", "passkeys"] {
        let left = count(store, &format!("SELECT COUNT(*) FROM {table} WHERE user_id = '{}'", ada.id.as_str())).await;
        assert_eq!(left, 0, "{table}");
    }
    assert_eq!(count(store, ada_texts).await, 0, "her links, used or not");
    let kinds = raw_texts(store, "SELECT kind FROM outbox WHERE recipient = 'ada@example.com'").await;
    assert_eq!(kinds, ["address_changed"], "only the farewell is left to send");
    assert!(db
        .users
        .remove(&address("ada@example.com"), None, &audit(AuditKind::UserDeleted))
        .await
        .expect("answered")
        .is_none());
    let hers = ports::AuditQuery { user_id: Some(ada.id.clone()), ..everything() };
    let kinds: Vec<_> = audited(db, hers).await.into_iter().map(|(kind, ..)| kind).collect();
    assert_eq!(
        kinds,
        [
            "user.deleted",
            "link.redeemed",
            "link.requested",
            "user.enabled",
            "user.disabled",
            "link.requested",
            "passkey.added",
            "password.set",
            "link.redeemed"
        ],
        "newest first, every change with its event (the refused link wrote none of the store's)"
    );
    let addressed = "SELECT COUNT(*) FROM audit_events WHERE detail LIKE '%ada@example.com%'";
    assert_eq!(count(store, addressed).await, 0, "no event keeps her address");
}

async fn webhooks_are_queued_sealed_with_their_event_and_claimed_one_at_a_time_per_person(store: &ScratchStore) {
    use domain::webhook::WebhookEventType;
    let db = &store.database;
    let endpoint = "https://hooks.example.com/magiclink";
    db.configure_webhooks(adapters::sql::WebhookRouting {
        endpoints: vec![(endpoint.to_owned(), vec![WebhookEventType::UserCreated, WebhookEventType::UserSignedIn])],
        seal: secret(),
    });
    // Ada signs in twice (her account made the first time), Bob once; a link asked for is
    // not an event any endpoint is told of.
    for (byte, to) in [(1, "ada@example.com"), (2, "ada@example.com"), (3, "bob@example.com")] {
        let link = insert_link(db, byte, to, t0()).await;
        let redeemed = db.links.redeem(&link, &address(to), &a_session(), t0()).await.expect("redeemed");
        assert!(matches!(redeemed, Redemption::Redeemed(_)), "{redeemed:?}");
    }
    let kinds = raw_texts(store, "SELECT kind FROM outbox WHERE kind = 'webhook'").await;
    assert_eq!(kinds.len(), 5, "created and signed in for each, and Ada's second sign-in");
    let bodies = raw_texts(store, "SELECT recipient FROM outbox WHERE kind = 'webhook'").await;
    assert!(bodies.iter().all(|recipient| recipient == endpoint));
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar("SELECT sealed_body FROM outbox WHERE kind = 'webhook'")
        .fetch_all(&store.raw)
        .await
        .expect("bodies");
    assert!(
        sealed.iter().all(|body| !String::from_utf8_lossy(body).contains("example.com")),
        "sealed at rest, like an email"
    );

    // Each person's oldest webhook only: one at a time, in order.
    let now = t0() + TimeDelta::seconds(1);
    // (The links' emails are claimed with the first batch; only the webhooks matter here.)
    let claim = || async {
        let claimed = db.outbox.claim_due(now, now + TimeDelta::minutes(2), 100).await;
        claimed.map(|messages| {
            messages.into_iter().filter(|m| matches!(m.payload, ports::Payload::Webhook(_))).collect::<Vec<_>>()
        })
    };
    let opened = |message: &ports::OutboxMessage| -> serde_json::Value {
        let ports::Payload::Webhook(webhook) = &message.payload else { panic!("a webhook") };
        let body = domain::sealed::open(&secret(), webhook.seal_id.to_hex().as_bytes(), &webhook.sealed_body)
            .expect("opens with the secret");
        serde_json::from_slice(&body).expect("JSON")
    };
    let first = claim().await.expect("claimed");
    let mut seen: Vec<(String, String)> = first
        .iter()
        .map(|m| (opened(m)["data"]["email"].as_str().expect("email").to_owned(), opened(m)["type"].to_string()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("ada@example.com".to_owned(), "\"user.created\"".to_owned()),
            ("bob@example.com".to_owned(), "\"user.created\"".to_owned())
        ]
    );
    assert!(claim().await.expect("claimed").is_empty(), "the next ones wait for these");
    assert_eq!(
        db.outbox.next_due().await.expect("read"),
        Some(now + TimeDelta::minutes(2)),
        "due when the claimed ones' lease ends, not now"
    );
    let adas = first.iter().find(|m| opened(m)["data"]["email"] == "ada@example.com").expect("Ada's");
    db.outbox
        .mark_sent(&[ports::SentMessage { id: adas.id.clone(), provider_message_id: None }], now)
        .await
        .expect("recorded");
    let second = claim().await.expect("claimed");
    assert_eq!(second.len(), 1, "only Ada's next: Bob's first is still out");
    assert_eq!(
        (opened(&second[0])["type"].as_str(), opened(&second[0])["data"]["email"].as_str()),
        (Some("user.signed_in"), Some("ada@example.com"))
    );
}

/// The link and code of the newest sign-in email `mailer` sent.
fn sign_in_link(mailer: &ScriptedMailer) -> (LinkToken, String) {
    let delivered = mailer.delivered();
    let (link, code) = delivered
        .iter()
        .rev()
        .find_map(|email| match &email.content {
            EmailContent::SignIn { link, code } => Some((link.clone(), code.clone().expect("a code"))),
            _ => None,
        })
        .expect("a sign-in email was sent");
    let token = link.query_pairs().find(|(name, _)| name == "token").expect("a token").1.into_owned();
    (LinkToken::parse(&token).expect("a token"), code)
}

async fn every_kind_of_audit_event_is_written_by_its_own_flow_and_read_back(store: &ScratchStore) {
    use domain::audit::{AuditKind, RequestOrigin};
    use ports::{Clock as _, RedeemCode, RedeemLink};
    let db = &store.database;
    let clock = Arc::new(ManualClock::starting_at(t0()));
    let core = sign_in(db, Arc::clone(&clock));
    let mailer = Arc::new(ScriptedMailer::default());
    let worker = deliverer(db, mailer.clone(), Arc::clone(&clock));
    let origin = RequestOrigin { user_agent: Some("Firefox on Linux".to_owned()), ..RequestOrigin::default() };
    let ask = |email: &str| RequestLink {
        email: address(email),
        callback: CallbackPath::root(),
        client: None,
        lang: "en".to_owned(),
        origin: origin.clone(),
    };

    // A link asked for, opened (the account made), a dead link refused.
    core.request_link(ask("every@example.com")).await.expect("queued");
    worker.deliver_due().await.expect("delivered");
    let (token, _) = sign_in_link(&mailer);
    let redeem = |token: LinkToken| RedeemLink {
        token,
        email: address("every@example.com"),
        user_agent: None,
        client: None,
        origin: origin.clone(),
    };
    let signed_in = core.redeem_link(redeem(token)).await.expect("signed in");
    let refused = core.redeem_link(redeem(LinkToken::from_random_bytes([3; 32]))).await;
    assert!(matches!(refused, Err(ports::RedeemLinkError::Invalid)), "{refused:?}");
    // A second link, redeemed by its code on the device that asked.
    clock.advance(TimeDelta::minutes(1));
    let queued = core.request_link(ask("every@example.com")).await.expect("queued");
    worker.deliver_due().await.expect("delivered");
    let (_, code) = sign_in_link(&mailer);
    let by_code = RedeemCode {
        link: queued.link,
        issued_under: 0,
        code: domain::SignInCode::parse(&code).expect("a code"),
        user_agent: None,
        client: None,
        origin: origin.clone(),
    };
    core.redeem_code(by_code).await.expect("signed in by code");
    let active = ports::ActiveSession {
        session_id: db.sessions.find(&signed_in.session_token.hash()).await.expect("read").expect("live").0.id,
        user: signed_in.user.clone(),
        expires: signed_in.expires,
        signed_in_at: clock.now(),
        extended: false,
        method: domain::SignInMethod::Link,
    };

    // A password set, then signed in with; a passkey added, signed in with, removed.
    let passwords = ports::Passwords::new(
        ports::PasswordSupport {
            store: Arc::clone(&db.passwords),
            hasher: Arc::new(
                adapters::password::Argon2Hasher::new(
                    adapters::password::Argon2Cost { memory_kib: 7_168, iterations: 5, parallelism: 1 },
                    1,
                )
                .expect("a cost"),
            ),
            common: Arc::new(adapters::password::ZxcvbnList),
            rules: domain::PasswordRules::new(12).expect("rules"),
            limits: ports::PasswordLimits { per_address: None, per_client: None },
            site_name: "magiclink".to_owned(),
            secret: secret(),
        },
        sessions_of(db, &clock),
        Arc::clone(&db.rate_limits),
        clock.clone(),
    );
    let password = || domain::Password::typed("violet kestrel under a tin roof").expect("typed");
    let set = ports::SetPassword { password: password(), sign_out_other_sessions: true, origin: origin.clone() };
    passwords.set_password(&active, set).await.expect("set");
    let with_password = ports::PasswordSignIn {
        email: address("every@example.com"),
        password: password(),
        user_agent: None,
        client: None,
        origin: origin.clone(),
    };
    let by_password = passwords.sign_in_with_password(with_password).await.expect("signed in");
    let user = by_password.user.clone();
    let key = add_passkey(db, &user, 7, clock.now()).await;
    sessions_of(db, &clock)
        .open(user.clone(), &origin, None, domain::SignInMethod::Passkey)
        .await
        .expect("signed in with the passkey");
    let removed = audit(AuditKind::PasskeyRemoved).of_user(&user.id);
    assert!(db.passkeys.delete(&user.id, &key.id, &removed).await.expect("deleted"));

    sessions_of(db, &clock).end(&by_password.session_token, &origin).await.expect("signed out");

    // The address moved, sessions ended, the account disabled, enabled and deleted, and an
    // operator's command.
    let moved_active = signed_in_as(db, "every@example.com").await;
    core.request_address_change(&moved_active, change_to("moved@example.com")).await.expect("requested");
    worker.deliver_due().await.expect("delivered");
    core.confirm_address_change(confirm(&confirmation_token(&mailer), &moved_active)).await.expect("moved");
    sessions_of(db, &clock).revoke_others(&moved_active, &origin).await.expect("revoked");
    let moved = address("moved@example.com");
    db.users.set_disabled(&moved, true, &audit(AuditKind::UserDisabled), clock.now()).await.expect("disabled");
    db.users.set_disabled(&moved, false, &audit(AuditKind::UserEnabled), clock.now()).await.expect("enabled");
    db.audit.record(&audit(AuditKind::OperatorCommand).with_detail("operator: keys rotate")).await.expect("recorded");
    db.users.remove(&moved, None, &audit(AuditKind::UserDeleted)).await.expect("deleted").expect("someone");

    let written: std::collections::BTreeSet<&str> =
        audited(db, everything()).await.into_iter().map(|(kind, ..)| kind).collect();
    let every: std::collections::BTreeSet<&str> = AuditKind::ALL.iter().map(|kind| kind.as_str()).collect();
    assert_eq!(written, every, "each kind, written by its flow and read back");
}

/// The sessions service on `db`, reading `clock`.
fn sessions_of(db: &Database, clock: &Arc<ManualClock>) -> Arc<ports::Sessions> {
    Arc::new(ports::Sessions::new(
        Arc::clone(&db.sessions),
        Arc::clone(&db.audit),
        clock.clone(),
        ports::SessionSettings { policy: SessionPolicy::new(86_400, 3_600), recent_sign_in: TimeDelta::minutes(10) },
    ))
}

async fn clients_are_stored_as_registered_with_only_the_hash_of_their_secret(store: &ScratchStore) {
    let db = &store.database;
    let client = oidc_client("grafana");
    assert_eq!(db.clients.add_client(&client).await.expect("added"), ports::ClientAdded::Added);
    assert_eq!(db.clients.add_client(&client).await.expect("answered"), ports::ClientAdded::IdTaken);
    assert_eq!(db.clients.find_client(&client.id).await.expect("read"), Some(client.clone()));
    let unknown = domain::oidc::ClientId::parse("nobody").expect("id");
    assert_eq!(db.clients.find_client(&unknown).await.expect("read"), None);
    let stored = raw_texts(store, "SELECT secret_hash FROM oidc_clients").await;
    assert_eq!(stored, vec![client.secret_hash.as_ref().expect("hash").to_hex()]);
    let new_secret = domain::oidc::ClientSecret::from_random_bytes([2; 32]);
    assert!(db.clients.set_client_secret(&client.id, &new_secret.hash()).await.expect("set"));
    let found = db.clients.find_client(&client.id).await.expect("read").expect("found");
    assert!(found.secret_matches(&new_secret.encode()) && !client.secret_matches(&new_secret.encode()));
    assert!(!db.clients.set_client_secret(&unknown, &new_secret.hash()).await.expect("answered"));
    db.clients.add_client(&oidc_client("another")).await.expect("added");
    let listed: Vec<String> =
        db.clients.list_clients().await.expect("listed").into_iter().map(|c| c.id.as_str().to_owned()).collect();
    assert_eq!(listed, vec!["another", "grafana"]);
}

async fn a_code_is_redeemed_once_and_a_second_use_revokes_what_the_first_got(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    db.clients.add_client(&oidc_client("app")).await.expect("client");
    let code = oidc_code(1, "app", &ada);
    db.grants.save_code(&code).await.expect("saved");
    let unknown = domain::oidc::AuthorizationCode::from_random_bytes([9; 32]).hash();
    assert_eq!(db.grants.redeem_code(&unknown, t0()).await.expect("answered"), ports::CodeRedeemed::Unknown);

    // Ten exchanges race: one redeems, the rest see a reuse.
    let racers = futures_util::future::join_all((0..10).map(|_| {
        let grants = Arc::clone(&db.grants);
        let hash = code.hash.clone();
        async move { grants.redeem_code(&hash, t0()).await }
    }))
    .await;
    let winners: Vec<_> = racers
        .iter()
        .filter_map(|outcome| match outcome {
            Ok(ports::CodeRedeemed::Redeemed(grant, id)) => Some((grant.clone(), id.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(winners.len(), 1, "{racers:?}");
    assert!(racers.iter().all(|o| matches!(o, Ok(ports::CodeRedeemed::Redeemed(..) | ports::CodeRedeemed::Reused))));
    let (grant, grant_id) = winners.into_iter().next().expect("a winner");
    assert_eq!(*grant, code.grant, "the code comes back as stored");
    // The losers presented a spent code: the winner's grant is revoked, so its tokens never work.
    let raced = oidc_tokens(1, true);
    db.grants.save_tokens(&grant_id, &raced).await.expect("tokens");
    assert_eq!(db.grants.find_access_token(&raced.access.0, t0()).await.expect("read"), None);

    // One use, then another after the tokens were issued: they stop working.
    let second = oidc_code(2, "app", &ada);
    db.grants.save_code(&second).await.expect("saved");
    let ports::CodeRedeemed::Redeemed(_, grant_id) = db.grants.redeem_code(&second.hash, t0()).await.expect("redeemed")
    else {
        panic!("redeemed")
    };
    let tokens = oidc_tokens(2, true);
    db.grants.save_tokens(&grant_id, &tokens).await.expect("tokens");
    let live = db.grants.find_access_token(&tokens.access.0, t0()).await.expect("read").expect("live");
    assert_eq!((live.user.id, live.scopes.to_parameter()), (ada.id.clone(), "openid email offline_access".to_owned()));
    assert_eq!(db.grants.redeem_code(&second.hash, t0()).await.expect("answered"), ports::CodeRedeemed::Reused);
    assert_eq!(db.grants.find_access_token(&tokens.access.0, t0()).await.expect("read"), None);
    let stored = raw_texts(store, "SELECT code_hash FROM oidc_codes").await;
    let mut expected = vec![code.hash.to_hex(), second.hash.to_hex()];
    expected.sort();
    let mut stored = stored;
    stored.sort();
    assert_eq!(stored, expected, "only the hash of a code is stored");
}

async fn access_tokens_expire_exactly_and_revocation_is_by_their_own_client_only(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    db.clients.add_client(&oidc_client("app")).await.expect("client");
    db.clients.add_client(&oidc_client("other")).await.expect("client");
    let grant_id = a_grant(db, &ada).await;
    let tokens = oidc_tokens(2, true);
    db.grants.save_tokens(&grant_id, &tokens).await.expect("tokens");
    let (access, expires) = &tokens.access;
    assert!(db.grants.find_access_token(access, *expires - TimeDelta::milliseconds(1)).await.expect("read").is_some());
    assert_eq!(db.grants.find_access_token(access, *expires).await.expect("read"), None, "expired at its expiry");

    let other = domain::oidc::ClientId::parse("other").expect("id");
    let app = domain::oidc::ClientId::parse("app").expect("id");
    db.grants.revoke_access_token(&other, access).await.expect("answered");
    assert!(db.grants.find_access_token(access, t0()).await.expect("read").is_some(), "another client's revocation");
    db.grants.revoke_access_token(&app, access).await.expect("revoked");
    assert_eq!(db.grants.find_access_token(access, t0()).await.expect("read"), None);
}

async fn a_refresh_token_rotates_once_and_a_spent_one_revokes_its_family(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    db.clients.add_client(&oidc_client("app")).await.expect("client");
    let grant_id = a_grant(db, &ada).await;
    let first = oidc_tokens(3, true);
    db.grants.save_tokens(&grant_id, &first).await.expect("tokens");
    let app = domain::oidc::ClientId::parse("app").expect("id");
    let refresh = first.refresh.clone().expect("refresh").0;
    let other = domain::oidc::ClientId::parse("other").expect("id");
    assert_eq!(
        db.grants.rotate_refresh_token(&other, &refresh, &oidc_tokens(4, true), t0()).await.expect("answered"),
        ports::RefreshRotated::Invalid,
        "another client's token"
    );
    // Concurrent rotations of one token: one rotates; the others find it spent and revoke.
    let racers = futures_util::future::join_all((0..6_u8).map(|n| {
        let grants = Arc::clone(&db.grants);
        let (app, refresh) = (app.clone(), refresh.clone());
        async move { grants.rotate_refresh_token(&app, &refresh, &oidc_tokens(10 + n, true), t0()).await }
    }))
    .await;
    let rotated = racers.iter().filter(|o| matches!(o, Ok(ports::RefreshRotated::Rotated(_)))).count();
    assert_eq!(rotated, 1, "{racers:?}");
    // A racer that found the token spent revoked the family: the replacement's tokens too.
    for n in 10..16_u8 {
        let access = domain::oidc::AccessToken::from_random_bytes([n; 32]).hash();
        assert_eq!(db.grants.find_access_token(&access, t0()).await.expect("read"), None, "family revoked");
        let next = refresh_hash(n);
        let again = db.grants.rotate_refresh_token(&app, &next, &oidc_tokens(30 + n, true), t0()).await;
        assert_eq!(again.expect("answered"), ports::RefreshRotated::Invalid);
    }
}

async fn consents_are_remembered_listed_and_withdrawing_one_revokes_that_apps_grants(store: &ScratchStore) {
    let db = &store.database;
    let ada = db.users.find_or_create_verified(&address("ada@example.com"), t0()).await.expect("user");
    let bob = db.users.find_or_create_verified(&address("bob@example.com"), t0()).await.expect("user");
    db.clients.add_client(&oidc_client("app")).await.expect("client");
    let app = domain::oidc::ClientId::parse("app").expect("id");
    let scopes = domain::oidc::Scopes::parse("openid email").expect("scopes");
    assert_eq!(db.grants.find_consent(&ada.id, &app).await.expect("read"), None);
    db.grants.save_consent(&ada.id, &app, &domain::oidc::Scopes::parse("openid").expect("s"), t0()).await.expect("s");
    db.grants.save_consent(&ada.id, &app, &scopes, t0() + TimeDelta::minutes(1)).await.expect("replaced");
    assert_eq!(db.grants.find_consent(&ada.id, &app).await.expect("read"), Some(scopes.clone()));
    assert_eq!(db.grants.find_consent(&bob.id, &app).await.expect("read"), None, "per person");
    let listed = db.grants.list_consents(&ada.id).await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].client_name.as_str(), listed[0].granted_at), ("App app", t0() + TimeDelta::minutes(1)));

    let grant_id = a_grant(db, &ada).await;
    let tokens = oidc_tokens(5, true);
    db.grants.save_tokens(&grant_id, &tokens).await.expect("tokens");
    assert!(!db.grants.revoke_consent(&bob.id, &app, t0()).await.expect("answered"), "bob had none");
    assert!(db.grants.find_access_token(&tokens.access.0, t0()).await.expect("read").is_some());
    assert!(db.grants.revoke_consent(&ada.id, &app, t0()).await.expect("withdrawn"));
    assert_eq!(db.grants.find_access_token(&tokens.access.0, t0()).await.expect("read"), None);
    assert!(db.grants.list_consents(&ada.id).await.expect("listed").is_empty());

    // Removing the client takes everything issued to it.
    assert!(db.clients.remove_client(&app).await.expect("removed"));
    for table in ["oidc_codes", "oidc_grants", "oidc_tokens", "oidc_consents"] {
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}")).fetch_one(&store.raw).await.expect("counted");
        assert_eq!(count, 0, "{table}");
    }
}

async fn one_current_signing_key_per_algorithm_whoever_races_and_rotation_retires_it(store: &ScratchStore) {
    let db = &store.database;
    let key = |kid: &str, algorithm| ports::StoredSigningKey {
        kid: kid.to_owned(),
        algorithm,
        sealed_private_key: vec![1, 2, 3, 255],
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        created_at: t0(),
        retired_at: None,
    };
    let racers = futures_util::future::join_all((0..6).map(|n| {
        let keys = Arc::clone(&db.signing_keys);
        let key = key(&format!("rs-{n}"), domain::oidc::SigningAlgorithm::Rs256);
        async move { keys.add_signing_key(&key, false).await }
    }))
    .await;
    let added = racers.iter().filter(|o| matches!(o, Ok(ports::SigningKeyAdded::Added))).count();
    assert_eq!(added, 1, "{racers:?}");
    db.signing_keys.add_signing_key(&key("es", domain::oidc::SigningAlgorithm::Es256), false).await.expect("added");
    let mut rotated = key("rs-new", domain::oidc::SigningAlgorithm::Rs256);
    rotated.created_at = t0() + TimeDelta::hours(1);
    assert_eq!(db.signing_keys.add_signing_key(&rotated, true).await.expect("rotated"), ports::SigningKeyAdded::Added);
    let keys = db.signing_keys.signing_keys().await.expect("read");
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].kid, "rs-new", "newest first");
    assert_eq!(keys[0].sealed_private_key, vec![1, 2, 3, 255]);
    let retired: Vec<&str> = keys.iter().filter(|k| k.retired_at.is_some()).map(|k| k.kid.as_str()).collect();
    assert_eq!(retired.len(), 1);
    assert!(retired[0].starts_with("rs-"));
    assert_eq!(db.signing_keys.delete_retired_keys(t0() + TimeDelta::hours(1)).await.expect("purged"), 0, "not before");
    assert_eq!(db.signing_keys.delete_retired_keys(t0() + TimeDelta::hours(2)).await.expect("purged"), 1);
}

macro_rules! conformance_suite {
    ($dialect:expr; $($contract:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let Some(store) = system_tests::stores::scratch_store($dialect, 8).await else { return };
                super::$contract(&store).await;
                store.close().await;
            }
        )+
    };
}

/// Every contract, for one backend.
macro_rules! every_contract {
    ($dialect:expr) => {
        conformance_suite!($dialect;
            migrating_twice_applies_nothing_the_second_time_and_status_lists_every_migration,
            a_session_for_a_missing_user_is_refused_and_removing_a_user_ends_their_sessions,
            a_link_is_redeemed_once_and_then_reads_as_used,
            expiry_is_exact_to_the_millisecond_and_unknown_or_wrong_address_links_sign_nobody_in,
            fifty_concurrent_redemptions_of_one_link_yield_exactly_one_redeemed,
            concurrent_redemptions_of_two_links_of_one_address_sign_in_once,
            sixty_four_concurrent_writers_each_get_exactly_their_own_outcome,
            a_new_link_replaces_the_live_links_of_its_address_at_once,
            a_redemption_stores_its_user_and_session_with_the_link_and_a_refused_one_stores_neither,
            a_redemption_whose_session_cannot_be_stored_leaves_the_link_unused,
            only_the_keyed_hash_of_a_link_is_stored_never_the_token,
            purging_links_removes_only_those_that_expired_before_the_cutoff,
            the_right_code_redeems_the_link_once_and_uses_up_its_link_too,
            wrong_codes_count_down_and_then_even_the_right_code_fails,
            codes_of_expired_unknown_and_other_links_sign_nobody_in,
            concurrent_code_redemptions_yield_exactly_one_winner,
            concurrent_wrong_codes_never_get_more_tries_than_allowed,
            the_code_of_a_replaced_link_says_replaced_and_counts_no_attempt,
            users_are_created_once_per_address_and_keep_their_first_verification,
            addresses_differing_only_in_case_are_one_user_and_accents_are_not_folded,
            twenty_concurrent_first_sign_ins_of_one_address_make_one_user,
            adding_listing_and_finding_users_by_unknown_ids_and_addresses,
            sessions_are_stored_by_hash_found_extended_and_deleted,
            a_user_lists_and_revokes_only_their_own_live_sessions,
            a_display_name_is_set_changed_and_removed_for_that_user_only,
            clients_are_stored_as_registered_with_only_the_hash_of_their_secret,
            ending_a_session_queues_a_logout_notice_for_each_app_registered_for_one,
            audit_events_are_written_with_their_change_and_read_back_by_person_kind_and_time,
            a_disabled_account_signs_in_nowhere_until_enabled_and_a_deleted_one_leaves_only_its_events,
            webhooks_are_queued_sealed_with_their_event_and_claimed_one_at_a_time_per_person,
            every_kind_of_audit_event_is_written_by_its_own_flow_and_read_back,
            a_code_is_redeemed_once_and_a_second_use_revokes_what_the_first_got,
            access_tokens_expire_exactly_and_revocation_is_by_their_own_client_only,
            a_refresh_token_rotates_once_and_a_spent_one_revokes_its_family,
            consents_are_remembered_listed_and_withdrawing_one_revokes_that_apps_grants,
            one_current_signing_key_per_algorithm_whoever_races_and_rotation_retires_it,
            purging_sessions_removes_only_those_that_expired_before_the_cutoff,
            the_rate_limiter_keeps_its_contract,
            purging_rate_limits_forgets_only_spent_counters,
            a_mailer_that_fails_three_times_then_succeeds_delivers_exactly_once,
            a_retry_is_scheduled_when_asked_and_never_reopens_a_finished_row,
            a_restart_between_attempts_still_delivers,
            a_batch_of_sent_emails_is_recorded_at_once_each_with_its_provider_id,
            a_message_whose_link_expired_is_dropped_never_sent_and_erased,
            a_permanent_failure_is_recorded_with_its_reason_and_the_body_erased,
            the_database_never_holds_a_usable_link_in_clear,
            two_workers_claiming_at_once_never_take_the_same_row,
            a_row_claimed_by_a_worker_that_died_is_retried_after_its_lease,
            a_handed_over_email_is_stored_leased_and_claimed_only_if_its_worker_dies,
            a_stopping_worker_gives_back_what_it_did_not_send,
            a_worker_whose_lease_ran_out_never_overwrites_what_the_next_worker_recorded,
            purging_delivery_records_keeps_pending_rows_and_recent_ones,
            an_address_change_waits_for_its_link_then_changes_once_and_tells_the_old_address,
            an_address_that_is_taken_gets_no_email_and_one_taken_meanwhile_changes_nothing,
            a_newer_request_replaces_the_older_link_and_links_expire,
            only_the_account_that_asked_confirms_and_its_other_sessions_end,
            concurrent_confirmations_change_the_address_once_and_retire_the_old_addresss_links,
            an_address_change_racing_first_sign_ins_of_that_address_is_taken_or_done_never_a_failure,
            a_password_is_found_with_its_user_by_address_only_and_replaced_whole,
            a_rehash_replaces_only_the_hash_it_was_made_from,
            concurrent_first_passwords_for_one_user_leave_exactly_one,
            a_session_remembers_when_its_sign_in_happened,
            a_user_keeps_one_passkey_handle_whoever_asks_first,
            a_passkey_is_found_by_its_credential_id_with_its_owner_and_listed_for_them_only,
            a_credential_id_is_registered_once_across_every_account_however_they_race,
            a_use_is_recorded_only_while_the_counter_moves_forward,
            renaming_and_deleting_touch_only_the_owners_passkey_and_nothing_else,
            a_users_passkeys_outlive_an_address_change_and_go_with_the_user,
            a_ceremony_is_taken_once_for_its_purpose_until_it_expires,
            a_session_remembers_how_its_person_signed_in,
        );
    };
}

mod sqlite {
    use super::*;
    every_contract!(Dialect::Sqlite);
}

mod postgres {
    use super::*;
    every_contract!(Dialect::Postgres);
}

mod mysql {
    use super::*;
    every_contract!(Dialect::MySql);
}
