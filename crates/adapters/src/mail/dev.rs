//! The development mailer: keeps sent messages in memory for `/dev/mailbox` and logs each link.
//!
//! It never delivers anything, so it is refused by the production profile. Messages are indexed
//! by recipient, so `GET /dev/mailbox?to=...` stays a map lookup with many thousands of
//! messages, and the oldest are dropped past a configured capacity (`mailer.dev.capacity`) so
//! memory stays bounded however many sign-ins are made.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use domain::EmailAddress;
use ports::{Clock, DevMailbox, MailError, MailboxMessage, Mailer, OutgoingEmail, SentReceipt};
use tokio::sync::watch;

/// How many messages the mailbox keeps by default before dropping the oldest.
pub const DEFAULT_CAPACITY: usize = 1000;

/// The in-memory development mailbox and mailer.
pub struct DevMailer {
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
    /// A mailbox that stamps messages with `clock` and keeps the newest `capacity` messages
    /// (at least one).
    pub fn new(clock: Arc<dyn Clock>, capacity: usize) -> Self {
        Self { clock, inbox: Mutex::new(Inbox::default()), capacity: capacity.max(1), sent: watch::channel(0).0 }
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
    async fn send(&self, email: &OutgoingEmail, idempotency_key: &str) -> Result<SentReceipt, MailError> {
        let kind = email.content.kind();
        let link = email.content.link().map(url::Url::to_string);
        // Development only: printing the link lets a developer sign in from the terminal.
        tracing::info!(to = %email.to.masked(), kind = kind.as_str(), link = link.as_deref(), "development mailbox: email");
        self.inbox().push(
            MailboxMessage {
                to: email.to.clone(),
                subject: email.rendered.subject.clone(),
                html: email.rendered.html.clone(),
                text: email.rendered.text.clone(),
                kind,
                link,
                code: email.content.code().map(str::to_owned),
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
    use ports::{DevMailbox, EmailContent, EmailKind, Mailer, OutgoingEmail, RenderedEmail};
    use url::Url;

    use super::{DevMailer, DEFAULT_CAPACITY as CAPACITY};
    use crate::clock::SystemClock;

    fn email_to(address: &str, n: usize) -> OutgoingEmail {
        OutgoingEmail {
            to: EmailAddress::parse(address).expect("valid"),
            content: EmailContent::SignIn {
                link: Url::parse(&format!("http://127.0.0.1:3000/api/auth/callback/email?token=t{n}&email=x"))
                    .expect("valid"),
                code: Some("0123-WXYZ".to_owned()),
            },
            rendered: RenderedEmail { subject: format!("email {n}"), html: String::new(), text: String::new() },
        }
    }

    fn mailer() -> DevMailer {
        DevMailer::new(Arc::new(SystemClock), CAPACITY)
    }

    fn links(messages: Vec<ports::MailboxMessage>) -> Vec<String> {
        messages.into_iter().map(|m| m.link.expect("a sign-in email has a link")).collect()
    }

    #[tokio::test]
    async fn lists_newest_first_and_filters_by_recipient() {
        let mailer = mailer();
        for n in 0..5 {
            let to = if n % 2 == 0 { "a@example.com" } else { "b@example.com" };
            mailer.send(&email_to(to, n), "key").await.expect("sent");
        }
        let a = EmailAddress::parse("a@example.com").expect("valid");

        let for_a = links(mailer.list(Some(&a), 10));
        let all = links(mailer.list(None, 2));

        assert_eq!(for_a.len(), 3);
        assert!(for_a[0].contains("token=t4") && for_a[2].contains("token=t0"), "{for_a:?}");
        assert_eq!(all.len(), 2);
        assert!(all[0].contains("token=t4") && all[1].contains("token=t3"));
        let nobody = EmailAddress::parse("c@example.com").expect("valid");
        assert!(mailer.list(Some(&nobody), 10).is_empty());
    }

    #[tokio::test]
    async fn keeps_at_most_its_capacity_and_its_index_in_step() {
        let mailer = mailer();
        mailer.send(&email_to("first@example.com", 0), "key").await.expect("sent");
        for n in 1..=CAPACITY {
            mailer.send(&email_to("bulk@example.com", n), "key").await.expect("sent");
        }
        let first = EmailAddress::parse("first@example.com").expect("valid");
        let bulk = EmailAddress::parse("bulk@example.com").expect("valid");

        assert!(mailer.list(Some(&first), 10).is_empty(), "the oldest message was dropped");
        assert_eq!(mailer.list(None, usize::MAX).len(), CAPACITY);
        let newest = links(mailer.list(Some(&bulk), 1));
        assert!(newest[0].contains(&format!("token=t{CAPACITY}&")));
    }

    #[tokio::test]
    async fn keeps_what_it_was_given_and_the_kind_of_an_email_without_a_link() {
        let mailer = mailer();
        let notice = OutgoingEmail {
            to: EmailAddress::parse("old@example.com").expect("valid"),
            content: EmailContent::AddressChanged {
                new_address: EmailAddress::parse("new@example.com").expect("valid"),
            },
            rendered: RenderedEmail {
                subject: "changed".to_owned(),
                html: "<p>h</p>".to_owned(),
                text: "t".to_owned(),
            },
        };

        mailer.send(&notice, "key").await.expect("sent");

        let kept = mailer.list(None, 1).remove(0);
        assert_eq!((kept.kind, kept.link, kept.code), (EmailKind::AddressChanged, None, None));
        assert_eq!((kept.subject.as_str(), kept.html.as_str(), kept.text.as_str()), ("changed", "<p>h</p>", "t"));
    }
}
