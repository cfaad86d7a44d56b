//! The single owner of broker state. One thread drains a bounded command channel; each turn
//! takes every queued command (group commit), applies the writes in one SQLite transaction
//! (a savepoint per command, so one failing command fails alone), commits, and only then
//! answers and ends the spans. Long-polling pulls wait here, in a bounded list, and look for
//! messages after the commands of a turn that could have made one deliverable on their
//! subscription (a publish, a request, a nack, a redrive), on a tick ([`TICK`]) once a lease
//! or a nack delay of their subscription may have run out, and at their deadline.
//!
//! Delivery state machine of a queue row (one per message and subscription):
//!
//! ```text
//! publish ─> ready ──pull──> leased ──ack──> (removed; the message goes with its last row)
//!              ^               │ nack, or lease expiry (seen at the next pull)
//!              └───────────────┘
//! leased with attempts == max_attempts, then nack or expiry ──> dead (dead-letter queue)
//! ```

use super::clock::Clock;
pub use super::command::{BatchTarget, Command};
use super::db::{self, SubRow};
use super::traced::{self, BrokerSpan, Tracer};
use super::waiters::Waiter;
use super::*;
use crate::mailbox::{Receiver, RecvTimeoutError};
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// How often the router finishes a WAL checkpoint. Finishing one syncs the WAL, copies what
/// the checkpointer thread has not, syncs the database file, and the next commit syncs the
/// WAL's new header: three waits for the disk (about 1.5 to 8 ms here) that every message in
/// flight sits out. Every 250 ms that was about one in seven of the slowest 1% of messages at
/// one in flight. The price is a longer WAL between restarts: 84 MiB at most in the
/// benchmark's heaviest cell (1 KiB messages, 1000 in flight), against 10 MiB every 250 ms.
/// Readers do not pay for it (SQLite looks up only frames not yet copied).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// Commands applied in one transaction at most.
const MAX_BATCH: usize = 512;
/// How often stream retention runs.
const EXPIRY_EVERY: Duration = Duration::from_secs(1);
/// How often waiting pulls look again for expired leases and elapsed nack delays.
const TICK: Duration = Duration::from_millis(50);

/// Runs a parameterless statement through the statement cache (a savepoint is taken for every
/// command: parsing it each time costs more than the insert it protects).
pub(super) fn run_cached(tx: &Connection, sql: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// An answer held until the transaction commits, with the spans it ends.
pub(super) struct Pending {
    pub(super) answer: Box<dyn FnOnce(Option<BrokerError>) + Send>,
    pub(super) spans: Vec<BrokerSpan>,
}

impl Pending {
    pub(super) fn new<T: Send + 'static>(
        reply: Reply<T>,
        value: T,
        spans: Vec<BrokerSpan>,
    ) -> Pending {
        Pending {
            answer: Box::new(move |failed| {
                let _ = reply.send(match failed {
                    None => Ok(value),
                    Some(e) => Err(e),
                });
            }),
            spans,
        }
    }
}

/// A topic's subscriptions: ids and filters.
pub(super) type TopicSubs = Vec<(i64, Option<Filter>)>;

/// Topics and subscriptions, in memory (a copy of the tables, written through).
#[derive(Default)]
pub(super) struct Catalogue {
    /// Topic name -> (id, subscription ids).
    pub(super) topics: HashMap<String, (i64, TopicSubs)>,
    pub(super) subs: HashMap<String, SubRow>,
    pub(super) streams: HashMap<String, super::stream_db::StreamRow>,
}

pub struct Router {
    conn: Connection,
    rx: Receiver<Command>,
    state: State,
}

