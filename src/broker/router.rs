//! The single owner of broker state. One thread drains a bounded command channel; each turn
//! takes every queued command (group commit), applies the writes in one SQLite transaction
//! (a savepoint per command, so one failing command fails alone), commits, and only then
//! answers and ends the spans. Long-polling pulls wait here, in a bounded list, and are served
//! at each turn: after the commands of a batch, or on a short tick when nothing arrives
//! (lease expiry, nack delays, deadlines).
//!
//! Delivery state machine of a queue row (one per message and subscription):
//!
//! ```text
//! publish ─> ready ──pull──> leased ──ack──> (removed; the message goes with its last row)
//!              ^               │ nack, or lease expiry (seen at the next pull)
//!              └───────────────┘
//! leased with attempts == max_attempts, then nack or expiry ──> dead (dead-letter queue)
//! ```

use super::db::{self, SubRow};
use super::event::Event;
use super::traced::{self, BrokerSpan, Op, Tracer, UNKNOWN_SERVICE};
use super::*;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// Commands applied in one transaction at most.
const MAX_BATCH: usize = 512;
/// Rows read per query while leasing (bounds the memory of one pull to this many messages
/// plus [`MAX_PULL_BYTES`]).
const DUE_CHUNK: usize = 16;
/// A pull stops leasing once its messages hold this many bytes (it always gets one).
const MAX_PULL_BYTES: usize = 8 * 1024 * 1024;
/// How often waiting pulls look again for expired leases and elapsed nack delays.
const TICK: Duration = Duration::from_millis(50);

pub enum Command {
    DeclareTopic {
        name: String,
        reply: Reply<Declared>,
    },
    DeclareSubscription {
        spec: SubscriptionSpec,
        reply: Reply<Declared>,
    },
    Topics {
        reply: Reply<Vec<TopicInfo>>,
    },
    Subscriptions {
        reply: Reply<Vec<SubscriptionInfo>>,
    },
    DeadLetters {
        subscription: String,
        max: usize,
        reply: Reply<Vec<DeadLetter>>,
    },
    Publish {
        topic: String,
        event: Event,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Published>,
    },
    Pull {
        subscription: String,
        max: usize,
        wait: Duration,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Vec<Delivery>>,
    },
    Settle {
        subscription: String,
        lease_ids: Vec<String>,
        action: Settle,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Settled>,
    },
    /// Shutdown begins: answer waiting pulls now and let new ones not wait.
    Drain,
    Shutdown,
}

/// A pull waiting for messages (long-poll).
struct Waiter {
    subscription: String,
    max: usize,
    deadline: Instant,
    caller: Caller,
    reply: Reply<Vec<Delivery>>,
}

/// An answer held until the transaction commits, with the spans it ends.
struct Pending {
    answer: Box<dyn FnOnce(Option<BrokerError>) + Send>,
    spans: Vec<BrokerSpan>,
}

impl Pending {
    fn new<T: Send + 'static>(reply: Reply<T>, value: T, spans: Vec<BrokerSpan>) -> Pending {
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

/// Topics and subscriptions, in memory (a copy of the tables, written through).
#[derive(Default)]
struct Catalogue {
    /// Topic name -> (id, subscription ids).
    topics: HashMap<String, (i64, Vec<i64>)>,
    subs: HashMap<String, SubRow>,
}

pub struct Router {
    conn: Connection,
    rx: Receiver<Command>,
    state: State,
}

struct State {
    tracer: Tracer,
    catalogue: Catalogue,
    waiters: Vec<Waiter>,
    max_waiters: usize,
    draining: bool,
}

impl Router {
    pub fn new(
        conn: Connection,
        rx: Receiver<Command>,
        tracer: Tracer,
        max_waiters: usize,
    ) -> Result<Router, BrokerError> {
        let (topics, subs) = db::load(&conn)?;
        let mut catalogue = Catalogue::default();
        let mut names = HashMap::new();
        for (id, name) in topics {
            names.insert(id, name.clone());
            catalogue.topics.insert(name, (id, Vec::new()));
        }
        for sub in subs {
            if let Some(t) = catalogue.topics.get_mut(&sub.spec.topic) {
                t.1.push(sub.id);
            }
            catalogue.subs.insert(sub.spec.name.clone(), sub);
        }
        Ok(Router {
            conn,
            rx,
            state: State {
                tracer,
                catalogue,
                waiters: Vec::new(),
                max_waiters: max_waiters.max(1),
                draining: false,
            },
        })
    }

