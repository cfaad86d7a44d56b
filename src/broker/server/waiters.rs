//! Long-polling pulls and stream reads held by the router: bounded, served at most once per
//! turn (one look per subscription; a pull only when the turn may have given its subscription
//! messages, or at a tick once a lease or a nack delay of it may have run out, see
//! `Router::turn` and `State::due`, or at its deadline; a read only when its stream grew),
//! answered empty at their deadline or when the broker drains, forgotten when their client
//! went away.

use super::db;
use super::router::{run_cached, Look, Pending, State};
use super::traced;
use super::*;
use rusqlite::Connection;
use std::collections::HashSet;
use std::time::Instant;

/// A pull or stream read waiting for messages (long-poll).
pub(super) struct Waiter {
    max: usize,
    deadline: Instant,
    caller: Caller,
    what: Waiting,
}

pub(super) enum Waiting {
    Pull {
        subscription: String,
        reply: Reply<Vec<Delivery>>,
    },
    Read {
        stream: String,
        offset: u64,
        group: Option<String>,
        reply: Reply<StreamBatch>,
    },
}

impl Waiting {
    /// Whether both wait on the same subscription, or both on the same stream.
    fn same_destination(&self, other: &Waiting) -> bool {
        match (self, other) {
            (
                Waiting::Pull {
                    subscription: a, ..
                },
                Waiting::Pull {
                    subscription: b, ..
                },
            ) => a == b,
            (Waiting::Read { stream: a, .. }, Waiting::Read { stream: b, .. }) => a == b,
            _ => false,
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            Waiting::Pull { reply, .. } => reply.is_closed(),
            Waiting::Read { reply, .. } => reply.is_closed(),
        }
    }

    /// The answer when the wait is over with nothing.
    fn nothing(self) -> Pending {
        match self {
            Waiting::Pull { reply, .. } => Pending::new(reply, Vec::new(), Vec::new()),
            Waiting::Read { offset, reply, .. } => Pending::new(
                reply,
                StreamBatch {
                    events: Vec::new(),
                    next_offset: offset,
                },
                Vec::new(),
            ),
        }
    }
}

/// What a waiter's look found.
enum Served {
    Pull(Vec<Delivery>),
    Read(StreamBatch),
}

impl State {
    /// Holds a pull or read until something arrives, within the bounds on waiters: in all,
    /// and on one subscription or stream (so that idle consumers crowding one cannot make every
    /// other one's pulls answer 429).
    pub(super) fn wait(&mut self, max: usize, wait: Duration, caller: Caller, what: Waiting) {
        let here = self
            .waiters
            .iter()
            .filter(|w| w.what.same_destination(&what))
            .count();
        if self.waiters.len() >= self.max_waiters || here >= self.max_waiters_per_destination {
            let error = Err(BrokerError::TooManyWaiters);
            match what {
                Waiting::Pull { reply, .. } => drop(reply.send(error)),
                Waiting::Read { reply, .. } => drop(reply.send(Err(BrokerError::TooManyWaiters))),
            }
            return;
        }
        self.waiters.push(Waiter {
            max,
            deadline: self.clock.instant() + wait,
            caller,
            what,
        });
    }

