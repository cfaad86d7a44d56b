use super::*;
use crate::flow::sample::{consume, publish, span, Change};
use crate::model::{SpanKind, StatusCode, TimeWindow, TraceId};
use std::collections::HashMap;

const A: &str = "service:orders";
const B: &str = "service:billing";
const C: &str = "service:mailer";
const D1: &str = "destination:rabbitmq:order.created";
const D2: &str = "destination:rabbitmq:invoice.ready";

/// orders -> order.created -> billing -> invoice.ready -> mailer, billing's publish made in a
/// child of its consume; times in ms after the trace's base.
fn chain(shift_ms: u64) -> Vec<StoredSpan> {
    let t = shift_ms;
    vec![
        publish(1).at(t, t + 2).by("orders").on("order.created"),
        consume(2)
            .under(1)
            .at(t + 10, t + 30)
            .by("billing")
            .on("order.created"),
        span(3, SpanKind::Internal, None)
            .under(2)
            .at(t + 12, t + 28)
            .by("billing"),
        publish(4)
            .under(3)
            .at(t + 15, t + 16)
            .by("billing")
            .on("invoice.ready"),
        consume(5)
            .under(4)
            .at(t + 40, t + 45)
            .by("mailer")
            .on("invoice.ready"),
    ]
}

fn run(traces: &[Vec<StoredSpan>], from: Option<&str>, to: Option<&str>) -> Pathways {
    let ends = Ends {
        from: from.map(str::to_string),
        to: to.map(str::to_string),
    };
    let mut agg = Aggregate::default();
    for t in traces {
        add_trace(&mut agg, t, &ends);
    }
    let window = TimeWindow::new(0, u64::MAX).expect("valid window");
    agg.finish(&ends, window, 50)
}

fn spread(p50: u64, p99: u64, max: u64) -> Spread {
    Spread {
        p50_micros: p50,
        p99_micros: p99,
        max_micros: max,
    }
}

#[test]
fn a_two_hop_journey_is_one_pathway_with_its_waits_and_processing() {
    let got = run(&[chain(0)], Some(A), None);
    assert!(!got.partial, "{:?}", got.scanned);
    assert_eq!(got.journeys, 1);
    let [p] = got.pathways.as_slice() else {
        panic!("one pathway expected: {got:?}")
    };
    assert_eq!(p.nodes, [A, D1, B, D2, C]);
    assert_eq!(p.count, 1);
    assert_eq!(p.end_to_end, spread(45_000, 45_000, 45_000));
    assert_eq!(p.hops.len(), 2);
    assert_eq!((p.hops[0].from.as_str(), p.hops[0].to.as_str()), (A, B));
    assert_eq!(p.hops[0].via, [D1]);
    assert_eq!(p.hops[0].wait, spread(10_000, 10_000, 10_000));
    // billing: from its consume's start to its onward publish.
    assert_eq!(p.hops[0].processing, spread(5_000, 5_000, 5_000));
    assert_eq!(p.hops[1].wait, spread(25_000, 25_000, 25_000));
    // mailer, the last: its consume's duration.
    assert_eq!(p.hops[1].processing, spread(5_000, 5_000, 5_000));
    assert_eq!(p.examples, [chain(0)[0].trace_id]);
}

#[test]
fn the_ends_cut_a_journey_at_services_and_destinations() {
    let traces = [chain(0)];
    let nodes = |f: Option<&str>, t: Option<&str>| -> Vec<Vec<String>> {
        run(&traces, f, t)
            .pathways
            .into_iter()
            .map(|p| p.nodes)
            .collect()
    };
    assert_eq!(nodes(Some(B), None), [[B, D2, C]], "downstream of billing");
    assert_eq!(nodes(None, Some(B)), [[A, D1, B]], "to billing only");
    assert_eq!(
        nodes(Some(A), Some(D1)),
        [[A, D1, B]],
        "a destination takes its hop"
    );
    assert_eq!(nodes(Some(D2), Some(C)), [[B, D2, C]]);
    assert!(nodes(Some(C), None).is_empty(), "mailer publishes nothing");
    assert!(
        nodes(Some(B), Some(A)).is_empty(),
        "ends in the wrong order"
    );
    let to_billing = run(&traces, None, Some(B));
    // The last hop's processing is billing's whole consume.
    assert_eq!(
        to_billing.pathways[0].hops[0].processing,
        spread(20_000, 20_000, 20_000)
    );
    assert_eq!(to_billing.pathways[0].end_to_end.max_micros, 30_000);
}

