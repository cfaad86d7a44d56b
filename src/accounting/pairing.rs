//! Ingest-time analysis of each new span: tie it to the spans it refers to (parent, links) or
//! that wait for it, and record its edge statistics. Arrival order does not matter: a
//! reference to a span not stored yet waits (in the store's backlog, [`Backlog`]) until that
//! span arrives. Pure: what is older than the writer's memory comes through [`Backlog`], which
//! each store implements over its own tables.
//!
//! Counting rules (logical messages, not spans):
//! - a produce span nested in another produce span (parent/child, same destination) is one
//!   message: whichever of the two arrives second is not counted; likewise nested consumes;
//! - a consume span tied to a produce span (parent or link) adds the publish-to-consume delay
//!   (consume start minus produce start) to the consume edge, a service dependency through the
//!   destination, and a route edge when the two destinations differ (exchange -> queue);
//! - one message consumed twice by one service through one destination (a redelivery no
//!   attribute marks, or
//!   every instance's own copy of a fanout as Celery's `Broadcast` declares) is one message on
//!   the consume edge, the dependency and the partition its span names, and one routed
//!   message on the route: the second delivery adds its delay sample only ([`Delivered`]
//!   remembers what each publish reached);
//! - on RabbitMQ, a second delivery to the same instance of a service that no attribute
//!   states either way is a redelivery (the earlier one failed): besides counting once, it
//!   adds a `redelivered` failure to its consume edge and is flagged [`FLAG_FAILED`], which
//!   the writer stores as an error of the span (see [`super::facts::failed_reason`]);
//! - a redelivered consume (a delivery after a nack or an expired lease) is not a new message:
//!   it adds a `redelivered` failure to its consume edge, no count, no delay, no dependency;
//! - a consume from where a broker (its newest snapshot the writer stored) sends dead letters
//!   is flagged [`FLAG_FAILED`] as `dead_lettered` for its trace, with no failure row: the
//!   broker's own figures count that dead letter on the queue that lost it;
//! - a replayed stream read counts on a `replay` row of its own, delay included, and adds
//!   nothing to the consume edge's count or delay;
//! - a failed consume or settle (a nack, an expired lease, a dead-lettering, an error span)
//!   adds a failure with its reason to its consume edge (destination -> consuming service);
//!   each one counts as an error of that edge, except a failed consume already counted there;
//! - a CLIENT span counts as a call to its peer (external node) until a SERVER span of another
//!   service names it as parent; then the call moves to the service -> service edge.

pub use super::facts::{
    pairable, Facts, FLAG_CALL_PAIRED, FLAG_COUNTED, FLAG_DEAD_LETTERED, FLAG_DELIVERY_STATED,
    FLAG_FAILED, FLAG_REDELIVERY, FLAG_REPLAY,
};
use super::memory::{span_hash, Delivered, Nodes, PendingKeys, RecentFacts, Seen};
use super::minutes::{Accumulator, EdgeChange, PairSample};
use crate::model::messaging::Marks;
use crate::model::{EdgeKind, NodeKey, Operation, Span, SpanId, SpanKind, TraceId};
use std::sync::Arc;

/// How long a publish or server span waits for a parent that has not arrived.
pub const PARENT_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Links of one consume span analysed at most (a batch receive can link to many producers).
const MAX_LINKS: usize = 1_000;

