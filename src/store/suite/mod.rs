//! The store's behaviour, written once as a suite that every backend runs (the embedded SQLite
//! store now; a server-backed store adds itself with [`storage_suite!`]). Each check takes a
//! [`Harness`] that opens the backend on fresh data, and again on the same data (a restart).

use super::{Room, Store, StoreError, WriteBatch, WriteOutcome};
use crate::model::testing::{msg, span, T0};
use crate::model::{Link, Operation, SpanId, SpanKind, StatusCode, TimeWindow, TraceId};
use crate::priority::Priority;
use crate::topology::{self, Topology};

/// Opens a backend for the suite.
pub trait Harness {
    /// A harness on new, empty data.
    fn fresh(&self) -> Box<dyn Harness>;
    /// Opens (or reopens, after `shutdown`) the store on this harness's data.
    fn open(&self) -> Store;
    /// Opens the store on this harness's data keeping spans for `max_age` (`--retention`).
    fn open_with_retention(&self, max_age: std::time::Duration) -> Store;
}

/// Every check of the suite, for [`storage_suite!`] callers that want them all.
#[macro_export]
#[doc(hidden)]
macro_rules! storage_suite_all {
    ($make:expr) => {
        $crate::storage_suite!($make; consumer_before_producer_pairs_the_same, nested_producers_are_one_message_in_any_order, batch_consumer_links_count_each_message, client_server_pairs_move_calls_off_the_external_peer, duplicates_are_not_counted_even_after_a_restart, pairing_waits_across_a_restart, an_empty_store_answers_empty, a_trace_reads_back_oldest_first_across_restarts, search_matches_each_filter_on_one_span, search_orders_traces_to_the_nanosecond, search_spans_reads_the_newest_traces_whole, linking_spans_are_found_from_the_linked_trace, node_minutes_count_what_a_node_did, destination_minutes_count_messages_in_and_failures, a_second_delivery_to_one_consumer_is_a_redelivered_error, a_read_from_a_dead_letter_exchange_is_a_dead_lettered_error, the_window_bounds_the_topology, one_request_pairs_in_any_order_within_it, a_span_twice_in_one_request_is_stored_once, a_pairing_stored_before_a_restart_holds_after_it, spans_older_than_the_retention_are_refused, shutdown_commits_what_was_queued_and_refuses_after, broker_snapshots_are_kept_per_minute_with_their_history, partition_traffic_counts_what_spans_name, a_second_delivery_counts_once_on_its_partition);
    };
}

/// Runs every check of the suite as its own test, against the harness `$make` builds.
#[macro_export]
#[doc(hidden)]
macro_rules! storage_suite {
    ($make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let h = $make;
                $crate::store::suite::$name(&h);
            }
        )*
    };
}

pub fn write(store: &Store, spans: Vec<crate::model::Span>) -> WriteOutcome {
    store.write_blocking(super::prepare(spans)).unwrap()
}

fn window() -> TimeWindow {
    TimeWindow::new(T0 - 60_000_000_000, T0 + 3_600_000_000_000).unwrap()
}

fn topo(store: &Store) -> Topology {
    topology::build(store.topology(window()).unwrap(), window())
}

fn edge(t: &Topology, from: &str, to: &str) -> Option<(i64, i64, i64)> {
    t.edges
        .iter()
        .find(|e| e.from == from && e.to == to)
        .map(|e| (e.count, e.errors, e.latency.samples))
}