#[test]
fn journeys_of_many_traces_add_up_per_pathway_with_nearest_rank_percentiles() {
    let mut traces = Vec::new();
    for i in 0..10u64 {
        let mut t = chain(0);
        let id = TraceId::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, i as u8 + 1])
            .expect("trace id");
        for s in &mut t {
            s.trace_id = id;
        }
        // The i-th trace's mailer consumes i ms later.
        t[4] = t[4].clone().at(40 + i, 45 + i);
        if i == 9 {
            t[4].status = StatusCode::Error;
        }
        traces.push(t);
    }
    let got = run(&traces, Some(A), None);
    let p = &got.pathways[0];
    assert_eq!((p.count, p.errors), (10, 1));
    // End to end 45..=54 ms: the 5th of 10 is 49 ms, the 10th 54 ms.
    assert_eq!(p.end_to_end, spread(49_000, 54_000, 54_000));
    assert_eq!(p.hops[1].wait, spread(29_000, 34_000, 34_000));
    assert_eq!(p.examples.len(), aggregate::EXAMPLES);
}

#[test]
fn a_fan_out_gives_a_pathway_per_consumer_and_a_link_ties_a_consume() {
    let spans = vec![
        publish(1).at(0, 1).by("orders").on("order.created"),
        consume(2)
            .under(1)
            .at(5, 9)
            .by("billing")
            .on("order.created"),
        // Tied by a link into the same trace, not by its parent.
        consume(3)
            .at(7, 8)
            .by("mailer")
            .on("order.created")
            .linked(crate::flow::sample::TRACE, 1),
    ];
    let got = run(&[spans], Some(A), None);
    let nodes: Vec<&[String]> = got.pathways.iter().map(|p| p.nodes.as_slice()).collect();
    assert_eq!(
        nodes,
        [[A, D1, B].map(String::from), [A, D1, C].map(String::from)]
    );
    assert_eq!(got.journeys, 2);
}

#[test]
fn a_journey_longer_than_the_cap_is_cut_and_the_answer_says_partial() {
    // svc-0 -> q -> svc-1 -> q -> ... each publish under the previous consume.
    let mut spans = Vec::new();
    for hop in 0..(walk::MAX_HOPS as u64 + 2) {
        let (p, c) = (2 * hop + 1, 2 * hop + 2);
        let mut pub_span = publish(p).at(hop * 10, hop * 10 + 1).by(&format!("s{hop}"));
        if hop > 0 {
            pub_span = pub_span.under(p - 1);
        }
        spans.push(pub_span);
        spans.push(
            consume(c)
                .under(p)
                .at(hop * 10 + 2, hop * 10 + 9)
                .by(&format!("s{}", hop + 1)),
        );
    }
    let got = run(&[spans], Some("service:s0"), None);
    assert!(got.partial && got.scanned.walks_cut, "{:?}", got.scanned);
    assert_eq!(got.pathways[0].hops.len(), walk::MAX_HOPS);
}

#[test]
fn a_publish_outside_any_consume_starts_its_own_journey() {
    let mut spans = chain(0);
    // billing also publishes on its own (a timer), not while handling a message.
    spans.push(publish(6).at(50, 51).by("billing").on("invoice.ready"));
    spans.push(
        consume(7)
            .under(6)
            .at(60, 70)
            .by("mailer")
            .on("invoice.ready"),
    );
    let got = run(&[spans], Some(B), None);
    assert_eq!(got.pathways.len(), 1);
    assert_eq!(got.pathways[0].count, 2, "{got:?}");
    let from_orders = run(&[chain(0)], Some(A), Some(C));
    assert_eq!(from_orders.pathways[0].count, 1);
}

/// Traces in memory, read as the store reads them: by id, and those linking into one.
#[derive(Default)]
struct Traces {
    by_id: HashMap<TraceId, Vec<StoredSpan>>,
    reads: usize,
    lookups: usize,
}

impl Traces {
    fn of(traces: &[Vec<StoredSpan>]) -> Traces {
        let mut t = Traces::default();
        for spans in traces {
            t.by_id.insert(spans[0].trace_id, spans.clone());
        }
        t
    }
}

impl linked::Reach for Traces {
    type Error = std::convert::Infallible;

    fn traces(&mut self, ids: &[TraceId]) -> Result<(Vec<Vec<StoredSpan>>, bool), Self::Error> {
        self.reads += ids.len();
        Ok((
            ids.iter()
                .filter_map(|i| self.by_id.get(i).cloned())
                .collect(),
            false,
        ))
    }

