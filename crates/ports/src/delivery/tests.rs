//! Unit tests of delivery against mocks of the outbox, the mailer and the clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::{EmailAddress, LinkToken, ServerSecret};

use super::{Deliverer, DeliverySettings, RetryPolicy};
use crate::clock::MockClock;
use crate::mailer::{EmailContent, EmailKind, MailError, MockEmailRenderer, MockMailer, RenderedEmail, SentReceipt};
use crate::oidc::logout::BackchannelLogout;
use crate::oidc::store::{MockClientStore, MockTokenSigner};
use crate::outbox::{DeliveryState, MockOutbox, OutboxMessage, Payload, QueuedEmail};
use crate::webhook::{MockWebhookSender, PostError};

/// The id of the one outbox row these tests deliver.
fn row_id() -> domain::OutboxId {
    domain::OutboxId::parse("01900000-0000-7000-8000-000000000001").expect("an id")
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).single().expect("valid date")
}

fn secret() -> ServerSecret {
    ServerSecret::new(*b"delivery-secret-delivery-secret!")
}

const LINK: &str = "http://127.0.0.1:3000/api/auth/callback/email?callbackUrl=%2F&token=t&email=a%40example.com";

/// A claimed message whose link expires at `expires`, after `attempts` attempts.
fn message(expires: DateTime<Utc>, attempts: u32) -> OutboxMessage {
    let token_hash = LinkToken::from_random_bytes([1; 32]).hash(&secret());
    OutboxMessage {
        id: row_id(),
        payload: Payload::Email(QueuedEmail {
            kind: EmailKind::SignIn,
            lang: "de".to_owned(),
            recipient: EmailAddress::parse("a@example.com").expect("valid"),
            sealed_body: domain::sealed::seal(&secret(), token_hash.to_hex().as_bytes(), [9; 24], LINK.as_bytes()),
            link_token_hash: token_hash,
        }),
        expires,
        attempts,
        leased_until: now() + TimeDelta::minutes(2),
    }
}

/// The email a test message carries, to change.
fn email_of(message: &mut OutboxMessage) -> &mut QueuedEmail {
    match &mut message.payload {
        Payload::Email(email) => email,
        Payload::BackchannelLogout(_) | Payload::Webhook(_) => panic!("not an email"),
    }
}

/// A renderer that writes down what it was given: kind and language in the subject; link, code
/// and seconds left in the text.
fn renderer() -> MockEmailRenderer {
    let mut renderer = MockEmailRenderer::new();
    renderer.expect_render().returning(|email| {
        Ok(RenderedEmail {
            subject: format!("{} in {}", email.content.kind().as_str(), email.lang),
            html: String::new(),
            text: format!(
                "{} {} {}",
                email.content.link().map(url::Url::as_str).unwrap_or("-"),
                email.content.code().unwrap_or("-"),
                email.expires_in_seconds
            ),
        })
    });
    renderer
}

fn deliverer(outbox: MockOutbox, mailer: MockMailer) -> Deliverer {
    deliverer_rendering_with(outbox, renderer(), mailer)
}

