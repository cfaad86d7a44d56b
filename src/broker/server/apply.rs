//! The write commands inside the turn's transaction, one `apply` per command kind. The turn
//! calls [`State::write`] for each: it takes a savepoint, lets the command apply itself, and
//! releases the savepoint, or rolls it back when the command failed (which answers its caller
//! at once). A successful command's answer and spans wait in a [`Pending`] until the COMMIT.

use super::command::{
    GroupCommit, Publish, PublishBatch, Pull, Request, Settlement, StreamPublish, StreamRead,
};
use super::router::{run_cached, Pending, State};
use super::traced::{self, BrokerSpan, UNKNOWN_SERVICE};
use super::waiters::Waiting;
use super::*;
use rusqlite::Connection;

/// What applying a command left to do after the commit: an answer (none for a pull or read
/// that waits), or an error (already answered) that rolls its savepoint back.
type Outcome = Result<Option<Pending>, BrokerError>;

/// Holds the answer of a successful command until the commit; answers an error at once (and
/// returns it, so the command's savepoint is rolled back).
fn answer<T: Send + 'static>(
    reply: Reply<T>,
    result: Result<T, BrokerError>,
    spans: &mut Vec<BrokerSpan>,
) -> Outcome {
    match result {
        Ok(value) => Ok(Some(Pending::new(reply, value, std::mem::take(spans)))),
        Err(e) => {
            let _ = reply.send(Err(e));
            Err(BrokerError::Closed)
        }
    }
}

impl State {
    /// Applies one write command inside a savepoint: on error it alone is rolled back and
    /// answered at once.
    pub(super) fn write(&mut self, tx: &Connection, cmd: Command, pending: &mut Vec<Pending>) {
        if let Err(e) = run_cached(tx, "SAVEPOINT cmd") {
            if let Some(suppressed) = crate::lograte::ERRORS.allow("broker.savepoint") {
                tracing::error!(error = %e, suppressed, "broker savepoint failed");
            }
        }
        let mut spans = Vec::new();
        let outcome = match cmd {
            Command::Publish(c) => c.apply(self, tx, &mut spans, pending),
            Command::PublishBatch(c) => c.apply(self, tx, &mut spans, pending),
            Command::Request(c) => c.apply(self, tx, &mut spans),
            Command::Pull(c) => c.apply(self, tx, &mut spans),
            Command::Settle(c) => c.apply(self, tx, &mut spans),
            Command::StreamPublish(c) => c.apply(self, tx, &mut spans),
            Command::StreamRead(c) => c.apply(self, tx, &mut spans),
            Command::Commit(c) => c.apply(self, tx, &mut spans),
            _ => Ok(None),
        };
        match outcome {
            Ok(p) => {
                let _ = run_cached(tx, "RELEASE cmd");
                pending.extend(p);
            }
            Err(_) => {
                let _ = tx.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
                let end = self.clock.now();
                for span in spans {
                    traced::finish(span, end, Some("rolled back"));
                }
            }
        }
    }
}

impl Publish {
    /// A topic publish; when it is the reply to a waiting request, that request's answer too.
    fn apply(
        self,
        s: &mut State,
        tx: &Connection,
        spans: &mut Vec<BrokerSpan>,
        pending: &mut Vec<Pending>,
    ) -> Outcome {
        let result = s.publish(
            tx,
            &self.topic,
            &self.event,
            &self.caller,
            self.started,
            spans,
        );
        if let Ok(p) = &result {
            pending.extend(s.match_reply(&self.topic, &self.event, p));
        }
        answer(self.reply, result, spans)
    }
}

impl PublishBatch {
    fn apply(
        self,
        s: &mut State,
        tx: &Connection,
        spans: &mut Vec<BrokerSpan>,
        pending: &mut Vec<Pending>,
    ) -> Outcome {
        let result = s.publish_batch(
            tx,
            &self.target,
            &self.events,
            &self.caller,
            self.started,
            spans,
        );
        if let (Ok(published), BatchTarget::Topic(topic)) = (&result, &self.target) {
            for (event, p) in self.events.iter().zip(published) {
                pending.extend(s.match_reply(topic, event, p));
            }
        }
        answer(self.reply, result, spans)
    }
}