    fn linking(
        &mut self,
        id: TraceId,
        _since: u64,
        limit: usize,
    ) -> Result<Vec<TraceId>, Self::Error> {
        self.lookups += 1;
        let mut found: Vec<TraceId> = self
            .by_id
            .iter()
            .filter(|(t, spans)| {
                **t != id
                    && spans
                        .iter()
                        .any(|s| crate::flow::link_targets(s).any(|(lt, _)| lt == id))
            })
            .map(|(t, _)| *t)
            .collect();
        found.sort();
        found.truncate(limit);
        Ok(found)
    }
}

const T1: &str = "11111111111111111111111111111111";
const T2: &str = "22222222222222222222222222222222";
const T3: &str = "33333333333333333333333333333333";

/// The chain of [`chain`] over three traces, each consumer a batch consumer whose `process`
/// span hangs under its own `poll` span and links to the publish: orders publishes in T1;
/// billing polls in T2, processes (link to T1) and publishes under the process; mailer polls
/// in T3 and processes (link to T2).
fn linked_chain() -> Vec<Vec<StoredSpan>> {
    vec![
        vec![publish(1).at(0, 2).by("orders").on("order.created").of(T1)],
        vec![
            span(10, SpanKind::Client, None)
                .at(8, 31)
                .by("billing")
                .of(T2),
            consume(11)
                .under(10)
                .at(10, 30)
                .by("billing")
                .on("order.created")
                .linked(T1, 1)
                .of(T2),
            publish(12)
                .under(11)
                .at(15, 16)
                .by("billing")
                .on("invoice.ready")
                .of(T2),
        ],
        vec![
            span(20, SpanKind::Client, None)
                .at(39, 46)
                .by("mailer")
                .of(T3),
            consume(21)
                .under(20)
                .at(40, 45)
                .by("mailer")
                .on("invoice.ready")
                .linked(T2, 12)
                .of(T3),
        ],
    ]
}

fn run_linked(
    store: &mut Traces,
    seeds: Vec<Vec<StoredSpan>>,
    from: Option<&str>,
    to: Option<&str>,
) -> Pathways {
    let ends = Ends {
        from: from.map(str::to_string),
        to: to.map(str::to_string),
    };
    let far = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let reached = linked::expand(seeds, &ends, store, far).expect("in memory");
    let mut agg = Aggregate::default();
    agg.scan.linked_traces = reached.linked;
    agg.scan.linked_limit_reached = reached.limit_reached;
    for (spans, traces) in reached.groups() {
        add_group(&mut agg, &spans, &ends, traces);
    }
    let window = TimeWindow::new(0, u64::MAX).expect("valid window");
    agg.finish(&ends, window, 50)
}

#[test]
fn a_journey_goes_on_in_the_traces_that_link_to_its_publishes() {
    let traces = linked_chain();
    // Each trace alone: the journey ends at the first batch consumer.
    let alone = run(&traces[..1], Some(A), None);
    assert!(alone.pathways.is_empty(), "{alone:?}");
    let mut store = Traces::of(&traces);
    let got = run_linked(&mut store, traces[..1].to_vec(), Some(A), None);
    assert!(!got.partial, "{:?}", got.scanned);
    assert_eq!(got.scanned.linked_traces, 2);
    let [p] = got.pathways.as_slice() else {
        panic!("one pathway expected: {got:?}")
    };
    assert_eq!(p.nodes, [A, D1, B, D2, C]);
    assert_eq!(p.count, 1);
    // From the spans' own times: publish at 0 ms, mailer's process ends at 45 ms.
    assert_eq!(p.end_to_end, spread(45_000, 45_000, 45_000));
    assert_eq!(p.hops[0].wait, spread(10_000, 10_000, 10_000));
    assert_eq!(p.hops[0].processing, spread(5_000, 5_000, 5_000));
    assert_eq!(p.hops[1].wait, spread(25_000, 25_000, 25_000));
    assert_eq!(p.hops[1].processing, spread(5_000, 5_000, 5_000));
    assert_eq!(
        p.examples,
        [traces[0][0].trace_id],
        "the trace it started in"
    );
}

