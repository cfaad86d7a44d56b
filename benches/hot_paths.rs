//! Hot-path benchmarks without the network: `cargo bench --bench hot_paths`.
//!
//! Each figure is printed as time per item and as a ratio against a baseline measured in the
//! same run: copying the same bytes (`memcpy`), the cheapest thing any path does to its input.
//! End-to-end figures (HTTP, SQLite commit) come from `switchyard bench ingest|query`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::hint::black_box;
use std::time::{Duration, Instant};
use switchyard::model::broker::{BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot};
use switchyard::model::broker::{Entity, FlowKind, NamedBy};
use switchyard::model::sketch::Sketch;
use switchyard::model::{EdgeKind, NodeKey, TimeWindow};
use switchyard::model::{EdgeRow, Figures, NodeRow, TopologyRows};

/// Runs `f` repeatedly for about `budget` and returns the mean time per call.
fn time(budget: Duration, mut f: impl FnMut()) -> Duration {
    f();
    let started = Instant::now();
    let mut n = 0u32;
    while started.elapsed() < budget {
        f();
        n += 1;
    }
    started.elapsed() / n.max(1)
}

fn report(name: &str, per_call: Duration, items: usize, baseline: Duration) {
    let per_item = per_call.as_nanos() as f64 / items as f64;
    println!(
        "{name:<44} {per_item:>10.0} ns/item  {:>8.1}x baseline",
        per_call.as_nanos() as f64 / baseline.as_nanos().max(1) as f64
    );
}

fn fixture_requests() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/otlp/python-pika");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "bin"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    out.sort();
    out
}

fn synthetic_topology(services: usize, destinations: usize, edges: usize) -> TopologyRows {
    let mut nodes: Vec<NodeRow> = (0..services)
        .map(|i| NodeRow {
            key: NodeKey::service(&format!("svc-{i}"), None),
            spans: 100,
            errors: 1,
        })
        .collect();
    nodes.extend((0..destinations).map(|i| NodeRow {
        key: NodeKey::destination("kafka", &format!("topic-{i}")),
        spans: 0,
        errors: 0,
    }));
    let mut latency = Sketch::new();
    for v in [120, 900, 4_000, 15_000] {
        latency.add(v, 10);
    }
    let edges = (0..edges)
        .map(|i| {
            let (s, d) = (i % services, (i * 7) % destinations);
            let (from, to, kind) = if i % 2 == 0 {
                (
                    format!("service:svc-{s}"),
                    format!("destination:kafka:topic-{d}"),
                    EdgeKind::Publish,
                )
            } else {
                (
                    format!("destination:kafka:topic-{d}"),
                    format!("service:svc-{s}"),
                    EdgeKind::Consume,
                )
            };
            EdgeRow {
                from,
                to,
                kind,
                via: String::new(),
                count: 100,
                errors: (i % 5) as i64,
                latency_sum_micros: 200_000,
                latency: latency.clone(),
                first_seen_unix_nanos: 1,
                last_seen_unix_nanos: 2,
                instances: 1,
            }
        })
        .collect();
    TopologyRows {
        nodes,
        edges,
        brokers: Vec::new(),
        brokers_then: Vec::new(),
    }
}

/// A RabbitMQ as the issue sizes it: 2,000 queues each bound to one of 100 exchanges, 500
/// consumers (named connections), a dead-letter queue per 20 queues, figures everywhere.
fn large_broker() -> BrokerSnapshot {
    let figures = Figures {
        depth: Some(3),
        unacked: Some(1),
        consumers: Some(1),
        publish_rate: Some(2.5),
        deliver_rate: Some(2.5),
        ..Figures::default()
    };
    let dest = |name: String, entity| BrokerDestination {
        name,
        namespace: Some("/".into()),
        entity,
        detail: None,
        subjects: Vec::new(),
        figures: figures.clone(),
    };
    let flow = |kind, from: String, to: String| BrokerFlow {
        kind,
        from,
        to,
        key: Some("k".into()),
        inferred: false,
        figures: figures.clone(),
    };
    let mut destinations: Vec<BrokerDestination> = (0..100)
        .map(|i| dest(format!("topic-{i}"), Entity::Exchange))
        .collect();
    destinations.extend((0..2_000).map(|i| dest(format!("queue-{i}"), Entity::Queue)));
    let mut flows: Vec<BrokerFlow> = (0..2_000)
        .map(|i| {
            flow(
                FlowKind::Route,
                format!("topic-{}", i % 100),
                format!("queue-{i}"),
            )
        })
        .collect();
    flows.extend((0..500).map(|i| {
        flow(
            FlowKind::Consume,
            format!("queue-{}", i * 4),
            format!("svc-{}", i % 200),
        )
    }));
    flows.extend((0..100).map(|i| {
        flow(
            FlowKind::DeadLetter,
            format!("queue-{}", i * 20),
            "topic-0".into(),
        )
    }));
    BrokerSnapshot {
        broker: "rabbitmq 127.0.0.1:15672".into(),
        system: "kafka".into(),
        taken_unix_nanos: 1,
        destinations,
        services: (0..200)
            .map(|i| BrokerService {
                name: format!("svc-{i}"),
                named_by: NamedBy::ConnectionName,
            })
            .collect(),
        flows,
    }
}