pub fn consumer_before_producer_pairs_the_same(h: &dyn Harness) {
    for order in [true, false] {
        let h = h.fresh();
        let store = h.open();
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

pub fn nested_producers_are_one_message_in_any_order(h: &dyn Harness) {
    for order in [true, false] {
        let h = h.fresh();
        let store = h.open();
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

pub fn batch_consumer_links_count_each_message(h: &dyn Harness) {
    let store = h.open();
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

pub fn client_server_pairs_move_calls_off_the_external_peer(h: &dyn Harness) {
    for order in [true, false] {
        let h = h.fresh();
        let store = h.open();
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
        // Taken back whole: count, error and latency sample, not only hidden by the build.
        let rows = store.topology(window()).unwrap();
        let external = rows
            .edges
            .iter()
            .find(|e| e.to == "external:catalog.internal");
        if let Some(e) = external {
            assert_eq!(
                (e.count, e.errors, e.latency.count()),
                (0, 0, 0),
                "order {order}"
            );
        }
        store.shutdown();
    }
}

pub fn duplicates_are_not_counted_even_after_a_restart(h: &dyn Harness) {
    let p = msg(
        span(7, 1, None, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let store = h.open();
    assert_eq!(
        write(&store, vec![p.clone()]),
        WriteOutcome {
            stored: 1,
            duplicates: 0,
            ..Default::default()
        }
    );
    assert_eq!(
        write(&store, vec![p.clone()]),
        WriteOutcome {
            stored: 0,
            duplicates: 1,
            ..Default::default()
        }
    );
    store.shutdown();
    let store = h.open();
    assert_eq!(
        write(&store, vec![p]),
        WriteOutcome {
            stored: 0,
            duplicates: 1,
            ..Default::default()
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

pub fn pairing_waits_across_a_restart(h: &dyn Harness) {
    let store = h.open();
    write(
        &store,
        vec![msg(
            span(8, 2, Some(1), "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        )],
    );
    store.shutdown();
    let store = h.open();
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

pub fn one_request_pairs_in_any_order_within_it(h: &dyn Harness) {
    let store = h.open();
    // Child before parent in one request: the inner publish of one message, then the outer.
    let outer = msg(
        span(60, 1, None, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let inner = msg(
        span(60, 2, Some(1), "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let consume = msg(
        span(60, 3, Some(2), "billing", SpanKind::Consumer),
        "orders",
        Operation::Consume,
    );
    write(&store, vec![consume, inner, outer]);
    let t = topo(&store);
    assert_eq!(
        edge(&t, "service:orders", "destination:kafka:orders").map(|e| e.0),
        Some(1),
        "one message"
    );
    assert_eq!(t.dependencies.len(), 1);
    assert_eq!(t.dependencies[0].count, Some(1));
    store.shutdown();
}

pub fn a_span_twice_in_one_request_is_stored_once(h: &dyn Harness) {
    let store = h.open();
    let p = msg(
        span(61, 1, None, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    assert_eq!(
        write(&store, vec![p.clone(), p]),
        WriteOutcome {
            stored: 1,
            duplicates: 1,
            ..Default::default()
        }
    );
    assert_eq!(store.trace(TraceId([61; 16])).unwrap().len(), 1);
    store.shutdown();
}

pub fn a_pairing_stored_before_a_restart_holds_after_it(h: &dyn Harness) {
    let store = h.open();
    let mut client = span(62, 1, None, "cart", SpanKind::Client);
    client.peer = Some("catalog.internal".into());
    write(&store, vec![client]);
    store.shutdown();
    let store = h.open();
    write(
        &store,
        vec![span(62, 2, Some(1), "catalog", SpanKind::Server)],
    );
    store.shutdown();
    let store = h.open();
    // A second server naming the same client does not move the call a second time.
    write(
        &store,
        vec![span(62, 3, Some(1), "catalog", SpanKind::Server)],
    );
    let t = topo(&store);
    assert_eq!(
        edge(&t, "service:cart", "service:catalog").map(|e| e.0),
        Some(1)
    );
    assert_eq!(edge(&t, "service:cart", "external:catalog.internal"), None);
    store.shutdown();
}

/// A span that started before the retention's cutoff is not stored (retention would delete
/// it at its next pass): the write counts it as expired, and the rest of the request is kept.
pub fn spans_older_than_the_retention_are_refused(h: &dyn Harness) {
    let hour = std::time::Duration::from_secs(3600);
    let store = h.open_with_retention(hour);
    let now = crate::model::window::now_unix_nanos();
    let at = |mut s: crate::model::Span, ago_secs: u64| {
        s.start_unix_nanos = now - ago_secs * 1_000_000_000;
        s.end_unix_nanos = s.start_unix_nanos + 1_000_000;
        s
    };
    let old = at(span(30, 1, None, "replayed", SpanKind::Server), 2 * 3600);
    let older = at(
        span(30, 2, Some(1), "replayed", SpanKind::Client),
        7 * 24 * 3600,
    );
    let recent = at(span(31, 1, None, "live", SpanKind::Server), 60);
    let outcome = write(&store, vec![old, recent, older]);
    assert_eq!(
        outcome,
        WriteOutcome {
            stored: 1,
            duplicates: 0,
            expired: 2,
        }
    );
    assert!(store.trace(TraceId([30; 16])).unwrap().is_empty());
    assert_eq!(store.trace(TraceId([31; 16])).unwrap().len(), 1);
    assert_eq!(store.span_count().unwrap(), 1);
    store.shutdown();
}

pub fn shutdown_commits_what_was_queued_and_refuses_after(h: &dyn Harness) {
    let store = h.open();
    let pending: Vec<_> = (1..=3)
        .map(|i| {
            store
                .write(
                    WriteBatch::Spans(super::prepare(vec![span(
                        63,
                        i,
                        None,
                        "s",
                        SpanKind::Server,
                    )])),
                    Room::Always,
                    Priority::Normal,
                )
                .unwrap()
        })
        .collect();
    store.shutdown();
    for p in pending {
        assert_eq!(p.blocking_recv().unwrap().unwrap().stored, 1);
    }
    let refused = store.write(
        WriteBatch::Spans(super::prepare(vec![span(
            63,
            9,
            None,
            "s",
            SpanKind::Server,
        )])),
        Room::Now,
        Priority::Normal,
    );
    assert!(matches!(refused, Err(StoreError::Closed)));
    let store = h.open();
    assert_eq!(store.trace(TraceId([63; 16])).unwrap().len(), 3);
    store.shutdown();
}

mod reads;
pub use reads::*;

#[test]
fn every_check_runs() {
    // A check missing from `storage_suite_all!` would silently never run.
    let text = [include_str!("mod.rs"), include_str!("reads.rs")].concat();
    let list = text
        .as_str()
        .split("$crate::storage_suite!($make; ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_default();
    let listed: Vec<&str> = list.split(", ").map(str::trim).collect();
    let checks: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("pub fn "))
        .filter(|l| l.contains("(h: &dyn Harness)"))
        .filter_map(|l| l.split('(').next())
        .collect();
    assert!(checks.len() >= 10);
    for c in &checks {
        assert!(listed.contains(c), "{c} is not in storage_suite_all!");
    }
}
