//! The suite's checks of what a store reads back: traces, search, linking spans, node
//! minutes, windows, broker snapshots, traced partitions.

use super::{window, write, Harness};
use crate::model::testing::{msg, span, T0};
use crate::model::{
    Link, Operation, SpanId, SpanKind, StatusCode, TimeWindow, TraceId, TraceQuery,
};
use crate::priority::Priority;
use crate::store::{Room, WriteBatch};

pub fn an_empty_store_answers_empty(h: &dyn Harness) {
    let store = h.open();
    let rows = store.topology(window()).unwrap();
    assert!(rows.nodes.is_empty() && rows.edges.is_empty());
    assert_eq!(store.span_count().unwrap(), 0);
    assert!(store.trace(TraceId([1; 16])).unwrap().is_empty());
    let found = store
        .search_traces(&TraceQuery {
            limit: 10,
            ..TraceQuery::default()
        })
        .unwrap();
    assert!(found.traces.is_empty() && found.complete);
    store.shutdown();
}

pub fn a_trace_reads_back_oldest_first_across_restarts(h: &dyn Harness) {
    let store = h.open();
    let consume = msg(
        span(10, 3, Some(2), "billing", SpanKind::Consumer),
        "orders",
        Operation::Consume,
    );
    let publish = msg(
        span(10, 2, Some(1), "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let mut root = span(10, 1, None, "orders", SpanKind::Server);
    root.status = StatusCode::Error;
    // Three requests, children first.
    write(&store, vec![consume]);
    write(&store, vec![publish]);
    write(
        &store,
        vec![root, span(11, 1, None, "other", SpanKind::Server)],
    );
    one_span_reads_as_in_its_trace(&store);
    store.shutdown();
    let store = h.open();
    let spans = store.trace(TraceId([10; 16])).unwrap();
    let ids: Vec<SpanId> = spans.iter().map(|s| s.span_id).collect();
    assert_eq!(ids, vec![SpanId([1; 8]), SpanId([2; 8]), SpanId([3; 8])]);
    assert_eq!(spans[0].status, StatusCode::Error);
    assert_eq!(spans[1].parent_span_id, Some(SpanId([1; 8])));
    let m = spans[2].messaging.as_ref().expect("messaging kept");
    assert_eq!((m.destination.as_str(), m.operation), ("orders", "consume"));
    assert_eq!(store.span_count().unwrap(), 4);
    one_span_reads_as_in_its_trace(&store);
    store.shutdown();
}

/// `trace_span` answers each span of trace 10 as `trace` does, not a span of the same id in
/// trace 11, and `None` for a span or trace it does not hold.
fn one_span_reads_as_in_its_trace(store: &crate::store::Store) {
    let trace = TraceId([10; 16]);
    for s in store.trace(trace).unwrap() {
        let one = store
            .trace_span(trace, s.span_id)
            .unwrap()
            .expect("the span");
        assert_eq!(
            serde_json::to_value(&one).unwrap(),
            serde_json::to_value(&s).unwrap()
        );
    }
    assert!(store.trace_span(trace, SpanId([9; 8])).unwrap().is_none());
    let other = store.trace_span(TraceId([11; 16]), SpanId([1; 8])).unwrap();
    assert_eq!(other.map(|s| s.service), Some("other".to_string()));
    assert!(store
        .trace_span(TraceId([12; 16]), SpanId([1; 8]))
        .unwrap()
        .is_none());
}

pub fn search_matches_each_filter_on_one_span(h: &dyn Harness) {
    let store = h.open();
    let mut failed = span(20, 1, None, "cart", SpanKind::Server);
    failed.status = StatusCode::Error;
    let publish = msg(
        span(21, 1, None, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    write(
        &store,
        vec![failed, publish, span(22, 1, None, "cart", SpanKind::Server)],
    );
    let found = |q: TraceQuery| -> Vec<TraceId> {
        let mut ids: Vec<TraceId> = store
            .search_traces(&TraceQuery { limit: 10, ..q })
            .unwrap()
            .traces
            .iter()
            .map(|t| t.trace_id)
            .collect();
        ids.sort();
        ids
    };
    let by_service = found(TraceQuery {
        service: Some("cart".into()),
        ..TraceQuery::default()
    });
    assert_eq!(by_service, vec![TraceId([20; 16]), TraceId([22; 16])]);
    let errors = found(TraceQuery {
        service: Some("cart".into()),
        errors_only: true,
        ..TraceQuery::default()
    });
    assert_eq!(errors, vec![TraceId([20; 16])]);
    let by_destination = found(TraceQuery {
        destination: Some("orders".into()),
        ..TraceQuery::default()
    });
    assert_eq!(by_destination, vec![TraceId([21; 16])]);
    let by_operation = found(TraceQuery {
        operation: Some("orders op".into()),
        ..TraceQuery::default()
    });
    assert_eq!(by_operation, vec![TraceId([21; 16])]);
    // Service and status must hold on one span: cart succeeded and another service failed.
    let mut other_failed = span(23, 2, Some(1), "payments", SpanKind::Client);
    other_failed.status = StatusCode::Error;
    write(
        &store,
        vec![span(23, 1, None, "cart", SpanKind::Server), other_failed],
    );
    let errors = found(TraceQuery {
        service: Some("cart".into()),
        errors_only: true,
        ..TraceQuery::default()
    });
    assert_eq!(
        errors,
        vec![TraceId([20; 16])],
        "not trace 23: no failed cart span"
    );
    let mut tagged = span(24, 1, None, "cart", SpanKind::Server);
    tagged.attributes = vec![("order.id".into(), serde_json::json!("A-42"))];
    write(&store, vec![tagged]);
    let by_attribute = found(TraceQuery {
        attribute: Some(("order.id".into(), "A-42".into())),
        ..TraceQuery::default()
    });
    assert_eq!(by_attribute, vec![TraceId([24; 16])]);
    // Newest first, and the limit keeps the newest.
    let newest = store
        .search_traces(&TraceQuery {
            service: Some("cart".into()),
            limit: 2,
            ..TraceQuery::default()
        })
        .unwrap();
    let starts: Vec<u64> = newest.traces.iter().map(|t| t.start_unix_nanos).collect();
    assert_eq!(starts.len(), 2);
    assert!(starts[0] >= starts[1], "newest first: {starts:?}");
    let outside = found(TraceQuery {
        service: Some("cart".into()),
        window: TimeWindow::new(T0 + 3_600_000_000_000, T0 + 7_200_000_000_000),
        ..TraceQuery::default()
    });
    assert!(outside.is_empty(), "the window bounds the search");
    store.shutdown();
}

pub fn linking_spans_are_found_from_the_linked_trace(h: &dyn Harness) {
    let store = h.open();
    let publish = msg(
        span(30, 1, None, "orders", SpanKind::Producer),
        "jobs",
        Operation::Produce,
    );
    let mut batch = msg(
        span(31, 5, None, "worker", SpanKind::Consumer),
        "jobs",
        Operation::Consume,
    );
    batch.links = vec![Link {
        trace_id: TraceId([30; 16]),
        span_id: SpanId([1; 8]),
        attributes: vec![],
    }];
    write(&store, vec![publish]);
    write(&store, vec![batch]);
    let linking = store.linking_spans(TraceId([30; 16]), T0, 8).unwrap();
    assert_eq!(linking.len(), 1);
    assert_eq!(linking[0].trace_id, TraceId([31; 16]));
    assert_eq!(linking[0].service, "worker");
    assert!(store
        .linking_spans(TraceId([31; 16]), T0, 8)
        .unwrap()
        .is_empty());
    store.shutdown();
}

pub fn node_minutes_count_what_a_node_did(h: &dyn Harness) {
    let store = h.open();
    let mut spans = Vec::new();
    for id in 1..=3 {
        let mut s = span(40, id, None, "cart", SpanKind::Server);
        if id == 3 {
            s.status = StatusCode::Error;
        }
        spans.push(s);
    }
    write(&store, spans);
    let minutes = store.node_minutes("service:cart", window()).unwrap();
    let (spans, errors) = minutes
        .values()
        .fold((0, 0), |(n, e), m| (n + m.count, e + m.errors));
    assert_eq!((spans, errors), (3, 1));
    assert!(store
        .node_minutes("service:nobody", window())
        .unwrap()
        .is_empty());
    store.shutdown();
}

/// A destination's minutes: messages in (published to it or routed into it) and the failures
/// of its consumes (a nack), read back as statistics rows and as the topology's failures.
pub fn destination_minutes_count_messages_in_and_failures(h: &dyn Harness) {
    let store = h.open();
    let produce = msg(
        span(45, 1, None, "orders", SpanKind::Producer),
        "exchange",
        Operation::Produce,
    );
    let consume = msg(
        span(45, 2, Some(1), "billing", SpanKind::Consumer),
        "queue",
        Operation::Consume,
    );
    let mut nack = msg(
        span(45, 3, Some(2), "billing", SpanKind::Client),
        "queue",
        Operation::Settle,
    );
    nack.attributes = vec![
        ("messaging.operation.name".into(), "nack".into()),
        ("error.type".into(), "nack".into()),
    ];
    nack.status = StatusCode::Error;
    write(&store, vec![produce, consume, nack]);
    let totals = |id: &str| {
        store
            .node_minutes(id, window())
            .unwrap()
            .values()
            .fold((0, 0), |(n, e), m| (n + m.count, e + m.errors))
    };
    // The queue's messages came in by the route exchange -> queue; its consume failed once.
    assert_eq!(totals("destination:kafka:queue"), (1, 1));
    assert_eq!(totals("destination:kafka:exchange"), (1, 0));
    let rows = store.topology(window()).unwrap();
    let failure = rows
        .edges
        .iter()
        .find(|e| e.kind == crate::model::EdgeKind::Failure)
        .expect("a failure row");
    assert_eq!(
        (
            failure.from.as_str(),
            failure.to.as_str(),
            failure.via.as_str()
        ),
        ("destination:kafka:queue", "service:billing", "nack")
    );
    assert_eq!((failure.count, failure.errors), (1, 1));
    store.shutdown();
}

/// A RabbitMQ message delivered twice to one consumer (pika marks no redelivery): the second
/// delivery is stored as an error with `error.type` `redelivered`, found by "errors only" and
/// by that attribute, and its consume edge counts one message and one `redelivered` failure.
/// With the publish stored last (both deliveries stored before the pairing knew), every
/// answer is the same: the stored second delivery is marked failed when the publish arrives.
pub fn a_second_delivery_to_one_consumer_is_a_redelivered_error(h: &dyn Harness) {
    use crate::model::messaging::ERROR_TYPE;
    use crate::model::EdgeKind;
    let rabbit = |mut s: crate::model::Span| {
        if let Some(m) = s.messaging.as_mut() {
            m.system = "rabbitmq".into();
        }
        s
    };
    for (trace, publish_first) in [(46u8, true), (47, false)] {
        let h = h.fresh();
        let store = h.open();
        let publish = rabbit(msg(
            span(trace, 1, None, "cashier", SpanKind::Producer),
            "payments",
            Operation::Produce,
        ));
        let consume = |id| {
            let mut s = rabbit(msg(
                span(trace, id, Some(1), "settler", SpanKind::Consumer),
                "payments",
                Operation::Consume,
            ));
            // A redelivery is told from a copy for another replica by the named instance.
            s.service.instance = Some("settler-1".into());
            s
        };
        let mut requests = vec![vec![consume(2)], vec![consume(3)]];
        if publish_first {
            requests.insert(0, vec![publish]);
        } else {
            requests.push(vec![publish]);
        }
        for r in requests {
            write(&store, r);
        }
        let case = format!("publish first: {publish_first}");
        let rows = store.topology(window()).unwrap();
        let of = |kind: EdgeKind, via: &str| {
            rows.edges
                .iter()
                .filter(|e| e.kind == kind && e.via == via)
                .filter(|e| e.from == "destination:rabbitmq:payments")
                .map(|e| (e.count, e.errors))
                .fold((0, 0), |(c, e), (c2, e2)| (c + c2, e + e2))
        };
        assert_eq!(of(EdgeKind::Consume, "").0, 1, "{case}: one message");
        assert_eq!(of(EdgeKind::Failure, "redelivered"), (1, 0), "{case}");
        let spans = store.trace(TraceId([trace; 16])).unwrap();
        let ids: Vec<u8> = spans.iter().map(|s| s.span_id.0[0]).collect();
        assert_eq!(ids, [1, 2, 3], "{case}: each span once");
        let status: Vec<StatusCode> = spans.iter().map(|s| s.status).collect();
        assert_eq!(
            status,
            [StatusCode::Unset, StatusCode::Unset, StatusCode::Error],
            "{case}"
        );
        assert_eq!(spans[2].attributes[ERROR_TYPE], "redelivered", "{case}");
        assert!(
            spans[2]
                .status_message
                .as_deref()
                .is_some_and(|m| m.starts_with("redelivered")),
            "{case}"
        );
        let found = |q: TraceQuery| -> Vec<TraceId> {
            let q = TraceQuery { limit: 10, ..q };
            let r = store.search_traces(&q).unwrap();
            r.traces.iter().map(|t| t.trace_id).collect()
        };
        let errors_only = found(TraceQuery {
            errors_only: true,
            ..TraceQuery::default()
        });
        assert_eq!(errors_only, [TraceId([trace; 16])], "{case}");
        let settler_errors = found(TraceQuery {
            service: Some("settler".into()),
            errors_only: true,
            ..TraceQuery::default()
        });
        assert_eq!(settler_errors, [TraceId([trace; 16])], "{case}");
        let by_reason = found(TraceQuery {
            attribute: Some((ERROR_TYPE.into(), "redelivered".into())),
            ..TraceQuery::default()
        });
        assert_eq!(by_reason, [TraceId([trace; 16])], "{case}");
        let summary = store
            .search_traces(&TraceQuery {
                limit: 10,
                ..TraceQuery::default()
            })
            .unwrap();
        assert_eq!(summary.traces[0].error_count, 1, "{case}");
        assert_eq!(summary.traces[0].span_count, 3, "{case}");
        // What pathways read: each span once, the redelivery as its failed copy.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let set = store
            .search_spans(
                &TraceQuery {
                    limit: 10,
                    ..TraceQuery::default()
                },
                deadline,
            )
            .unwrap();
        let read: Vec<(u8, StatusCode)> = set.traces[0]
            .iter()
            .map(|s| (s.span_id.0[0], s.status))
            .collect();
        assert_eq!(
            read,
            [
                (1, StatusCode::Unset),
                (2, StatusCode::Unset),
                (3, StatusCode::Error)
            ],
            "{case}: pathways' read"
        );
        store.shutdown();
    }
}

/// A consume from where a broker's snapshot says dead letters go (its dead-letter exchange) is
/// stored as an error with `error.type` `dead_lettered`; before the broker said so, it is not.
pub fn a_read_from_a_dead_letter_exchange_is_a_dead_lettered_error(h: &dyn Harness) {
    use crate::model::broker::{BrokerFlow, BrokerSnapshot, FlowKind};
    use crate::model::messaging::ERROR_TYPE;
    let store = h.open();
    let read = |trace: u8| {
        let mut s = msg(
            span(trace, 1, None, "auditor", SpanKind::Consumer),
            "payments.dlx",
            Operation::Consume,
        );
        if let Some(m) = s.messaging.as_mut() {
            m.system = "rabbitmq".into();
        }
        s
    };
    write(&store, vec![read(48)]);
    let snapshot = BrokerSnapshot {
        broker: "rabbitmq 127.0.0.1:15672".into(),
        system: "rabbitmq".into(),
        taken_unix_nanos: T0,
        flows: vec![BrokerFlow {
            kind: FlowKind::DeadLetter,
            from: "payments".into(),
            to: "payments.dlx".into(),
            key: None,
            inferred: false,
            figures: Default::default(),
        }],
        ..BrokerSnapshot::default()
    };
    store
        .write(
            WriteBatch::BrokerState(Box::new(snapshot)),
            Room::Always,
            Priority::Normal,
        )
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    write(&store, vec![read(49)]);
    let before = store.trace(TraceId([48; 16])).unwrap();
    assert_eq!(
        before[0].status,
        StatusCode::Unset,
        "read before the broker said"
    );
    let after = store.trace(TraceId([49; 16])).unwrap();
    assert_eq!(after[0].status, StatusCode::Error);
    assert_eq!(after[0].attributes[ERROR_TYPE], "dead_lettered");
    let errors = store
        .search_traces(&TraceQuery {
            errors_only: true,
            limit: 10,
            ..TraceQuery::default()
        })
        .unwrap();
    let ids: Vec<TraceId> = errors.traces.iter().map(|t| t.trace_id).collect();
    assert_eq!(ids, [TraceId([49; 16])]);
    store.shutdown();
}

pub fn the_window_bounds_the_topology(h: &dyn Harness) {
    let store = h.open();
    write(
        &store,
        vec![msg(
            span(50, 1, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        )],
    );
    let later = TimeWindow::new(T0 + 3_600_000_000_000, T0 + 7_200_000_000_000).unwrap();
    let rows = store.topology(later).unwrap();
    assert!(rows.edges.is_empty(), "nothing happened in that window");
    assert!(store.node_keys(later).unwrap().is_empty());
    let rows = store.topology(window()).unwrap();
    assert!(!rows.edges.is_empty());
    // The search's names are the topology's nodes, however the backend reads them.
    let mut keys = store.node_keys(window()).unwrap();
    keys.sort();
    let mut want: Vec<_> = rows.nodes.into_iter().map(|n| n.key).collect();
    want.sort();
    assert_eq!(keys, want);
    store.shutdown();
}

/// Partitions the spans name: per partition and service, the messages published and
/// consumed. A kafkajs eachBatch `poll` (a batch of 2 from partition 1) and its per-message
/// `process` children count the batch once; a span without a partition counts on no
/// partition; the figures hold across a restart and the window bounds them.
pub fn partition_traffic_counts_what_spans_name(h: &dyn Harness) {
    let on = |mut s: crate::model::Span, partition: i32| {
        if let Some(m) = s.messaging.as_mut() {
            m.partition = Some(partition);
        }
        s
    };
    let m = |trace: u8, id: u8, parent: Option<u8>, svc: &str, kind: SpanKind, op: Operation| {
        msg(span(trace, id, parent, svc, kind), "orders", op)
    };
    let store = h.open();
    write(
        &store,
        vec![
            on(
                m(
                    46,
                    1,
                    None,
                    "checkout",
                    SpanKind::Producer,
                    Operation::Produce,
                ),
                0,
            ),
            m(
                46,
                2,
                None,
                "checkout",
                SpanKind::Producer,
                Operation::Produce,
            ),
            on(
                m(
                    46,
                    3,
                    Some(1),
                    "billing",
                    SpanKind::Consumer,
                    Operation::Consume,
                ),
                0,
            ),
            on(
                m(
                    46,
                    4,
                    Some(1),
                    "audit",
                    SpanKind::Consumer,
                    Operation::Consume,
                ),
                0,
            ),
        ],
    );
    let mut poll = on(
        m(47, 1, None, "billing", SpanKind::Client, Operation::Consume),
        1,
    );
    if let Some(m) = poll.messaging.as_mut() {
        m.batch_count = Some(2);
    }
    write(&store, vec![poll]);
    write(
        &store,
        vec![
            on(
                m(
                    47,
                    2,
                    Some(1),
                    "billing",
                    SpanKind::Consumer,
                    Operation::Consume,
                ),
                1,
            ),
            on(
                m(
                    47,
                    3,
                    Some(1),
                    "billing",
                    SpanKind::Consumer,
                    Operation::Consume,
                ),
                1,
            ),
        ],
    );
    let read = |store: &crate::store::Store, w: TimeWindow| -> Vec<(i32, String, u64, u64)> {
        store
            .partition_traffic("destination:kafka:orders", w)
            .unwrap()
            .into_iter()
            .map(|t| (t.partition, t.service, t.published, t.consumed))
            .collect()
    };
    let want = vec![
        (0, "service:audit".to_string(), 0, 1),
        (0, "service:billing".to_string(), 0, 1),
        (0, "service:checkout".to_string(), 1, 0),
        (1, "service:billing".to_string(), 0, 2),
    ];
    assert_eq!(read(&store, window()), want);
    store.shutdown();
    let store = h.open();
    assert_eq!(read(&store, window()), want, "after a restart");
    let later = TimeWindow::new(T0 + 3_600_000_000_000, T0 + 7_200_000_000_000).unwrap();
    assert!(read(&store, later).is_empty());
    assert!(store
        .partition_traffic("destination:kafka:nothing", window())
        .unwrap()
        .is_empty());
    store.shutdown();
}

pub fn broker_snapshots_are_kept_per_minute_with_their_history(h: &dyn Harness) {
    use crate::model::broker::{BrokerDestination, BrokerSnapshot, Entity};
    use crate::model::Figures;
    let store = h.open();
    let snap = |minute: u64, second: u64, depth: u64| BrokerSnapshot {
        broker: "rabbitmq 127.0.0.1:15672".into(),
        system: "rabbitmq".into(),
        taken_unix_nanos: T0 + minute * 60_000_000_000 + second * 1_000_000_000,
        destinations: vec![BrokerDestination {
            name: "billing".into(),
            namespace: None,
            entity: Entity::Queue,
            detail: None,
            subjects: Vec::new(),
            figures: Figures {
                depth: Some(depth),
                ..Figures::default()
            },
        }],
        services: vec![],
        flows: vec![],
    };
    // Two polls in minute 0 (the later one stays), one in minute 2.
    for s in [snap(0, 1, 5), snap(0, 30, 7), snap(2, 0, 9)] {
        store
            .write(
                WriteBatch::BrokerState(Box::new(s)),
                Room::Always,
                Priority::Normal,
            )
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
    let minute = |m: u64| T0 + m * 60_000_000_000;
    let first = TimeWindow::new(minute(0), minute(1)).unwrap();
    let rows = store.topology(first).unwrap();
    assert_eq!(rows.brokers.len(), 1);
    assert_eq!(rows.brokers[0].destinations[0].figures.depth, Some(7));
    assert_eq!(
        store.topology(window()).unwrap().brokers[0].destinations[0]
            .figures
            .depth,
        Some(9)
    );
    // Trends compare the newest poll with the oldest one the window holds.
    let whole = store.topology(window()).unwrap();
    assert_eq!(whole.brokers_then[0].destinations[0].figures.depth, Some(7));
    let later = TimeWindow::new(minute(30), minute(40)).unwrap();
    assert!(store.topology(later).unwrap().brokers.is_empty());
    let history = store
        .broker_history("destination:rabbitmq:billing", window())
        .unwrap();
    let depths: Vec<Option<u64>> = history.values().map(|f| f.depth).collect();
    assert_eq!(depths, vec![Some(7), Some(9)]);
    store.shutdown();
    let store = h.open();
    assert_eq!(
        store.topology(first).unwrap().brokers.len(),
        1,
        "kept across a restart"
    );
    store.shutdown();
}

/// `search_spans` (pathways) reads the newest matching traces whole, newest first, each as
/// `trace` reads it in the fields that tie spans together and time them; a deadline already
/// past reads none and says so. `spans_of` reads traces by id the same way.
pub fn search_spans_reads_the_newest_traces_whole(h: &dyn Harness) {
    let store = h.open();
    let mut spans = Vec::new();
    for t in [40u8, 41, 42] {
        // Later traces start later: span ids set the start times.
        let base = (t - 40) * 10 + 1;
        spans.push(msg(
            span(t, base, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        ));
        spans.push(msg(
            span(t, base + 1, Some(base), "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        ));
    }
    spans.push(span(43, 50, None, "cart", SpanKind::Server));
    write(&store, spans);
    let q = TraceQuery {
        service: Some("orders".into()),
        window: Some(window()),
        limit: 2,
        ..TraceQuery::default()
    };
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let set = store.search_spans(&q, later).unwrap();
    assert!(set.search_complete && !set.out_of_time);
    let ids: Vec<TraceId> = set.traces.iter().map(|t| t[0].trace_id).collect();
    assert_eq!(ids, [TraceId([42; 16]), TraceId([41; 16])], "newest first");
    for t in &set.traces {
        let whole = store.trace(t[0].trace_id).unwrap();
        let key = |s: &crate::model::StoredSpan| {
            (
                s.span_id,
                s.parent_span_id,
                s.service.clone(),
                s.kind,
                s.start_unix_nanos,
                s.end_unix_nanos,
                s.messaging
                    .as_ref()
                    .map(|m| (m.destination.clone(), m.operation)),
            )
        };
        let got: Vec<_> = t.iter().map(key).collect();
        let want: Vec<_> = whole.iter().map(key).collect();
        assert_eq!(got, want);
    }
    let past = std::time::Instant::now();
    let none = store.search_spans(&q, past).unwrap();
    assert!(none.traces.is_empty() && none.out_of_time);
    // `spans_of` (traces reached through links) reads the traces asked for, in that order, as
    // `search_spans` does; a trace not stored is left out.
    let asked = [TraceId([40; 16]), TraceId([99; 16]), TraceId([42; 16])];
    let got = store.spans_of(&asked, later).unwrap();
    let ids: Vec<TraceId> = got.traces.iter().map(|t| t[0].trace_id).collect();
    assert_eq!(ids, [TraceId([40; 16]), TraceId([42; 16])]);
    let span_ids = |t: &[crate::model::StoredSpan]| t.iter().map(|s| s.span_id).collect::<Vec<_>>();
    assert_eq!(span_ids(&got.traces[1]), span_ids(&set.traces[0]));
    assert!(!got.out_of_time);
    let late = store.spans_of(&asked, past).unwrap();
    assert!(late.traces.is_empty() && late.out_of_time);
}

/// One Kafka message read twice by one service (its group), as a second delivery: one
/// message on the consume edge and on its partition, as the edges count it, in every arrival
/// order: publish first; consumes first (the publish pairs them from the writer's memory);
/// consumes first and a restart before the publish (the waiting list keeps no partition: the
/// stored consume's attributes give it). Another group's read of the message counts apart.
pub fn a_second_delivery_counts_once_on_its_partition(h: &dyn Harness) {
    use crate::model::EdgeKind;
    for (trace, order) in [
        (56u8, "publish first"),
        (57, "consumes first"),
        (58, "restart"),
    ] {
        let h = h.fresh();
        let store = h.open();
        let publish = msg(
            span(trace, 1, None, "checkout", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        let consume = |id: u8, svc: &str| {
            let mut s = msg(
                span(trace, id, Some(1), svc, SpanKind::Consumer),
                "orders",
                Operation::Consume,
            );
            if let Some(m) = s.messaging.as_mut() {
                m.partition = Some(2);
            }
            // As stored from a real span: the attribute ingest read the partition from.
            s.attributes
                .push(("messaging.destination.partition.id".into(), "2".into()));
            s
        };
        let reads = vec![consume(2, "billing"), consume(3, "billing")];
        let store = match order {
            "publish first" => {
                write(&store, vec![publish]);
                write(&store, reads);
                write(&store, vec![consume(4, "audit")]);
                store
            }
            "consumes first" => {
                write(&store, reads);
                write(&store, vec![consume(4, "audit")]);
                write(&store, vec![publish]);
                store
            }
            _ => {
                write(&store, reads);
                write(&store, vec![consume(4, "audit")]);
                store.shutdown();
                let store = h.open();
                write(&store, vec![publish]);
                store
            }
        };
        let rows = store.topology(window()).unwrap();
        let consumed = |svc: &str| -> i64 {
            rows.edges
                .iter()
                .filter(|e| e.kind == EdgeKind::Consume && e.via.is_empty())
                .filter(|e| e.from == "destination:kafka:orders" && e.to == svc)
                .map(|e| e.count)
                .sum()
        };
        assert_eq!(consumed("service:billing"), 1, "{order}: one message");
        assert_eq!(consumed("service:audit"), 1, "{order}");
        let parts: Vec<(i32, String, u64, u64)> = store
            .partition_traffic("destination:kafka:orders", window())
            .unwrap()
            .into_iter()
            .map(|t| (t.partition, t.service, t.published, t.consumed))
            .collect();
        assert_eq!(
            parts,
            vec![
                (2, "service:audit".to_string(), 0, 1),
                (2, "service:billing".to_string(), 0, 1),
            ],
            "{order}: the partition counts the message once per group, as the edges do"
        );
        store.shutdown();
    }
}

/// Search cuts the newest traces to the nanosecond and bounds the window to the nanosecond,
/// however coarsely a backend's index keeps times (the ClickHouse index keeps seconds): many
/// traces start within one second, the window's bounds fall inside seconds, and the answers
/// are checked against what the spans themselves say.
pub fn search_orders_traces_to_the_nanosecond(h: &dyn Harness) {
    let store = h.open();
    const MS: u64 = 1_000_000;
    let second = T0 + 10_000 * MS;
    let mut spans = Vec::new();
    for k in 0..30u8 {
        // 30 traces 1 ms apart, in shuffled order of id; cart and pay. (Ids of
        // one repeated byte: no two of them complement each other, whose span hashes
        // would collide.)
        let trace = 1 + (k * 7) % 30;
        let service = if k % 3 == 0 { "pay" } else { "cart" };
        let mut s = span(trace, 1, None, service, SpanKind::Server);
        s.start_unix_nanos = second + u64::from(k) * MS + 3;
        s.end_unix_nanos = s.start_unix_nanos + MS;
        s.status = if k % 4 == 0 {
            StatusCode::Error
        } else {
            StatusCode::Unset
        };
        spans.push(s);
    }
    // Traces straddling the second's start and its end: a span in the second before (and
    // after), one inside.
    for (trace, outside, inside) in [
        (40u8, second - 400 * MS, second + 55 * MS),
        (41, second + 1_200 * MS, second + 22 * MS + 500_000),
        (42, second - 1, second + 1_001 * MS),
    ] {
        let mut a = span(trace, 1, None, "cart", SpanKind::Server);
        a.start_unix_nanos = outside;
        a.end_unix_nanos = outside + MS;
        let mut b = span(trace, 2, Some(1), "cart", SpanKind::Client);
        b.start_unix_nanos = inside;
        b.end_unix_nanos = inside + MS;
        spans.extend([a, b]);
    }
    write(&store, spans.clone());
    // What the spans say: traces with a span meeting the conditions in the window, by the
    // earliest such start, newest first, at most `limit`.
    let expected = |q: &TraceQuery| -> Vec<TraceId> {
        let mut starts: std::collections::BTreeMap<TraceId, u64> = Default::default();
        for s in &spans {
            let matches = q.service.as_ref().is_none_or(|x| *x == s.service.name)
                && (!q.errors_only || s.status == StatusCode::Error)
                && q.window.is_none_or(|w| {
                    s.start_unix_nanos >= w.since_unix_nanos
                        && s.start_unix_nanos < w.until_unix_nanos
                });
            if matches {
                let e = starts.entry(s.trace_id).or_insert(u64::MAX);
                *e = (*e).min(s.start_unix_nanos);
            }
        }
        let mut found: Vec<(u64, TraceId)> = starts.into_iter().map(|(t, s)| (s, t)).collect();
        found.sort_by(|a, b| b.cmp(a));
        found.into_iter().take(q.limit).map(|(_, t)| t).collect()
    };
    let windows = [
        None,
        // Bounds between spans, inside a second (and inside the ClickHouse index's ticks).
        TimeWindow::new(second + 12 * MS + 1, second + 25 * MS),
        // From inside the second to past it: the straddling traces' inside spans only.
        TimeWindow::new(second + 5 * MS, second + 1_100 * MS),
        // Up to the second's start, to the nanosecond.
        TimeWindow::new(second - 500 * MS, second),
        // Whole seconds.
        TimeWindow::new(second - 1_000 * MS, second + 2_000 * MS),
        // To just past a 1/256 second.
        TimeWindow::new(second, second + 15_625_000 + 1),
    ];
    let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for window in windows {
        for limit in [1, 3, 7, 50] {
            for (service, errors_only) in [(None, false), (Some("cart"), false), (None, true)] {
                let q = TraceQuery {
                    service: service.map(str::to_string),
                    errors_only,
                    window,
                    limit,
                    ..TraceQuery::default()
                };
                let want = expected(&q);
                let found = store.search_traces(&q).unwrap();
                assert!(found.complete, "{q:?}");
                let mut got: Vec<TraceId> = found.traces.iter().map(|t| t.trace_id).collect();
                let mut sorted_want = want.clone();
                got.sort();
                sorted_want.sort();
                assert_eq!(got, sorted_want, "{q:?}");
                // `search_spans` keeps the order: newest first.
                let set = store.search_spans(&q, later).unwrap();
                let order: Vec<TraceId> = set.traces.iter().map(|t| t[0].trace_id).collect();
                assert_eq!(order, want, "{q:?}");
            }
        }
    }
    store.shutdown();
}