/// What pairing needs from persistence: spans stored before the writer's memory reaches back,
/// spans that wait for one not stored yet, and flag changes of stored spans. Each store
/// implements it over its own tables, inside the transaction the analysis commits with.
pub trait Backlog {
    type Error;
    /// A span stored earlier that is no longer in the writer's memory (None: not stored).
    fn stored(
        &mut self,
        nodes: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> Result<Option<Facts>, Self::Error>;
    /// `waiting` waits for (trace, span) until `expires_unix_nanos`.
    fn wait(
        &mut self,
        trace: TraceId,
        span: SpanId,
        waiting: &Facts,
        expires_unix_nanos: u64,
    ) -> Result<(), Self::Error>;
    /// The spans that wait for (trace, span), no longer waiting.
    fn take_waiting(
        &mut self,
        nodes: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> Result<Vec<Facts>, Self::Error>;
    /// The flags of a span stored earlier changed.
    fn flags_changed(&mut self, facts: &Facts) -> Result<(), Self::Error>;
    /// A span stored earlier turned out to have failed ([`FLAG_FAILED`], as a redelivery
    /// found when its publish arrived after it): the store marks the stored span as it marks
    /// one found failed at arrival (`store::insert::marked_failed`), so the trace view and
    /// "errors only" answer the same whichever span arrived first.
    fn failed_later(&mut self, facts: &Facts) -> Result<(), Self::Error>;
}

/// The writer's state that pairing reads and updates, for one transaction.
pub struct Pairing<'a, B: Backlog> {
    pub backlog: &'a mut B,
    pub acc: &'a mut Accumulator,
    pub recent: &'a mut RecentFacts,
    pub seen: &'a Seen,
    pub pending: &'a mut PendingKeys,
    pub nodes: &'a mut Nodes,
    pub delivered: &'a mut Delivered,
}

impl<B: Backlog> Pairing<'_, B> {
    /// Analyses one new span (not a duplicate) and returns the flags to store with it.
    /// `db_system` names the system of the external peer a CLIENT span calls; `marks` are what
    /// the span's attributes and events say of a redelivery, a replay or a failure.
    pub fn analyse(
        &mut self,
        span: &Span,
        db_system: Option<&str>,
        marks: &Marks,
    ) -> Result<u8, B::Error> {
        let mut provisional = match span.messaging.as_ref().map(|m| m.operation) {
            Some(Operation::Consume) if marks.redelivery => FLAG_REDELIVERY,
            Some(Operation::Consume) if marks.replay => FLAG_COUNTED | FLAG_REPLAY,
            Some(Operation::Produce | Operation::Consume) => FLAG_COUNTED,
            _ => 0,
        };
        if marks.delivery_stated {
            // Celery's delivery_info: a redelivery it states is a failed earlier delivery the
            // trace shows; one it denies (a Broadcast copy) is not inferred from a second one.
            provisional |= FLAG_DELIVERY_STATED;
            if marks.redelivery {
                provisional |= FLAG_FAILED;
            }
        }
        let mut me = Facts::of(span, self.nodes, provisional);
        let dead_letter = me.operation == Some(Operation::Consume)
            && me
                .destination
                .as_deref()
                .is_some_and(|d| self.nodes.dead_letter_target(d));
        if dead_letter {
            // Read from where a broker sends dead letters: the message failed where it was
            // first delivered. The trace shows it; the count is the broker's (its dead-letter
            // figures count every dead letter, read or not, on the queue that lost it).
            me.flags |= FLAG_FAILED | FLAG_DEAD_LETTERED;
        }
        self.acc.service_span(&me.service, me.start, me.error);

        let mut refs: Vec<(TraceId, SpanId)> = Vec::new();
        if let Some(parent) = span.parent_span_id.filter(|_| me.waits_for_parent()) {
            refs.push((span.trace_id, parent));
        }
        if me.operation == Some(Operation::Consume) {
            refs.extend(
                span.links
                    .iter()
                    .take(MAX_LINKS)
                    .map(|l| (l.trace_id, l.span_id)),
            );
        }
        refs.sort();
        refs.dedup();
        for (trace, target) in refs {
            self.relate_or_wait(&mut me, trace, target)?;
        }
        // Every arrival settles what waits for it, pairable or not, so waiting rows do not pile up.
        if self.pending.remove(&span_hash(me.trace, me.span_id)) {
            let mut waiting = self
                .backlog
                .take_waiting(self.nodes, me.trace, me.span_id)?;
            // Deliveries of one message in the order the broker made them: a later one is the
            // redelivery, whatever order they were stored in.
            waiting.sort_by_key(|w| (w.start, w.span_id));
            for mut waiting in waiting {
                if waiting.instance.is_none() || waiting.partition.is_none() {
                    // The waiting list keeps no instance or partition; the writer's memory may,
                    // else the stored span (a consume older than the memory, whose publish comes
                    // late), where a redelivery would be told by it.
                    let (instance, partition) =
                        match self.recent.get(waiting.trace, waiting.span_id) {
                            Some(f) => (f.instance.clone(), f.partition),
                            None if may_be_redelivered(&waiting) => self
                                .backlog
                                .stored(self.nodes, waiting.trace, waiting.span_id)?
                                .map_or((None, None), |f| (f.instance, f.partition)),
                            None => (None, None),
                        };
                    if waiting.instance.is_none() {
                        waiting.instance = instance;
                    }
                    if waiting.partition.is_none() {
                        waiting.partition = partition;
                    }
                }
                let before = waiting.flags;
                self.relate(&mut me, &mut waiting, false)?;
                if waiting.flags != before {
                    self.store_flags(&waiting, before)?;
                }
            }
        }
        self.own_contribution(span, db_system, &mut me);
        self.failures(marks, &me);
        let flags = me.flags;
        if me.referable() {
            self.recent.insert(me);
        }
        Ok(flags)
    }

