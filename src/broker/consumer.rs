//! A streaming consumer of a subscription: registered once with the router, which leases
//! messages to it as they arrive, one batch at a time, without a command per batch.
//!
//! Flow control is one batch in flight: the router hands a batch only while the consumer is
//! `ready`; the consumer is ready again once it has passed its previous batch on (for SSE, to
//! the response writer). So a slow client slows the leasing instead of buffering in memory,
//! as with a pull per batch, but the router hears from the consumer only when it skipped it:
//! a router turn that found the consumer busy marks it `starved`, and the consumer, becoming
//! ready, nudges the router with one command. Otherwise leasing costs no command at all.
//!
//! The consumer ends when its channel closes: the router drops it when the broker drains or
//! stops; the router forgets it when the consumer is dropped (the client went away).

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the router and the consumer share.
#[derive(Debug)]
pub struct Link {
    /// The consumer has passed its last batch on and takes another.
    ready: AtomicBool,
    /// A router turn found the consumer busy: it may have left messages for it.
    starved: AtomicBool,
}

impl Link {
    fn new() -> Link {
        Link {
            ready: AtomicBool::new(true),
            starved: AtomicBool::new(false),
        }
    }

    /// Router side: whether to lease to the consumer now. A busy consumer is marked starved;
    /// the check after the mark pairs with [`Link::set_ready`] (both SeqCst), so either the
    /// router sees the consumer ready or the consumer sees the mark and nudges.
    pub(super) fn take_turn(&self) -> bool {
        if self.ready.load(Ordering::SeqCst) {
            return true;
        }
        self.starved.store(true, Ordering::SeqCst);
        self.ready.load(Ordering::SeqCst)
    }

    /// Router side: a batch is on its way; the consumer is busy until it has passed it on.
    pub(super) fn handed(&self) {
        self.starved.store(false, Ordering::SeqCst);
        self.ready.store(false, Ordering::SeqCst);
    }

    /// Consumer side: ready for the next batch; true if the router skipped it meanwhile.
    fn set_ready(&self) -> bool {
        self.ready.store(true, Ordering::SeqCst);
        self.starved.swap(false, Ordering::SeqCst)
    }
}

/// Batches of deliveries (or the error that ended them) from the router.
pub type Outlet = tokio::sync::mpsc::Sender<Result<Vec<Delivery>, BrokerError>>;

/// A registered streaming consumer.
pub struct Consumer {
    link: Arc<Link>,
    batches: tokio::sync::mpsc::Receiver<Result<Vec<Delivery>, BrokerError>>,
    broker: Broker,
    /// A batch was returned and the consumer is not yet marked ready again.
    holding: bool,
}

/// What [`Consumer::next`] found.
pub enum Next {
    Batch(Vec<Delivery>),
    /// Nothing arrived within the wait.
    Idle,
    /// The broker drains or stops, or a commit failed: the stream ends (clients reconnect).
    End,
}

impl Consumer {
    /// The next batch, waiting at most `wait`. Calling it says the previous batch was passed
    /// on: the consumer is ready for another.
    pub async fn next(&mut self, wait: Duration) -> Next {
        if std::mem::take(&mut self.holding) && self.link.set_ready() {
            self.broker.nudge();
        }
        match tokio::time::timeout(wait, self.batches.recv()).await {
            Err(_) => Next::Idle,
            Ok(Some(Ok(batch))) => {
                self.holding = true;
                Next::Batch(batch)
            }
            Ok(Some(Err(_)) | None) => Next::End,
        }
    }
}

impl Broker {
    /// Registers a streaming consumer of `subscription` (404 if unknown, 429 past the bound on
    /// waiting pulls and consumers); batches of up to `max` deliveries come as messages
    /// arrive, leased as for a pull.
    pub async fn consume(
        &self,
        subscription: String,
        max: usize,
        caller: Caller,
    ) -> Result<Consumer, BrokerError> {
        let link = Arc::new(Link::new());
        let (outlet, batches) = tokio::sync::mpsc::channel(1);
        let shared = link.clone();
        self.ask(|reply| Command::Consume {
            subscription,
            max: max.clamp(1, MAX_PULL),
            caller,
            link: shared,
            outlet,
            reply,
        })
        .await?;
        Ok(Consumer {
            link,
            batches,
            broker: self.clone(),
            holding: false,
        })
    }

    /// Asks the router for a turn (a consumer it skipped is ready). If the queue is full, the
    /// router is busy and its next turn serves the consumer anyway.
    fn nudge(&self) {
        let _ = self.tx.try_send(Command::Nudge);
    }
}