/// What the router owns besides its connection.
pub(super) struct State {
    pub(super) tracer: Tracer,
    /// The time of leases, delays, deadlines and ticks.
    pub(super) clock: Clock,
    pub(super) catalogue: Catalogue,
    pub(super) waiters: Vec<Waiter>,
    pub(super) max_waiters: usize,
    /// Waiters on one subscription (or one stream) at most.
    pub(super) max_waiters_per_destination: usize,
    pub(super) draining: bool,
    last_expiry: Instant,
    /// When waiting pulls last looked for messages (see `turn`).
    last_look: Instant,
    /// Requests waiting for their reply, by correlation id.
    pub(super) requests: HashMap<String, super::reply::Requester>,
    /// Per subscription id, the earliest time (unix ms) a leased or nacked-with-delay message
    /// may become deliverable again; none: no such message. Never later than the truth (set
    /// at each lease and delay, read back from the queue after a look finds nothing), so a
    /// tick looks only where something may be due: an idle subscription's waiting pull costs
    /// the router nothing. A `RefCell`: leases are taken under a shared borrow of the state.
    pub(super) due: std::cell::RefCell<HashMap<i64, u64>>,
    /// Who pulled from each subscription or read each stream lately.
    pub(super) consumers: super::observed::Consumers,
}

impl Router {
    pub fn new(
        conn: Connection,
        rx: Receiver<Command>,
        tracer: Tracer,
        (max_waiters, max_waiters_per_destination): (usize, usize),
        clock: Clock,
    ) -> Result<Router, BrokerError> {
        let (topics, subs) = db::load(&conn)?;
        // Leases and delays of a previous run: each subscription looks at the first tick.
        let due = subs.iter().map(|s| (s.id, 0)).collect();
        let mut catalogue = Catalogue::default();
        let mut names = HashMap::new();
        for (id, name) in topics {
            names.insert(id, name.clone());
            catalogue.topics.insert(name, (id, Vec::new()));
        }
        for sub in subs {
            if let Some(t) = catalogue.topics.get_mut(&sub.spec.topic) {
                t.1.push((sub.id, sub.spec.filter.clone()));
            }
            catalogue.subs.insert(sub.spec.name.clone(), sub);
        }
        for s in super::stream_db::load(&conn)? {
            catalogue.streams.insert(s.spec.name.clone(), s);
        }
        Ok(Router {
            conn,
            rx,
            state: State {
                tracer,
                catalogue,
                waiters: Vec::new(),
                max_waiters: max_waiters.max(1),
                max_waiters_per_destination: max_waiters_per_destination.max(1),
                draining: false,
                last_expiry: clock.instant(),
                last_look: clock.instant(),
                requests: HashMap::new(),
                clock,
                due: std::cell::RefCell::new(due),
                consumers: Default::default(),
            },
        })
    }

    pub fn run(mut self) {
        let mut stopping = false;
        let mut last_checkpoint = Instant::now();
        while !stopping {
            let timeout = if !self.state.waiters.is_empty() {
                // The tick counts from the waiting pulls' last look, not from the last turn:
                // turns that do not look (acks) must not put it off.
                TICK.saturating_sub(self.state.clock.since(self.state.last_look))
            } else if !self.state.requests.is_empty() {
                TICK
            } else {
                Duration::from_secs(1)
            };
            let mut batch = Vec::new();
            match self.rx.recv_timeout(timeout) {
                Ok(cmd) => batch.push(cmd),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => stopping = true,
            }
            while batch.len() < MAX_BATCH {
                match self.rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            if batch.iter().any(|c| matches!(c, Command::Shutdown)) {
                stopping = true;
            }
            self.turn(batch, stopping);
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                // The checkpointer thread copies most of the WAL beside the router; only the
                // router, between its transactions, can finish a checkpoint so that its next
                // transaction starts the WAL over instead of growing it. What is left to copy
                // is what was committed since the checkpointer's last pass.
                last_checkpoint = Instant::now();
                let done = self
                    .conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                if let Err(e) = done {
                    if let Some(suppressed) = crate::lograte::ERRORS.allow("broker.checkpoint") {
                        tracing::warn!(error = %e, suppressed, "broker checkpoint failed");
                    }
                }
            }
            if self.state.clock.since(self.state.last_expiry) >= EXPIRY_EVERY {
                self.state.last_expiry = self.state.clock.instant();
                if let Err(e) = self.state.expire_streams(&mut self.conn) {
                    if let Some(suppressed) =
                        crate::lograte::ERRORS.allow("broker.stream_retention")
                    {
                        tracing::warn!(error = %e, suppressed, "stream retention failed");
                    }
                }
            }
        }
        tracing::info!("broker stopped");
    }