fn deliverer_rendering_with(outbox: MockOutbox, renderer: MockEmailRenderer, mailer: MockMailer) -> Deliverer {
    let mut clock = MockClock::new();
    clock.expect_now().returning(now);
    Deliverer::new(
        Arc::new(outbox),
        Arc::new(renderer),
        Arc::new(mailer),
        Arc::new(clock),
        DeliverySettings {
            secrets: domain::SecretRing::single(secret()),
            retry: RetryPolicy {
                max_attempts: 5,
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

fn outbox_claiming(claimed: OutboxMessage) -> MockOutbox {
    let mut outbox = MockOutbox::new();
    outbox
        .expect_claim_due()
        .withf(|at, lease_until, limit| *at == now() && *lease_until == now() + TimeDelta::minutes(2) && *limit == 16)
        .times(1)
        .return_once(move |_, _, _| Ok(vec![claimed]));
    outbox
}

#[test]
fn delays_double_up_to_the_cap_with_half_of_each_random() {
    let policy = RetryPolicy { max_attempts: 8, base_delay: TimeDelta::seconds(2), max_delay: TimeDelta::seconds(60) };
    let cases = [(1, 2), (2, 4), (3, 8), (4, 16), (5, 32), (6, 60), (7, 60), (40, 60)];
    for (failures, full_seconds) in cases {
        let full = TimeDelta::seconds(full_seconds);
        assert_eq!(policy.delay(failures, 0), full / 2, "no jitter, after {failures}");
        assert_eq!(policy.delay(failures, u32::MAX), full, "full jitter, after {failures}");
        let middle = policy.delay(failures, u32::MAX / 2);
        assert!(middle > full / 2 && middle < full, "after {failures}: {middle}");
    }
}

#[tokio::test]
async fn a_sent_message_is_recorded_with_the_provider_id() {
    let mut outbox = outbox_claiming(message(now() + TimeDelta::minutes(4), 1));
    outbox
        .expect_mark_sent()
        .withf(|sent, _| {
            sent.len() == 1 && sent[0].id == row_id() && sent[0].provider_message_id.as_deref() == Some("re_123")
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer
        .expect_send()
        .withf(|email, key| {
            email.rendered.text == format!("{LINK} - 240")
                && email.rendered.subject == "sign_in in de"
                && email.content.link().map(url::Url::as_str) == Some(LINK)
                && email.to.as_str() == "a@example.com"
                && key == row_id().as_str()
        })
        .times(1)
        .returning(|_, _| Ok(SentReceipt { provider_message_id: Some("re_123".to_owned()) }));

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!((report.claimed, report.sent), (1, 1));
}

#[tokio::test]
async fn a_message_whose_link_expired_is_dropped_and_never_sent() {
    let mut outbox = outbox_claiming(message(now(), 2));
    outbox
        .expect_mark_final()
        .withf(|id, state, reason, _| *id == row_id() && *state == DeliveryState::Dropped && reason.contains("expired"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.dropped, 1);
}

#[tokio::test]
async fn a_permanent_failure_is_recorded_with_the_providers_reason() {
    let mut outbox = outbox_claiming(message(now() + TimeDelta::minutes(9), 1));
    outbox
        .expect_mark_final()
        .withf(|_, state, reason, _| *state == DeliveryState::Failed && reason.contains("550 mailbox unavailable"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().returning(|_, _| Err(MailError::Permanent(anyhow::anyhow!("550 mailbox unavailable"))));

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.failed, 1);
}

#[tokio::test]
async fn a_transient_failure_is_retried_no_sooner_than_the_provider_asked() {
    let mut outbox = outbox_claiming(message(now() + TimeDelta::minutes(9), 1));
    outbox
        .expect_mark_retry()
        .withf(|_, next, reason, _| *next == now() + TimeDelta::seconds(30) && reason.contains("rate limited"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().returning(|_, _| {
        Err(MailError::Transient {
            source: anyhow::anyhow!("rate limited"),
            retry_after: Some(Duration::from_secs(30)),
        })
    });

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.retried, 1);
}

#[tokio::test]
async fn a_transient_failure_on_the_last_attempt_gives_up() {
    let mut outbox = outbox_claiming(message(now() + TimeDelta::minutes(9), 5));
    outbox
        .expect_mark_final()
        .withf(|_, state, reason, _| *state == DeliveryState::Failed && reason.starts_with("gave up after 5 attempts"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().returning(|_, _| Err(MailError::transient(anyhow::anyhow!("connection refused"))));

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.failed, 1);
}

#[tokio::test]
async fn a_message_sealed_under_another_secret_fails_without_being_sent() {
    let mut claimed = message(now() + TimeDelta::minutes(9), 1);
    email_of(&mut claimed).sealed_body[30] ^= 1;
    let mut outbox = outbox_claiming(claimed);
    outbox
        .expect_mark_final()
        .withf(|_, state, reason, _| *state == DeliveryState::Failed && reason.contains("does not open"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.failed, 1);
}

#[tokio::test]
async fn a_handed_over_email_is_sent_and_recorded_without_a_claim() {
    let mut outbox = MockOutbox::new();
    outbox.expect_claim_due().never();
    outbox
        .expect_mark_sent()
        .withf(|sent, _| sent.len() == 1 && sent[0].id == row_id())
        .times(1)
        .returning(|_, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer.expect_send().times(1).returning(|_, _| Ok(SentReceipt { provider_message_id: None }));

    let report = deliverer(outbox, mailer).deliver_handed_over(vec![message(now() + TimeDelta::minutes(5), 1)]).await;

    assert_eq!((report.claimed, report.sent, report.lapsed), (1, 1, 0));
}

#[tokio::test]
async fn a_handed_over_email_whose_lease_ran_out_is_left_to_a_claim_and_not_sent() {
    let mut lapsed = message(now() + TimeDelta::minutes(5), 1);
    lapsed.leased_until = now();
    let mut outbox = MockOutbox::new();
    outbox.expect_mark_sent().never();
    let mut mailer = MockMailer::new();
    // Another worker may have claimed it since: sending it here could send it twice.
    mailer.expect_send().never();

    let report = deliverer(outbox, mailer).deliver_handed_over(vec![lapsed]).await;

    assert_eq!((report.sent, report.lapsed), (0, 1));
    assert!(report.left_pending(), "the worker looks at the outbox again");
}

#[tokio::test]
async fn an_email_that_does_not_render_fails_for_good_without_being_sent() {
    let mut outbox = outbox_claiming(message(now() + TimeDelta::minutes(9), 1));
    outbox
        .expect_mark_final()
        .withf(|_, state, reason, _| *state == DeliveryState::Failed && reason.contains("does not render"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut renderer = MockEmailRenderer::new();
    renderer.expect_render().times(1).returning(|_| Err(anyhow::anyhow!("Variable `nope` not found")));
    let mut mailer = MockMailer::new();
    mailer.expect_send().never();

    let report = deliverer_rendering_with(outbox, renderer, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.failed, 1);
}

#[tokio::test]
async fn a_notice_without_a_link_is_opened_rendered_and_sent_like_any_other_email() {
    let mut claimed = message(now() + TimeDelta::days(1), 1);
    let email = email_of(&mut claimed);
    email.kind = EmailKind::AddressChanged;
    email.sealed_body =
        domain::sealed::seal(&secret(), email.link_token_hash.to_hex().as_bytes(), [7; 24], b"new@example.com");
    let mut outbox = outbox_claiming(claimed);
    outbox.expect_mark_sent().times(1).returning(|_, _| Ok(()));
    let mut mailer = MockMailer::new();
    mailer
        .expect_send()
        .withf(|email, _| {
            email.rendered.subject == "address_changed in de"
                && email.content
                    == EmailContent::AddressChanged {
                        new_address: EmailAddress::parse("new@example.com").expect("valid"),
                    }
        })
        .times(1)
        .returning(|_, _| Ok(SentReceipt::default()));

    let report = deliverer(outbox, mailer).deliver_due().await.expect("batch runs");

    assert_eq!(report.sent, 1);
}

#[test]
fn every_kind_of_content_survives_its_sealed_text() {
    let link = url::Url::parse(LINK).expect("a URL");
    let contents = [
        EmailContent::SignIn { link: link.clone(), code: Some("ABCD-EFGH".to_owned()) },
        EmailContent::SignIn { link: link.clone(), code: None },
        EmailContent::ConfirmNewAddress { link },
        EmailContent::AddressChanged { new_address: EmailAddress::parse("b@example.org").expect("valid") },
    ];
    for content in contents {
        let text = content.to_sealed_text();
        assert_eq!(EmailContent::from_sealed_text(content.kind(), &text), Some(content), "{text}");
    }
    assert_eq!(EmailContent::from_sealed_text(EmailKind::SignIn, "not a url"), None);
    for kind in EmailKind::ALL {
        assert_eq!(EmailKind::parse(kind.as_str()), Some(kind));
    }
}

/// A mailer that accepts everything.
fn accepting_mailer() -> MockMailer {
    let mut mailer = MockMailer::new();
    mailer.expect_send().times(1).returning(|_, _| Ok(SentReceipt { provider_message_id: Some("p-1".to_owned()) }));
    mailer
}

#[tokio::test]
async fn a_send_whose_record_failed_is_recorded_again_while_its_lease_holds() {
    let mut outbox = outbox_claiming(message(now() + TimeDelta::minutes(4), 1));
    let mut records = mockall::Sequence::new();
    outbox
        .expect_mark_sent()
        .times(2)
        .in_sequence(&mut records)
        .returning(|_, _| Err(anyhow::anyhow!("database or disk is full")));
    outbox
        .expect_mark_sent()
        .withf(|sent, _| {
            sent.len() == 1 && sent[0].id == row_id() && sent[0].provider_message_id.as_deref() == Some("p-1")
        })
        .times(1)
        .in_sequence(&mut records)
        .returning(|_, _| Ok(()));
    let deliverer = deliverer(outbox, accepting_mailer());

    let report = deliverer.deliver_due().await.expect("batch");
    let again = deliverer.record_again().await;
    let finally = deliverer.record_again().await.expect("recorded");

    assert_eq!((report.sent, report.unrecorded), (0, 1));
    assert!(again.is_err(), "the second failure is reported, the message kept");
    assert_eq!(finally, 0);
    assert_eq!(deliverer.record_again().await.expect("nothing left"), 0, "recorded once, then forgotten");
}

#[tokio::test]
async fn a_send_whose_lease_ran_out_before_it_could_be_recorded_is_given_up() {
    let mut claimed = message(now() + TimeDelta::minutes(4), 1);
    claimed.leased_until = now();
    let mut outbox = outbox_claiming(claimed);
    outbox.expect_mark_sent().times(1).returning(|_, _| Err(anyhow::anyhow!("database or disk is full")));
    let deliverer = deliverer(outbox, accepting_mailer());

    let report = deliverer.deliver_due().await.expect("batch");

    assert_eq!(report.unrecorded, 1);
    assert_eq!(deliverer.record_again().await.expect("nothing to record"), 0, "no write once the lease is over");
}

/// A queued back-channel logout notice for the app `app`.
fn logout_notice(attempts: u32) -> OutboxMessage {
    OutboxMessage {
        id: row_id(),
        payload: Payload::BackchannelLogout(domain::oidc::LogoutNotice {
            client_id: domain::oidc::ClientId::parse("app").expect("id"),
            user_id: domain::UserId::parse("01900000-0000-7000-8000-0000000000aa").expect("id"),
            session_id: domain::SessionId::parse("01900000-0000-7000-8000-0000000000bb").expect("id"),
        }),
        expires: now() + TimeDelta::days(1),
        attempts,
        leased_until: now() + TimeDelta::minutes(2),
    }
}

/// The app `app`, registered for back-channel logout (or not), its ID tokens signed with ES256.
fn clients_with(logout_uri: Option<&str>) -> MockClientStore {
    let uri = logout_uri.map(|uri| url::Url::parse(uri).expect("url"));
    let mut clients = MockClientStore::new();
    clients.expect_find_client().returning(move |id| {
        Ok((id.as_str() == "app").then(|| domain::oidc::Client {
            id: id.clone(),
            name: "App".to_owned(),
            kind: domain::oidc::ClientKind::Confidential,
            secret_hash: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
            backchannel_logout_uri: uri.clone(),
            id_token_algorithm: domain::oidc::SigningAlgorithm::Es256,
            from_config: false,
            created_at: now(),
        }))
    });
    clients
}

fn notifying_deliverer(
    outbox: MockOutbox,
    clients: MockClientStore,
    signer: MockTokenSigner,
    sender: MockWebhookSender,
) -> Deliverer {
    let logout = BackchannelLogout::new(Arc::new(clients), Arc::new(signer), "https://id.example.com".to_owned());
    deliverer(outbox, MockMailer::new()).with_app_notices(Arc::new(logout), Arc::new(sender))
}

#[tokio::test]
async fn a_logout_notice_is_signed_when_it_is_sent_and_posted_to_the_apps_uri() {
    let mut outbox = outbox_claiming(logout_notice(1));
    outbox
        .expect_mark_sent()
        .withf(|sent, _| sent.len() == 1 && sent[0].provider_message_id.as_deref() == Some("HTTP 200"))
        .times(1)
        .returning(|_, _| Ok(()));
    let mut signer = MockTokenSigner::new();
    signer
        .expect_sign_logout_token()
        .withf(|claims, alg| {
            claims.iss == "https://id.example.com"
                && claims.aud == "app"
                && claims.sub == "01900000-0000-7000-8000-0000000000aa"
                && claims.sid == "01900000-0000-7000-8000-0000000000bb"
                && claims.iat == now().timestamp()
                && claims.exp == now().timestamp() + 120
                && claims.jti.len() == 32
                && *alg == domain::oidc::SigningAlgorithm::Es256
        })
        .times(1)
        .returning(|_, _| Ok("h.p.s".to_owned()));
    let mut sender = MockWebhookSender::new();
    sender
        .expect_post()
        .withf(|post| {
            post.url.as_str() == "https://app.example.com/bc"
                && post.content_type == "application/x-www-form-urlencoded"
                && post.body == b"logout_token=h.p.s"
        })
        .times(1)
        .returning(|_| Ok(200));

    let report = notifying_deliverer(outbox, clients_with(Some("https://app.example.com/bc")), signer, sender)
        .deliver_due()
        .await
        .expect("batch runs");

    assert_eq!((report.claimed, report.sent), (1, 1));
}

#[tokio::test]
async fn a_logout_notice_for_an_app_no_longer_registered_for_it_is_dropped_unsent() {
    for clients in [clients_with(None), {
        let mut gone = MockClientStore::new();
        gone.expect_find_client().returning(|_| Ok(None));
        gone
    }] {
        let mut outbox = outbox_claiming(logout_notice(1));
        outbox
            .expect_mark_final()
            .withf(|_, state, reason, _| *state == DeliveryState::Dropped && reason.contains("no longer registered"))
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        let mut signer = MockTokenSigner::new();
        signer.expect_sign_logout_token().never();
        let mut sender = MockWebhookSender::new();
        sender.expect_post().never();

        let report = notifying_deliverer(outbox, clients, signer, sender).deliver_due().await.expect("batch runs");

        assert_eq!(report.dropped, 1);
    }
}

#[tokio::test]
async fn an_app_that_is_down_gets_the_notice_again_later_and_one_that_refuses_it_does_not() {
    let mut outbox = outbox_claiming(logout_notice(1));
    outbox
        .expect_mark_retry()
        .withf(|_, next, reason, _| *next >= now() + TimeDelta::seconds(30) && reason.contains("503"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut signer = MockTokenSigner::new();
    signer.expect_sign_logout_token().returning(|_, _| Ok("h.p.s".to_owned()));
    let mut sender = MockWebhookSender::new();
    sender.expect_post().times(1).returning(|_| {
        Err(PostError::Transient { source: anyhow::anyhow!("HTTP 503"), retry_after: Some(Duration::from_secs(30)) })
    });
    let report = notifying_deliverer(outbox, clients_with(Some("https://app.example.com/bc")), signer, sender)
        .deliver_due()
        .await
        .expect("batch runs");
    assert_eq!(report.retried, 1);

    let mut outbox = outbox_claiming(logout_notice(1));
    outbox
        .expect_mark_final()
        .withf(|_, state, reason, _| *state == DeliveryState::Failed && reason.contains("400"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));
    let mut signer = MockTokenSigner::new();
    signer.expect_sign_logout_token().returning(|_, _| Ok("h.p.s".to_owned()));
    let mut sender = MockWebhookSender::new();
    sender.expect_post().times(1).returning(|_| Err(PostError::Permanent(anyhow::anyhow!("HTTP 400"))));
    let report = notifying_deliverer(outbox, clients_with(Some("https://app.example.com/bc")), signer, sender)
        .deliver_due()
        .await
        .expect("batch runs");
    assert_eq!(report.failed, 1);
}

#[tokio::test]
async fn a_logout_notice_with_the_provider_turned_off_fails_unsent() {
    let mut outbox = outbox_claiming(logout_notice(1));
    outbox
        .expect_mark_final()
        .withf(|_, state, reason, _| *state == DeliveryState::Failed && reason.contains("turned off"))
        .times(1)
        .returning(|_, _, _, _| Ok(()));

    let report = deliverer(outbox, MockMailer::new()).deliver_due().await.expect("batch runs");

    assert_eq!(report.failed, 1);
}
