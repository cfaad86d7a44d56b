use super::*;
use crate::flow::sample::{consume, publish, span, Change};
use crate::model::{SpanKind, StatusCode, TimeWindow, TraceId};

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
