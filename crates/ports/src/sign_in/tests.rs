//! Unit tests of the sign-in use cases against mockall mocks of every port.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{
    CallbackPath, EmailAddress, LinkPolicy, LinkToken, ServerSecret, Session, SessionPolicy, SessionToken, SignInCode,
    SignInMethod, User, UserId,
};
use url::Url;

use super::{
    RedeemCode, RedeemCodeError, RedeemLink, RedeemLinkError, RequestLink, RequestLinkError, SignIn, SignInLimits,
    SignInSettings,
};
use crate::clock::MockClock;
use crate::outbox::{MockDeliveryQueue, NewOutboxMessage, OutboxMessage};
use crate::rate_limit::MockRateLimiter;
use crate::sessions::{SessionSettings, Sessions};
use crate::stores::{
    CodeRedemption, MockLinkStore, MockSessionStore, MockUserStore, NewLink, Redemption, SessionDraft, SignedInRecord,
};

fn session_id(n: u8) -> domain::SessionId {
    domain::SessionId::parse(&format!("01900000-0000-7000-8000-0000000000{n:02x}")).expect("an id")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).single().expect("valid date")
}

fn secret() -> ServerSecret {
    ServerSecret::new(*b"test-secret-test-secret-test-sec")
}

fn email() -> EmailAddress {
    EmailAddress::parse("a@example.com").expect("valid address")
}

fn user() -> User {
    let id = UserId::parse("01900000-0000-7000-8000-0000000000aa").expect("an id");
    User { id, email: email(), name: None, image: None, email_verified: Some(now()) }
}

/// The ports a test sets expectations on; any call without an expectation fails the test.
#[derive(Default)]
struct Ports {
    links: MockLinkStore,
    users: MockUserStore,
    sessions: MockSessionStore,
    delivery: MockDeliveryQueue,
    limiter: MockRateLimiter,
}

/// The clock every test reads: always [`now`].
fn clock() -> Arc<dyn crate::Clock> {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    Arc::new(clock)
}

/// The session service over `store`, as every provider shares it.
fn sessions_over(store: MockSessionStore) -> Arc<Sessions> {
    let mut audit = crate::audit::MockAuditLog::new();
    audit.expect_record().returning(|_| Ok(()));
    sessions_auditing(store, audit)
}

/// The same, recording refusals in `audit`.
fn sessions_auditing(store: MockSessionStore, audit: crate::audit::MockAuditLog) -> Arc<Sessions> {
    Arc::new(Sessions::new(
        Arc::new(store),
        Arc::new(audit),
        clock(),
        SessionSettings { policy: SessionPolicy::new(30 * 86_400, 86_400), recent_sign_in: TimeDelta::minutes(10) },
    ))
}

impl Ports {
    fn build(self) -> SignIn {
        self.build_with(SignInLimits::default())
    }

    /// The session service over these ports' session store.
    fn sessions(self) -> Arc<Sessions> {
        sessions_over(self.sessions)
    }

    /// As [`Ports::build`], recording refusals in `audit`.
    fn build_auditing(self, audit: crate::audit::MockAuditLog) -> SignIn {
        SignIn::new(
            Arc::new(self.links),
            Arc::new(self.users),
            sessions_auditing(self.sessions, audit),
            Arc::new(self.delivery),
            Arc::new(self.limiter),
            clock(),
            settings(SignInLimits::default()),
        )
    }

    fn build_with(self, limits: SignInLimits) -> SignIn {
        SignIn::new(
            Arc::new(self.links),
            Arc::new(self.users),
            sessions_over(self.sessions),
            Arc::new(self.delivery),
            Arc::new(self.limiter),
            clock(),
            settings(limits),
        )
    }
}

fn settings(limits: SignInLimits) -> SignInSettings {
    SignInSettings {
        secrets: domain::SecretRing::single(secret()),
        link_policy: LinkPolicy::new(600),
        callback_endpoint: Url::parse("http://127.0.0.1:3000/api/auth/callback/email").expect("valid URL"),
        confirm_address_endpoint: Url::parse("http://127.0.0.1:3000/account/email/confirm").expect("valid URL"),
        link_retention: TimeDelta::days(1),
        limits,
        sign_up: super::SignUpPolicy::Open,
        notify_address_change: true,
    }
}

fn request() -> RequestLink {
    RequestLink {
        email: email(),
        callback: CallbackPath::resolve(Some("/dashboard"), &site()),
        client: None,
        lang: "de".to_owned(),
        origin: origin(),
    }
}

/// Where the tests' requests come from.
fn origin() -> domain::audit::RequestOrigin {
    domain::audit::RequestOrigin {
        client_address: Some("203.0.113.0/24".to_owned()),
        user_agent: Some("Firefox on Linux".to_owned()),
        request_id: Some("req-1".to_owned()),
        lang: Some("de".to_owned()),
    }
}

fn site() -> Url {
    Url::parse("http://127.0.0.1:3000").expect("valid URL")
}

fn redeem_request(token_byte: u8) -> RedeemLink {
    RedeemLink {
        token: LinkToken::from_random_bytes([token_byte; 32]),
        email: email(),
        user_agent: None,
        client: None,
        origin: origin(),
    }
}