#[test]
fn links_are_followed_upstream_to_where_a_journey_started() {
    let traces = linked_chain();
    let mut store = Traces::of(&traces);
    // Found by `to`: the mailer's trace; the journey started two traces earlier.
    let got = run_linked(&mut store, traces[2..].to_vec(), None, Some(C));
    assert_eq!(got.scanned.linked_traces, 2, "{:?}", got.scanned);
    assert_eq!(got.pathways.len(), 1, "{got:?}");
    assert_eq!(got.pathways[0].nodes, [A, D1, B, D2, C]);
    assert_eq!(
        store.lookups, 0,
        "only upstream: no lookup of linking traces"
    );
    // From the middle: downstream only, billing's trace is where it starts.
    let mut store = Traces::of(&traces);
    let mid = run_linked(&mut store, traces[1..2].to_vec(), Some(B), None);
    assert_eq!(mid.scanned.linked_traces, 1, "{:?}", mid.scanned);
    assert_eq!(mid.pathways.len(), 1);
    assert_eq!(mid.pathways[0].nodes, [B, D2, C]);
    assert_eq!(mid.pathways[0].end_to_end, spread(30_000, 30_000, 30_000));
}

#[test]
fn a_batch_that_links_to_several_traces_found_is_read_once_and_each_journey_counted_once() {
    const T4: &str = "44444444444444444444444444444444";
    let first = vec![publish(1).at(0, 1).by("orders").on("order.created").of(T1)];
    let second = vec![publish(2).at(3, 4).by("orders").on("order.created").of(T4)];
    let batch = vec![
        span(10, SpanKind::Client, None)
            .at(8, 20)
            .by("billing")
            .of(T2),
        consume(11)
            .under(10)
            .at(10, 12)
            .by("billing")
            .on("order.created")
            .linked(T1, 1)
            .of(T2),
        consume(12)
            .under(10)
            .at(12, 18)
            .by("billing")
            .on("order.created")
            .linked(T4, 2)
            .of(T2),
    ];
    let mut store = Traces::of(&[first.clone(), second.clone(), batch]);
    let got = run_linked(&mut store, vec![second, first], Some(A), None);
    assert_eq!(got.scanned.linked_traces, 1, "{:?}", got.scanned);
    assert_eq!(got.journeys, 2);
    let p = &got.pathways[0];
    assert_eq!(p.nodes, [A, D1, B]);
    assert_eq!(p.count, 2);
    // Waits 10 ms and 9 ms; ends 12 ms and 18 ms after their publishes' starts 0 and 3 ms.
    assert_eq!(p.hops[0].wait, spread(9_000, 10_000, 10_000));
    assert_eq!(p.end_to_end, spread(12_000, 15_000, 15_000));
}

#[test]
fn traces_reached_through_links_are_bounded_and_the_answer_says_so() {
    // One batch that consumed a message from each of more traces than the bound.
    let n = linked::MAX_LINKED_TRACES as u64 + 5;
    let mut traces = Vec::new();
    let mut batch = vec![span(1, SpanKind::Client, None)
        .at(0, 100)
        .by("billing")
        .of(T2)];
    for i in 0..n {
        let trace = format!("{:032x}", 0x1000 + i);
        traces.push(vec![publish(1)
            .at(0, 1)
            .by("orders")
            .on("order.created")
            .of(&trace)]);
        batch.push(
            consume(100 + i)
                .under(1)
                .at(10, 11)
                .by("billing")
                .on("order.created")
                .linked(&trace, 1)
                .of(T2),
        );
    }
    traces.push(batch.clone());
    let mut store = Traces::of(&traces);
    let got = run_linked(&mut store, vec![batch], None, Some(B));
    assert!(
        got.partial && got.scanned.linked_limit_reached,
        "{:?}",
        got.scanned
    );
    assert_eq!(got.scanned.linked_traces, linked::MAX_LINKED_TRACES);
    assert_eq!(store.reads, linked::MAX_LINKED_TRACES);
    assert_eq!(got.journeys, linked::MAX_LINKED_TRACES as u64);
}

#[test]
fn the_ends_say_which_way_links_are_followed() {
    let dirs = |f: Option<&str>, t: Option<&str>| {
        let d = Ends {
            from: f.map(str::to_string),
            to: t.map(str::to_string),
        }
        .directions();
        (d.upstream, d.downstream)
    };
    assert_eq!(dirs(Some(A), None), (false, true));
    assert_eq!(dirs(None, Some(C)), (true, false));
    assert_eq!(dirs(Some(A), Some(C)), (false, true));
    assert_eq!(dirs(Some(D1), None), (true, true));
    assert_eq!(dirs(None, Some(D2)), (true, true));
}

