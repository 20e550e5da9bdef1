//! Unit tests of the passkey use cases against mockall mocks of every port.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{
    CeremonyToken, CredentialId, EmailAddress, Passkey, PasskeyId, PasskeyName, Quota, ServerSecret, Session,
    SessionPolicy, SignInMethod, User, UserHandle, UserId,
};

use super::{
    AddPasskey, AddPasskeyError, BeginCeremonyError, ChangePasskeyError, PasskeySettings, PasskeySignIn,
    PasskeySignInError, Passkeys,
};
use crate::clock::MockClock;
use crate::rate_limit::{Admission, MockRateLimiter};
use crate::sessions::{SessionSettings, Sessions};
use crate::stores::{
    CeremonyPurpose, MockPasskeyStore, MockSessionStore, PasskeyAdded, PasskeyForSignIn, StoredCredential,
    TakenCeremony,
};
use crate::webauthn::{BegunCeremony, CeremonyRefusal, ClaimedCredential, MockWebAuthn, VerifiedAssertion};
use domain::audit::{AuditKind, RequestOrigin};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).single().expect("valid date")
}

fn user() -> User {
    let id = UserId::parse("01900000-0000-7000-8000-0000000000aa").expect("an id");
    User {
        id,
        email: EmailAddress::parse("a@example.com").expect("valid"),
        name: None,
        image: None,
        email_verified: Some(now()),
    }
}

fn other_user_id() -> UserId {
    UserId::parse("01900000-0000-7000-8000-0000000000bb").expect("an id")
}

fn passkey_id() -> PasskeyId {
    PasskeyId::parse("01900000-0000-7000-8000-0000000000cc").expect("an id")
}

fn handle() -> UserHandle {
    UserHandle::from_random_bytes([4; 16])
}

fn credential_id() -> CredentialId {
    CredentialId::new(vec![1, 2, 3, 4]).expect("an id")
}

fn passkey() -> Passkey {
    Passkey {
        id: passkey_id(),
        user_id: user().id,
        name: PasskeyName::parse("Chrome on Linux").expect("a name"),
        created_at: now(),
        last_used_at: None,
        backed_up: false,
    }
}

fn active(signed_in_minutes_ago: i64) -> crate::ActiveSession {
    crate::ActiveSession {
        session_id: domain::SessionId::parse("01900000-0000-7000-8000-000000000001").expect("an id"),
        user: user(),
        expires: now() + TimeDelta::days(1),
        signed_in_at: now() - TimeDelta::minutes(signed_in_minutes_ago),
        extended: false,
        method: SignInMethod::Link,
    }
}

fn client() -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
}

/// The ports a test sets expectations on; any call without an expectation fails the test.
#[derive(Default)]
struct Ports {
    store: MockPasskeyStore,
    webauthn: MockWebAuthn,
    sessions: MockSessionStore,
    limiter: MockRateLimiter,
}

impl Ports {
    fn build(self) -> Passkeys {
        let mut clock = MockClock::new();
        clock.expect_now().returning(now);
        let clock: Arc<dyn crate::Clock> = Arc::new(clock);
        let mut audit = crate::audit::MockAuditLog::new();
        audit.expect_record().returning(|_| Ok(()));
        let sessions = Arc::new(Sessions::new(
            Arc::new(self.sessions),
            Arc::new(audit),
            Arc::clone(&clock),
            SessionSettings { policy: SessionPolicy::new(30 * 86_400, 86_400), recent_sign_in: TimeDelta::minutes(10) },
        ));
        Passkeys::new(
            Arc::new(self.store),
            Arc::new(self.webauthn),
            sessions,
            Arc::new(self.limiter),
            clock,
            PasskeySettings {
                ceremony_lifetime: TimeDelta::minutes(5),
                failed_sign_ins_per_client: Quota::per(30, TimeDelta::hours(1)),
                sign_in_ceremonies_per_client: Quota::per(300, TimeDelta::hours(1)),
                secret: ServerSecret::new(*b"test-secret-test-secret-test-sec"),
            },
        )
    }

    /// A sign-in ceremony stored under any token, taken once.
    fn with_sign_in_ceremony(mut self) -> Self {
        self.store.expect_take_ceremony().times(1).returning(|_, purpose, _| {
            assert_eq!(purpose, CeremonyPurpose::SignIn);
            Ok(Some(TakenCeremony { user_id: None, state: b"state".to_vec() }))
        });
        self
    }