    /// Ties two spans stored without seeing each other (`waiting` waited for `referred`
    /// while `referred` was being stored elsewhere, as when two collectors sharing one store
    /// race): each already counted its own contribution, so only the pairing's share is added,
    /// as if `referred` had arrived last; a nested span of one message that it makes second
    /// takes its count back.
    pub fn reconcile(&mut self, referred: &mut Facts, waiting: &mut Facts) -> Result<(), B::Error> {
        let before = (referred.flags, waiting.flags);
        self.relate(referred, waiting, false)?;
        if before.0 & FLAG_COUNTED != 0 && referred.flags & FLAG_COUNTED == 0 {
            // Nested spans of one message, both counted at arrival: `referred` is the second.
            // Its count, error and (a publish's) duration sample are taken back.
            let edge = match (&referred.destination, referred.operation) {
                (Some(dest), Some(Operation::Produce)) => Some((
                    &referred.service,
                    dest,
                    EdgeKind::Publish,
                    Some(referred.duration_micros()),
                )),
                (Some(dest), Some(Operation::Consume)) => {
                    Some((dest, &referred.service, EdgeKind::Consume, None))
                }
                _ => None,
            };
            if let Some((from, to, kind, latency_micros)) = edge {
                self.acc.edge(EdgeChange {
                    from,
                    to,
                    kind,
                    via: None,
                    at_unix_nanos: referred.start,
                    count: -1,
                    errors: -(referred.error as i64),
                    latency_micros,
                    weight: -1,
                });
            }
        }
        if referred.flags != before.0 {
            self.store_flags(referred, before.0)?;
        }
        if waiting.flags != before.1 {
            self.store_flags(waiting, before.1)?;
        }
        Ok(())
    }

    fn relate_or_wait(
        &mut self,
        me: &mut Facts,
        trace: TraceId,
        target: SpanId,
    ) -> Result<(), B::Error> {
        let earlier = match self.recent.get(trace, target) {
            Some(f) => Some(f.clone()),
            // Stored recently but not a span pairing cares about.
            None if self.seen.get(span_hash(trace, target)) == Some(false) => return Ok(()),
            None => self.backlog.stored(self.nodes, trace, target)?,
        };
        match earlier {
            Some(mut earlier) => {
                let before = earlier.flags;
                self.relate(&mut earlier, me, true)?;
                if earlier.flags != before {
                    self.store_flags(&earlier, before)?;
                }
                Ok(())
            }
            None => {
                self.pending.insert(span_hash(trace, target));
                let expires = match me.operation {
                    Some(Operation::Consume) => u64::MAX,
                    _ => me
                        .start
                        .saturating_add(u64::try_from(PARENT_WAIT.as_nanos()).unwrap_or(u64::MAX)),
                };
                self.backlog.wait(trace, target, me, expires)
            }
        }
    }

