//! Long-polling pulls and stream reads held by the router: bounded, served at most once per
//! turn (one look per subscription; a pull only when the turn may have given its subscription
//! messages or a tick passed, see `Router::turn`, or at its deadline; a read only when its
//! stream grew), answered empty at their deadline or when
//! the broker drains, forgotten when their client went away.

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
    Nothing,
}

impl State {
    /// Holds a pull or read until something arrives, within the bound on waiters.
    pub(super) fn wait(&mut self, max: usize, wait: Duration, caller: Caller, what: Waiting) {
        if self.waiters.len() >= self.max_waiters {
            let error = Err(BrokerError::TooManyWaiters);
            match what {
                Waiting::Pull { reply, .. } => drop(reply.send(error)),
                Waiting::Read { reply, .. } => drop(reply.send(Err(BrokerError::TooManyWaiters))),
            }
            return;
        }
        self.waiters.push(Waiter {
            max,
            deadline: Instant::now() + wait,
            caller,
            what,
        });
    }

    /// Serves waiting pulls and reads (one look per subscription and turn, and a pull only on
    /// a subscription `look` includes; a read looks only when its stream grew), answers those past their deadline with
    /// nothing, and drops those whose client went away.
    pub(super) fn serve_waiters(
        &mut self,
        tx: &Connection,
        stopping: bool,
        look: &Look,
        pending: &mut Vec<Pending>,
    ) {
        let now = Instant::now();
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
            let mut spans = Vec::new();
            let _ = run_cached(tx, "SAVEPOINT cmd");
            let served = match &w.what {
                // A pull at its deadline looks once more before it is answered empty.
                Waiting::Pull { subscription, .. }
                    if (w.deadline <= now
                        || self.sub(subscription).is_ok_and(|s| look.includes(s.id)))
                        && !exhausted.contains(subscription) =>
                {
                    self.deliver(tx, subscription, w.max, &w.caller, &mut spans)
                        .map(|d| {
                            if d.is_empty() {
                                exhausted.insert(subscription.clone());
                            }
                            Served::Pull(d)
                        })
                }
                Waiting::Read {
                    stream,
                    offset,
                    group,
                    ..
                } if self.stream(stream).is_ok_and(|s| s.next_offset > *offset) => self
                    .read_stream(
                        tx,
                        stream,
                        *offset,
                        w.max,
                        group.as_deref(),
                        &w.caller,
                        &mut spans,
                    )
                    .map(Served::Read),
                _ => Ok(Served::Nothing),
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
                    let end = SystemTime::now();
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

    fn keep_or_expire(&mut self, w: Waiter, now: Instant, pending: &mut Vec<Pending>) {
        if w.deadline <= now {
            pending.push(w.what.nothing());
        } else {
            self.waiters.push(w);
        }
    }
}
