//! The development mailer: keeps sent messages in memory for `/dev/mailbox` and logs each link.
//!
//! It never delivers anything, so it is refused by the production profile. Messages are indexed
//! by recipient, so `GET /dev/mailbox?to=...` stays a map lookup with many thousands of
//! messages, and the oldest are dropped past a configured capacity (`mailer.dev.capacity`) so
//! memory stays bounded however many sign-ins are made.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use domain::EmailAddress;
use ports::{Clock, DevMailbox, MailError, MailboxMessage, Mailer, SentReceipt, SignInEmail};
use tokio::sync::watch;

use super::render::EmailRenderer;

/// How many messages the mailbox keeps by default before dropping the oldest.
pub const DEFAULT_CAPACITY: usize = 1000;

/// The in-memory development mailbox and mailer.
pub struct DevMailer {
    renderer: Arc<EmailRenderer>,
    clock: Arc<dyn Clock>,
    inbox: Mutex<Inbox>,
    capacity: usize,
    /// Counts messages "sent"; tests await it instead of polling the mailbox.
    sent: watch::Sender<u64>,
}

/// Messages by sequence number, plus each recipient's sequence numbers in sending order.
#[derive(Default)]
struct Inbox {
    next_seq: u64,
    messages: VecDeque<(u64, MailboxMessage)>,
    by_recipient: HashMap<EmailAddress, VecDeque<u64>>,
}

impl Inbox {
    fn push(&mut self, message: MailboxMessage, capacity: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_recipient.entry(message.to.clone()).or_default().push_back(seq);
        self.messages.push_back((seq, message));
        while self.messages.len() > capacity {
            if let Some((old_seq, old)) = self.messages.pop_front() {
                if let Some(seqs) = self.by_recipient.get_mut(&old.to) {
                    seqs.retain(|s| *s != old_seq);
                    if seqs.is_empty() {
                        self.by_recipient.remove(&old.to);
                    }
                }
            }
        }
    }

    fn get(&self, seq: u64) -> Option<&MailboxMessage> {
        // Sequence numbers are contiguous from the front's, so this is an index, not a search.
        let front = self.messages.front()?.0;
        let index = usize::try_from(seq.checked_sub(front)?).ok()?;
        self.messages.get(index).map(|(_, message)| message)
    }
}

impl DevMailer {
    /// A mailbox that renders with `renderer`, stamps messages with `clock`, and keeps the
    /// newest `capacity` messages (at least one).
    pub fn new(renderer: Arc<EmailRenderer>, clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Self {
            renderer,
            clock,
            inbox: Mutex::new(Inbox::default()),
            capacity: capacity.max(1),
            sent: watch::channel(0).0,
        }
    }

    /// A receiver of the number of messages sent so far, which changes on every message.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sent.subscribe()
    }

    fn inbox(&self) -> std::sync::MutexGuard<'_, Inbox> {
        // A panic while holding the lock cannot leave the inbox half-updated in a way that
        // matters for a development tool, so keep serving rather than poisoning every request.
        self.inbox.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl Mailer for DevMailer {
    async fn send_sign_in_link(&self, email: &SignInEmail, idempotency_key: &str) -> Result<SentReceipt, MailError> {
        let rendered = self.renderer.render(email).map_err(MailError::Permanent)?;
        // Development only: printing the link lets a developer sign in from the terminal.
        tracing::info!(to = %email.to.masked(), link = %email.link, "development mailbox: sign-in link");
        self.inbox().push(
            MailboxMessage {
                to: email.to.clone(),
                subject: rendered.subject,
                html: rendered.html,
                text: rendered.text,
                link: email.link.to_string(),
                code: email.code.clone(),
                sent_at: self.clock.now(),
            },
            self.capacity,
        );
        self.sent.send_modify(|count| *count += 1);
        Ok(SentReceipt { provider_message_id: Some(format!("dev-{idempotency_key}")) })
    }
}