    /// Ties `referred` (a parent or linked span) to `referring` (its child or linker). Exactly
    /// one of them is the span arriving now: `referring_arrives` says which.
    fn relate(
        &mut self,
        referred: &mut Facts,
        referring: &mut Facts,
        referring_arrives: bool,
    ) -> Result<(), B::Error> {
        let is_parent =
            referring.parent == Some(referred.span_id) && referring.trace == referred.trace;
        match (referred.operation, referring.operation) {
            (Some(a), Some(b))
                if a == b
                    && a != Operation::Settle
                    && is_parent
                    && referred.destination == referring.destination =>
            {
                // Nested spans of one message: the second to arrive is not counted.
                let arriving = if referring_arrives {
                    referring
                } else {
                    referred
                };
                arriving.flags &= !FLAG_COUNTED;
            }
            // A consume nested in another consume of the same message was not counted; the outer
            // one carries the pairing.
            (Some(Operation::Produce), Some(Operation::Consume))
                if referring.flags & FLAG_COUNTED != 0 =>
            {
                self.pair_message(referred, referring)?
            }
            _ if referred.is_client_call()
                && referring.kind == SpanKind::Server
                && is_parent
                && referred.service != referring.service =>
            {
                self.pair_call(referred, referring);
            }
            _ => {}
        }
        Ok(())
    }

    fn pair_message(&mut self, producer: &Facts, consumer: &mut Facts) -> Result<(), B::Error> {
        let (Some(pdest), Some(cdest)) = (&producer.destination, &consumer.destination) else {
            return Ok(());
        };
        let delay = consumer.start.saturating_sub(producer.start) / 1_000;
        let at = consumer.start;
        if consumer.flags & FLAG_REPLAY != 0 {
            // A replay's delay is how old the event was when read again: kept apart.
            self.acc.edge(EdgeChange {
                from: cdest,
                to: &consumer.service,
                kind: EdgeKind::Replay,
                via: None,
                at_unix_nanos: at,
                count: 0,
                errors: 0,
                latency_micros: Some(delay),
                weight: 1,
            });
            return Ok(());
        }
        let before = self.delivered.note_by(
            (producer.trace, producer.span_id),
            (&consumer.service, consumer.instance.as_deref()),
            cdest,
            (consumer.trace, consumer.span_id),
        );
        if redelivered(&before, consumer, cdest) {
            consumer.flags |= FLAG_REDELIVERY | FLAG_FAILED;
            let reason = Arc::new(NodeKey::reason("redelivered"));
            self.acc.edge(EdgeChange {
                from: cdest,
                to: &consumer.service,
                kind: EdgeKind::Failure,
                via: Some(&reason),
                at_unix_nanos: at,
                count: 1,
                errors: 0,
                latency_micros: None,
                weight: 1,
            });
        }
        let base = |from, to, kind, via| EdgeChange {
            from,
            to,
            kind,
            via,
            at_unix_nanos: at,
            count: 0,
            errors: 0,
            latency_micros: Some(delay),
            weight: 1,
        };
        // The consume counted itself as a message when it arrived; a second delivery of one
        // message to this service takes that back (its delay is still a sample), and so its
        // partition's count: a waiting consume's partition is read from the stored span.
        self.acc.edge(EdgeChange {
            count: -i64::from(before.service),
            ..base(cdest, &consumer.service, EdgeKind::Consume, None)
        });
        if before.service {
            if consumer.partition.is_none() {
                let stored = self
                    .backlog
                    .stored(self.nodes, consumer.trace, consumer.span_id)?;
                consumer.partition = stored.and_then(|f| f.partition);
            }
            if let Some(p) = consumer.partition {
                self.acc.partition(cdest, p, &consumer.service, at, 0, -1);
            }
        }
        self.acc.edge(EdgeChange {
            count: i64::from(!before.service),
            ..base(
                &producer.service,
                &consumer.service,
                EdgeKind::Dependency,
                Some(cdest),
            )
        });
        if pdest != cdest {
            self.acc.edge(EdgeChange {
                count: i64::from(!before.destination),
                ..base(pdest, cdest, EdgeKind::Route, None)
            });
        }
        self.acc.pair(PairSample {
            client: &producer.service,
            server: &consumer.service,
            messaging: true,
            failed: producer.error || consumer.error,
            client_micros: producer.duration_micros(),
            server_micros: consumer.duration_micros(),
        });
        Ok(())
    }