    pub fn run(mut self) {
        let mut stopping = false;
        while !stopping {
            let timeout = if self.state.waiters.is_empty() {
                Duration::from_secs(1)
            } else {
                TICK
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
        }
        tracing::info!("broker stopped");
    }

    /// One group commit: declarations and reads first (each commits alone), then every write
    /// command and the waiting pulls in one transaction.
    fn turn(&mut self, batch: Vec<Command>, stopping: bool) {
        let mut writes = Vec::with_capacity(batch.len());
        for cmd in batch {
            match cmd {
                Command::Publish { .. } | Command::Pull { .. } | Command::Settle { .. } => {
                    writes.push(cmd)
                }
                Command::Shutdown => {}
                Command::Drain => self.state.draining = true,
                other => self.state.admin(&mut self.conn, other),
            }
        }
        if writes.is_empty() && self.state.waiters.is_empty() {
            return;
        }
        let mut pending = Vec::new();
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "broker transaction did not start");
                return;
            }
        };
        for cmd in writes {
            self.state.write(&tx, cmd, &mut pending);
        }
        let stopping = stopping || self.state.draining;
        self.state.serve_waiters(&tx, stopping, &mut pending);
        let failed = tx.commit().err().map(|e| e.to_string());
        if let Some(e) = &failed {
            tracing::error!(error = %e, "broker commit failed");
        }
        let end = SystemTime::now();
        for p in pending {
            (p.answer)(failed.clone().map(BrokerError::Write));
            for span in p.spans {
                traced::finish(span, end, failed.as_deref());
            }
        }
    }
}

impl State {
    fn admin(&mut self, conn: &mut Connection, cmd: Command) {
        match cmd {
            Command::DeclareTopic { name, reply } => {
                let _ = reply.send(self.declare_topic(conn, name));
            }
            Command::DeclareSubscription { spec, reply } => {
                let _ = reply.send(self.declare_subscription(conn, spec));
            }
            Command::Topics { reply } => {
                let _ = reply.send(Ok(self.topics()));
            }
            Command::Subscriptions { reply } => {
                let _ = reply.send(self.subscriptions(conn));
            }
            Command::DeadLetters {
                subscription,
                max,
                reply,
            } => {
                let _ = reply.send(self.dead_letters(conn, &subscription, max));
            }
            _ => {}
        }
    }

    fn declare_topic(
        &mut self,
        conn: &mut Connection,
        name: String,
    ) -> Result<Declared, BrokerError> {
        validate_name(&name)?;
        if self.catalogue.topics.contains_key(&name) {
            return Ok(Declared { created: false });
        }
        if self.catalogue.subs.contains_key(&name) {
            return Err(BrokerError::Conflict(format!(
                "{name:?} is a subscription: topics and subscriptions share one namespace"
            )));
        }
        let tx = conn.transaction()?;
        let id = db::insert_topic(&tx, &name, unix_nanos(SystemTime::now()))?;
        tx.commit()?;
        self.catalogue.topics.insert(name, (id, Vec::new()));
        Ok(Declared { created: true })
    }