    /// A limiter that lets everything through, expecting `failures` failures charged.
    fn counting_failures(mut self, failures: usize) -> Self {
        self.limiter.expect_wait().returning(|_, _| Ok(None));
        self.limiter.expect_acquire().times(failures).returning(|_, _| Ok(Admission::Admitted));
        self
    }

    fn claiming(mut self, user_handle: Option<UserHandle>) -> Self {
        self.webauthn
            .expect_claimed_credential()
            .returning(move |_| Ok(ClaimedCredential { id: credential_id(), user_handle }));
        self
    }

    fn finding_the_passkey(mut self) -> Self {
        self.store.expect_find_for_sign_in().returning(|_| {
            Ok(Some(PasskeyForSignIn {
                passkey: passkey(),
                user: user(),
                user_handle: handle(),
                credential: StoredCredential(b"cred".to_vec()),
                sign_count: 5,
            }))
        });
        self
    }
}

fn sign_in_request() -> PasskeySignIn {
    PasskeySignIn {
        token: Some(CeremonyToken::from_random_bytes([1; 32])),
        response: "{}".to_owned(),
        user_agent: Some("Firefox".to_owned()),
        client: client(),
        origin: domain::audit::RequestOrigin::default(),
    }
}

fn verified() -> VerifiedAssertion {
    VerifiedAssertion {
        credential: StoredCredential(b"cred2".to_vec()),
        sign_count: 6,
        backed_up: true,
        user_verified: true,
    }
}

#[tokio::test]
async fn a_passkey_that_checks_out_records_its_use_and_opens_a_passkey_session() {
    let mut ports =
        Ports::default().with_sign_in_ceremony().counting_failures(0).claiming(Some(handle())).finding_the_passkey();
    ports.webauthn.expect_finish_sign_in().times(1).returning(|_, state, credential, count| {
        assert_eq!((state, credential.0.as_slice(), count), (&b"state"[..], &b"cred"[..], 5));
        Ok(verified())
    });
    ports.store.expect_record_use().times(1).returning(|id, used| {
        assert_eq!((id, used.sign_count, used.backed_up, used.at), (&passkey_id(), 6, true, now()));
        Ok(true)
    });
    ports.sessions.expect_create().times(1).returning(|new| {
        assert_eq!(new.method, SignInMethod::Passkey);
        Ok(Session {
            id: domain::SessionId::parse("01900000-0000-7000-8000-000000000002").expect("an id"),
            user_id: new.user_id.clone(),
            expires: new.expires,
            created_at: new.created_at,
            method: new.method,
        })
    });
    let signed_in = ports.build().sign_in(sign_in_request()).await.expect("signed in");
    assert_eq!(signed_in.user, user());
}

#[tokio::test]
async fn without_the_ceremony_cookie_nothing_is_checked_or_counted() {
    let ports = Ports::default().counting_failures(0);
    let request = PasskeySignIn { token: None, ..sign_in_request() };
    let result = ports.build().sign_in(request).await;
    assert!(matches!(result, Err(PasskeySignInError::CeremonyExpired)), "{result:?}");
}

#[tokio::test]
async fn a_ceremony_taken_already_or_expired_signs_nobody_in() {
    let mut ports = Ports::default().counting_failures(0);
    ports.store.expect_take_ceremony().times(1).returning(|_, _, _| Ok(None));
    let result = ports.build().sign_in(sign_in_request()).await;
    assert!(matches!(result, Err(PasskeySignInError::CeremonyExpired)), "{result:?}");
}

#[tokio::test]
async fn an_unknown_credential_is_refused_and_counted() {
    let mut ports = Ports::default().with_sign_in_ceremony().counting_failures(1).claiming(Some(handle()));
    ports.store.expect_find_for_sign_in().returning(|_| Ok(None));
    let result = ports.build().sign_in(sign_in_request()).await;
    assert!(matches!(result, Err(PasskeySignInError::UnknownPasskey)), "{result:?}");
}

