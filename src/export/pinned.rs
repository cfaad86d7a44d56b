//! `/api/topology`'s JSON and DOT of a topology merged with brokers, pinned byte for byte
//! (`fixtures/expected/merged-broker.{json,dot}`): the shortcuts of a build (the broker part
//! built once per poll, its JSON copied, the template per minutes) must not change a byte of
//! what an answer says. Every answer is also compared with what serde writes of the same
//! topology, and the first build of a poll (its part built then) with a later one (its part
//! kept). `SWITCHYARD_BLESS=1` rewrites the files (after a reviewed change of the answer).

use crate::model::broker::{BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot};
use crate::model::broker::{Entity, FlowKind, NamedBy, PartitionLag};
use crate::model::EdgeKind::{self, *};
use crate::model::{Figures, TimeWindow, TopologyRows};
use crate::topology::{build, json, Topology};
use std::sync::Arc;

const S: u64 = 1_000_000_000;
const QUEUES: usize = 120;
const EXCHANGES: usize = 6;

fn figures(i: usize) -> Figures {
    Figures {
        depth: Some((i % 7) as u64),
        unacked: Some((i % 3) as u64),
        consumers: Some(u64::from(i % 4 != 3)),
        publish_rate: (!i.is_multiple_of(5)).then_some(0.5),
        deliver_rate: (!i.is_multiple_of(6)).then_some(0.25 * (i % 3) as f64),
        redelivered: i.is_multiple_of(9).then_some(i as u64),
        dead_letters: i.is_multiple_of(20).then_some((i / 20) as u64),
        ..Figures::default()
    }
}

/// A RabbitMQ like the benchmark's stand-in, smaller, at a poll `taken` (the later poll's
/// depths grown), and a Kafka whose group nobody named.
fn rabbitmq(taken: u64) -> BrokerSnapshot {
    let grown = (taken / (60 * S)) as usize;
    let dest = |name: String, entity, figures| BrokerDestination {
        name,
        namespace: Some("/".into()),
        entity,
        detail: None,
        subjects: Vec::new(),
        figures,
    };
    let mut destinations: Vec<BrokerDestination> = (0..EXCHANGES)
        .map(|x| dest(format!("topic-{x}"), Entity::Exchange, figures(x + 1)))
        .collect();
    destinations.push(dest("dlx".into(), Entity::Exchange, Figures::default()));
    destinations.extend((0..QUEUES).map(|i| {
        let mut f = figures(i + grown);
        f.depth = f.depth.map(|d| d + grown as u64 * (i % 2) as u64);
        dest(format!("q-{i}"), Entity::Queue, f)
    }));
    destinations.push(dest("dead".into(), Entity::Queue, figures(3)));
    let flow = |kind, from: String, to: String, key: Option<String>, i: usize| BrokerFlow {
        kind,
        from,
        to,
        key,
        inferred: kind == FlowKind::Publish,
        figures: figures(i),
    };
    let mut flows: Vec<BrokerFlow> = (0..QUEUES)
        .map(|i| {
            let x = i % EXCHANGES;
            flow(
                FlowKind::Route,
                format!("topic-{x}"),
                format!("q-{i}"),
                Some(format!("k{i}")),
                i,
            )
        })
        .collect();
    flows.extend((0..QUEUES / 3).map(|i| {
        let c = if i % 10 == 9 {
            "guest (pika)".to_string()
        } else {
            format!("svc-{}", i % 4)
        };
        flow(FlowKind::Consume, format!("q-{i}"), c, None, i)
    }));
    flows.extend((0..QUEUES).step_by(20).map(|i| {
        flow(
            FlowKind::DeadLetter,
            format!("q-{i}"),
            "dlx".into(),
            None,
            i,
        )
    }));
    flows.push(flow(FlowKind::Route, "dlx".into(), "dead".into(), None, 3));
    flows.push(flow(
        FlowKind::Publish,
        "svc-9".into(),
        "topic-5".into(),
        None,
        5,
    ));
    let mut services: Vec<BrokerService> = (0..4)
        .chain([9])
        .map(|i| BrokerService {
            name: format!("svc-{i}"),
            named_by: NamedBy::ConnectionName,
        })
        .collect();
    services.push(BrokerService {
        name: "guest (pika)".into(),
        named_by: NamedBy::UserAndProduct,
    });
    BrokerSnapshot {
        broker: "rabbitmq 127.0.0.1:15672".into(),
        system: "rabbitmq".into(),
        taken_unix_nanos: taken,
        destinations,
        services,
        flows,
    }
}

