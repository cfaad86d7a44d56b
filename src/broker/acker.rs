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
//! logged: its message is delivered again once its lease expires (at-least-once). Dropping the
//! Acker sends what is queued and waits for the thread.
//!
//! Invariants: every lease handed to [`Acker::ack`] is sent in exactly one request, in order;
//! leases of one request belong to the Acker's subscription.

use super::client::{Client, ClientError};
use crate::mailbox::{self, RecvTimeoutError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Leases one ack request carries at most.
pub const MAX_BATCH: usize = 1000;
/// Leases queued for the thread at most; [`Acker::ack`] waits while the queue is full.
const QUEUE: usize = 1 << 16;

/// Counters an Acker's thread keeps.
#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
}

/// What an [`Acker`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckCounts {
    /// Leases the broker took as acknowledged (current leases; see [`super::Settled`]).
    pub acked: u64,
    /// Leases whose ack request failed: their messages come again after their leases expire.
    pub failed: u64,
    /// Ack requests sent.
    pub requests: u64,
}

/// Batched acknowledgement of one subscription's leases (see the module doc).
pub struct Acker {
    tx: Option<mailbox::Sender<String>>,
    counts: Arc<Counts>,
    thread: Option<JoinHandle<()>>,
}

impl Acker {
    /// Default wait of a batch for more leases.
    pub const LINGER: Duration = Duration::from_millis(1);

    /// Starts an Acker for `subscription`, whose batches wait up to `linger` for company.
    pub fn start(client: &Client, subscription: &str, linger: Duration) -> std::io::Result<Acker> {
        let (tx, rx) = mailbox::bounded::<String>(QUEUE);
        let counts = Arc::new(Counts::default());
        let (client, sub, c) = (client.clone(), subscription.to_string(), counts.clone());
        let thread = std::thread::Builder::new()
            .name("broker-acker".into())
            .spawn(move || {
                loop {
                    let first = match rx.recv_timeout(Duration::from_secs(1)) {
                        Ok(lease) => lease,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    let until = Instant::now() + linger;
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        // Past the linger, or the Acker is finishing: send what is here.
                        match rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                            Ok(lease) => batch.push(lease),
                            Err(_) => break,
                        }
                    }
                    send(&client, &sub, &batch, &c);
                }
            })?;
        Ok(Acker {
            tx: Some(tx),
            counts,
            thread: Some(thread),
        })
    }

    /// Queues a lease for acknowledgement. Fails only when the thread has stopped.
    pub fn ack(&self, lease_id: String) -> Result<(), ClientError> {
        let stopped = || ClientError::Transport("the acker has stopped".into());
        match &self.tx {
            Some(tx) => tx.send(lease_id).map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }

    /// What the thread has done so far.
    pub fn counts(&self) -> AckCounts {
        AckCounts {
            acked: self.counts.acked.load(Ordering::Relaxed),
            failed: self.counts.failed.load(Ordering::Relaxed),
            requests: self.counts.requests.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued, stops the thread and tells what it did.
    pub fn finish(mut self) -> AckCounts {
        self.stop();
        self.counts()
    }

    fn stop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Acker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn send(client: &Client, sub: &str, batch: &[String], counts: &Counts) {
    counts.requests.fetch_add(1, Ordering::Relaxed);
    match client.ack(sub, batch) {
        Ok(settled) => {
            counts
                .acked
                .fetch_add(settled.settled.len() as u64, Ordering::Relaxed);
        }
        Err(e) => {
            counts
                .failed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::warn!(error = %e, subscription = sub, leases = batch.len(), "ack failed; the messages will be delivered again");
        }
    }
}