/// kafkajs `eachBatch`: a `poll` CLIENT span that is itself a receive of the topic (so a
/// consume of the same destination) is the parent of one `process` span per message, each
/// linking to its producer. Each message is its own hop, not folded into the poll.
#[test]
fn a_batch_under_a_receive_span_of_its_destination_counts_each_message() {
    const T4: &str = "44444444444444444444444444444444";
    let first = vec![publish(1).at(0, 1).by("orders").on("order.created").of(T1)];
    let second = vec![publish(2).at(3, 4).by("orders").on("order.created").of(T4)];
    let mut poll = consume(10)
        .at(8, 20)
        .by("billing")
        .on("order.created")
        .of(T2);
    poll.kind = SpanKind::Client;
    let batch = vec![
        poll,
        consume(11)
            .under(10)
            .at(10, 12)
            .by("billing")
            .on("order.created")
            .linked(T1, 1)
            .of(T2),
        consume(12)
            .under(10)
            .at(12, 18)
            .by("billing")
            .on("order.created")
            .linked(T4, 2)
            .of(T2),
    ];
    let journey = crate::flow::follow(&batch);
    assert_eq!(
        (0..3).map(|i| journey.nested_in(i)).collect::<Vec<_>>(),
        [None, None, None],
        "each process span is its message's consume"
    );
    let mut store = Traces::of(&[first.clone(), second.clone(), batch.clone()]);
    let got = run_linked(&mut store, vec![second, first], Some(A), None);
    assert_eq!(got.journeys, 2, "{got:?}");
    let p = &got.pathways[0];
    assert_eq!(p.nodes, [A, D1, B]);
    assert_eq!(p.count, 2);
    assert_eq!(p.hops[0].wait, spread(9_000, 10_000, 10_000));
    assert_eq!(p.end_to_end, spread(12_000, 15_000, 15_000));
    // From the consumer's end, upstream through the links.
    let mut store = Traces::of(std::slice::from_ref(&batch));
    store.by_id.extend(Traces::of(&linked_chain()[..1]).by_id);
    let to = run_linked(&mut store, vec![batch], None, Some(B));
    assert_eq!(to.journeys, 1, "T1 is stored, T4 is not: {to:?}");
    // A consume nested in a consume that links to the same one message is one delivery.
    let one = vec![
        consume(20).at(5, 9).by("billing").linked(T1, 1).of(T2),
        consume(21)
            .under(20)
            .at(6, 8)
            .by("billing")
            .linked(T1, 1)
            .of(T2),
    ];
    assert_eq!(crate::flow::follow(&one).nested_in(1), Some(0));
}

/// A message consumed in its own trace by one group (kafkajs `eachMessage`, a child of the
/// send) and through a link by another (confluent-kafka, a trace of its own): once a link
/// shows the destination has consumers elsewhere, the other traces of its publishes are
/// looked up too, and both journeys of each message are found.
#[test]
fn a_message_consumed_in_its_trace_is_also_followed_to_consumers_linking_to_it() {
    const T4: &str = "44444444444444444444444444444444";
    const T5: &str = "55555555555555555555555555555555";
    const AUDIT: &str = "service:audit";
    // T1: published, consumed by billing in the trace. T4: published, not consumed there.
    let t1 = vec![
        publish(1).at(0, 1).by("orders").on("order.created").of(T1),
        consume(2)
            .under(1)
            .at(5, 7)
            .by("billing")
            .on("order.created")
            .of(T1),
    ];
    let t4 = vec![publish(3).at(2, 3).by("orders").on("order.created").of(T4)];
    // T5: audit consumes both through links.
    let t5 = vec![
        consume(10)
            .at(20, 22)
            .by("audit")
            .on("order.created")
            .linked(T1, 1)
            .of(T5),
        consume(11)
            .at(22, 24)
            .by("audit")
            .on("order.created")
            .linked(T4, 3)
            .of(T5),
    ];
    let mut store = Traces::of(&[t1.clone(), t4.clone(), t5]);
    let got = run_linked(&mut store, vec![t1.clone(), t4.clone()], Some(A), None);
    assert!(!got.partial, "{:?}", got.scanned);
    assert_eq!(got.journeys, 3, "{got:?}");
    let count = |to: &str| {
        got.pathways
            .iter()
            .find(|p| p.nodes.last().map(String::as_str) == Some(to))
            .map(|p| p.count)
    };
    assert_eq!((count(B), count(AUDIT)), (Some(1), Some(2)), "{got:?}");
    // Without any link to the destination, a message consumed in its trace is not looked
    // up (RabbitMQ's instrumentations never link).
    let mut store = Traces::of(&[chain(0)]);
    let plain = run_linked(&mut store, vec![chain(0)], Some(A), None);
    assert_eq!((plain.journeys, store.lookups), (1, 0));
}
