//! Store tests on a real SQLite file: pairing in any arrival order, counting rules,
//! duplicates, restarts.

use super::*;
use crate::model::{
    Link, Messaging, Operation, ServiceRef, Span, SpanId, SpanKind, StatusCode, TimeWindow, TraceId,
};
use crate::topology::{self, Topology};
use std::time::Duration;

const T0: u64 = 1_800_000_000_000_000_000;

pub(super) fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&StoreConfig {
        path: dir.path().join("s.db"),
        retention: RetentionConfig {
            max_age: Duration::from_secs(3600 * 24 * 365 * 100),
            max_bytes: None,
        },
        queue_depth: 8,
        synchronous: "NORMAL".into(),
    })
    .unwrap()
}

/// A span builder: `svc`, `kind`, ids from small numbers.
fn span(trace: u8, id: u8, parent: Option<u8>, svc: &str, kind: SpanKind) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        service: ServiceRef {
            name: svc.into(),
            namespace: None,
            instance: None,
        },
        kind,
        name: format!("{svc} op"),
        start_unix_nanos: T0 + id as u64 * 1_000_000,
        end_unix_nanos: T0 + id as u64 * 1_000_000 + 500_000,
        status: StatusCode::Unset,
        status_message: String::new(),
        attributes: vec![],
        resource: Default::default(),
        scope: String::new(),
        events: vec![],
        links: vec![],
        messaging: None,
        peer: None,
    }
}

fn msg(mut s: Span, dest: &str, op: Operation) -> Span {
    s.messaging = Some(Messaging {
        system: "kafka".into(),
        destination: dest.into(),
        operation: op,
        consumer_group: None,
        message_id: None,
        conversation_id: None,
        temporary: false,
        batch_count: None,
    });
    s
}

fn write(store: &Store, spans: Vec<Span>) -> WriteOutcome {
    store.write_blocking(prepare(spans)).unwrap()
}

fn topo(store: &Store) -> Topology {
    let w = TimeWindow::new(T0 - 60_000_000_000, T0 + 3_600_000_000_000).unwrap();
    topology::build(store.read(|c| reader::topology(c, w)).unwrap(), w)
}

fn edge(t: &Topology, from: &str, to: &str) -> Option<(i64, i64, i64)> {
    t.edges
        .iter()
        .find(|e| e.from == from && e.to == to)
        .map(|e| (e.count, e.errors, e.latency.samples))
}