#[tokio::test]
async fn a_user_handle_that_is_not_the_owners_is_refused_before_any_signature_is_checked() {
    let other = UserHandle::from_random_bytes([9; 16]);
    for claimed in [Some(other), None] {
        let ports =
            Ports::default().with_sign_in_ceremony().counting_failures(1).claiming(claimed).finding_the_passkey();
        let result = ports.build().sign_in(sign_in_request()).await;
        assert!(matches!(result, Err(PasskeySignInError::Refused(CeremonyRefusal::Failed(_)))), "{result:?}");
    }
}

#[tokio::test]
async fn a_counter_overtaken_by_a_use_recorded_meanwhile_is_refused_and_counted() {
    let mut ports =
        Ports::default().with_sign_in_ceremony().counting_failures(1).claiming(Some(handle())).finding_the_passkey();
    ports.webauthn.expect_finish_sign_in().returning(|_, _, _, _| Ok(verified()));
    ports.store.expect_record_use().returning(|_, _| Ok(false));
    let result = ports.build().sign_in(sign_in_request()).await;
    assert!(matches!(result, Err(PasskeySignInError::Refused(CeremonyRefusal::CounterWentBack))), "{result:?}");
}

#[tokio::test]
async fn a_malformed_answer_is_refused_without_counting_against_the_client() {
    let mut ports = Ports::default().with_sign_in_ceremony().counting_failures(0);
    ports.webauthn.expect_claimed_credential().returning(|_| Err(CeremonyRefusal::Malformed("not JSON".into())));
    let result = ports.build().sign_in(sign_in_request()).await;
    assert!(matches!(result, Err(PasskeySignInError::Refused(CeremonyRefusal::Malformed(_)))), "{result:?}");
}

#[tokio::test]
async fn a_client_over_its_failure_limit_is_refused_before_anything_is_checked() {
    let mut ports = Ports::default();
    ports.limiter.expect_wait().returning(|_, _| Ok(Some(TimeDelta::minutes(7))));
    let result = ports.build().sign_in(sign_in_request()).await;
    assert!(
        matches!(result, Err(PasskeySignInError::RateLimited { retry_after }) if retry_after == TimeDelta::minutes(7))
    );
}

#[tokio::test]
async fn adding_a_passkey_needs_a_recent_sign_in_at_both_ends() {
    let ports = Ports::default();
    let passkeys = ports.build();
    let stale = active(11);
    assert!(matches!(passkeys.begin_registration(&stale).await, Err(BeginCeremonyError::ReauthenticationRequired)));
    let request = AddPasskey {
        token: None,
        response: "{}".into(),
        name: PasskeyName::parse("Key").expect("a name"),
        origin: RequestOrigin::default(),
    };
    assert!(matches!(passkeys.add(&stale, request).await, Err(AddPasskeyError::ReauthenticationRequired)));
}

#[tokio::test]
async fn a_registration_begins_with_the_stored_handle_excluding_the_persons_passkeys() {
    let mut ports = Ports::default();
    ports.store.expect_user_handle().times(1).returning(|_, _| Ok(handle()));
    ports.store.expect_list().returning(|_| Ok(vec![(passkey(), credential_id())]));
    ports.webauthn.expect_begin_registration().times(1).returning(|holder, exclude| {
        assert_eq!((holder.handle, holder.name, exclude), (&handle(), "a@example.com", &[credential_id()][..]));
        Ok(BegunCeremony { options: "{\"challenge\":\"x\"}".into(), state: b"reg".to_vec() })
    });
    ports.store.expect_save_ceremony().times(1).returning(|ceremony| {
        assert_eq!(
            (ceremony.purpose, ceremony.user_id.clone(), ceremony.state.as_slice(), ceremony.expires),
            (CeremonyPurpose::Registration, Some(user().id), &b"reg"[..], now() + TimeDelta::minutes(5))
        );
        Ok(())
    });
    let ceremony = ports.build().begin_registration(&active(1)).await.expect("begun");
    assert_eq!(ceremony.options, "{\"challenge\":\"x\"}");
}

