//! Security alerts: emails that tell a person something security-relevant happened to their
//! account, with a link to the account page and what to do if it was not them. Each kind is a
//! setting (`[alerts]`).
//!
//! - A sign-in from a browser not seen on the account before (by the browser summary of the
//!   audit log's successful sign-ins: "Chrome on Linux"). Not on the account's first sign-in,
//!   which has nothing to compare with, and not when the browser sent no `User-Agent`.
//! - The password set or changed; a passkey added.
//!
//! An alert is queued after the change it tells of committed (its own outbox row, sealed like
//! every email): a lost alert never undoes a sign-in, and a failure to queue one is logged,
//! not shown to the person.

use std::sync::Arc;

use chrono::TimeDelta;
use domain::audit::{AuditKind, AuditOutcome, RequestOrigin};
use domain::{LinkTokenHash, SecretRing, SessionId, User};
use url::Url;

use crate::audit::{AuditLog, AuditQuery};
use crate::clock::Clock;
use crate::mailer::{EmailContent, SecurityAlert};
use crate::outbox::{DeliveryQueue, NewOutboxMessage, Outbox};
use crate::random::os_random;

/// How long an alert may wait for delivery before it is dropped: like the address-change
/// notice, long enough to outlast a provider's outage.
const ALERT_LIFETIME: TimeDelta = TimeDelta::days(7);

/// How many of a person's newest events are looked through for an earlier sign-in from the
/// same browser.
const SIGN_INS_LOOKED_AT: u32 = 200;

/// Which alerts are sent, and what they link to.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// "New sign-in from Chrome on Linux" (`alerts.new_sign_in`).
    pub new_sign_in: bool,
    /// "Your password was changed" (`alerts.password_changed`).
    pub password_changed: bool,
    /// "A passkey was added" (`alerts.passkey_added`).
    pub passkey_added: bool,
    /// The account page (`{base_url}{pages.account}`).
    pub account_url: Url,
    /// Seals the queued emails, as every email is sealed.
    pub secrets: SecretRing,
}

/// Queues security alerts.
pub struct Alerts {
    outbox: Arc<dyn Outbox>,
    delivery: Arc<dyn DeliveryQueue>,
    audit: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
    settings: AlertSettings,
}

impl Alerts {
    /// Over the outbox, the worker's queue, the audit log (which browsers signed in before)
    /// and the clock.
    pub fn new(
        outbox: Arc<dyn Outbox>,
        delivery: Arc<dyn DeliveryQueue>,
        audit: Arc<dyn AuditLog>,
        clock: Arc<dyn Clock>,
        settings: AlertSettings,
    ) -> Self {
        Self { outbox, delivery, audit, clock, settings }
    }

    /// After `user` signed in, opening `session_id`, from `origin`: alerts them when the
    /// browser was not seen on their account before.
    ///
    /// # Errors
    /// When the audit log cannot be read or the email stored.
    pub async fn signed_in(&self, user: &User, session_id: &SessionId, origin: &RequestOrigin) -> anyhow::Result<()> {
        let Some(device) = origin.user_agent.as_deref().filter(|_| self.settings.new_sign_in) else { return Ok(()) };
        let query = AuditQuery { user_id: Some(user.id.clone()), limit: SIGN_INS_LOOKED_AT, ..AuditQuery::default() };
        let earlier: Vec<_> = self
            .audit
            .list(&query)
            .await?
            .into_iter()
            .map(|recorded| recorded.event)
            .filter(|event| {
                event.outcome == AuditOutcome::Succeeded
                    && is_sign_in(event.kind)
                    && event.session_id.as_ref() != Some(session_id)
            })
            .collect();
        // The first sign-in has nothing to compare with; a browser seen before is no news.
        if earlier.is_empty() || earlier.iter().any(|event| event.origin.user_agent.as_deref() == Some(device)) {
            return Ok(());
        }
        self.send(user, origin, SecurityAlert::NewSignIn { device: device.to_owned() }).await
    }

    /// After `user`'s password was set or changed.
    ///
    /// # Errors
    /// When the email cannot be stored.
    pub async fn password_changed(&self, user: &User, origin: &RequestOrigin) -> anyhow::Result<()> {
        if !self.settings.password_changed {
            return Ok(());
        }
        self.send(user, origin, SecurityAlert::PasswordChanged).await
    }

    /// After a passkey named `name` was added to `user`'s account.
    ///
    /// # Errors
    /// When the email cannot be stored.
    pub async fn passkey_added(&self, user: &User, name: &str, origin: &RequestOrigin) -> anyhow::Result<()> {
        if !self.settings.passkey_added {
            return Ok(());
        }
        self.send(user, origin, SecurityAlert::PasskeyAdded { name: name.to_owned() }).await
    }

