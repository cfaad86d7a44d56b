//! The pairing rules over an in-memory backlog: no database.

use super::*;
use crate::accounting::minutes::Drained;
use crate::model::testing::{msg, span};
use std::collections::HashMap;

/// A backlog in memory: what a store keeps in its tables, without one.
#[derive(Default)]
struct MemBacklog {
    stored: HashMap<(TraceId, SpanId), Facts>,
    waiting: HashMap<(TraceId, SpanId), Vec<Facts>>,
    /// When each wait was told to expire, by the waiting span.
    expiries: HashMap<SpanId, u64>,
    /// Spans found through `stored` (no longer in the writer's memory).
    lookups: usize,
    flag_changes: usize,
    /// Spans marked failed after they were stored.
    failed_later: Vec<SpanId>,
}

impl Backlog for MemBacklog {
    type Error = std::convert::Infallible;

    fn stored(
        &mut self,
        _: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> Result<Option<Facts>, Self::Error> {
        let found = self.stored.get(&(trace, span)).cloned();
        self.lookups += found.is_some() as usize;
        Ok(found)
    }

    fn wait(
        &mut self,
        trace: TraceId,
        span: SpanId,
        waiting: &Facts,
        expires_unix_nanos: u64,
    ) -> Result<(), Self::Error> {
        self.expiries.insert(waiting.span_id, expires_unix_nanos);
        // As the stores' waiting lists: without the instance.
        self.waiting.entry((trace, span)).or_default().push(Facts {
            instance: None,
            partition: None,
            ..waiting.clone()
        });
        Ok(())
    }

    fn take_waiting(
        &mut self,
        _: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> Result<Vec<Facts>, Self::Error> {
        Ok(self.waiting.remove(&(trace, span)).unwrap_or_default())
    }

    fn flags_changed(&mut self, f: &Facts) -> Result<(), Self::Error> {
        self.flag_changes += 1;
        if let Some(s) = self.stored.get_mut(&(f.trace, f.span_id)) {
            s.flags = f.flags;
        }
        Ok(())
    }

    fn failed_later(&mut self, f: &Facts) -> Result<(), Self::Error> {
        self.failed_later.push(f.span_id);
        Ok(())
    }
}

/// The writer's side: memory, statistics and a backlog, spans analysed one at a time.
struct Rig {
    backlog: MemBacklog,
    acc: Accumulator,
    recent: RecentFacts,
    seen: Seen,
    pending: PendingKeys,
    nodes: Nodes,
    delivered: Delivered,
}

impl Rig {
    /// `memory`: how many recent spans the writer remembers (1: nearly none, so older
    /// spans come from the backlog).
    fn new(memory: usize) -> Rig {
        Rig {
            backlog: MemBacklog::default(),
            acc: Accumulator::default(),
            recent: RecentFacts::new(memory),
            seen: Seen::new(memory),
            pending: PendingKeys::default(),
            nodes: Nodes::default(),
            delivered: Delivered::new(1024),
        }
    }

    fn add(&mut self, s: Span) -> u8 {
        let pairable = pairable(s.kind, s.messaging.as_ref().map(|m| m.operation));
        self.seen.insert(span_hash(s.trace_id, s.span_id), pairable);
        let flags = Pairing {
            backlog: &mut self.backlog,
            acc: &mut self.acc,
            recent: &mut self.recent,
            seen: &self.seen,
            pending: &mut self.pending,
            nodes: &mut self.nodes,
            delivered: &mut self.delivered,
        }
        .analyse(&s, None, &crate::model::messaging::Marks::of(&s))
        .unwrap_or_else(|e| match e {});
        // What the store would persist with the span.
        let facts = Facts::of(&s, &mut self.nodes, flags);
        self.backlog.stored.insert((s.trace_id, s.span_id), facts);
        flags
    }

    /// Edge counts and latency samples by (from, to, kind).
    fn edges(&mut self) -> HashMap<(String, String, EdgeKind), (i64, i64)> {
        let Drained { edges, .. } = self.acc.drain();
        let mut out: HashMap<(String, String, EdgeKind), (i64, i64)> = HashMap::new();
        for (k, d) in edges {
            let e = out
                .entry((k.from.0.id.clone(), k.to.0.id.clone(), k.kind))
                .or_default();
            e.0 += d.count;
            e.1 += d.latency.count();
        }
        out
    }
}

fn produce(trace: u8, id: u8, parent: Option<u8>) -> Span {
    msg(
        span(trace, id, parent, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    )
}

fn consume(trace: u8, id: u8, parent: Option<u8>) -> Span {
    msg(
        span(trace, id, parent, "billing", SpanKind::Consumer),
        "orders",
        Operation::Consume,
    )
}

fn key(from: &str, to: &str, kind: EdgeKind) -> (String, String, EdgeKind) {
    (from.to_string(), to.to_string(), kind)
}

#[test]
fn a_consume_pairs_with_its_publish_in_either_order_and_from_the_backlog() {
    for (memory, consume_first) in [(1024, false), (1024, true), (1, false), (1, true)] {
        let mut rig = Rig::new(memory);
        let mut p = produce(1, 1, None);
        let c = consume(1, 2, Some(1));
        p.end_unix_nanos = p.start_unix_nanos + 1_000;
        // With a memory of one span, a span between the two pushes the first out of it.
        let filler = produce(99, 1, None);
        if consume_first {
            rig.add(c);
            rig.add(filler);
            rig.add(p);
        } else {
            rig.add(p);
            rig.add(filler);
            rig.add(c);
        }
        let edges = rig.edges();
        let case = format!("memory {memory}, consume first {consume_first}");
        assert_eq!(
            edges.get(&key(
                "service:orders",
                "service:billing",
                EdgeKind::Dependency
            )),
            Some(&(1, 1)),
            "{case}"
        );
        // The consume edge: one message, plus the delay sample added when they pair.
        assert_eq!(
            edges.get(&key(
                "destination:kafka:orders",
                "service:billing",
                EdgeKind::Consume
            )),
            Some(&(1, 1)),
            "{case}"
        );
        assert!(
            rig.backlog.waiting.is_empty(),
            "{case}: nothing left waiting"
        );
        // A publish that left the memory is read back from the backlog.
        let from_backlog = memory == 1 && !consume_first;
        assert_eq!(rig.backlog.lookups, from_backlog as usize, "{case}");
    }
}

#[test]
fn waits_expire_for_a_parent_not_for_a_consumed_message() {
    let mut rig = Rig::new(1024);
    let c = consume(5, 2, Some(1));
    let p = produce(6, 2, Some(1));
    let publish_start = p.start_unix_nanos;
    rig.add(c);
    rig.add(p);
    // A consume waits for its message however long; a publish waits for its parent 600 s.
    assert_eq!(
        rig.backlog.expiries[&SpanId([2; 8])],
        publish_start + 600_000_000_000
    );
    assert_eq!(
        rig.backlog.expiries.len(),
        1,
        "one span id for both: the later wait"
    );
    let mut rig = Rig::new(1024);
    rig.add(consume(5, 2, Some(1)));
    assert_eq!(rig.backlog.expiries[&SpanId([2; 8])], u64::MAX);
}

#[test]
fn a_client_call_read_back_from_the_backlog_still_moves_off_its_peer() {
    let mut rig = Rig::new(1);
    let mut client = span(7, 1, None, "cart", SpanKind::Client);
    client.peer = Some("catalog.internal".into());
    rig.add(client);
    rig.add(produce(98, 1, None));
    rig.add(span(7, 2, Some(1), "catalog", SpanKind::Server));
    assert_eq!(rig.backlog.lookups, 1, "the client came from the backlog");
    let edges = rig.edges();
    assert_eq!(
        edges.get(&key("service:cart", "service:catalog", EdgeKind::Call)),
        Some(&(1, 1))
    );
    assert_eq!(
        edges.get(&key(
            "service:cart",
            "external:catalog.internal",
            EdgeKind::Call
        )),
        Some(&(0, 0)),
        "taken back with its latency sample"
    );
    // A second server naming the same client does not move the call again.
    rig.add(span(7, 3, Some(1), "catalog", SpanKind::Server));
    assert_eq!(
        rig.edges()
            .get(&key("service:cart", "service:catalog", EdgeKind::Call)),
        None
    );
}

#[test]
fn nested_publishes_of_one_message_count_once() {
    for inner_first in [false, true] {
        let mut rig = Rig::new(1024);
        let (outer, inner) = (produce(2, 1, None), produce(2, 2, Some(1)));
        let (a, b) = if inner_first {
            (inner, outer)
        } else {
            (outer, inner)
        };
        rig.add(a);
        rig.add(b);
        let publish = key(
            "service:orders",
            "destination:kafka:orders",
            EdgeKind::Publish,
        );
        // The second to arrive was counted provisionally by nothing: one message.
        assert_eq!(
            rig.edges().get(&publish).map(|e| e.0),
            Some(1),
            "inner first {inner_first}"
        );
    }
}

#[test]
fn a_paired_client_call_moves_off_its_external_peer() {
    let mut rig = Rig::new(1024);
    let mut client = span(3, 1, None, "cart", SpanKind::Client);
    client.peer = Some("catalog.internal".into());
    let server = span(3, 2, Some(1), "catalog", SpanKind::Server);
    let first = rig.add(client);
    assert_eq!(
        first & FLAG_COUNTED,
        FLAG_COUNTED,
        "counted against the peer at first"
    );
    rig.add(server);
    let edges = rig.edges();
    assert_eq!(
        edges.get(&key("service:cart", "service:catalog", EdgeKind::Call)),
        Some(&(1, 1))
    );
    assert_eq!(
        edges.get(&key(
            "service:cart",
            "external:catalog.internal",
            EdgeKind::Call
        )),
        Some(&(0, 0)),
        "the call was taken back from the peer"
    );
    // The client was stored before its server: its stored flags record the pairing.
    assert_eq!(rig.backlog.flag_changes, 1);
    let stored = &rig.backlog.stored[&(TraceId([3; 16]), SpanId([1; 8]))];
    assert_eq!(
        stored.flags & (FLAG_CALL_PAIRED | FLAG_COUNTED),
        FLAG_CALL_PAIRED
    );
}

#[test]
fn a_batch_consume_counts_each_linked_message() {
    let mut rig = Rig::new(1024);
    let mut c = consume(9, 9, None);
    c.links = [3u8, 4]
        .iter()
        .map(|&t| crate::model::Link {
            trace_id: TraceId([t; 16]),
            span_id: SpanId([1; 8]),
            attributes: vec![],
        })
        .collect();
    rig.add(c);
    rig.add(produce(3, 1, None));
    rig.add(produce(4, 1, None));
    let edges = rig.edges();
    assert_eq!(
        edges
            .get(&key(
                "destination:kafka:orders",
                "service:billing",
                EdgeKind::Consume
            ))
            .map(|e| e.0),
        Some(2)
    );
    assert_eq!(
        edges.get(&key(
            "service:orders",
            "service:billing",
            EdgeKind::Dependency
        )),
        Some(&(2, 2))
    );
}

/// A publish to exchange `orders`, consumed (a child of it) by `svc` from `queue`.
fn consume_from(trace: u8, id: u8, svc: &str, queue: &str, instance: &str) -> Span {
    let mut s = msg(
        span(trace, id, Some(1), svc, SpanKind::Consumer),
        queue,
        Operation::Consume,
    );
    s.service.instance = Some(instance.into());
    s
}

/// Every statistics row of the batch: (from, to, kind, via) -> (count, errors, delay samples).
type Rows = HashMap<(String, String, EdgeKind, String), (i64, i64, i64)>;

fn rows(rig: &mut Rig) -> Rows {
    let Drained { edges, .. } = rig.acc.drain();
    let mut out = Rows::new();
    for (k, d) in edges {
        let via = k.via_id().to_string();
        let e = out
            .entry((k.from.0.id.clone(), k.to.0.id.clone(), k.kind, via))
            .or_default();
        e.0 += d.count;
        e.1 += d.errors;
        e.2 += d.latency.count();
    }
    out
}

fn row(kind: EdgeKind, via: &str) -> (String, String, EdgeKind, String) {
    let (from, to) = match kind {
        EdgeKind::Dependency => ("service:orders", "service:billing"),
        _ => ("destination:kafka:orders", "service:billing"),
    };
    (from.to_string(), to.to_string(), kind, via.to_string())
}

/// A settle span of the consume `parent`, with its operation name and attributes.
fn settle(trace: u8, id: u8, parent: u8, name: &str, attrs: &[(&str, &str)]) -> Span {
    let mut s = msg(
        span(trace, id, Some(parent), "billing", SpanKind::Client),
        "orders",
        Operation::Settle,
    );
    s.attributes
        .push(("messaging.operation.name".into(), name.into()));
    for (k, v) in attrs {
        s.attributes.push((k.to_string(), (*v).into()));
    }
    s
}

fn failed(mut s: Span) -> Span {
    s.status = crate::model::StatusCode::Error;
    s
}

#[test]
fn one_message_delivered_twice_to_one_service_counts_once_on_every_edge() {
    // Two messages; each reaches both instances of `renderer` (a fanout with a queue per
    // instance, named by the queue `flush`) and one instance of `auditor` through `audit`.
    for consumes_first in [false, true] {
        let mut rig = Rig::new(1024);
        let mut spans = Vec::new();
        for t in [1u8, 2] {
            spans.push(produce(t, 1, None));
            spans.push(consume_from(t, 2, "renderer", "flush", "renderer-1"));
            spans.push(consume_from(t, 3, "renderer", "flush", "renderer-2"));
            spans.push(consume_from(t, 4, "auditor", "audit", "auditor-1"));
        }
        if consumes_first {
            spans.sort_by_key(|s| s.kind != SpanKind::Consumer);
        }
        for s in spans {
            rig.add(s);
        }
        let edges = rig.edges();
        let case = format!("consumes first: {consumes_first}");
        let get = |from: &str, to: &str, kind| edges.get(&key(from, to, kind)).copied();
        // (count, delay samples): two logical messages; every delivery's delay is a sample.
        assert_eq!(
            get(
                "destination:kafka:flush",
                "service:renderer",
                EdgeKind::Consume
            ),
            Some((2, 4)),
            "{case}"
        );
        assert_eq!(
            get("service:orders", "service:renderer", EdgeKind::Dependency),
            Some((2, 4)),
            "{case}"
        );
        assert_eq!(
            get(
                "destination:kafka:orders",
                "destination:kafka:flush",
                EdgeKind::Route
            ),
            Some((2, 4)),
            "{case}: one routed message per message, however many consumers"
        );
        assert_eq!(
            get(
                "destination:kafka:audit",
                "service:auditor",
                EdgeKind::Consume
            ),
            Some((2, 2)),
            "{case}"
        );
        assert_eq!(
            get(
                "destination:kafka:orders",
                "destination:kafka:audit",
                EdgeKind::Route
            ),
            Some((2, 2)),
            "{case}"
        );
    }
}

#[test]
fn a_redelivery_is_a_failure_not_a_message_nor_a_hop() {
    use crate::model::messaging::{ERROR_TYPE, REDELIVERED};
    for consume_first in [false, true] {
        let mut rig = Rig::new(1024);
        let p = produce(1, 1, None);
        let first = consume(1, 2, Some(1));
        let nack = failed(settle(1, 3, 2, "nack", &[(ERROR_TYPE, "nack")]));
        let mut again = consume(1, 4, Some(1));
        again.attributes.push((REDELIVERED.into(), true.into()));
        let ack = settle(1, 5, 4, "ack", &[]);
        let spans = if consume_first {
            vec![first, nack, again, ack, p]
        } else {
            vec![p, first, nack, again, ack]
        };
        for s in spans {
            rig.add(s);
        }
        let r = rows(&mut rig);
        let case = format!("consume first {consume_first}: {r:?}");
        // One message, one delay sample, one dependency: the redelivery adds none of them.
        assert_eq!(
            r.get(&row(EdgeKind::Consume, "")),
            Some(&(1, 0, 1)),
            "{case}"
        );
        assert_eq!(
            r.get(&row(EdgeKind::Dependency, "destination:kafka:orders")),
            Some(&(1, 0, 1)),
            "{case}"
        );
        // The nack is an error of the consume edge, the redelivery a failure that is not.
        assert_eq!(
            r.get(&row(EdgeKind::Failure, "nack")),
            Some(&(1, 1, 0)),
            "{case}"
        );
        assert_eq!(
            r.get(&row(EdgeKind::Failure, "redelivered")),
            Some(&(1, 0, 0)),
            "{case}"
        );
        assert_eq!(
            r.len(),
            5,
            "publish, consume, dependency, two failures: {case}"
        );
    }
}

#[test]
fn failures_carry_their_reason_whoever_marks_them() {
    let mut rig = Rig::new(1024);
    rig.add(produce(1, 1, None));
    // A consume span that failed (an instrumentation's error status): its error is on the
    // consume edge already; the failure row only says why.
    let mut c = failed(consume(1, 2, Some(1)));
    c.attributes
        .push(("error.type".into(), "ValueError".into()));
    rig.add(c);
    // A settle named nack, without an error status (an instrumentation that does not mark it).
    rig.add(settle(1, 3, 2, "nack", &[]));
    // The broker's own: an expired lease and a dead-lettering, each an error span.
    rig.add(failed(settle(
        1,
        4,
        2,
        "expire",
        &[("error.type", "lease_expired")],
    )));
    rig.add(failed(settle(
        1,
        5,
        2,
        "dead_letter",
        &[("error.type", "dead_letter")],
    )));
    // An ack is no failure.
    rig.add(settle(1, 6, 2, "ack", &[]));
    let r = rows(&mut rig);
    assert_eq!(
        r.get(&row(EdgeKind::Consume, "")),
        Some(&(1, 1, 1)),
        "{r:?}"
    );
    for (reason, errors) in [
        ("ValueError", 0),
        ("nack", 1),
        ("lease_expired", 1),
        ("dead_letter", 1),
    ] {
        assert_eq!(
            r.get(&row(EdgeKind::Failure, reason)),
            Some(&(1, errors, 0)),
            "{reason}: {r:?}"
        );
    }
    assert!(!r.keys().any(|k| k.3 == "ack"), "{r:?}");
}

#[test]
fn a_replay_counts_apart_with_its_own_delay() {
    use crate::model::messaging::REPLAY;
    let mut rig = Rig::new(1024);
    rig.add(produce(1, 1, None));
    rig.add(consume(1, 2, Some(1)));
    let mut replay = consume(1, 9, Some(1));
    replay.attributes.push((REPLAY.into(), true.into()));
    let flags = rig.add(replay);
    assert_ne!(flags & FLAG_REPLAY, 0);
    let r = rows(&mut rig);
    // The consume edge and the dependency hold the first read only.
    assert_eq!(
        r.get(&row(EdgeKind::Consume, "")),
        Some(&(1, 0, 1)),
        "{r:?}"
    );
    assert_eq!(
        r.get(&row(EdgeKind::Dependency, "destination:kafka:orders")),
        Some(&(1, 0, 1)),
        "{r:?}"
    );
    // The replay: one event read again, its (longer) delay on its own row.
    assert_eq!(r.get(&row(EdgeKind::Replay, "")), Some(&(1, 0, 1)), "{r:?}");
}

/// A RabbitMQ span of `svc` (instance `instance`, unnamed when empty) on `dest`.
fn rabbit(mut s: Span, dest: &str, instance: &str) -> Span {
    if let Some(m) = s.messaging.as_mut() {
        m.system = "rabbitmq".into();
        m.destination = dest.into();
    }
    s.service.instance = Some(instance.to_string()).filter(|i| !i.is_empty());
    s
}

/// The flags each span ended with (at arrival or changed later), by span id byte.
fn final_flags(rig: &Rig, trace: u8, id: u8) -> u8 {
    rig.backlog.stored[&(TraceId([trace; 16]), SpanId([id; 8]))].flags
}

fn rabbit_row(kind: EdgeKind, via: &str) -> (String, String, EdgeKind, String) {
    let (from, to) = match kind {
        EdgeKind::Dependency => ("service:orders", "service:billing"),
        _ => ("destination:rabbitmq:orders", "service:billing"),
    };
    (from.to_string(), to.to_string(), kind, via.to_string())
}

#[test]
fn a_second_rabbitmq_delivery_to_one_consumer_is_a_redelivery_that_failed_the_first() {
    // pika marks no redelivery: the queue handing the message to the same consumer again
    // says the first delivery failed (nacked with requeue, or the consumer stopped).
    for (memory, consume_first, instance) in [
        (1024, false, "billing-1"),
        (1024, true, "billing-1"),
        (1, false, "billing-1"),
        // Both deliveries older than the writer's memory when their publish arrives: the
        // instance comes from the stored span.
        (1, true, "billing-1"),
    ] {
        let mut rig = Rig::new(memory);
        let p = rabbit(produce(1, 1, None), "orders", "");
        let first = rabbit(consume(1, 2, Some(1)), "orders", instance);
        let again = rabbit(consume(1, 3, Some(1)), "orders", instance);
        let spans = if consume_first {
            vec![first, again, p]
        } else {
            vec![p, first, again]
        };
        for s in spans {
            rig.add(s);
        }
        let case = format!("memory {memory}, consume first {consume_first}, instance {instance:?}");
        assert_eq!(final_flags(&rig, 1, 2) & FLAG_FAILED, 0, "{case}");
        let second = final_flags(&rig, 1, 3);
        assert_eq!(
            second & (FLAG_FAILED | FLAG_REDELIVERY),
            FLAG_FAILED | FLAG_REDELIVERY,
            "{case}"
        );
        assert_eq!(
            crate::accounting::facts::failed_reason(second),
            Some("redelivered")
        );
        // Stored before it was found failed: the store is told to mark it, and only it.
        let later = if consume_first {
            vec![SpanId([3; 8])]
        } else {
            vec![]
        };
        assert_eq!(rig.backlog.failed_later, later, "{case}");
        let r = rows(&mut rig);
        let case = format!("{case}: {r:?}");
        // One message, counted once; the redelivery a failure that is not an error (as the
        // embedded broker's), once.
        assert_eq!(
            r.get(&rabbit_row(EdgeKind::Consume, "")).map(|c| c.0),
            Some(1),
            "{case}"
        );
        assert_eq!(
            r.get(&rabbit_row(EdgeKind::Failure, "redelivered")),
            Some(&(1, 0, 0)),
            "{case}"
        );
    }
}

#[test]
fn copies_for_unnamed_instances_or_temporary_queues_are_no_redelivery() {
    // Replicas that name no instance, each reading its own queue bound to one exchange, look
    // like one consumer receiving the message twice: a broadcast, not a failure.
    for (destination, instance) in [
        ("orders", ""),
        (crate::model::messaging::TEMPORARY_DESTINATION, "billing-1"),
    ] {
        for consume_first in [false, true] {
            let mut rig = Rig::new(1024);
            let p = rabbit(produce(1, 1, None), destination, "");
            let first = rabbit(consume(1, 2, Some(1)), destination, instance);
            let again = rabbit(consume(1, 3, Some(1)), destination, instance);
            let spans = if consume_first {
                vec![first, again, p]
            } else {
                vec![p, first, again]
            };
            for s in spans {
                rig.add(s);
            }
            let case = format!("{destination} {instance:?}, consume first {consume_first}");
            assert_eq!(final_flags(&rig, 1, 2) & FLAG_FAILED, 0, "{case}");
            assert_eq!(
                final_flags(&rig, 1, 3) & (FLAG_FAILED | FLAG_REDELIVERY),
                0,
                "{case}"
            );
        }
    }
}

#[test]
fn copies_for_other_instances_systems_or_stated_deliveries_are_no_redelivery() {
    let delivery_info = |redelivered: &str| {
        (
            "celery.delivery_info".to_string(),
            serde_json::Value::from(format!(
                "{{'exchange': 'orders', 'routing_key': '', 'priority': 0, 'redelivered': {redelivered}}}"
            )),
        )
    };
    // (case, the second delivery, whether it is a redelivery)
    let mut other_instance = rabbit(consume(1, 3, Some(1)), "orders", "billing-2");
    other_instance.service.instance = Some("billing-2".into());
    let mut kafka = consume(1, 3, Some(1));
    kafka.service.instance = Some("billing-1".into());
    let mut broadcast = rabbit(consume(1, 3, Some(1)), "orders", "billing-1");
    broadcast.attributes.push(delivery_info("False"));
    let mut stated = rabbit(consume(1, 3, Some(1)), "orders", "billing-1");
    stated.attributes.push(delivery_info("True"));
    for (case, again, redelivery) in [
        (
            "another instance's copy (a queue per instance)",
            other_instance,
            false,
        ),
        ("Kafka: each group reads every event", kafka, false),
        (
            "Celery says it is no redelivery (a Broadcast copy)",
            broadcast,
            false,
        ),
        ("Celery says it is a redelivery", stated, true),
    ] {
        for consume_first in [false, true] {
            let mut rig = Rig::new(1024);
            let kafka = again
                .messaging
                .as_ref()
                .is_some_and(|m| m.system == "kafka");
            let dest = |s: Span| if kafka { s } else { rabbit(s, "orders", "") };
            let p = dest(produce(1, 1, None));
            let mut first = dest(consume(1, 2, Some(1)));
            first.service.instance = Some("billing-1".into());
            if case.starts_with("Celery") {
                first.attributes.push(delivery_info("False"));
            }
            let spans = if consume_first {
                vec![first, again.clone(), p]
            } else {
                vec![p, first, again.clone()]
            };
            for s in spans {
                rig.add(s);
            }
            let flags = final_flags(&rig, 1, 3);
            let case = format!("{case}, consume first {consume_first}");
            assert_eq!(flags & FLAG_FAILED != 0, redelivery, "{case}");
            assert_eq!(flags & FLAG_REDELIVERY != 0, redelivery, "{case}");
            let r = rows(&mut rig);
            let failures = r.keys().filter(|k| k.2 == EdgeKind::Failure).count();
            assert_eq!(failures, usize::from(redelivery), "{case}: {r:?}");
        }
    }
}

#[test]
fn a_consume_from_where_a_broker_sends_dead_letters_is_dead_lettered() {
    use crate::model::broker::{BrokerFlow, BrokerSnapshot, FlowKind};
    let flow = |kind, from: &str, to: &str| BrokerFlow {
        kind,
        from: from.into(),
        to: to.into(),
        key: None,
        inferred: false,
        figures: Default::default(),
    };
    let snapshot = |flows| BrokerSnapshot {
        broker: "rabbitmq 127.0.0.1:15672".into(),
        system: "rabbitmq".into(),
        flows,
        ..BrokerSnapshot::default()
    };
    let mut rig = Rig::new(1024);
    rig.nodes.broker_state(&snapshot(vec![
        flow(FlowKind::DeadLetter, "payments", "payments.dlx"),
        flow(FlowKind::Route, "payments.dlx", "payments.dead"),
        flow(FlowKind::Route, "orders", "payments"),
    ]));
    rig.add(rabbit(produce(1, 1, None), "payments", ""));
    // By the dead-letter exchange (pika names a delivery's exchange) or by its queue.
    for (id, dest, dead) in [
        (2, "payments", false),
        (3, "payments.dlx", true),
        (4, "payments.dead", true),
    ] {
        let mut c = rabbit(consume(1, id, Some(1)), dest, "");
        c.service.name = format!("reader{id}");
        let flags = rig.add(c);
        assert_eq!(
            crate::accounting::facts::failed_reason(flags),
            dead.then_some("dead_lettered"),
            "{dest}"
        );
    }
    // The count is the broker's: no failure row from traces.
    let r = rows(&mut rig);
    assert!(!r.keys().any(|k| k.2 == EdgeKind::Failure), "{r:?}");
    // A newer snapshot without the dead-letter exchange: no longer marked.
    rig.nodes.broker_state(&snapshot(vec![]));
    let flags = rig.add(rabbit(consume(2, 5, None), "payments.dead", ""));
    assert_eq!(crate::accounting::facts::failed_reason(flags), None);
}