#[tokio::test]
async fn a_registration_begun_for_another_account_finishes_nothing() {
    let mut ports = Ports::default();
    ports
        .store
        .expect_take_ceremony()
        .returning(|_, _, _| Ok(Some(TakenCeremony { user_id: Some(other_user_id()), state: b"reg".to_vec() })));
    let request = AddPasskey {
        token: Some(CeremonyToken::from_random_bytes([2; 32])),
        response: "{}".into(),
        name: PasskeyName::parse("Key").expect("a name"),
        origin: RequestOrigin::default(),
    };
    let result = ports.build().add(&active(1), request).await;
    assert!(matches!(result, Err(AddPasskeyError::CeremonyExpired)), "{result:?}");
}

#[tokio::test]
async fn a_credential_registered_already_is_refused_as_such() {
    let mut ports = Ports::default();
    ports
        .store
        .expect_take_ceremony()
        .returning(|_, _, _| Ok(Some(TakenCeremony { user_id: Some(user().id), state: b"reg".to_vec() })));
    ports.webauthn.expect_finish_registration().returning(|_, _| {
        Ok(crate::webauthn::RegisteredCredential {
            id: credential_id(),
            credential: StoredCredential(b"cred".to_vec()),
            backed_up: false,
            sign_count: 0,
        })
    });
    ports.store.expect_add().returning(|_, audit| {
        assert_eq!((audit.kind, audit.detail.as_deref()), (AuditKind::PasskeyAdded, Some("Key")));
        Ok(PasskeyAdded::CredentialTaken)
    });
    let request = AddPasskey {
        token: Some(CeremonyToken::from_random_bytes([2; 32])),
        response: "{}".into(),
        name: PasskeyName::parse("Key").expect("a name"),
        origin: RequestOrigin::default(),
    };
    let result = ports.build().add(&active(1), request).await;
    assert!(matches!(result, Err(AddPasskeyError::AlreadyRegistered)), "{result:?}");
}

#[tokio::test]
async fn deleting_needs_a_recent_sign_in_and_someone_elses_passkey_is_not_found() {
    let mut ports = Ports::default();
    ports.store.expect_delete().times(1).returning(|_, _, audit| {
        assert_eq!((audit.kind, audit.user_id.clone()), (AuditKind::PasskeyRemoved, Some(user().id)));
        Ok(false)
    });
    let passkeys = ports.build();
    let origin = RequestOrigin::default();
    assert!(matches!(
        passkeys.delete(&active(11), &passkey_id(), &origin).await,
        Err(ChangePasskeyError::ReauthenticationRequired)
    ));
    assert!(matches!(passkeys.delete(&active(1), &passkey_id(), &origin).await, Err(ChangePasskeyError::NotFound)));
}

#[tokio::test]
async fn a_client_that_began_too_many_sign_ins_stores_no_more_ceremonies() {
    let mut ports = Ports::default();
    ports.limiter.expect_acquire().times(1).returning(|buckets, _| {
        assert_eq!(buckets.len(), 1);
        Ok(Admission::Refused { bucket: 0, retry_after: TimeDelta::seconds(12) })
    });
    let result = ports.build().begin_sign_in(client()).await;
    assert!(
        matches!(result, Err(BeginCeremonyError::RateLimited { retry_after }) if retry_after == TimeDelta::seconds(12))
    );
}

#[tokio::test]
async fn a_sign_in_ceremony_is_stored_for_its_purpose_under_the_tokens_hash() {
    let mut ports = Ports::default();
    ports.limiter.expect_acquire().times(1).returning(|_, _| Ok(Admission::Admitted));
    ports
        .webauthn
        .expect_begin_sign_in()
        .times(1)
        .returning(|| Ok(BegunCeremony { options: "{\"challenge\":\"y\"}".into(), state: b"auth".to_vec() }));
    let stored = std::sync::Arc::new(std::sync::Mutex::new(None));
    let kept = std::sync::Arc::clone(&stored);
    ports.store.expect_save_ceremony().times(1).returning(move |ceremony| {
        *kept.lock().expect("lock") = Some(ceremony.clone());
        Ok(())
    });
    let ceremony = ports.build().begin_sign_in(client()).await.expect("begun");
    let stored = stored.lock().expect("lock").clone().expect("stored");
    assert_eq!((stored.purpose, stored.user_id, stored.state), (CeremonyPurpose::SignIn, None, b"auth".to_vec()));
    assert!(stored.hash.matches(&ceremony.token.hash()), "stored under the hash of the browser's token");
    assert_eq!(ceremony.expires, now() + TimeDelta::minutes(5));
}