#[tokio::test]
async fn requesting_a_link_stores_the_hash_and_a_sealed_email_together_and_wakes_the_worker() {
    let stored: Arc<Mutex<Option<(NewLink, NewOutboxMessage)>>> = Arc::default();
    let mut ports = Ports::default();
    let stored_by_insert = Arc::clone(&stored);
    ports.links.expect_insert_with_email().times(1).returning(move |link, email, _| {
        *stored_by_insert.lock().expect("lock") = Some((link.clone(), email.clone()));
        Ok(crate::LinkIssued::Queued(outbox_id()))
    });
    // The worker is backed up: the row is stored due, and the worker woken to claim it.
    ports.delivery.expect_lease_for_new().times(1).return_const(None);
    ports.delivery.expect_hand_over().never();
    ports.delivery.expect_wake().times(1).return_const(());

    let queued = ports.build().request_link(request()).await.expect("link queued");

    let (link, queued_email) = stored.lock().expect("lock").clone().expect("a link was stored");
    assert_eq!(queued.expires_in_minutes, 10);
    assert_eq!(link.identifier, email());
    assert_eq!(link.expires, now() + TimeDelta::minutes(10));
    assert_eq!(queued_email.recipient, email());
    assert_eq!((queued_email.kind, queued_email.lang.as_str()), (crate::EmailKind::SignIn, "de"));
    assert_eq!(queued_email.expires, link.expires);
    assert_eq!(queued_email.link_token_hash, link.token_hash);
    // The queued email opens, with the secret, to a link whose token hashes to the stored hash.
    let opened = domain::sealed::open(&secret(), link.token_hash.to_hex().as_bytes(), &queued_email.sealed_body)
        .expect("sealed with the secret, bound to the token hash");
    let (url, code) = std::str::from_utf8(&opened).expect("utf-8").split_once('\n').expect("the link, then the code");
    let url = Url::parse(url).expect("a URL");
    let code = SignInCode::parse(code).expect("a well-formed code");
    assert!(code.hash(&secret(), &link.token_hash).matches(&link.code_hash), "the stored code hash is the code's");
    assert!(queued.link.matches(&link.token_hash), "the answer names the link for the pending cookie");
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let token = LinkToken::parse(&query["token"]).expect("link carries a well-formed token");
    assert!(token.hash(&secret()).matches(&link.token_hash), "stored hash is the token's HMAC");
    assert!(!queued_email.sealed_body.windows(query["token"].len()).any(|w| w == query["token"].as_bytes()));
    assert_eq!(query["email"], "a@example.com");
    assert_eq!(query["callbackUrl"], "/dashboard");
    assert_eq!(url.path(), "/api/auth/callback/email");
}

fn outbox_id() -> domain::OutboxId {
    domain::OutboxId::parse("01900000-0000-7000-8000-00000000000a").expect("an id")
}

#[tokio::test]
async fn a_new_email_is_stored_leased_and_handed_to_the_worker_only_after_it_is_stored() {
    let lease = now() + TimeDelta::minutes(2);
    let stored: Arc<Mutex<Option<NewOutboxMessage>>> = Arc::default();
    let handed: Arc<Mutex<Vec<OutboxMessage>>> = Arc::default();
    let mut ports = Ports::default();
    let stored_by_insert = Arc::clone(&stored);
    let handed_before_insert = Arc::clone(&handed);
    ports.links.expect_insert_with_email().times(1).returning(move |_, email, _| {
        assert!(handed_before_insert.lock().expect("lock").is_empty(), "handed over before it was stored");
        *stored_by_insert.lock().expect("lock") = Some(email.clone());
        Ok(crate::LinkIssued::Queued(outbox_id()))
    });
    ports.delivery.expect_lease_for_new().times(1).return_const(Some(lease));
    let handed_by_queue = Arc::clone(&handed);
    ports
        .delivery
        .expect_hand_over()
        .times(1)
        .returning(move |message| handed_by_queue.lock().expect("lock").push(message));
    ports.delivery.expect_wake().never();

    ports.build().request_link(request()).await.expect("link queued");

    let row = stored.lock().expect("lock").clone().expect("a row was stored");
    assert_eq!(row.leased_until, Some(lease), "the row is stored leased to this worker");
    let handed = handed.lock().expect("lock").clone();
    assert_eq!(handed.len(), 1);
    assert_eq!(handed[0].id, outbox_id(), "the message names the stored row");
    assert_eq!(handed[0].leased_until, lease);
    assert_eq!(handed[0].attempts, 1, "storing it began its first attempt");
    match &handed[0].payload {
        crate::outbox::Payload::Email(email) => assert_eq!(email.sealed_body, row.sealed_body),
        crate::outbox::Payload::BackchannelLogout(_) | crate::outbox::Payload::Webhook(_) => {
            panic!("a link is handed over as an email")
        }
    }
}

#[tokio::test]
async fn a_storage_failure_queues_nothing_and_wakes_no_one() {
    let mut ports = Ports::default();
    ports.links.expect_insert_with_email().returning(|_, _, _| Err(anyhow::anyhow!("disk full")));
    ports.delivery.expect_lease_for_new().return_const(Some(now() + TimeDelta::minutes(2)));
    ports.delivery.expect_hand_over().never();
    ports.delivery.expect_wake().never();

    let result = ports.build().request_link(request()).await;

    assert!(matches!(result, Err(RequestLinkError::Unexpected(_))), "{result:?}");
}

#[tokio::test]
async fn a_refused_link_is_audited_with_its_reason_and_where_it_came_from() {
    let mut ports = Ports::default();
    ports.links.expect_redeem().times(1).returning(|_, _, _, _| Ok(Redemption::Expired));
    let mut audit = crate::audit::MockAuditLog::new();
    audit
        .expect_record()
        .withf(|event| {
            event.kind == domain::audit::AuditKind::LinkRedeemed
                && event.outcome.reason() == Some("expired")
                && event.origin == origin()
                && event.detail.as_deref() == Some(email().masked().as_str())
                && event.at == now()
        })
        .times(1)
        .returning(|_| Ok(()));
    let sign_in = ports.build_auditing(audit);

    let result = sign_in.redeem_link(redeem_request(1)).await;

    assert!(matches!(result, Err(RedeemLinkError::Expired { .. })), "{result:?}");
}