fn kafka(taken: u64) -> BrokerSnapshot {
    let offsets = |end: u64| Figures {
        lag: vec![PartitionLag {
            partition: 0,
            end_offset: end,
            ..PartitionLag::default()
        }],
        ..Figures::default()
    };
    let end = 100 + taken / S;
    let topic = |name: &str, end| BrokerDestination {
        name: name.into(),
        namespace: None,
        entity: Entity::Topic,
        detail: None,
        subjects: Vec::new(),
        figures: offsets(end),
    };
    BrokerSnapshot {
        broker: "kafka 127.0.0.1:9092".into(),
        system: "kafka".into(),
        taken_unix_nanos: taken,
        destinations: vec![
            topic("orders", end),
            topic("unread", end),
            topic("__consumer_offsets", end),
        ],
        services: vec![BrokerService {
            name: "billing-group".into(),
            named_by: NamedBy::ConsumerGroup,
        }],
        flows: vec![BrokerFlow {
            kind: FlowKind::Consume,
            from: "orders".into(),
            to: "billing-group".into(),
            key: Some("billing-group".into()),
            inferred: false,
            figures: offsets(end),
        }],
    }
}

/// Traced rows: publishes to the brokers' exchanges (some by a binding key), consumes named
/// by the exchange, failures and replays, instances, a call, a loop and a reply.
fn rows(brokers: &[Arc<BrokerSnapshot>], then: &[Arc<BrokerSnapshot>]) -> TopologyRows {
    let r = "destination:rabbitmq:";
    let traced: Vec<(String, String, EdgeKind, i64)> = vec![
        ("service:shop".into(), format!("{r}topic-0"), Publish, 400),
        ("service:shop".into(), format!("{r}topic-1"), Publish, 90),
        ("service:shop".into(), format!("{r}k8"), Publish, 12),
        ("service:orders".into(), format!("{r}topic-2"), Publish, 30),
        (
            "service:orders".into(),
            format!("{r}traced-only"),
            Publish,
            5,
        ),
        (format!("{r}topic-1"), "service:svc-1".into(), Consume, 88),
        (format!("{r}topic-0"), "service:svc-0".into(), Consume, 7),
        (format!("{r}traced-only"), "service:shop".into(), Consume, 5),
        (
            format!("{r}nobody-writes"),
            "service:idle".into(),
            Consume,
            1,
        ),
        ("service:orders".into(), "service:stock".into(), Call, 3),
        ("service:stock".into(), "service:orders".into(), Call, 2),
        ("service:stock".into(), "service:shop".into(), Call, 1),
        ("service:shop".into(), "service:orders".into(), Call, 4),
        (
            "service:billing".into(),
            "destination:kafka:orders".into(),
            Publish,
            50,
        ),
        (
            "destination:kafka:orders".into(),
            "service:billing".into(),
            Consume,
            50,
        ),
        (
            "destination:kafka:orders".into(),
            "service:audit".into(),
            Consume,
            48,
        ),
    ];
    let borrowed: Vec<(&str, &str, EdgeKind, i64)> = traced
        .iter()
        .map(|(f, t, k, c)| (f.as_str(), t.as_str(), *k, *c))
        .collect();
    let mut rows = crate::topology::detect::testing::rows(&borrowed);
    for (i, e) in rows.edges.iter_mut().enumerate() {
        let i = i as u64;
        (e.first_seen_unix_nanos, e.last_seen_unix_nanos) = ((125 + i) * S, (300 + 11 * i) * S);
        e.latency.add(100 + 37 * i, 1 + i as i64);
        e.latency_sum_micros = (100 + 37 * i as i64) * (1 + i as i64);
        e.errors = (i % 4 == 1) as i64;
        e.instances = 1 + (i % 3) as i64;
    }
    let mut extra = rows.edges[5].clone();
    (extra.kind, extra.via, extra.count, extra.errors) = (Failure, "nack".into(), 2, 2);
    rows.edges.push(extra);
    let mut replay = rows.edges[14].clone();
    (replay.kind, replay.count, replay.errors) = (Replay, 9, 0);
    rows.edges.push(replay);
    let mut reply = rows.edges[0].clone();
    (reply.from, reply.to, reply.kind, reply.via) = (
        "service:shop".into(),
        "service:svc-0".into(),
        Dependency,
        format!("{r}topic-0"),
    );
    rows.edges.push(reply);
    rows.brokers = brokers.to_vec();
    rows.brokers_then = then.to_vec();
    rows
}