    /// Moves a client call onto the service -> service edge, once per client span. A client
    /// stored before (not paired at arrival) had counted against its external peer: take it back.
    fn pair_call(&mut self, client: &mut Facts, server: &Facts) {
        if client.flags & FLAG_CALL_PAIRED != 0 {
            return;
        }
        let counted_external = client.flags & FLAG_COUNTED != 0;
        client.flags |= FLAG_CALL_PAIRED;
        let change = |from, to, weight: i64| EdgeChange {
            from,
            to,
            kind: EdgeKind::Call,
            via: None,
            at_unix_nanos: client.start,
            count: weight,
            errors: weight * client.error as i64,
            latency_micros: Some(client.duration_micros()),
            weight,
        };
        self.acc.edge(change(&client.service, &server.service, 1));
        self.acc.pair(PairSample {
            client: &client.service,
            server: &server.service,
            messaging: false,
            failed: client.error || server.error,
            client_micros: client.duration_micros(),
            server_micros: server.duration_micros(),
        });
        if counted_external {
            if let Some(peer) = &client.peer {
                let ext = self.nodes.external(peer, None);
                self.acc.edge(change(&client.service, &ext, -1));
            }
            client.flags &= !FLAG_COUNTED;
        }
    }

    fn own_contribution(&mut self, span: &Span, db_system: Option<&str>, me: &mut Facts) {
        let counted = me.flags & FLAG_COUNTED != 0;
        let change = |from, to, kind, count, latency| EdgeChange {
            from,
            to,
            kind,
            via: None,
            at_unix_nanos: me.start,
            count,
            errors: me.error as i64,
            latency_micros: latency,
            weight: 1,
        };
        match (&me.destination, me.operation) {
            (Some(dest), Some(Operation::Produce)) if counted => {
                self.acc.edge(change(
                    &me.service,
                    dest,
                    EdgeKind::Publish,
                    1,
                    Some(me.duration_micros()),
                ));
                if let Some(p) = span.messaging.as_ref().and_then(|m| m.partition) {
                    self.acc.partition(dest, p, &me.service, me.start, 1, 0);
                }
            }
            (Some(dest), Some(Operation::Consume)) if counted => {
                let messages = span
                    .messaging
                    .as_ref()
                    .and_then(|m| m.batch_count)
                    .map(|n| n as i64)
                    .unwrap_or_else(|| span.links.len().max(1) as i64);
                let kind = if me.flags & FLAG_REPLAY != 0 {
                    EdgeKind::Replay
                } else {
                    EdgeKind::Consume
                };
                self.acc
                    .edge(change(dest, &me.service, kind, messages, None));
                let partition = span.messaging.as_ref().and_then(|m| m.partition);
                if let Some(p) = partition.filter(|_| kind == EdgeKind::Consume) {
                    self.acc
                        .partition(dest, p, &me.service, me.start, 0, messages);
                }
                if let Some(instance) = &span.service.instance {
                    self.acc
                        .consumer_instance(dest, &me.service, instance, me.start);
                }
            }
            _ if me.is_client_call() && me.flags & FLAG_CALL_PAIRED == 0 => {
                if let Some(peer) = &me.peer {
                    let ext = self.nodes.external(peer, db_system);
                    self.acc.edge(change(
                        &me.service,
                        &ext,
                        EdgeKind::Call,
                        1,
                        Some(me.duration_micros()),
                    ));
                    me.flags |= FLAG_COUNTED;
                }
            }
            _ => {}
        }
    }