    /// Serves waiting pulls and reads (one look per subscription and turn; a pull only where
    /// `look` says a message may be deliverable, or at its deadline; a read only when its stream
    /// grew), answers those past their deadline with nothing, and drops those whose client went
    /// away. A waiter that does not look costs no statement.
    pub(super) fn serve_waiters(
        &mut self,
        tx: &Connection,
        stopping: bool,
        look: &Look,
        pending: &mut Vec<Pending>,
    ) {
        let now = self.clock.instant();
        let now_ms = self.clock.unix_ms();
        let waiters = std::mem::take(&mut self.waiters);
        let mut exhausted: HashSet<String> = HashSet::new();
        for w in waiters {
            if w.what.is_closed() {
                continue;
            }
            if stopping {
                pending.push(w.what.nothing());
                continue;
            }
            let looks = match &w.what {
                // A pull at its deadline looks once more before it is answered empty.
                Waiting::Pull { subscription, .. } => {
                    !exhausted.contains(subscription)
                        && self
                            .sub(subscription)
                            .is_ok_and(|s| w.deadline <= now || self.looks(look, s.id, now_ms))
                }
                Waiting::Read { stream, offset, .. } => {
                    self.stream(stream).is_ok_and(|s| s.next_offset > *offset)
                }
            };
            if !looks {
                self.keep_or_expire(w, now, pending);
                continue;
            }
            let mut spans = Vec::new();
            let _ = run_cached(tx, "SAVEPOINT cmd");
            let served = match &w.what {
                Waiting::Pull { subscription, .. } => self
                    .deliver(tx, subscription, w.max, &w.caller, &mut spans)
                    .map(|d| {
                        if d.is_empty() {
                            exhausted.insert(subscription.clone());
                            self.refresh_due(tx, subscription);
                        }
                        Served::Pull(d)
                    }),
                Waiting::Read {
                    stream,
                    offset,
                    group,
                    ..
                } => self
                    .read_stream(
                        tx,
                        stream,
                        *offset,
                        w.max,
                        group.as_deref(),
                        0,
                        &w.caller,
                        &mut spans,
                    )
                    .map(Served::Read),
            };
            match (served, w.what) {
                (Ok(Served::Pull(d)), Waiting::Pull { reply, .. }) if !d.is_empty() => {
                    let _ = run_cached(tx, "RELEASE cmd");
                    pending.push(Pending::new(reply, d, spans));
                }
                (Ok(Served::Read(b)), Waiting::Read { reply, .. }) if !b.events.is_empty() => {
                    let _ = run_cached(tx, "RELEASE cmd");
                    pending.push(Pending::new(reply, b, spans));
                }
                (Ok(_), what) => {
                    let _ = run_cached(tx, "RELEASE cmd");
                    let w = Waiter { what, ..w };
                    self.keep_or_expire(w, now, pending);
                }
                (Err(e), what) => {
                    let _ = tx.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
                    let end = self.clock.now();
                    for span in spans {
                        traced::finish(span, end, Some("rolled back"));
                    }
                    match what {
                        Waiting::Pull { reply, .. } => drop(reply.send(Err(e))),
                        Waiting::Read { reply, .. } => drop(reply.send(Err(e))),
                    }
                }
            }
        }
    }

    /// Whether a pull waiting on subscription `sub` looks in this turn.
    pub(super) fn looks(&self, look: &Look, sub: i64, now_ms: u64) -> bool {
        match look {
            Look::All => true,
            Look::Some { tick, subs } => {
                subs.contains(&sub)
                    || (*tick && self.due.borrow().get(&sub).is_some_and(|&at| at <= now_ms))
            }
        }
    }

    /// A leased or delayed message of `sub` may become deliverable at `at_ms`.
    pub(super) fn note_due(&self, sub: i64, at_ms: u64) {
        let mut due = self.due.borrow_mut();
        let t = due.entry(sub).or_insert(at_ms);
        *t = (*t).min(at_ms);
    }

    /// After a look found nothing deliverable: when the next leased or delayed message of the
    /// subscription becomes deliverable, read from the queue. On an error the entry stays as
    /// it was (never later than the truth).
    fn refresh_due(&self, tx: &Connection, name: &str) {
        let Ok(sub) = self.sub(name).map(|s| s.id) else {
            return;
        };
        match db::next_due(tx, sub) {
            Ok(Some(at)) => {
                self.due.borrow_mut().insert(sub, at);
            }
            Ok(None) => {
                self.due.borrow_mut().remove(&sub);
            }
            Err(e) => tracing::warn!(error = %e, "broker: next due time not read"),
        }
    }

    /// After a failed commit: what the turn's looks read back may not hold, so every
    /// subscription looks at the next tick.
    pub(super) fn forget_due(&self) {
        let mut due = self.due.borrow_mut();
        due.clear();
        due.extend(self.catalogue.subs.values().map(|s| (s.id, 0)));
    }

    /// Answers the waiters that `pick` chooses with 404: what they wait on was deleted.
    pub(super) fn end_waiters(&mut self, pick: impl Fn(&Waiting) -> bool) {
        let (gone, kept) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|w| pick(&w.what));
        self.waiters = kept;
        for w in gone {
            let deleted = || BrokerError::NotFound("deleted while waiting".into());
            match w.what {
                Waiting::Pull { reply, .. } => drop(reply.send(Err(deleted()))),
                Waiting::Read { reply, .. } => drop(reply.send(Err(deleted()))),
            }
        }
    }

    fn keep_or_expire(&mut self, w: Waiter, now: Instant, pending: &mut Vec<Pending>) {
        if w.deadline <= now {
            pending.push(w.what.nothing());
        } else {
            self.waiters.push(w);
        }
    }
}