    /// Seals and stores the alert to the account's address, in the page's language, and hands
    /// it to the worker.
    async fn send(&self, user: &User, origin: &RequestOrigin, alert: SecurityAlert) -> anyhow::Result<()> {
        let now = self.clock.now();
        let kind = alert.as_str();
        let content = EmailContent::SecurityAlert { alert, account_url: self.settings.account_url.clone() };
        // No link to bind the seal to: a random id, as for the address-change notice.
        let seal_id = LinkTokenHash::from_bytes(os_random()?);
        let sealed_body = domain::sealed::seal(
            self.settings.secrets.current(),
            seal_id.to_hex().as_bytes(),
            os_random()?,
            content.to_sealed_text().as_bytes(),
        );
        let message = NewOutboxMessage {
            kind: content.kind(),
            lang: origin.lang.clone().unwrap_or_default(),
            recipient: user.email.clone(),
            link_token_hash: seal_id,
            sealed_body,
            expires: now + ALERT_LIFETIME,
            created_at: now,
            leased_until: None,
        };
        self.outbox.enqueue(&message).await?;
        self.delivery.wake();
        tracing::info!(user.id = %user.id.as_str(), alert = kind, "security alert queued");
        Ok(())
    }
}

/// Whether `kind` is a sign-in.
fn is_sign_in(kind: AuditKind) -> bool {
    matches!(
        kind,
        AuditKind::LinkRedeemed | AuditKind::CodeRedeemed | AuditKind::PasswordSignIn | AuditKind::PasskeySignIn
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone as _, Utc};
    use domain::audit::AuditEvent;
    use domain::{EmailAddress, ServerSecret, SessionId, UserId};

    use super::*;
    use crate::audit::{MockAuditLog, RecordedEvent};
    use crate::clock::MockClock;
    use crate::mailer::EmailKind;
    use crate::outbox::{MockDeliveryQueue, MockOutbox};

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
            email_verified: None,
        }
    }

    fn session(byte: u8) -> SessionId {
        SessionId::parse(&format!("01900000-0000-7000-8000-0000000000{byte:02x}")).expect("an id")
    }

    fn from(device: &str) -> RequestOrigin {
        RequestOrigin { user_agent: Some(device.to_owned()), lang: Some("de".to_owned()), ..RequestOrigin::default() }
    }

    /// A successful sign-in of `user()` from `device`, opening session `byte`.
    fn sign_in(device: &str, byte: u8) -> RecordedEvent {
        let event = AuditEvent::new(AuditKind::LinkRedeemed, AuditOutcome::Succeeded, now(), &from(device))
            .of_user(&user().id)
            .in_session(&session(byte));
        RecordedEvent { id: format!("e{byte}"), event }
    }

    /// Alerts over a log holding `history`, expecting `queued` alerts to be stored.
    fn alerts(history: Vec<RecordedEvent>, queued: usize) -> Alerts {
        let mut audit = MockAuditLog::new();
        audit.expect_list().returning(move |query| {
            assert_eq!(query.user_id, Some(user().id), "only the person's own events");
            Ok(history.clone())
        });
        let mut outbox = MockOutbox::new();
        outbox.expect_enqueue().times(queued).returning(|message| {
            assert_eq!((message.kind, message.lang.as_str()), (EmailKind::SecurityAlert, "de"));
            assert_eq!(message.recipient, user().email);
            let opened = domain::sealed::open(
                &ServerSecret::new(*b"test-secret-test-secret-test-sec"),
                message.link_token_hash.to_hex().as_bytes(),
                &message.sealed_body,
            )
            .expect("sealed with the secret");
            let content =
                EmailContent::from_sealed_text(EmailKind::SecurityAlert, std::str::from_utf8(&opened).expect("utf-8"))
                    .expect("an alert");
            assert_eq!(
                content,
                EmailContent::SecurityAlert {
                    alert: SecurityAlert::NewSignIn { device: "Chrome on Linux".to_owned() },
                    account_url: Url::parse("https://auth.example.com/account").expect("URL"),
                }
            );
            Ok(domain::id::Id::parse("01900000-0000-7000-8000-0000000000ff").expect("an id"))
        });
        let mut delivery = MockDeliveryQueue::new();
        delivery.expect_wake().times(queued).return_const(());
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        Alerts::new(
            Arc::new(outbox),
            Arc::new(delivery),
            Arc::new(audit),
            Arc::new(clock),
            AlertSettings {
                new_sign_in: true,
                password_changed: true,
                passkey_added: true,
                account_url: Url::parse("https://auth.example.com/account").expect("URL"),
                secrets: SecretRing::new(ServerSecret::new(*b"test-secret-test-secret-test-sec"), Vec::new()),
            },
        )
    }

    #[tokio::test]
    async fn a_browser_new_to_the_account_is_alerted_once_and_a_first_sign_in_or_a_known_browser_never() {
        // The account's first sign-in: nothing to compare with.
        let first = alerts(vec![sign_in("Chrome on Linux", 1)], 0);
        first.signed_in(&user(), &session(1), &from("Chrome on Linux")).await.expect("checked");
        // Chrome again, after Firefox and Chrome: known.
        let known = alerts(
            vec![sign_in("Chrome on Linux", 3), sign_in("Firefox on Linux", 2), sign_in("Chrome on Linux", 1)],
            0,
        );
        known.signed_in(&user(), &session(3), &from("Chrome on Linux")).await.expect("checked");
        // Chrome for the first time, after Firefox: alerted.
        let new = alerts(vec![sign_in("Chrome on Linux", 2), sign_in("Firefox on Linux", 1)], 1);
        new.signed_in(&user(), &session(2), &from("Chrome on Linux")).await.expect("alerted");
        // A browser that says nothing of itself is not compared.
        let silent = alerts(vec![sign_in("Firefox on Linux", 1)], 0);
        silent.signed_in(&user(), &session(2), &RequestOrigin::default()).await.expect("checked");
    }
}
