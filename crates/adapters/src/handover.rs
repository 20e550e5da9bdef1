//! The in-process hand-over of new sign-in emails to this instance's delivery worker: the
//! [`DeliveryQueue`] port over a tokio channel and a wake-up.
//!
//! A new email is stored leased to this instance ([`ports::NewOutboxMessage::leased_until`]) and
//! handed over here, so the worker sends it at once without claiming it from the database; the
//! stored row is what guarantees delivery if the process dies first. While the worker is backed
//! up (more than `capacity` waiting), new rows are stored due instead, for its batch claims.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ports::{DeliveryQueue, OutboxMessage};
use tokio::sync::{mpsc, Notify};

/// The sending side: what the sign-in use case holds as its [`DeliveryQueue`].
pub struct Handover {
    sender: mpsc::UnboundedSender<OutboxMessage>,
    /// Messages handed over and not yet taken by the worker.
    waiting: Arc<AtomicUsize>,
    capacity: usize,
    lease: TimeDelta,
    wake: Arc<Notify>,
}

/// The worker's side.
pub struct HandedOver {
    receiver: mpsc::UnboundedReceiver<OutboxMessage>,
    waiting: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

/// A hand-over that leases new rows for `lease` while fewer than `capacity` messages wait.
///
/// The channel itself is unbounded but never holds much more than `capacity`: past it new rows
/// are stored due instead, so only the requests in flight at that moment overshoot it.
pub fn handover(capacity: usize, lease: TimeDelta) -> (Arc<Handover>, HandedOver) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let waiting = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(Notify::new());
    let handover = Handover { sender, waiting: Arc::clone(&waiting), capacity, lease, wake: Arc::clone(&wake) };
    (Arc::new(handover), HandedOver { receiver, waiting, wake })
}

impl DeliveryQueue for Handover {
    fn lease_for_new(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        (self.waiting.load(Ordering::Relaxed) < self.capacity && !self.sender.is_closed()).then(|| now + self.lease)
    }

    fn hand_over(&self, message: OutboxMessage) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        if self.sender.send(message).is_err() {
            // No worker any more (shutting down): the row's lease runs out and the next run
            // claims it.
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn wake(&self) {
        self.wake.notify_one();
    }
}

impl HandedOver {
    /// Waits for handed-over messages and moves up to `limit` of them into `batch`; 0 when no
    /// sender is left.
    pub async fn receive(&mut self, batch: &mut Vec<OutboxMessage>, limit: usize) -> usize {
        let received = self.receiver.recv_many(batch, limit).await;
        self.waiting.fetch_sub(received, Ordering::Relaxed);
        received
    }

    /// The worker's wake-ups, to wait on beside [`HandedOver::receive`].
    pub fn wakes(&self) -> Wakes {
        Wakes(Arc::clone(&self.wake))
    }

    /// Takes every message waiting now, without waiting for more: for tests that run delivery
    /// by hand instead of the worker loop.
    pub fn drain(&mut self) -> Vec<OutboxMessage> {
        let mut messages = Vec::new();
        while let Ok(message) = self.receiver.try_recv() {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            messages.push(message);
        }
        messages
    }
}

/// Wake-ups of the delivery worker, asking it to claim due rows.
#[derive(Clone, Debug)]
pub struct Wakes(Arc<Notify>);

impl Wakes {
    /// Resolves when the worker is woken (a wake while nobody waited is kept for the next call).
    pub async fn woken(&self) {
        self.0.notified().await;
    }

    /// Wakes the worker, as [`DeliveryQueue::wake`] does.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone as _, Utc};
    use domain::{EmailAddress, LinkToken, OutboxId, ServerSecret};
    use ports::{DeliveryQueue as _, OutboxMessage};

    use super::handover;

    fn message() -> OutboxMessage {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).single().expect("valid date");
        OutboxMessage {
            id: OutboxId::parse("01900000-0000-7000-8000-000000000001").expect("an id"),
            payload: ports::Payload::Email(ports::QueuedEmail {
                recipient: EmailAddress::parse("a@example.com").expect("valid"),
                link_token_hash: LinkToken::from_random_bytes([1; 32]).hash(&ServerSecret::new(*b"handover")),
                kind: ports::EmailKind::SignIn,
                lang: "en".to_owned(),
                sealed_body: vec![0; 40],
            }),
            expires: now + TimeDelta::minutes(10),
            attempts: 1,
            leased_until: now + TimeDelta::minutes(2),
        }
    }

    #[test]
    fn the_handover_leases_new_rows_only_while_it_has_room() {
        let now = Utc::now();
        let (queue, mut inbox) = handover(2, TimeDelta::minutes(2));

        assert_eq!(queue.lease_for_new(now), Some(now + TimeDelta::minutes(2)));
        queue.hand_over(message());
        queue.hand_over(message());
        let when_full = queue.lease_for_new(now);
        let taken = inbox.drain();

        assert_eq!(when_full, None, "two waiting fill a queue of two: the next row is stored due");
        assert_eq!(taken.len(), 2);
        assert!(queue.lease_for_new(now).is_some(), "room again once the worker took them");
        drop(inbox);
        assert_eq!(queue.lease_for_new(now), None, "no worker: nothing is leased to it");
    }

    #[tokio::test]
    async fn a_wake_nobody_waited_for_is_kept_for_the_worker() {
        let (queue, inbox) = handover(2, TimeDelta::minutes(2));

        queue.wake();

        // Resolves at once: the wake was remembered. (Bounded, so that a regression fails
        // the test instead of hanging the suite.)
        tokio::time::timeout(std::time::Duration::from_secs(10), inbox.wakes().woken())
            .await
            .expect("the remembered wake resolves at once");
    }
}