    /// One group commit: declarations and reads first (each commits alone), then every write
    /// command and the waiting pulls in one transaction.
    fn turn(&mut self, batch: Vec<Command>, stopping: bool) {
        let mut writes = Vec::with_capacity(batch.len());
        let mut redriven = false;
        for cmd in batch {
            match cmd {
                Command::Publish(_)
                | Command::PublishBatch(_)
                | Command::Pull(_)
                | Command::Settle(_)
                | Command::StreamPublish(_)
                | Command::StreamRead(_)
                | Command::Commit(_)
                | Command::Request(_) => writes.push(cmd),
                Command::Shutdown => {}
                Command::Drain => self.state.draining = true,
                other => {
                    redriven |= matches!(other, Command::Redrive { .. });
                    self.state.admin(&mut self.conn, other)
                }
            }
        }
        if writes.is_empty() && self.state.waiters.is_empty() {
            let stopping = stopping || self.state.draining;
            self.state.expire_requests(stopping);
            return;
        }
        // Only a publish (or a request), a nack or a redrive makes a queued message deliverable
        // at once, and only on the subscriptions it touches: waiting pulls look there (`Look`).
        // Once a tick has passed, pulls also look where a lease or a nack delay may have run
        // out (`State::due`). A waiting pull on another subscription (an idle one, or one whose
        // client left and whose stream has not noticed yet) costs a publish nothing.
        let look = if redriven || stopping {
            Look::All
        } else {
            // Every command counts, even with no pull waiting yet: a pull earlier in the turn
            // may come to wait for a publish later in it.
            let mut subs = HashSet::new();
            for c in &writes {
                self.state.touched(c, &mut subs);
            }
            Look::Some {
                tick: self.state.clock.since(self.state.last_look) >= TICK,
                subs,
            }
        };
        let mut pending = Vec::new();
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                if let Some(suppressed) = crate::lograte::ERRORS.allow("broker.begin") {
                    tracing::error!(error = %e, suppressed, "broker transaction did not start");
                }
                return;
            }
        };
        for cmd in writes {
            self.state.write(&tx, cmd, &mut pending);
        }
        let stopping = stopping || self.state.draining;
        if matches!(look, Look::All | Look::Some { tick: true, .. }) {
            self.state.last_look = self.state.clock.instant();
        }
        self.state.serve_waiters(&tx, stopping, &look, &mut pending);
        self.state.expire_requests(stopping);
        let failed = tx.commit().err().map(|e| e.to_string());
        if let Some(e) = &failed {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("broker.commit") {
                tracing::error!(error = %e, suppressed, "broker commit failed");
            }
            self.state.forget_due();
        }
        let end = self.state.clock.now();
        for p in pending {
            (p.answer)(failed.clone().map(BrokerError::Write));
            for span in p.spans {
                traced::finish(span, end, failed.as_deref());
            }
        }
    }
}

/// Which waiting pulls look for messages in a turn.
pub(super) enum Look {
    /// Every one (a redrive, the broker stops).
    All,
    Some {
        /// A tick passed: pulls look on the subscriptions where a lease or a nack delay may
        /// have run out (`State::due`).
        tick: bool,
        /// And on these subscriptions (ids), to which the turn's publishes and nacks gave
        /// messages.
        subs: HashSet<i64>,
    },
}