#[tokio::test]
async fn a_disabled_account_gets_the_answer_anyone_gets_no_email_and_an_audited_refusal() {
    let mut ports = Ports::default();
    ports.links.expect_insert_with_email().times(1).returning(|_, _, _| Ok(crate::LinkIssued::AccountDisabled));
    ports.delivery.expect_lease_for_new().return_const(None);
    ports.delivery.expect_hand_over().never();
    ports.delivery.expect_wake().never();
    let mut audit = crate::audit::MockAuditLog::new();
    audit
        .expect_record()
        .withf(|event| {
            event.kind == domain::audit::AuditKind::LinkRequested
                && event.outcome.reason() == Some("account_disabled")
                && event.detail.as_deref() == Some(email().masked().as_str())
        })
        .times(1)
        .returning(|_| Ok(()));
    let sign_in = ports.build_auditing(audit);

    let queued = sign_in.request_link(request()).await.expect("the usual answer");

    assert_eq!((queued.email, queued.expires_in_minutes), (email(), 10));
    assert_eq!(queued.expires, now() + TimeDelta::minutes(10));
}

#[tokio::test]
async fn an_expired_token_signs_nobody_in() {
    let mut ports = Ports::default();
    ports.links.expect_redeem().times(1).returning(|_, _, _, _| Ok(Redemption::Expired));

    let result = ports.build().redeem_link(redeem_request(1)).await;

    match result {
        Err(RedeemLinkError::Expired { email: expired_for }) => assert_eq!(expired_for, email()),
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redeemed_token_cannot_be_redeemed_again() {
    let mut ports = Ports::default();
    let mut sequence = mockall::Sequence::new();
    let drafted = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&drafted);
    ports.links.expect_redeem().times(1).in_sequence(&mut sequence).returning(move |_, _, draft, _| {
        *seen.lock().expect("not poisoned") = Some(draft.clone());
        Ok(Redemption::Redeemed(record_for(draft)))
    });
    ports.links.expect_redeem().times(1).in_sequence(&mut sequence).returning(|_, _, _, _| Ok(Redemption::AlreadyUsed));
    let sign_in = ports.build();

    let mut from_laptop = redeem_request(2);
    from_laptop.user_agent = Some("laptop".to_owned());
    let first = sign_in.redeem_link(from_laptop).await.expect("first redemption signs in");
    let second = sign_in.redeem_link(redeem_request(2)).await;

    assert_eq!(first.user, user());
    assert_eq!(first.expires, now() + TimeDelta::days(30));
    // The store was given the new session with the redemption, by its hash only.
    let draft = drafted.lock().expect("not poisoned").clone().expect("a session drafted");
    assert_eq!(draft.token_hash, first.session_token.hash());
    assert_eq!(draft.expires, first.expires);
    assert_eq!(draft.user_agent.as_deref(), Some("laptop"));
    assert!(matches!(second, Err(RedeemLinkError::AlreadyUsed)), "{second:?}");
}

#[tokio::test]
async fn an_unknown_token_is_invalid_and_is_looked_up_by_its_hash() {
    let expected_hash = LinkToken::from_random_bytes([3; 32]).hash(&secret());
    let mut ports = Ports::default();
    ports
        .links
        .expect_redeem()
        .withf(move |hash, identifier, _, at| hash.matches(&expected_hash) && *identifier == email() && *at == now())
        .returning(|_, _, _, _| Ok(Redemption::Unknown));

    let result = ports.build().redeem_link(redeem_request(3)).await;

    assert!(matches!(result, Err(RedeemLinkError::Invalid)), "{result:?}");
}

/// What a store answers for a redemption that signed `draft`'s session in for [`user`].
fn record_for(draft: &SessionDraft) -> SignedInRecord {
    SignedInRecord {
        user: user(),
        session: Session {
            id: session_id(1),
            user_id: user().id,
            expires: draft.expires,
            created_at: now(),
            method: draft.method,
        },
    }
}

fn code_request(code: &str) -> RedeemCode {
    RedeemCode {
        link: LinkToken::from_random_bytes([4; 32]).hash(&secret()),
        issued_under: 0,
        code: SignInCode::parse(code).expect("a well-formed code"),
        user_agent: Some("phone".to_owned()),
        client: None,
        origin: origin(),
    }
}

#[tokio::test]
async fn the_right_code_signs_in_the_address_its_link_was_sent_to() {
    let link = LinkToken::from_random_bytes([4; 32]).hash(&secret());
    let expected_code = SignInCode::parse("ABCD-EFGH").expect("code").hash(&secret(), &link);
    let mut ports = Ports::default();
    ports
        .links
        .expect_redeem_code()
        .withf(move |hash, code, max, draft, at| {
            hash.matches(&link)
                && code.matches(&expected_code)
                && *max == 5
                && draft.user_agent.as_deref() == Some("phone")
                && *at == now()
        })
        .times(1)
        .returning(|_, _, _, draft, _| Ok(CodeRedemption::Redeemed(record_for(draft))));

    let signed_in = ports.build().redeem_code(code_request("abcd efgh")).await.expect("signed in");

    assert_eq!(signed_in.user, user());
    assert_eq!(signed_in.expires, now() + TimeDelta::days(30));
}

#[tokio::test]
async fn a_code_that_signs_nobody_in_says_why_and_opens_no_session() {
    /// What the store answers, and a check of the error the use case must turn it into.
    type Case = (CodeRedemption, fn(&RedeemCodeError) -> bool);
    let cases: [Case; 6] = [
        (CodeRedemption::Wrong { attempts_left: 3 }, |e| matches!(e, RedeemCodeError::Wrong { attempts_left: 3 })),
        (CodeRedemption::Exhausted, |e| matches!(e, RedeemCodeError::Exhausted)),
        (CodeRedemption::Expired, |e| matches!(e, RedeemCodeError::Expired)),
        (CodeRedemption::AlreadyUsed, |e| matches!(e, RedeemCodeError::AlreadyUsed)),
        (CodeRedemption::Replaced, |e| matches!(e, RedeemCodeError::Replaced)),
        (CodeRedemption::Unknown, |e| matches!(e, RedeemCodeError::Invalid)),
    ];
    for (outcome, expected) in cases {
        let mut ports = Ports::default();
        let answer = outcome.clone();
        ports.links.expect_redeem_code().times(1).returning(move |_, _, _, _, _| Ok(answer.clone()));

        let error = ports.build().redeem_code(code_request("ABCD-EFGH")).await.expect_err("nobody signed in");

        assert!(expected(&error), "{outcome:?} became {error:?}");
    }
}

fn stored_session(expires: DateTime<Utc>) -> Option<(Session, User)> {
    Some((
        Session {
            id: session_id(1),
            user_id: user().id,
            expires,
            created_at: now() - TimeDelta::hours(1),
            method: SignInMethod::Link,
        },
        user(),
    ))
}

#[tokio::test]
async fn reading_a_session_extends_it_only_when_update_age_has_passed() {
    let token = SessionToken::from_random_bytes([4; 32]);
    // Created 25 hours ago: due for extension.
    let due = now() - TimeDelta::hours(25) + TimeDelta::days(30);
    let mut ports = Ports::default();
    ports.sessions.expect_find().times(1).returning(move |_| Ok(stored_session(due)));
    ports
        .sessions
        .expect_extend()
        .times(1)
        .withf(|id, expires, at| *id == session_id(1) && *expires == now() + TimeDelta::days(30) && *at == now())
        .returning(|_, _, _| Ok(()));

    let active = ports.sessions().read(&token).await.expect("read").expect("live session");

    assert!(active.extended);
    assert_eq!(active.expires, now() + TimeDelta::days(30));

    // Created an hour ago: not due, so no write.
    let fresh = now() - TimeDelta::hours(1) + TimeDelta::days(30);
    let mut ports = Ports::default();
    ports.sessions.expect_find().returning(move |_| Ok(stored_session(fresh)));
    ports.sessions.expect_extend().never();
    let active = ports.sessions().read(&token).await.expect("read").expect("live session");
    assert!(!active.extended);
    assert_eq!(active.expires, fresh);
}

#[tokio::test]
async fn an_expired_or_unknown_session_reads_as_signed_out() {
    let token = SessionToken::from_random_bytes([5; 32]);
    let mut ports = Ports::default();
    let mut sequence = mockall::Sequence::new();
    ports.sessions.expect_find().times(1).in_sequence(&mut sequence).returning(|_| Ok(stored_session(now())));
    ports.sessions.expect_find().times(1).in_sequence(&mut sequence).returning(|_| Ok(None));
    ports.sessions.expect_extend().never();
    let sessions = ports.sessions();

    assert!(sessions.read(&token).await.expect("read").is_none());
    assert!(sessions.read(&token).await.expect("read").is_none());
}

#[tokio::test]
async fn a_session_past_its_absolute_lifetime_reads_as_signed_out_however_recently_extended() {
    let token = SessionToken::from_random_bytes([7; 32]);
    let mut ports = Ports::default();
    // Signed in 90 days ago (the default absolute lifetime), extended yesterday to 30 days on.
    ports.sessions.expect_find().times(1).returning(|_| {
        let session = Session {
            id: session_id(1),
            user_id: user().id,
            expires: now() + TimeDelta::days(29),
            created_at: now() - TimeDelta::days(90),
            method: SignInMethod::Link,
        };
        Ok(Some((session, user())))
    });
    ports.sessions.expect_extend().never();

    assert!(ports.sessions().read(&token).await.expect("read").is_none());
}

#[tokio::test]
async fn signing_out_deletes_the_session_by_its_hash() {
    let token = SessionToken::from_random_bytes([6; 32]);
    let expected = token.hash();
    let mut ports = Ports::default();
    ports
        .sessions
        .expect_delete()
        .times(1)
        .withf(move |hash, event| {
            *hash == expected && event.kind == domain::audit::AuditKind::SignedOut && event.origin == origin()
        })
        .returning(|_, _| Ok(()));

    ports.sessions().end(&token, &origin()).await.expect("signed out");
}

/// The session of [`user`] that is reading, as `read_session` answers it.
fn this_session() -> crate::ActiveSession {
    crate::ActiveSession {
        session_id: session_id(1),
        user: user(),
        expires: now(),
        signed_in_at: now() - TimeDelta::minutes(1),
        extended: false,
        method: SignInMethod::Link,
    }
}

#[tokio::test]
async fn a_person_lists_and_revokes_only_their_own_sessions_and_keeps_this_one_when_revoking_others() {
    let mut ports = Ports::default();
    ports
        .sessions
        .expect_list_for_user()
        .withf(|user_id, at| *user_id == user().id && *at == now())
        .times(1)
        .returning(|_, _| Ok(Vec::new()));
    let mut sequence = mockall::Sequence::new();
    ports
        .sessions
        .expect_delete_for_user()
        .withf(|user_id, id, event| {
            *user_id == user().id
                && *id == session_id(2)
                && event.kind == domain::audit::AuditKind::SessionRevoked
                && event.session_id == Some(session_id(2))
        })
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_, _, _| Ok(true));
    // Someone else's session, or one already ended: the store deletes nothing.
    ports.sessions.expect_delete_for_user().times(1).in_sequence(&mut sequence).returning(|_, _, _| Ok(false));
    ports
        .sessions
        .expect_delete_others()
        .withf(|user_id, keep, event| {
            *user_id == user().id && *keep == session_id(1) && event.user_id == Some(user().id)
        })
        .times(1)
        .returning(|_, _, _| Ok(3));
    let sessions = ports.sessions();

    assert!(sessions.list(&this_session()).await.expect("listed").is_empty());
    sessions.revoke(&this_session(), &session_id(2), &origin()).await.expect("revoked");
    let missing = sessions.revoke(&this_session(), &session_id(3), &origin()).await;
    assert!(matches!(missing, Err(crate::RevokeSessionError::NotFound)), "{missing:?}");
    assert_eq!(sessions.revoke_others(&this_session(), &origin()).await.expect("revoked"), 3);
}