impl DevMailbox for DevMailer {
    fn list(&self, to: Option<&EmailAddress>, limit: usize) -> Vec<MailboxMessage> {
        let inbox = self.inbox();
        match to {
            Some(to) => inbox
                .by_recipient
                .get(to)
                .map(|seqs| seqs.iter().rev().filter_map(|seq| inbox.get(*seq)).take(limit).cloned().collect())
                .unwrap_or_default(),
            None => inbox.messages.iter().rev().take(limit).map(|(_, message)| message.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use domain::EmailAddress;
    use ports::{DevMailbox, Mailer, SignInEmail};
    use url::Url;

    use super::{DevMailer, DEFAULT_CAPACITY as CAPACITY};
    use crate::clock::SystemClock;
    use crate::mail::EmailRenderer;

    fn email_to(address: &str, n: usize) -> SignInEmail {
        SignInEmail {
            to: EmailAddress::parse(address).expect("valid"),
            link: Url::parse(&format!("http://127.0.0.1:3000/api/auth/callback/email?token=t{n}&email=x"))
                .expect("valid"),
            code: Some("0123-WXYZ".to_owned()),
            expires_in_minutes: 10,
            site_name: "magiclink".to_owned(),
            host: "127.0.0.1".to_owned(),
        }
    }

    fn mailer() -> DevMailer {
        DevMailer::new(Arc::new(EmailRenderer::builtin().expect("templates parse")), Arc::new(SystemClock), CAPACITY)
    }

    #[tokio::test]
    async fn lists_newest_first_and_filters_by_recipient() {
        let mailer = mailer();
        for n in 0..5 {
            let to = if n % 2 == 0 { "a@example.com" } else { "b@example.com" };
            mailer.send_sign_in_link(&email_to(to, n), "key").await.expect("sent");
        }
        let a = EmailAddress::parse("a@example.com").expect("valid");

        let for_a: Vec<String> = mailer.list(Some(&a), 10).into_iter().map(|m| m.link).collect();
        let all = mailer.list(None, 2);

        assert_eq!(for_a.len(), 3);
        assert!(for_a[0].contains("token=t4") && for_a[2].contains("token=t0"), "{for_a:?}");
        assert_eq!(all.len(), 2);
        assert!(all[0].link.contains("token=t4") && all[1].link.contains("token=t3"));
        let nobody = EmailAddress::parse("c@example.com").expect("valid");
        assert!(mailer.list(Some(&nobody), 10).is_empty());
    }

    #[tokio::test]
    async fn keeps_at_most_its_capacity_and_its_index_in_step() {
        let mailer = mailer();
        mailer.send_sign_in_link(&email_to("first@example.com", 0), "key").await.expect("sent");
        for n in 1..=CAPACITY {
            mailer.send_sign_in_link(&email_to("bulk@example.com", n), "key").await.expect("sent");
        }
        let first = EmailAddress::parse("first@example.com").expect("valid");
        let bulk = EmailAddress::parse("bulk@example.com").expect("valid");

        assert!(mailer.list(Some(&first), 10).is_empty(), "the oldest message was dropped");
        assert_eq!(mailer.list(None, usize::MAX).len(), CAPACITY);
        let newest = mailer.list(Some(&bulk), 1);
        assert!(newest[0].link.contains(&format!("token=t{CAPACITY}&")));
    }

    #[tokio::test]
    async fn the_rendered_email_has_the_link_in_both_parts_and_escapes_html() {
        let mut email = email_to("a@example.com", 7);
        email.site_name = "<script>alert(1)</script>\r\nBcc: x@example.com".to_owned();
        mailer().send_sign_in_link(&email, "key").await.expect("sent");
        let renderer = EmailRenderer::builtin().expect("templates parse");

        let rendered = renderer.render(&email).expect("renders");

        assert!(rendered.text.contains(email.link.as_str()), "text part has the exact link");
        // Tera escapes `&` and `/` in HTML; browsers decode both back inside attributes.
        let html_unescaped = rendered.html.replace("&#x2F;", "/").replace("&amp;", "&");
        assert!(html_unescaped.contains(email.link.as_str()), "html part has the link");
        assert!(!rendered.html.contains("<script>"), "site name is escaped in HTML");
        assert!(!rendered.subject.contains('\n') && !rendered.subject.contains('\r'), "{:?}", rendered.subject);
        assert!(rendered.html.contains("expires in 10 minutes"));
    }
}