    fn declare_subscription(
        &mut self,
        conn: &mut Connection,
        spec: SubscriptionSpec,
    ) -> Result<Declared, BrokerError> {
        validate_name(&spec.name)?;
        if spec.max_attempts == 0 || spec.visibility_timeout_ms == 0 {
            return Err(BrokerError::BadRequest(
                "max_attempts and visibility_timeout_ms must be at least 1".into(),
            ));
        }
        if let Some(existing) = self.catalogue.subs.get(&spec.name) {
            return if existing.spec == spec {
                Ok(Declared { created: false })
            } else {
                Err(BrokerError::Conflict(format!(
                    "subscription {:?} exists with other settings: {}",
                    spec.name,
                    serde_json::to_string(&existing.spec).unwrap_or_default()
                )))
            };
        }
        if self.catalogue.topics.contains_key(&spec.name) {
            return Err(BrokerError::Conflict(format!(
                "{:?} is a topic: topics and subscriptions share one namespace",
                spec.name
            )));
        }
        let Some((topic_id, _)) = self.catalogue.topics.get(&spec.topic) else {
            return Err(BrokerError::NotFound(format!("no topic {:?}", spec.topic)));
        };
        let tx = conn.transaction()?;
        let id = db::insert_subscription(&tx, &spec, *topic_id, unix_nanos(SystemTime::now()))?;
        tx.commit()?;
        if let Some(t) = self.catalogue.topics.get_mut(&spec.topic) {
            t.1.push(id);
        }
        self.catalogue
            .subs
            .insert(spec.name.clone(), SubRow { id, spec });
        Ok(Declared { created: true })
    }