#[tokio::test]
async fn a_rename_changes_only_the_signed_in_persons_name_and_a_store_failure_is_unexpected() {
    let mut ports = Ports::default();
    let mut sequence = mockall::Sequence::new();
    ports
        .users
        .expect_rename()
        .withf(|id, name| *id == user().id && name.as_ref().map(domain::DisplayName::as_str) == Some("Ada"))
        .times(1)
        .in_sequence(&mut sequence)
        .returning(|_, _| Ok(()));
    ports.users.expect_rename().times(1).in_sequence(&mut sequence).returning(|_, _| Err(anyhow::anyhow!("disk full")));
    let sign_in = ports.build();
    let ada = domain::DisplayName::parse("Ada").expect("valid");

    sign_in.rename(&this_session(), ada).await.expect("renamed");
    let failed = sign_in.rename(&this_session(), None).await;

    assert!(matches!(failed, Err(super::RenameError::Unexpected(_))), "{failed:?}");
}

fn limited_ports() -> (Ports, SignInLimits) {
    let hour = TimeDelta::hours(1);
    let limits = SignInLimits {
        address_gap: domain::Quota::per(1, TimeDelta::minutes(1)),
        address_hourly: domain::Quota::per(5, hour),
        client_hourly: domain::Quota::per(30, hour),
        global_hourly: domain::Quota::per(1000, hour),
        failed_redemptions: domain::Quota::per(30, hour),
    };
    (Ports::default(), limits)
}