impl Request {
    /// Publishes the request; its answer comes with the reply (or the timeout), and only its
    /// spans wait for the commit.
    fn apply(self, s: &mut State, tx: &Connection, spans: &mut Vec<BrokerSpan>) -> Outcome {
        let req = super::reply::Request {
            topic: self.topic,
            reply_to: self.reply_to,
            event: self.event,
            caller: self.caller,
            started: self.started,
            timeout: self.timeout,
        };
        s.request(tx, req, self.reply, spans)?;
        Ok(Some(Pending {
            answer: Box::new(|_| {}),
            spans: std::mem::take(spans),
        }))
    }
}

impl Pull {
    /// Leases what is due; with nothing due, waits (long-poll) unless it may not.
    fn apply(self, s: &mut State, tx: &Connection, spans: &mut Vec<BrokerSpan>) -> Outcome {
        if s.catalogue.subs.contains_key(&self.subscription) {
            let service = self.caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
            let now_ms = s.clock.unix_ms();
            s.consumers.note(&self.subscription, service, now_ms);
        }
        match s.deliver(tx, &self.subscription, self.max, &self.caller, spans) {
            Ok(d) if d.is_empty() && !self.wait.is_zero() && !s.draining => {
                let what = Waiting::Pull {
                    subscription: self.subscription,
                    reply: self.reply,
                };
                s.wait(self.max, self.wait, self.caller, what);
                Ok(None)
            }
            result => answer(self.reply, result, spans),
        }
    }
}

impl Settlement {
    fn apply(self, s: &mut State, tx: &Connection, spans: &mut Vec<BrokerSpan>) -> Outcome {
        let result = s.settle(
            tx,
            &self.subscription,
            &self.lease_ids,
            self.action,
            &self.caller,
            self.started,
            spans,
        );
        answer(self.reply, result, spans)
    }
}

impl StreamPublish {
    fn apply(self, s: &mut State, tx: &Connection, spans: &mut Vec<BrokerSpan>) -> Outcome {
        let result = s.stream_publish(
            tx,
            &self.stream,
            &self.event,
            &self.caller,
            self.started,
            spans,
        );
        answer(self.reply, result, spans)
    }
}

impl StreamRead {
    /// Reads from where `from` resolves; at the end of the stream, waits (long-poll) unless it
    /// may not.
    fn apply(self, s: &mut State, tx: &Connection, spans: &mut Vec<BrokerSpan>) -> Outcome {
        let group = self.group.as_deref();
        if s.catalogue.streams.contains_key(&self.stream) {
            let service = self.caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
            let now_ms = s.clock.unix_ms();
            s.consumers.note(&self.stream, service, now_ms);
        }
        let read = s
            .resolve(tx, &self.stream, self.from, group)
            .and_then(|offset| {
                let replay_below = s.replay_below(tx, &self.stream, self.from, group)?;
                s.read_stream(
                    tx,
                    &self.stream,
                    offset,
                    self.max,
                    group,
                    replay_below,
                    &self.caller,
                    spans,
                )
            });
        match read {
            Ok(b) if b.events.is_empty() && !self.wait.is_zero() && !s.draining => {
                let what = Waiting::Read {
                    stream: self.stream,
                    offset: b.next_offset,
                    group: self.group,
                    reply: self.reply,
                };
                s.wait(self.max, self.wait, self.caller, what);
                Ok(None)
            }
            result => answer(self.reply, result, spans),
        }
    }
}

impl GroupCommit {
    fn apply(self, s: &mut State, tx: &Connection, spans: &mut Vec<BrokerSpan>) -> Outcome {
        let result = s.commit(
            tx,
            &self.stream,
            &self.group,
            self.offset,
            &self.caller,
            spans,
        );
        answer(self.reply, result, spans)
    }
}

impl State {
    /// Publishes every event of a batch; the first failure fails the batch (its savepoint is
    /// rolled back). An event's own `traceparent` extension wins over the request's header.
    fn publish_batch(
        &mut self,
        tx: &Connection,
        target: &BatchTarget,
        events: &[Event],
        caller: &Caller,
        started: SystemTime,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Vec<Published>, BrokerError> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            let own;
            let caller = match event.str_attr("traceparent") {
                Some(tp) => {
                    own = Caller {
                        service: caller.service.clone(),
                        trace: TraceContext {
                            traceparent: Some(tp.to_string()),
                            tracestate: event.str_attr("tracestate").map(str::to_string),
                        },
                    };
                    &own
                }
                None => caller,
            };
            out.push(match target {
                BatchTarget::Topic(t) => self.publish(tx, t, event, caller, started, spans)?,
                BatchTarget::Stream(s) => {
                    self.stream_publish(tx, s, event, caller, started, spans)?
                }
            });
        }
        Ok(out)
    }
}