impl State {
    /// Adds the subscriptions to which `cmd` can make a message deliverable at once: those of
    /// the topic it publishes to (filters aside), or the one it nacks on.
    fn touched(&self, cmd: &Command, subs: &mut HashSet<i64>) {
        let topic = match cmd {
            Command::Publish(command::Publish { topic, .. })
            | Command::Request(command::Request { topic, .. }) => topic,
            Command::PublishBatch(command::PublishBatch {
                target: BatchTarget::Topic(topic),
                ..
            }) => topic,
            Command::Settle(command::Settlement {
                subscription,
                action: Settle::Nack { .. },
                ..
            }) => {
                if let Ok(sub) = self.sub(subscription) {
                    subs.insert(sub.id);
                }
                return;
            }
            _ => return,
        };
        if let Some((_, targets)) = self.catalogue.topics.get(topic) {
            subs.extend(targets.iter().map(|(id, _)| *id));
        }
    }

    pub(super) fn draining(&self) -> bool {
        self.draining
    }

    pub(super) fn max_waiters(&self) -> usize {
        self.max_waiters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, topic: &str) -> SubscriptionSpec {
        SubscriptionSpec {
            name: name.into(),
            topic: topic.into(),
            visibility_timeout_ms: 1000,
            max_attempts: 3,
            filter: None,
            push: None,
        }
    }

    fn publish(topic: &str) -> Command {
        Command::Publish(command::Publish {
            topic: topic.into(),
            event: super::super::tests::event(1),
            caller: Caller::default(),
            started: SystemTime::now(),
            reply: tokio::sync::oneshot::channel().0,
        })
    }

    fn settle(subscription: &str, action: Settle) -> Command {
        Command::Settle(command::Settlement {
            subscription: subscription.into(),
            lease_ids: vec!["l".into()],
            action,
            caller: Caller::default(),
            started: SystemTime::now(),
            reply: tokio::sync::oneshot::channel().0,
        })
    }

    /// A publish makes its topic's subscriptions look, a nack its own subscription; an ack and
    /// a publish to an unknown topic make none look.
    #[test]
    fn a_turn_looks_only_at_the_subscriptions_its_commands_touch() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = db::open(&dir.path().join("b.db-broker"), "NORMAL").expect("open");
        let a = db::insert_topic(&conn, "a", 0).expect("topic a");
        let b = db::insert_topic(&conn, "b", 0).expect("topic b");
        let a1 = db::insert_subscription(&conn, &spec("a1", "a"), a, 0).expect("a1");
        let a2 = db::insert_subscription(&conn, &spec("a2", "a"), a, 0).expect("a2");
        let b1 = db::insert_subscription(&conn, &spec("b1", "b"), b, 0).expect("b1");
        let (_tx, rx) = crate::mailbox::bounded(4);
        let router = Router::new(conn, rx, Tracer::off(), (4, 4), Clock::system()).expect("router");

        let mut subs = HashSet::new();
        router.state.touched(&publish("a"), &mut subs);
        assert_eq!(subs, HashSet::from([a1, a2]));

        let mut subs = HashSet::new();
        router
            .state
            .touched(&settle("b1", Settle::Nack { delay_ms: 0 }), &mut subs);
        router.state.touched(&settle("a1", Settle::Ack), &mut subs);
        router.state.touched(&publish("nowhere"), &mut subs);
        assert_eq!(subs, HashSet::from([b1]));

        let look = Look::Some { tick: false, subs };
        let state = &router.state;
        assert!(state.looks(&look, b1, 0));
        assert!(!state.looks(&look, a1, 0));
        assert!(state.looks(&Look::All, a1, 0));
        // At a tick, a subscription looks once something of it may be due.
        let tick = Look::Some {
            tick: true,
            subs: HashSet::new(),
        };
        assert!(
            state.looks(&tick, a2, 0),
            "after a start, every subscription looks"
        );
        state.due.borrow_mut().clear();
        assert!(!state.looks(&tick, a2, 1_000));
        state.note_due(a2, 2_000);
        state.note_due(a2, 1_500);
        assert!(!state.looks(&tick, a2, 1_499));
        assert!(state.looks(&tick, a2, 1_500));
    }
}