fn main() {
    let budget = Duration::from_millis(400);
    let bodies = fixture_requests();
    let total_bytes: usize = bodies.iter().map(Vec::len).sum();
    let spans: usize = bodies
        .iter()
        .map(|b| {
            ExportTraceServiceRequest::decode(&b[..])
                .map(|r| {
                    r.resource_spans
                        .iter()
                        .flat_map(|rs| &rs.scope_spans)
                        .map(|ss| ss.spans.len())
                        .sum::<usize>()
                })
                .unwrap_or(0)
        })
        .sum();
    let baseline = time(budget, || {
        for b in &bodies {
            black_box(b.to_vec());
        }
    });
    println!(
        "baseline: copying the {} fixture bodies ({total_bytes} bytes, {spans} spans) takes {:?}",
        bodies.len(),
        baseline
    );

    let decode = time(budget, || {
        for b in &bodies {
            black_box(ExportTraceServiceRequest::decode(&b[..]).ok());
        }
    });
    report(
        "protobuf decode (opentelemetry-proto)",
        decode,
        spans,
        baseline,
    );

    // The shape scan that runs before every decode (`ingest::shape`), against the decode
    // alone in the same run, on one body holding every fixture's spans.
    let mut all = ExportTraceServiceRequest::default();
    for b in &bodies {
        if let Ok(r) = ExportTraceServiceRequest::decode(&b[..]) {
            all.resource_spans.extend(r.resource_spans);
        }
    }
    let one_body = all.encode_to_vec();
    let decode_one = time(budget, || {
        black_box(ExportTraceServiceRequest::decode(&one_body[..]).ok());
    });
    let scan = time(budget, || {
        black_box(switchyard::ingest::shape::protobuf_traces(&one_body).ok());
    });
    report(
        "shape scan (baseline: decode of the same body)",
        scan,
        spans,
        decode_one,
    );
    println!(
        "shape scan: {:.1}% of the decode it guards",
        scan.as_nanos() as f64 * 100.0 / decode_one.as_nanos().max(1) as f64
    );

    let prepare = time(budget, || {
        for b in &bodies {
            if let Ok(r) = ExportTraceServiceRequest::decode(&b[..]) {
                black_box(switchyard::ingest::prepare(r));
            }
        }
    });
    report(
        "decode + convert + JSON columns (prepare)",
        prepare,
        spans,
        baseline,
    );

    // The input limits (names, values) that convert applies to every span: spans within the
    // limits, as nearly all are, are only measured, never copied.
    let mut converted: Vec<switchyard::model::Span> = bodies
        .iter()
        .filter_map(|b| ExportTraceServiceRequest::decode(&b[..]).ok())
        .flat_map(|r| switchyard::ingest::convert::convert_request(r).spans)
        .collect();
    let limits = time(budget, || {
        for s in converted.iter_mut() {
            black_box(switchyard::model::limits::limit_span(s));
        }
    });
    report("input limits (limit_span)", limits, spans, baseline);
    println!(
        "input limits: {:.2}% of prepare",
        limits.as_nanos() as f64 * 100.0 / prepare.as_nanos().max(1) as f64
    );

    // What prepare reads of each span for the failure counts (a redelivery, a replay, a
    // failure's reason) before the attributes are encoded.
    let marks = time(budget, || {
        for s in &converted {
            black_box(switchyard::model::messaging::Marks::of(s));
        }
    });
    report("failure marks (Marks::of)", marks, spans, baseline);
    println!(
        "failure marks: {:.2}% of prepare",
        marks.as_nanos() as f64 * 100.0 / prepare.as_nanos().max(1) as f64
    );

    let json_body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/otlp/node-amqplib-json/001.json"
    ))
    .expect("JSON fixture");
    let json_spans = switchyard::ingest::json::decode_traces(&json_body)
        .map(|r| {
            r.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum::<usize>()
        })
        .unwrap_or(1);
    let json_base = time(budget, || {
        black_box(json_body.to_vec());
    });
    let json = time(budget, || {
        black_box(switchyard::ingest::json::decode_traces(&json_body).ok());
    });
    report("OTLP/JSON decode", json, json_spans, json_base);

    let rows = synthetic_topology(200, 300, 2_000);
    let window = TimeWindow::new(0, 3_600_000_000_000).expect("window");
    let rows_base = time(budget, || {
        black_box(rows.clone());
    });
    let build = time(budget, || {
        black_box(switchyard::topology::build(rows.clone(), window));
    });
    report(
        "topology build + detectors (500 nodes, 2000 edges)",
        build,
        2_000,
        rows_base,
    );
    let mut merged_rows = rows.clone();
    merged_rows.brokers = vec![std::sync::Arc::new(large_broker())];
    let merged = time(budget, || {
        black_box(switchyard::topology::build(merged_rows.clone(), window));
    });
    report(
        "topology build, merged with a broker (2000 queues, 2000 bindings, 500 consumers)",
        merged,
        2_000,
        build,
    );
    // The first read after a poll builds the broker's side of the merge (a new snapshot).
    let snapshot = large_broker();
    let first = time(budget, || {
        let mut rows = rows.clone();
        rows.brokers = vec![std::sync::Arc::new(snapshot.clone())];
        black_box(switchyard::topology::build(rows, window));
    });
    report(
        "topology build, merged, first read after a poll",
        first,
        2_000,
        build,
    );
    let merged_topo = switchyard::topology::build(merged_rows.clone(), window);
    let items = merged_topo.nodes.len() + merged_topo.edges.len();
    let serde_json = time(budget, || {
        black_box(serde_json::to_vec(&merged_topo).ok());
    });
    report(
        "JSON of the merged topology, serde_json",
        serde_json,
        items,
        merged,
    );
    let copied_json = time(budget, || {
        black_box(switchyard::topology::json::to_vec(&merged_topo).ok());
    });
    report(
        "JSON of the merged topology, broker part copied",
        copied_json,
        items,
        serde_json,
    );
    // `/api/topology`'s whole work past the store's read, merged against traced-only.
    let traced_answer = time(budget, || {
        let t = switchyard::topology::build(rows.clone(), window);
        black_box(switchyard::topology::json::to_vec(&t).ok());
    });
    let merged_answer = time(budget, || {
        let t = switchyard::topology::build(merged_rows.clone(), window);
        black_box(switchyard::topology::json::to_vec(&t).ok());
    });
    report(
        "merged answer: build + JSON (baseline: traced only)",
        merged_answer,
        items,
        traced_answer,
    );
    // A window over the same minutes at the same store generation (one ending "now", asked
    // again): the kept template's copy with the traced edges written again.
    let template = switchyard::topology::json::Template::of(&merged_topo).expect("template");
    let later = TimeWindow::new(1_000_000_000, 3_599_000_000_000).expect("window");
    let kept_answer = time(budget, || {
        black_box(template.answer(&later).ok());
    });
    report(
        "merged answer from the kept template, same minutes (baseline: build + JSON)",
        kept_answer,
        items,
        merged_answer,
    );
    let topo = switchyard::topology::build(rows.clone(), window);
    let dot = time(budget, || {
        black_box(switchyard::export::dot::to_dot(&topo));
    });
    report("DOT export (500 nodes, 2000 edges)", dot, 2_000, rows_base);
    let json_export = time(budget, || {
        black_box(switchyard::export::to_json(&topo));
    });
    report(
        "JSON export (500 nodes, 2000 edges)",
        json_export,
        2_000,
        rows_base,
    );
    let asyncapi = time(budget, || {
        black_box(switchyard::export::asyncapi::to_json(
            &topo,
            &Default::default(),
        ));
    });
    report(
        "AsyncAPI export (500 nodes, 2000 edges), vs DOT",
        asyncapi,
        2_000,
        dot,
    );
    // `serve --declared`: every service declares 10 operations, half of them observed.
    let declared = declarations(200, 300);
    let cloned = time(budget, || {
        black_box(topo.clone());
    });
    let drift = time(budget, || {
        let mut t = topo.clone();
        declared.apply(&mut t);
        black_box(t);
    });
    report(
        "declared drift (200 services, 2000 ops), vs build",
        drift.saturating_sub(cloned),
        2_000,
        build,
    );
}

/// What 200 services of [`synthetic_topology`] declare: 5 operations each that the topology
/// has (some of its edges) and 5 it does not.
fn declarations(services: usize, destinations: usize) -> switchyard::topology::declared::Declared {
    use switchyard::topology::declared::parse::Operation;
    use switchyard::topology::declared::{Action, Channel, Declaration, Declared};
    let documents = (0..services)
        .map(|s| {
            let mut d = Declaration {
                source: format!("svc-{s}.yaml"),
                version: "3.0.0".into(),
                service: format!("svc-{s}"),
                channels: Vec::new(),
                operations: Vec::new(),
            };
            for k in 0..10 {
                let topic = if k < 5 {
                    format!("topic-{}", (s + k * services) * 7 % destinations)
                } else {
                    format!("declared-{s}-{k}")
                };
                d.channels.push(Channel {
                    address: topic,
                    system: Some("kafka".into()),
                });
                d.operations.push(Operation {
                    service: d.service.clone(),
                    action: if k % 2 == 0 {
                        Action::Send
                    } else {
                        Action::Receive
                    },
                    channel: k,
                });
            }
            d
        })
        .collect();
    Declared { documents }
}