#[test]
fn consumer_before_producer_pairs_the_same() {
    for order in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let producer = msg(
            span(1, 1, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        let consumer = msg(
            span(1, 2, Some(1), "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        );
        let (a, b) = if order {
            (producer, consumer)
        } else {
            (consumer, producer)
        };
        write(&store, vec![a]);
        write(&store, vec![b]);
        let t = topo(&store);
        assert_eq!(
            edge(&t, "service:orders", "destination:kafka:orders"),
            Some((1, 0, 1))
        );
        assert_eq!(
            edge(&t, "destination:kafka:orders", "service:billing"),
            Some((1, 0, 1)),
            "delay sample either way"
        );
        assert_eq!(t.dependencies.len(), 1);
        assert_eq!(t.dependencies[0].count, Some(1));
        store.shutdown();
    }
}

#[test]
fn nested_producers_are_one_message_in_any_order() {
    for order in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let outer = msg(
            span(2, 1, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        let inner = msg(
            span(2, 2, Some(1), "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        let (a, b) = if order {
            (outer, inner)
        } else {
            (inner, outer)
        };
        write(&store, vec![a]);
        write(&store, vec![b]);
        assert_eq!(
            edge(&topo(&store), "service:orders", "destination:kafka:orders").map(|e| e.0),
            Some(1)
        );
        store.shutdown();
    }
}

#[test]
fn batch_consumer_links_count_each_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let p1 = msg(
        span(3, 1, None, "a", SpanKind::Producer),
        "jobs",
        Operation::Produce,
    );
    let p2 = msg(
        span(4, 1, None, "a", SpanKind::Producer),
        "jobs",
        Operation::Produce,
    );
    let mut c = msg(
        span(5, 9, None, "b", SpanKind::Consumer),
        "jobs",
        Operation::Consume,
    );
    c.links = vec![
        Link {
            trace_id: TraceId([3; 16]),
            span_id: SpanId([1; 8]),
            attributes: vec![],
        },
        Link {
            trace_id: TraceId([4; 16]),
            span_id: SpanId([1; 8]),
            attributes: vec![],
        },
    ];
    write(&store, vec![c]);
    write(&store, vec![p1, p2]);
    let t = topo(&store);
    assert_eq!(
        edge(&t, "destination:kafka:jobs", "service:b"),
        Some((2, 0, 2))
    );
    assert_eq!(t.dependencies[0].count, Some(2));
    store.shutdown();
}

#[test]
fn client_server_pairs_move_calls_off_the_external_peer() {
    for order in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir);
        let mut client = span(6, 1, None, "cart", SpanKind::Client);
        client.peer = Some("catalog.internal".into());
        client.status = StatusCode::Error;
        let server = span(6, 2, Some(1), "catalog", SpanKind::Server);
        let (a, b) = if order {
            (client, server)
        } else {
            (server, client)
        };
        write(&store, vec![a]);
        write(&store, vec![b]);
        let t = topo(&store);
        assert_eq!(edge(&t, "service:cart", "service:catalog"), Some((1, 1, 1)));
        assert_eq!(
            edge(&t, "service:cart", "external:catalog.internal"),
            None,
            "order {order}"
        );
        store.shutdown();
    }
}

#[test]
fn duplicates_are_not_counted_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = msg(
        span(7, 1, None, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let store = open(&dir);
    assert_eq!(
        write(&store, vec![p.clone()]),
        WriteOutcome {
            stored: 1,
            duplicates: 0
        }
    );
    assert_eq!(
        write(&store, vec![p.clone()]),
        WriteOutcome {
            stored: 0,
            duplicates: 1
        }
    );
    store.shutdown();
    let store = open(&dir);
    assert_eq!(
        write(&store, vec![p]),
        WriteOutcome {
            stored: 0,
            duplicates: 1
        }
    );
    assert_eq!(
        edge(&topo(&store), "service:orders", "destination:kafka:orders").map(|e| e.0),
        Some(1)
    );
    let spans = store.trace(TraceId([7; 16])).unwrap();
    assert_eq!(spans.len(), 1);
    store.shutdown();
}

#[test]
fn pairing_waits_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write(
        &store,
        vec![msg(
            span(8, 2, Some(1), "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        )],
    );
    store.shutdown();
    let store = open(&dir);
    write(
        &store,
        vec![msg(
            span(8, 1, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        )],
    );
    assert_eq!(topo(&store).dependencies[0].count, Some(1));
    store.shutdown();
}

#[test]
fn parents_come_first_and_cycles_terminate() {
    // 3 -> 2 -> 1 (child -> parent), listed children first; 9 has an absent parent.
    let p = |id, parent| span(1, id, parent, "s", SpanKind::Internal);
    let spans = prepare(vec![
        p(3, Some(2)),
        p(9, Some(8)),
        p(2, Some(1)),
        p(1, None),
    ]);
    let order = writer::parents_first(&spans);
    let pos = |id: u8| {
        order
            .iter()
            .position(|&i| spans[i].span.span_id == SpanId([id; 8]))
            .unwrap()
    };
    assert_eq!(order.len(), 4);
    assert!(pos(1) < pos(2) && pos(2) < pos(3));
    let cyclic = prepare(vec![p(1, Some(2)), p(2, Some(1))]);
    assert_eq!(writer::parents_first(&cyclic).len(), 2);
}

#[test]
fn a_span_that_arrives_settles_what_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // A publish inside a handler span that is exported later: the publish waits for its parent.
    write(
        &store,
        vec![msg(
            span(9, 2, Some(1), "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        )],
    );
    let waiting = |s: &Store| {
        s.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM pending_refs", [], |r| {
                r.get::<_, i64>(0)
            })?)
        })
        .unwrap()
    };
    assert_eq!(waiting(&store), 1);
    write(&store, vec![span(9, 1, None, "orders", SpanKind::Server)]);
    assert_eq!(waiting(&store), 0, "the handler's arrival clears the wait");
    store.shutdown();
}