    fn topics(&self) -> Vec<TopicInfo> {
        let mut out: Vec<TopicInfo> = self
            .catalogue
            .topics
            .keys()
            .map(|name| {
                let mut subscriptions: Vec<String> = self
                    .catalogue
                    .subs
                    .values()
                    .filter(|s| &s.spec.topic == name)
                    .map(|s| s.spec.name.clone())
                    .collect();
                subscriptions.sort();
                TopicInfo {
                    name: name.clone(),
                    subscriptions,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    fn subscriptions(&self, conn: &Connection) -> Result<Vec<SubscriptionInfo>, BrokerError> {
        let now_ms = unix_nanos(SystemTime::now()) / 1_000_000;
        let mut out = Vec::new();
        for sub in self.catalogue.subs.values() {
            let (ready, leased, dead) = db::counts(conn, sub.id, now_ms)?;
            out.push(SubscriptionInfo {
                spec: sub.spec.clone(),
                ready,
                leased,
                dead,
            });
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    fn dead_letters(
        &self,
        conn: &Connection,
        name: &str,
        max: usize,
    ) -> Result<Vec<DeadLetter>, BrokerError> {
        let sub = self.sub(name)?;
        let rows = db::dead_letters(conn, sub.id, max.clamp(1, MAX_PULL))?;
        Ok(rows
            .into_iter()
            .map(
                |(attributes, data, data_is_json, attempts, dead)| DeadLetter {
                    event: stored_event(&attributes, data, data_is_json).to_structured(),
                    attempts,
                    dead_unix_nanos: dead,
                },
            )
            .collect())
    }

    fn sub(&self, name: &str) -> Result<&SubRow, BrokerError> {
        self.catalogue
            .subs
            .get(name)
            .ok_or_else(|| BrokerError::NotFound(format!("no subscription {name:?}")))
    }

    /// Applies one write command inside a savepoint: on error it alone is rolled back and
    /// answered at once.
    fn write(&mut self, tx: &Connection, cmd: Command, pending: &mut Vec<Pending>) {
        if let Err(e) = tx.execute_batch("SAVEPOINT cmd") {
            tracing::error!(error = %e, "broker savepoint failed");
        }
        let mut spans = Vec::new();
        let outcome: Result<Option<Pending>, BrokerError> = match cmd {
            Command::Publish {
                topic,
                event,
                caller,
                started,
                reply,
            } => match self.publish(tx, &topic, &event, &caller, started, &mut spans) {
                Ok(p) => Ok(Some(Pending::new(reply, p, std::mem::take(&mut spans)))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Err(BrokerError::Closed)
                }
            },
            Command::Pull {
                subscription,
                max,
                wait,
                caller,
                reply,
                ..
            } => match self.deliver(tx, &subscription, max, &caller, &mut spans) {
                Ok(d) if d.is_empty() && !wait.is_zero() && !self.draining => {
                    if self.waiters.len() >= self.max_waiters {
                        let _ = reply.send(Err(BrokerError::TooManyWaiters));
                    } else {
                        self.waiters.push(Waiter {
                            subscription,
                            max,
                            deadline: Instant::now() + wait,
                            caller,
                            reply,
                        });
                    }
                    Ok(None)
                }
                Ok(d) => Ok(Some(Pending::new(reply, d, std::mem::take(&mut spans)))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Err(BrokerError::Closed)
                }
            },
            Command::Settle {
                subscription,
                lease_ids,
                action,
                caller,
                started,
                reply,
            } => {
                match self.settle(
                    tx,
                    &subscription,
                    &lease_ids,
                    action,
                    &caller,
                    started,
                    &mut spans,
                ) {
                    Ok(s) => Ok(Some(Pending::new(reply, s, std::mem::take(&mut spans)))),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        Err(BrokerError::Closed)
                    }
                }
            }
            _ => Ok(None),
        };
        match outcome {
            Ok(p) => {
                let _ = tx.execute_batch("RELEASE cmd");
                pending.extend(p);
            }
            Err(_) => {
                let _ = tx.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
                let end = SystemTime::now();
                for span in spans {
                    traced::finish(span, end, Some("rolled back"));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        tx: &Connection,
        topic: &str,
        event: &Event,
        caller: &Caller,
        started: SystemTime,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Published, BrokerError> {
        let Some((topic_id, subs)) = self.catalogue.topics.get(topic) else {
            return Err(BrokerError::NotFound(format!("no topic {topic:?}")));
        };
        // The header wins; else the trace context the event carries (distributed tracing
        // extension).
        let trace = if caller.trace.traceparent.is_some() {
            caller.trace.clone()
        } else {
            TraceContext {
                traceparent: event.str_attr("traceparent").map(str::to_string),
                tracestate: event.str_attr("tracestate").map(str::to_string),
            }
        };
        let service = caller
            .service
            .as_deref()
            .or(event.source())
            .unwrap_or(UNKNOWN_SERVICE);
        let size = event.data.as_ref().map_or(0, Vec::len) as i64;
        let span = self.tracer.start(Op {
            operation_type: "send",
            operation_name: "publish",
            kind: SpanKind::Producer,
            service,
            destination: topic,
            subscription: None,
            message_id: event.id(),
            parent: traced::parent_of(&trace),
            start: started,
            extra: vec![KeyValue::new("messaging.message.body.size", size)],
        });
        let traceparent = traced::traceparent(&span);
        spans.push(span);
        if !subs.is_empty() {
            let attributes = serde_json::Value::Object(event.attributes.clone()).to_string();
            db::insert_message(
                tx,
                &db::NewMessage {
                    topic_id: *topic_id,
                    event_id: event.id(),
                    attributes: &attributes,
                    data: event.data.as_deref(),
                    data_is_json: event.data_is_json,
                    traceparent: &traceparent,
                    tracestate: trace.tracestate.as_deref(),
                    published_unix_nanos: unix_nanos(SystemTime::now()),
                },
                subs,
            )?;
        }
        Ok(Published {
            id: event.id().to_string(),
            topic: topic.to_string(),
            subscriptions: subs.len(),
            traceparent,
        })
    }

    /// Leases up to `max` due messages; dead-letters those out of attempts on the way.
    fn deliver(
        &self,
        tx: &Connection,
        name: &str,
        max: usize,
        caller: &Caller,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Vec<Delivery>, BrokerError> {
        let sub = self.sub(name)?;
        let now = SystemTime::now();
        let now_nanos = unix_nanos(now);
        let now_ms = now_nanos / 1_000_000;
        let service = caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
        let mut out = Vec::new();
        let mut bytes = 0;
        while out.len() < max && bytes < MAX_PULL_BYTES {
            let rows = db::due(tx, sub.id, now_ms, (max - out.len()).min(DUE_CHUNK))?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                if bytes >= MAX_PULL_BYTES {
                    break;
                }
                if row.lease.is_some() {
                    // The previous lease expired without a settlement.
                    spans.push(self.consumer_op(&row, sub, "expire", now, None));
                }
                if row.attempts >= sub.spec.max_attempts {
                    db::kill(tx, row.id, now_nanos)?;
                    spans.push(self.consumer_op(&row, sub, "dead_letter", now, None));
                    continue;
                }
                let attempt = row.attempts + 1;
                let span = self.tracer.start(Op {
                    operation_type: "receive",
                    operation_name: "receive",
                    kind: SpanKind::Consumer,
                    service,
                    destination: &sub.spec.name,
                    subscription: Some(&sub.spec.name),
                    message_id: &row.event_id,
                    parent: traced::parse_traceparent(&row.traceparent, row.tracestate.as_deref()),
                    start: now,
                    extra: vec![KeyValue::new(
                        "messaging.switchyard.attempt",
                        attempt as i64,
                    )],
                });
                let traceparent = traced::traceparent(&span);
                let lease_id = format!("{}.{}", row.id, &traceparent[36..52]);
                let expires_ms = now_ms + sub.spec.visibility_timeout_ms;
                bytes += row.attributes.len() + row.data.as_ref().map_or(0, Vec::len);
                db::lease(tx, row.id, &lease_id, service, &traceparent, expires_ms)?;
                out.push(Delivery {
                    lease_id,
                    event: stored_event(&row.attributes, row.data, row.data_is_json)
                        .to_structured(),
                    attempt,
                    traceparent,
                    tracestate: row.tracestate,
                    lease_expires_unix_nanos: expires_ms * 1_000_000,
                });
                spans.push(span);
            }
        }
        Ok(out)
    }

    /// A settle-type span of the broker itself (lease expiry, dead-lettering), in the name of
    /// the consumer that held the lease, child of that delivery.
    fn consumer_op(
        &self,
        row: &db::Due,
        sub: &SubRow,
        what: &'static str,
        at: SystemTime,
        parent: Option<&str>,
    ) -> BrokerSpan {
        let parent = parent
            .or(row.lease_traceparent.as_deref())
            .and_then(|tp| traced::parse_traceparent(tp, None))
            .or_else(|| traced::parse_traceparent(&row.traceparent, None));
        self.tracer.start(Op {
            operation_type: "settle",
            operation_name: what,
            kind: SpanKind::Internal,
            service: row.lease_service.as_deref().unwrap_or(UNKNOWN_SERVICE),
            destination: &sub.spec.name,
            subscription: Some(&sub.spec.name),
            message_id: &row.event_id,
            parent,
            start: at,
            extra: vec![KeyValue::new(
                "messaging.switchyard.attempt",
                row.attempts as i64,
            )],
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        tx: &Connection,
        name: &str,
        lease_ids: &[String],
        action: Settle,
        caller: &Caller,
        started: SystemTime,
        spans: &mut Vec<BrokerSpan>,
    ) -> Result<Settled, BrokerError> {
        let sub = self.sub(name)?;
        let now = SystemTime::now();
        let now_ms = unix_nanos(now) / 1_000_000;
        let service = caller.service.as_deref().unwrap_or(UNKNOWN_SERVICE);
        let mut out = Settled::default();
        for lease_id in lease_ids {
            let row_id = lease_id
                .split('.')
                .next()
                .and_then(|s| s.parse::<i64>().ok());
            let found = match row_id {
                Some(id) => db::find_lease(tx, sub.id, id, lease_id)?,
                None => None,
            };
            let Some(leased) = found else {
                out.unknown.push(lease_id.clone());
                continue;
            };
            let (what, dead) = match action {
                Settle::Ack => {
                    db::remove(tx, leased.id, leased.seq)?;
                    ("ack", false)
                }
                Settle::Nack { .. } if leased.attempts >= sub.spec.max_attempts => {
                    db::kill(tx, leased.id, unix_nanos(now))?;
                    ("nack", true)
                }
                Settle::Nack { delay_ms } => {
                    db::release(tx, leased.id, now_ms + delay_ms)?;
                    ("nack", false)
                }
            };
            let parent = leased
                .lease_traceparent
                .as_deref()
                .and_then(|tp| traced::parse_traceparent(tp, None));
            let op = |operation_name, start| Op {
                operation_type: "settle",
                operation_name,
                kind: SpanKind::Client,
                service,
                destination: &sub.spec.name,
                subscription: Some(&sub.spec.name),
                message_id: &leased.event_id,
                parent: parent.clone(),
                start,
                extra: vec![KeyValue::new(
                    "messaging.switchyard.attempt",
                    leased.attempts as i64,
                )],
            };
            spans.push(self.tracer.start(op(what, started)));
            if dead {
                spans.push(self.tracer.start(op("dead_letter", now)));
            }
            out.settled.push(lease_id.clone());
        }
        Ok(out)
    }

    /// Serves waiting pulls (one look per subscription and turn), answers those past their
    /// deadline with nothing, and drops those whose client went away.
    fn serve_waiters(&mut self, tx: &Connection, stopping: bool, pending: &mut Vec<Pending>) {
        let now = Instant::now();
        let waiters = std::mem::take(&mut self.waiters);
        let mut exhausted: HashSet<String> = HashSet::new();
        for w in waiters {
            if w.reply.is_closed() {
                continue;
            }
            if stopping {
                let _ = w.reply.send(Ok(Vec::new()));
                continue;
            }
            if exhausted.contains(&w.subscription) {
                self.keep_or_expire(w, now, pending);
                continue;
            }
            let mut spans = Vec::new();
            let _ = tx.execute_batch("SAVEPOINT cmd");
            match self.deliver(tx, &w.subscription, w.max, &w.caller, &mut spans) {
                Ok(d) if d.is_empty() => {
                    let _ = tx.execute_batch("RELEASE cmd");
                    exhausted.insert(w.subscription.clone());
                    self.keep_or_expire(w, now, pending);
                }
                Ok(d) => {
                    let _ = tx.execute_batch("RELEASE cmd");
                    pending.push(Pending::new(w.reply, d, spans));
                }
                Err(e) => {
                    let _ = tx.execute_batch("ROLLBACK TO cmd; RELEASE cmd");
                    let end = SystemTime::now();
                    for span in spans {
                        traced::finish(span, end, Some("rolled back"));
                    }
                    let _ = w.reply.send(Err(e));
                }
            }
        }
    }

    fn keep_or_expire(&mut self, w: Waiter, now: Instant, pending: &mut Vec<Pending>) {
        if w.deadline <= now {
            pending.push(Pending::new(w.reply, Vec::new(), Vec::new()));
        } else {
            self.waiters.push(w);
        }
    }
}

/// Names of topics and subscriptions: 1 to 200 of `A-Z a-z 0-9 . _ -`.
fn validate_name(name: &str) -> Result<(), BrokerError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::BadRequest(format!(
            "invalid name {name:?}: 1 to 200 of letters, digits, '.', '_' and '-'"
        )))
    }
}

fn stored_event(attributes: &str, data: Option<Vec<u8>>, data_is_json: bool) -> Event {
    Event {
        attributes: serde_json::from_str(attributes).unwrap_or_default(),
        data,
        data_is_json,
    }
}