#[tokio::test]
async fn a_rate_limited_request_stores_nothing_and_names_the_limit() {
    let (mut ports, limits) = limited_ports();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen_by_limiter = Arc::clone(&seen);
    ports.limiter.expect_acquire().times(1).returning(move |buckets, _| {
        *seen_by_limiter.lock().expect("lock") = buckets.iter().map(|b| b.key.clone()).collect();
        Ok(crate::rate_limit::Admission::Refused { bucket: 2, retry_after: TimeDelta::minutes(4) })
    });
    ports.links.expect_insert_with_email().never();
    ports.delivery.expect_wake().never();
    let mut request = request();
    request.client = Some("203.0.113.9".parse().expect("an address"));

    let result = ports.build_with(limits).request_link(request).await;

    assert!(
        matches!(result, Err(RequestLinkError::RateLimited { scope: super::LimitScope::Client, retry_after }) if retry_after == TimeDelta::minutes(4)),
        "{result:?}"
    );
    let keys = seen.lock().expect("lock").clone();
    assert_eq!(keys.len(), 4, "address gap, address per hour, client, everyone: {keys:?}");
    assert!(keys.iter().all(|key| !key.contains("example.com") && !key.contains("203.0.113")), "opaque keys: {keys:?}");
}

#[tokio::test]
async fn a_client_over_its_failure_limit_cannot_try_a_link() {
    let (mut ports, limits) = limited_ports();
    ports.limiter.expect_wait().times(1).returning(|_, _| Ok(Some(TimeDelta::minutes(7))));
    ports.links.expect_redeem().never();
    let mut request = redeem_request(9);
    request.client = Some("2001:db8::1".parse().expect("an address"));

    let result = ports.build_with(limits).redeem_link(request).await;

    assert!(matches!(result, Err(RedeemLinkError::RateLimited { .. })), "{result:?}");
}

#[tokio::test]
async fn an_unknown_link_counts_as_a_failure_of_its_client() {
    let (mut ports, limits) = limited_ports();
    ports.limiter.expect_wait().returning(|_, _| Ok(None));
    ports.links.expect_redeem().returning(|_, _, _, _| Ok(Redemption::Unknown));
    ports
        .limiter
        .expect_acquire()
        .withf(|buckets, _| buckets.len() == 1 && buckets[0].key.starts_with("failed-redemption:"))
        .times(1)
        .returning(|_, _| Ok(crate::rate_limit::Admission::Admitted));
    let mut request = redeem_request(10);
    request.client = Some("198.51.100.4".parse().expect("an address"));

    let result = ports.build_with(limits).redeem_link(request).await;

    assert!(matches!(result, Err(RedeemLinkError::Invalid)), "{result:?}");
}