    /// The failures a consume or settle span reports, on its consume edge's failure rows.
    fn failures(&mut self, marks: &Marks, me: &Facts) {
        let Some(dest) = &me.destination else {
            return;
        };
        let mut failure = |reason: &str, errors: i64| {
            let reason = Arc::new(NodeKey::reason(reason));
            self.acc.edge(EdgeChange {
                from: dest,
                to: &me.service,
                kind: EdgeKind::Failure,
                via: Some(&reason),
                at_unix_nanos: me.start,
                count: 1,
                errors,
                latency_micros: None,
                weight: 1,
            });
        };
        // A redelivery pairing infers (a second delivery) has its row from `pair_message`.
        if marks.redelivery {
            failure("redelivered", 0);
        }
        if let Some(reason) = &marks.failure {
            // A failed consume counted on the consume edge has its error there already.
            let on_consume_edge = me.operation == Some(Operation::Consume)
                && me.flags & FLAG_COUNTED != 0
                && me.flags & FLAG_REPLAY == 0;
            failure(reason, i64::from(!on_consume_edge));
        }
    }

    /// Records a flag change of a span stored before this one (its flags were `before`).
    fn store_flags(&mut self, f: &Facts, before: u8) -> Result<(), B::Error> {
        if let Some(r) = self.recent.get_mut(f.trace, f.span_id) {
            r.flags = f.flags;
        }
        self.backlog.flags_changed(f)?;
        if f.flags & FLAG_FAILED != 0 && before & FLAG_FAILED == 0 && !f.error {
            self.backlog.failed_later(f)?;
        }
        Ok(())
    }
}

/// Takes back what `Pairing::pair_message` counted for a delivery of a message to its
/// consuming service that counted as the first while another delivery to that service
/// counted as the first too (two collectors sharing a store, each pairing one of them at
/// the same moment): the consume edge's and the dependency's message, and the route's
/// when `route` (the destination's first delivery was counted twice too). The delay
/// samples stay, as a second delivery keeps its own.
pub fn take_back_delivery(acc: &mut Accumulator, producer: &Facts, consumer: &Facts, route: bool) {
    let (Some(pdest), Some(cdest)) = (&producer.destination, &consumer.destination) else {
        return;
    };
    let change = |from, to, kind, via| EdgeChange {
        from,
        to,
        kind,
        via,
        at_unix_nanos: consumer.start,
        count: -1,
        errors: 0,
        latency_micros: None,
        weight: 0,
    };
    acc.edge(change(cdest, &consumer.service, EdgeKind::Consume, None));
    acc.edge(change(
        &producer.service,
        &consumer.service,
        EdgeKind::Dependency,
        Some(cdest),
    ));
    if route && pdest != cdest {
        acc.edge(change(pdest, cdest, EdgeKind::Route, None));
    }
}

/// Whether [`redelivered`] could hold for this consume with its instance known.
fn may_be_redelivered(consume: &Facts) -> bool {
    consume.operation == Some(Operation::Consume)
        && consume.flags & (FLAG_DELIVERY_STATED | FLAG_REPLAY) == 0
        && consume.destination.as_deref().is_some_and(|d| {
            d.system.as_deref() == Some("rabbitmq")
                && d.name != crate::model::messaging::TEMPORARY_DESTINATION
        })
}

/// Whether a consume is a redelivery its span did not mark: RabbitMQ delivered the message
/// again to the named instance (`service.instance.id`) of the service that had it from this
/// destination, not a temporary one, and the instrumentation does not state the AMQP
/// `redelivered` bit. On RabbitMQ a queue hands a message to one consumer, so a second
/// delivery to the same consumer means the first was nacked or rejected with requeue, or its
/// consumer stopped before the ack. Other systems deliver a message to each subscriber or
/// group by design. Unnamed instances are never taken for one: replicas of a service that
/// each read their own queue bound to one exchange (a broadcast to every replica) look the
/// same in their spans, and a copy for each of them is no failure.
fn redelivered(before: &super::memory::Reached, consumer: &Facts, dest: &NodeKey) -> bool {
    before.instance
        && consumer.instance.as_deref().is_some_and(|i| !i.is_empty())
        && dest.name != crate::model::messaging::TEMPORARY_DESTINATION
        && consumer.flags & (FLAG_DELIVERY_STATED | FLAG_REPLAY) == 0
        && dest.system.as_deref() == Some("rabbitmq")
}

#[cfg(test)]
#[path = "pairing_tests.rs"]
mod tests;
