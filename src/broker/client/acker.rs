//! [`Acker`]: acknowledges a subscription's leases from a background thread, in batches, so a
//! consumer hands over a lease and goes on reading instead of waiting for a round trip per
//! message.
//!
//! A batch is the first lease that arrives and every lease that follows it within
//! [`Acker::linger`] (1 ms by default), up to [`MAX_BATCH`]. At one message at a time an ack
//! per message would cost a request, a router turn and a wake-up of every thread on its way,
//! all at the moment the next message is being published; lingering a millisecond lets two or
//! three acks share them. A lease's visibility timeout is far longer than the linger.
//!
//! An ack that fails (transport error, broker refusing) is counted in [`AckCounts::failed`] and
//! logged: its message is delivered again once its lease expires (at-least-once). Closing (or
//! dropping) the Acker sends what is queued and waits for the thread; once a request fails
//! while closing, what is still queued counts as failed instead, so closing waits out at most
//! one request's timeout after the last successful one. [`Acker::ack`] waits while the queue
//! is full: a consumer whose acks cannot keep up slows down instead of filling memory.
//!
//! Invariants: every lease [`Acker::ack`] took is sent in at most one request, in order, or
//! counted as failed unsent; every lease is counted once (acked, unknown or failed) by the
//! time [`Acker::close`] returns.

use super::{Client, ClientError};
use crate::mailbox;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Leases one ack request carries at most.
pub const MAX_BATCH: usize = 1000;
/// Leases queued for the thread at most; [`Acker::ack`] waits while the queue is full.
const QUEUE: usize = 1 << 16;

/// What an [`Acker`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckCounts {
    /// Leases the broker took as acknowledged.
    pub acked: u64,
    /// Leases the broker did not know as current (expired and leased again, settled already,
    /// or not of this subscription; see [`Settled`](crate::broker::proto::types::Settled)).
    pub unknown: u64,
    /// Leases whose ack request failed: their messages come again after their leases expire.
    pub failed: u64,
    /// Ack requests sent.
    pub requests: u64,
}

/// Counters an Acker's thread keeps, and whether the Acker is closing.
#[derive(Default)]
struct Shared {
    acked: AtomicU64,
    unknown: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    closing: AtomicBool,
}

/// Batched acknowledgement of one subscription's leases (see the module doc).
pub struct Acker {
    tx: Mutex<Option<mailbox::Sender<String>>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Acker {
    /// Default wait of a batch for more leases.
    pub const LINGER: Duration = Duration::from_millis(1);

    /// Starts an Acker for `subscription`, whose batches wait up to `linger` for company.
    pub fn start(client: &Client, subscription: &str, linger: Duration) -> std::io::Result<Acker> {
        let (tx, rx) = mailbox::bounded::<String>(QUEUE);
        let shared = Arc::new(Shared::default());
        let (client, sub, sh) = (client.clone(), subscription.to_string(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("broker-acker".into())
            .spawn(move || {
                // `None`: the Acker closed and everything queued was taken.
                while let Some(first) = rx.recv() {
                    let until = Instant::now() + linger;
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        // Past the linger, or the Acker is closing: send what is here.
                        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                            Ok(lease) => batch.push(lease),
                            Err(_) => break,
                        }
                    }
                    if !send(&client, &sub, &batch, &sh) && sh.closing.load(Ordering::Relaxed) {
                        // Closing, and the broker does not answer: count what is queued as
                        // failed rather than make the closer wait out a timeout per batch.
                        // `recv` ends once the closer dropped the sender, so a lease queued by
                        // a last `ack` racing the close is counted too.
                        while rx.recv().is_some() {
                            sh.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        return;
                    }
                }
            })?;
        Ok(Acker {
            tx: Mutex::new(Some(tx)),
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a lease for acknowledgement; waits while [`QUEUE`] leases are queued. Fails once
    /// the Acker is closed.
    pub fn ack(&self, lease_id: String) -> Result<(), ClientError> {
        let closed = || ClientError::Transport("the acker is closed".into());
        // Held only to send (or, closing, to take the sender away).
        let tx = self.tx.lock().map_err(|_| closed())?;
        match tx.as_ref() {
            Some(tx) => tx.send(lease_id).map_err(|_| closed()),
            None => Err(closed()),
        }
    }

    /// What the thread has done so far.
    pub fn counts(&self) -> AckCounts {
        let s = &self.shared;
        AckCounts {
            acked: s.acked.load(Ordering::Relaxed),
            unknown: s.unknown.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            requests: s.requests.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued (the batch after a failed request while closing counts what is
    /// left as failed instead), stops the thread and tells what it did. Later acks fail.
    pub fn close(&self) -> AckCounts {
        self.shared.closing.store(true, Ordering::Relaxed);
        if let Ok(mut tx) = self.tx.lock() {
            drop(tx.take());
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
        self.counts()
    }

    /// [`Acker::close`], taking the Acker.
    pub fn finish(self) -> AckCounts {
        self.close()
    }
}

impl Drop for Acker {
    fn drop(&mut self) {
        self.close();
    }
}

/// Sends one batch; false if the request failed.
fn send(client: &Client, sub: &str, batch: &[String], shared: &Shared) -> bool {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    match client.ack(sub, batch) {
        Ok(settled) => {
            let (acked, unknown) = (settled.settled.len(), settled.unknown.len());
            shared.acked.fetch_add(acked as u64, Ordering::Relaxed);
            shared.unknown.fetch_add(unknown as u64, Ordering::Relaxed);
            if unknown > 0 {
                tracing::debug!(
                    subscription = sub,
                    unknown,
                    "acks of leases no longer current"
                );
            }
            true
        }
        Err(e) => {
            shared
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, subscription = sub, leases = batch.len(), "ack failed; the messages will be delivered again");
            false
        }
    }
}
