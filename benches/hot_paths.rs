//! Hot-path benchmarks without the network: `cargo bench --bench hot_paths`.
//!
//! Each figure is printed as time per item and as a ratio against a baseline measured in the
//! same run: copying the same bytes (`memcpy`), the cheapest thing any path does to its input.
//! End-to-end figures (HTTP, SQLite commit) come from `switchyard bench ingest|query`.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::hint::black_box;
use std::time::{Duration, Instant};
use switchyard::model::sketch::Sketch;
use switchyard::model::{EdgeKind, NodeKey, TimeWindow};
use switchyard::model::{EdgeRow, NodeRow, TopologyRows};

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
}