/// The JSON (through a template, as `/api/topology` answers) and the DOT of one build, after
/// checking the JSON against serde's and the template's body against a plain write.
fn answer(t: &Topology) -> (String, String) {
    let fast = json::to_vec(t).unwrap();
    let slow = serde_json::to_vec(t).unwrap();
    assert!(fast == slow, "the copied JSON differs from serde's");
    let template = json::Template::of(t).unwrap();
    assert!(template.body() == &fast[..]);
    (
        String::from_utf8(fast).unwrap(),
        crate::export::dot::to_dot(t),
    )
}

fn pinned(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/expected")
        .join(name);
    if std::env::var_os("SWITCHYARD_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: SWITCHYARD_BLESS=1 writes it",
            path.display()
        )
    });
    // Compared line by line first, so that a difference is shown where it is.
    let (g, w) = (
        got.split_inclusive(['\n', '}']),
        want.split_inclusive(['\n', '}']),
    );
    for (n, (g, w)) in g.zip(w).enumerate() {
        assert_eq!(g, w, "{name} differs at piece {n}");
    }
    assert!(got == want, "{name} differs from {}", path.display());
}

#[test]
fn a_merged_answer_is_byte_for_byte_the_pinned_one() {
    let (then, now) = (121 * S, 470 * S);
    let oldest = vec![Arc::new(rabbitmq(then)), Arc::new(kafka(then))];
    let newest = vec![Arc::new(rabbitmq(now)), Arc::new(kafka(now))];
    let window = TimeWindow::new(140 * S, 475 * S).unwrap();
    // The first build after the polls builds the part; the second finds it kept.
    let first = build(rows(&newest, &oldest), window);
    let again = build(rows(&newest, &oldest), window);
    assert!(Arc::ptr_eq(
        first.part.as_ref().unwrap(),
        again.part.as_ref().unwrap()
    ));
    let (json, dot) = answer(&first);
    assert!(answer(&again) == (json.clone(), dot.clone()));
    pinned("merged-broker.json", &json);
    pinned("merged-broker.dot", &dot);
    // Another window over the same minutes, from the first one's template.
    let other = TimeWindow::new(179 * S, 421 * S).unwrap();
    let template = json::Template::of(&first).unwrap();
    let fresh = build(rows(&newest, &oldest), other);
    let (fresh_json, _) = answer(&fresh);
    assert!(template.answer(&other).unwrap() == fresh_json.as_bytes());
    // One poll in the window: its counters are all there is.
    let one = build(rows(&newest, &newest), window);
    let (json, dot) = answer(&one);
    pinned("merged-broker-one-poll.json", &json);
    pinned("merged-broker-one-poll.dot", &dot);
}