#[tokio::test]
async fn a_link_replaced_by_a_newer_one_says_so_and_is_not_counted_as_a_failure() {
    let (mut ports, limits) = limited_ports();
    ports.limiter.expect_wait().returning(|_, _| Ok(None));
    // Found under the current secret's hash: no older secret is tried.
    ports.links.expect_redeem().times(1).returning(|_, _, _, _| Ok(Redemption::Replaced));
    // A person opening an older email is late, not guessing: the failure counter is untouched.
    ports.limiter.expect_acquire().never();
    let mut request = redeem_request(11);
    request.client = Some("198.51.100.4".parse().expect("an address"));

    let result = ports.build_with(limits).redeem_link(request).await;

    assert!(matches!(result, Err(RedeemLinkError::Replaced)), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Changing the sign-in address

fn active() -> crate::ActiveSession {
    crate::ActiveSession {
        session_id: session_id(1),
        user: user(),
        expires: now() + TimeDelta::days(1),
        signed_in_at: now() - TimeDelta::minutes(1),
        extended: false,
        method: SignInMethod::Link,
    }
}

fn new_email() -> EmailAddress {
    EmailAddress::parse("b@example.org").expect("valid address")
}

fn change() -> super::address::ChangeAddress {
    super::address::ChangeAddress {
        new_email: new_email(),
        client: None,
        lang: "de".to_owned(),
        origin: domain::audit::RequestOrigin::default(),
    }
}

#[tokio::test]
async fn asking_to_change_to_the_same_address_is_refused_and_stores_nothing() {
    let mut ports = Ports::default();
    ports.users.expect_request_address_change().never();
    let same = super::address::ChangeAddress { new_email: email(), ..change() };

    let result = ports.build().request_address_change(&active(), same).await;

    assert!(matches!(result, Err(super::address::ChangeAddressError::SameAddress)), "{result:?}");
}

#[tokio::test]
async fn asking_for_someone_elses_address_answers_as_usual_and_sends_nothing() {
    let mut ports = Ports::default();
    ports.users.expect_find_by_email().times(1).returning(|_| Ok(Some(user())));
    ports.users.expect_request_address_change().never();
    ports.delivery.expect_hand_over().never();

    let queued = ports.build().request_address_change(&active(), change()).await.expect("the usual answer");

    assert_eq!((queued.new_email, queued.expires_in_minutes), (new_email(), 10));
}

#[tokio::test]
async fn asking_for_a_free_address_stores_the_change_and_a_sealed_confirmation_to_it() {
    let stored: Arc<Mutex<Option<(crate::stores::NewAddressChange, NewOutboxMessage)>>> = Arc::default();
    let mut ports = Ports::default();
    ports.users.expect_find_by_email().times(1).returning(|_| Ok(None));
    let stored_by_store = Arc::clone(&stored);
    ports.users.expect_request_address_change().times(1).returning(move |change, email, audit| {
        assert_eq!(audit.kind, domain::audit::AuditKind::AddressChangeRequested);
        assert_eq!(audit.user_id.as_ref(), Some(&change.user_id));
        assert_eq!(audit.detail.as_deref(), Some(change.new_email.masked().as_str()), "masked, never whole");
        *stored_by_store.lock().expect("lock") = Some((change.clone(), email.clone()));
        Ok(outbox_id())
    });
    ports.delivery.expect_lease_for_new().times(1).return_const(Some(now() + TimeDelta::minutes(2)));
    ports.delivery.expect_hand_over().times(1).withf(|message| message.id == outbox_id()).return_const(());

    ports.build().request_address_change(&active(), change()).await.expect("queued");

    let (change, email) = stored.lock().expect("lock").clone().expect("stored");
    assert_eq!((change.user_id, change.new_email.clone()), (user().id, new_email()));
    assert_eq!(change.expires, now() + TimeDelta::minutes(10));
    assert_eq!(
        (email.kind, email.recipient, email.lang.as_str()),
        (crate::EmailKind::ConfirmNewAddress, new_email(), "de")
    );
    let opened = domain::sealed::open(&secret(), change.token_hash.to_hex().as_bytes(), &email.sealed_body)
        .expect("sealed, bound to the change's token hash");
    let url = Url::parse(std::str::from_utf8(&opened).expect("utf-8")).expect("the confirmation link");
    assert_eq!(url.path(), "/account/email/confirm");
    let token = url.query_pairs().find(|(name, _)| name == "token").expect("a token").1.into_owned();
    assert!(LinkToken::parse(&token).expect("a token").hash(&secret()).matches(&change.token_hash));
}

#[tokio::test]
async fn confirming_stores_the_change_with_a_notice_to_the_old_address_and_hands_it_over() {
    let token = LinkToken::from_random_bytes([5; 32]);
    let hash = token.hash(&secret());
    let mut ports = Ports::default();
    ports.users.expect_find_address_change().times(1).returning(|_| {
        Ok(Some(crate::stores::PendingAddressChange {
            user_id: user().id,
            new_email: new_email(),
            expires: now() + TimeDelta::minutes(5),
            used: false,
        }))
    });
    ports.users.expect_find().times(1).returning(|_| Ok(Some(user())));
    ports
        .users
        .expect_confirm_address_change()
        .times(1)
        .withf(move |token_hash, old, keep, notice, audit, at| {
            audit.kind == domain::audit::AuditKind::AddressChanged
                && audit.session_id.as_ref() == Some(&active().session_id)
                && *token_hash == hash
                && *old == email()
                && *keep == active().session_id
                && notice.is_some_and(|notice| {
                    notice.recipient == email()
                        && notice.kind == crate::EmailKind::AddressChanged
                        && notice.expires > now() + TimeDelta::days(1)
                })
                && *at == now()
        })
        .returning(|_, _, _, _, _, _| {
            Ok(crate::stores::AddressChangeOutcome::Changed {
                user: User { email: new_email(), ..user() },
                notice: Some(outbox_id()),
            })
        });
    ports.delivery.expect_lease_for_new().times(1).return_const(Some(now() + TimeDelta::minutes(2)));
    ports.delivery.expect_hand_over().times(1).withf(|message| message.id == outbox_id()).return_const(());
    let request = super::address::ConfirmAddress {
        token,
        client: None,
        lang: "de".to_owned(),
        signed_in: Some(active()),
        origin: domain::audit::RequestOrigin::default(),
    };

    let changed = ports.build().confirm_address_change(request).await.expect("changed");

    assert_eq!(changed.email, new_email());
}

#[tokio::test]
async fn an_unknown_confirmation_link_changes_nothing_and_counts_as_a_failure() {
    let mut ports = Ports::default();
    ports.users.expect_find_address_change().times(1).returning(|_| Ok(None));
    ports.users.expect_confirm_address_change().never();
    ports.limiter.expect_wait().times(1).returning(|_, _| Ok(None));
    ports.limiter.expect_acquire().times(1).returning(|_, _| Ok(crate::rate_limit::Admission::Admitted));
    let limits =
        SignInLimits { failed_redemptions: domain::Quota::per(10, TimeDelta::hours(1)), ..SignInLimits::default() };
    let request = super::address::ConfirmAddress {
        token: LinkToken::from_random_bytes([6; 32]),
        client: Some("192.0.2.1".parse().expect("an IP")),
        lang: "en".to_owned(),
        signed_in: Some(active()),
        origin: domain::audit::RequestOrigin::default(),
    };

    let result = ports.build_with(limits).confirm_address_change(request).await;

    assert!(matches!(result, Err(super::address::ConfirmAddressError::Invalid)), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Changing the address needs a recent sign-in, and an allowed domain

#[tokio::test]
async fn changing_the_address_after_the_recent_window_asks_to_confirm_first_and_stores_nothing() {
    let mut ports = Ports::default();
    ports.users.expect_request_address_change().never();
    let stale = crate::ActiveSession { signed_in_at: now() - TimeDelta::minutes(11), ..active() };

    let result = ports.build().request_address_change(&stale, change()).await;

    assert!(matches!(result, Err(super::address::ChangeAddressError::ReauthenticationRequired)), "{result:?}");
}

#[tokio::test]
async fn with_an_allowlist_a_new_address_outside_it_is_refused_before_any_lookup() {
    let mut ports = Ports::default();
    ports.users.expect_find_by_email().never();
    ports.users.expect_request_address_change().never();
    let mut sign_in = ports.build();
    sign_in.settings.sign_up = super::SignUpPolicy::Allowlist(vec!["example.com".to_owned()]);

    let result = sign_in.request_address_change(&active(), change()).await;

    assert!(matches!(result, Err(super::address::ChangeAddressError::NotAllowed)), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// Passwords

use crate::password::{MockCommonPasswords, MockPasswordHasher, PasswordCheck};
use crate::passwords::{
    PasswordLimits, PasswordSignIn, PasswordSignInError, PasswordSupport, Passwords, SetPassword, SetPasswordError,
};
use crate::stores::MockPasswordStore;

/// The password ports a test sets expectations on.
#[derive(Default)]
struct PasswordPorts {
    store: MockPasswordStore,
    hasher: MockPasswordHasher,
    common: MockCommonPasswords,
}

impl PasswordPorts {
    /// The password provider over these ports and `ports`' session store and limiter.
    fn on(self, ports: Ports, limits: PasswordLimits) -> Passwords {
        let support = PasswordSupport {
            store: Arc::new(self.store),
            hasher: Arc::new(self.hasher),
            common: Arc::new(self.common),
            rules: domain::PasswordRules::default(),
            limits,
            site_name: "magiclink".to_owned(),
            secret: secret(),
        };
        Passwords::new(support, sessions_over(ports.sessions), Arc::new(ports.limiter), clock())
    }
}

fn stored_hash() -> domain::PasswordHash {
    domain::PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
}

fn password_sign_in(password: &str) -> PasswordSignIn {
    PasswordSignIn {
        email: email(),
        password: domain::Password::typed(password).expect("not too long"),
        user_agent: None,
        client: Some("198.51.100.7".parse().expect("an IP")),
        origin: origin(),
    }
}

fn limits() -> PasswordLimits {
    PasswordLimits {
        per_address: domain::Quota::per(10, TimeDelta::hours(1)),
        per_client: domain::Quota::per(30, TimeDelta::hours(1)),
    }
}

#[tokio::test]
async fn an_unknown_address_or_an_account_without_a_password_is_checked_against_the_dummy_hash() {
    for found in [None, Some((user(), None))] {
        let mut ports = Ports::default();
        ports.limiter.expect_wait().times(2).returning(|_, _| Ok(None));
        // Both counters charged, as for a wrong password.
        ports
            .limiter
            .expect_acquire()
            .times(1)
            .withf(|buckets, _| buckets.len() == 2)
            .returning(|_, _| Ok(crate::rate_limit::Admission::Admitted));
        ports.sessions.expect_create().never();
        let mut passwords = PasswordPorts::default();
        passwords.store.expect_find_with_password().times(1).returning(move |_| Ok(found.clone()));
        passwords
            .hasher
            .expect_check()
            .times(1)
            .withf(|_, stored| stored.is_none())
            .returning(|_, _| Ok(PasswordCheck::Mismatch));

        let result = passwords.on(ports, limits()).sign_in_with_password(password_sign_in("any password at all")).await;

        assert!(matches!(result, Err(PasswordSignInError::Rejected)), "{result:?}");
    }
}

#[tokio::test]
async fn the_right_password_opens_a_session_and_counts_nothing() {
    let mut ports = Ports::default();
    ports.limiter.expect_wait().times(2).returning(|_, _| Ok(None));
    ports.limiter.expect_acquire().never();
    ports.sessions.expect_create().times(1).withf(|new| new.user_id == user().id && new.created_at == now()).returning(
        |new| {
            Ok(Session {
                id: session_id(2),
                user_id: new.user_id.clone(),
                expires: new.expires,
                created_at: now(),
                method: new.method,
            })
        },
    );
    let mut passwords = PasswordPorts::default();
    passwords.store.expect_find_with_password().returning(|_| Ok(Some((user(), Some(stored_hash())))));
    passwords
        .hasher
        .expect_check()
        .withf(|_, stored| stored.as_ref() == Some(&stored_hash()))
        .returning(|_, _| Ok(PasswordCheck::Matches { outdated: false }));
    passwords.hasher.expect_hash().never();

    let signed_in = passwords
        .on(ports, limits())
        .sign_in_with_password(password_sign_in("the right password"))
        .await
        .expect("signed in");

    assert_eq!((signed_in.user, signed_in.expires), (user(), now() + TimeDelta::days(30)));
}

#[tokio::test]
async fn an_outdated_hash_is_replaced_only_if_it_is_still_the_stored_one() {
    let mut ports = Ports::default();
    ports.limiter.expect_wait().returning(|_, _| Ok(None));
    ports.sessions.expect_create().returning(|new| {
        Ok(Session {
            id: session_id(2),
            user_id: new.user_id.clone(),
            expires: new.expires,
            created_at: now(),
            method: new.method,
        })
    });
    let mut passwords = PasswordPorts::default();
    passwords.store.expect_find_with_password().returning(|_| Ok(Some((user(), Some(stored_hash())))));
    passwords.hasher.expect_check().returning(|_, _| Ok(PasswordCheck::Matches { outdated: true }));
    let fresh = domain::PasswordHash::from_phc("$argon2id$v=19$m=47104,t=1,p=1$bmV3$bmV3");
    let returned = fresh.clone();
    passwords.hasher.expect_hash().times(1).returning(move |_| Ok(returned.clone()));
    passwords
        .store
        .expect_replace_password_hash()
        .times(1)
        .withf(move |id, old, new, _| *id == user().id && *old == stored_hash() && *new == fresh)
        .returning(|_, _, _, _| Ok(true));

    passwords.on(ports, limits()).sign_in_with_password(password_sign_in("the right password")).await.expect("in");
}

#[tokio::test]
async fn over_a_password_limit_nothing_is_checked_and_no_link_counter_is_touched() {
    let mut ports = Ports::default();
    ports
        .limiter
        .expect_wait()
        .times(1)
        .withf(|bucket, _| bucket.key.starts_with("password-address:"))
        .returning(|_, _| Ok(Some(TimeDelta::minutes(4))));
    let mut passwords = PasswordPorts::default();
    passwords.store.expect_find_with_password().never();
    passwords.hasher.expect_check().never();

    let result = passwords.on(ports, limits()).sign_in_with_password(password_sign_in("guess number eleven")).await;

    assert!(
        matches!(result, Err(PasswordSignInError::RateLimited { retry_after }) if retry_after == TimeDelta::minutes(4)),
        "{result:?}"
    );
}

fn new_password(password: &str, sign_out_other_sessions: bool) -> SetPassword {
    SetPassword {
        password: domain::Password::typed(password).expect("not too long"),
        sign_out_other_sessions,
        origin: origin(),
    }
}

#[tokio::test]
async fn setting_a_password_needs_a_recent_sign_in() {
    let mut passwords = PasswordPorts::default();
    passwords.hasher.expect_hash().never();
    passwords.store.expect_set_password().never();
    let stale =
        crate::ActiveSession { signed_in_at: now() - TimeDelta::minutes(10) - TimeDelta::seconds(1), ..active() };

    let result = passwords
        .on(Ports::default(), limits())
        .set_password(&stale, new_password("violet kestrel tin roof", true))
        .await;

    assert!(matches!(result, Err(SetPasswordError::ReauthenticationRequired)), "{result:?}");
}

#[tokio::test]
async fn a_short_or_common_password_is_refused_before_hashing() {
    let mut passwords = PasswordPorts::default();
    passwords.common.expect_is_common().times(1).returning(|_, context| {
        assert!(context.iter().any(|word| word == "a@example.com") && context.iter().any(|word| word == "magiclink"));
        true
    });
    passwords.hasher.expect_hash().never();
    let sign_in = passwords.on(Ports::default(), limits());

    let short = sign_in.set_password(&active(), new_password("fourteen chars", true)).await;
    let common = sign_in.set_password(&active(), new_password("password1234567", true)).await;

    assert!(
        matches!(short, Err(SetPasswordError::Refused(domain::PasswordRefusal::TooShort { min: 15 }))),
        "{short:?}"
    );
    assert!(matches!(common, Err(SetPasswordError::Refused(domain::PasswordRefusal::Common))), "{common:?}");
}

#[tokio::test]
async fn setting_a_password_stores_its_hash_and_signs_out_the_other_sessions_when_asked() {
    for sign_out_others in [true, false] {
        let mut ports = Ports::default();
        ports
            .sessions
            .expect_delete_others()
            .times(usize::from(sign_out_others))
            .withf(|user_id, keep, event| {
                *user_id == user().id && *keep == session_id(1) && event.detail.as_deref() == Some("password set")
            })
            .returning(|_, _, _| Ok(3));
        let mut passwords = PasswordPorts::default();
        passwords.common.expect_is_common().returning(|_, _| false);
        passwords.hasher.expect_hash().times(1).returning(|_| Ok(stored_hash()));
        passwords
            .store
            .expect_set_password()
            .times(1)
            .withf(|id, hash, audit, at| {
                *id == user().id
                    && *hash == stored_hash()
                    && audit.kind == domain::audit::AuditKind::PasswordSet
                    && audit.user_id.as_ref() == Some(id)
                    && *at == now()
            })
            .returning(|_, _, _, _| Ok(()));

        let done = passwords
            .on(ports, limits())
            .set_password(&active(), new_password("violet kestrel under a tin roof", sign_out_others))
            .await
            .expect("set");

        assert_eq!(done.other_sessions_ended, if sign_out_others { 3 } else { 0 });
    }
}
