//! Input limits and what retention refuses: spans older than `--retention` are rejected in
//! `partial_success` over every receiver (and counted in `/api/stats`) instead of answered 200
//! and deleted; huge names and values are cut to documented limits (counted); control
//! characters leave the DOT export readable by Graphviz and its SVG valid XML.

mod common;

use common::builder::{self, now_unix_nanos, SpanB};
use common::TestEnv;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::io::Write;
use std::process::{Command, Stdio};

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const HOUR: u64 = 3_600_000_000_000;

fn export_grpc(env: &TestEnv, request: ExportTraceServiceRequest) -> ExportTraceServiceResponse {
    let (rt, channel) = env.grpc_channel();
    rt.block_on(async move {
        TraceServiceClient::new(channel)
            .export(request)
            .await
            .expect("Export succeeds")
            .into_inner()
    })
}

/// A fresh span and one that started two hours ago (past a one-hour retention).
fn fresh_and_old(tag: &str) -> (SpanB, SpanB) {
    let now = now_unix_nanos();
    let fresh = builder::span(&format!("fresh-{tag}"), "work", builder::Internal).at(now);
    let old = builder::span(&format!("old-{tag}"), "work", builder::Internal).at(now - 2 * HOUR);
    (fresh, old)
}

fn stats(env: &TestEnv) -> serde_json::Value {
    env.get_json("/api/stats")
}

#[test]
fn spans_older_than_the_retention_are_rejected_by_every_receiver_not_stored() {
    let env = TestEnv::with_args(&["--retention", "1h"]);

    // OTLP/HTTP protobuf.
    let (fresh, old) = fresh_and_old("protobuf");
    let reply = env.post_otlp(
        "/v1/traces",
        &[PROTOBUF],
        &builder::protobuf(&[&fresh, &old]),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = ExportTraceServiceResponse::decode(reply.body.as_slice()).expect("response");
    let partial = answer.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 1, "{partial:?}");
    assert!(partial.error_message.contains("retention"), "{partial:?}");
    assert_eq!(env.trace_spans(&fresh.trace_hex()).len(), 1);
    assert!(env.trace_spans(&old.trace_hex()).is_empty());

    // OTLP/HTTP JSON.
    let (fresh, old) = fresh_and_old("json");
    let reply = env.post_otlp(
        "/v1/traces",
        &[JSON],
        builder::json_body(&[&fresh, &old]).as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1", "{body}");
    let message = body["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or("");
    assert!(message.contains("retention"), "{body}");
    assert_eq!(env.trace_spans(&fresh.trace_hex()).len(), 1);
    assert!(env.trace_spans(&old.trace_hex()).is_empty());

    // OTLP/gRPC, with an invalid span beside: both reasons are given.
    let (fresh, old) = fresh_and_old("grpc");
    let invalid = builder::span("x", "y", builder::Internal).without_service();
    let answer = export_grpc(&env, builder::request(&[&fresh, &old, &invalid]));
    let partial = answer.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 2, "{partial:?}");
    assert!(partial.error_message.contains("retention"), "{partial:?}");
    assert!(
        partial.error_message.contains("service.name"),
        "{partial:?}"
    );
    assert_eq!(env.trace_spans(&fresh.trace_hex()).len(), 1);
    assert!(env.trace_spans(&old.trace_hex()).is_empty());

    let s = stats(&env);
    assert_eq!(s["spans_expired"], 3, "{s}");
    assert_eq!(s["spans_rejected"], 4, "{s}");
    assert_eq!(s["spans_stored"], 3, "{s}");
    // Nothing of the old spans reached the map either.
    let topo = env.topology(&builder::window());
    assert!(!topo.to_string().contains("old-"), "{topo}");

    // Logged once a minute at most: three refusals within the test, one line (two if the
    // test straddled a minute).
    let lines = env
        .log(1)
        .lines()
        .filter(|l| l.contains("spans older than the retention refused"))
        .count();
    assert!((1..=2).contains(&lines), "{lines} lines:\n{}", env.log(1));
}

#[test]
fn huge_names_and_values_are_cut_to_their_limits_and_counted() {
    let env = TestEnv::start();
    let huge = "x".repeat(100_000);
    let p = builder::span(
        &format!("svc-{huge}"),
        &format!("send-{huge}"),
        builder::Producer,
    )
    .messaging("kafka", &format!("topic-{huge}"))
    .attr("payload", "é".repeat(1_000_000).as_str());
    let c = p
        .child("consumer", "process", builder::Consumer)
        .messaging("kafka", &format!("topic-{huge}"));
    let reply = env.post_protobuf(&builder::protobuf(&[&p, &c]));
    assert_eq!(reply.status, 200, "{}", reply.text());

    let s = stats(&env);
    assert!(s["names_truncated"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["values_truncated"].as_u64().unwrap() >= 1, "{s}");

    let window = builder::window();
    let topo = env.get(&format!("/api/topology?{}", window.query()));
    assert_eq!(topo.status, 200);
    assert!(topo.body.len() < 64 * 1024, "{} bytes", topo.body.len());
    let topo = topo.json();
    let service = topo["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"].as_str().unwrap_or("").starts_with("svc-"))
        .unwrap_or_else(|| panic!("no service node in {topo}"));
    let name = service["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 256, "{name}");
    assert!(name.ends_with('…'));

    // The node page of the cut name answers.
    let id = service["id"].as_str().unwrap();
    let page = env.get(&format!(
        "/services/{}?window=custom&{}",
        switchyard::percent::encode(id),
        window.query()
    ));
    assert_eq!(page.status, 200, "{}", page.text());

    // The stored value is cut too, on a character boundary.
    let spans = env.trace_spans(&p.trace_hex());
    let payload = spans
        .iter()
        .find_map(|s| s["attributes"]["payload"].as_str())
        .unwrap_or_else(|| panic!("no payload in {spans:?}"));
    assert!(payload.len() <= 4096, "{}", payload.len());
    assert!(payload.ends_with('…'));

    // Graphviz reads the window's DOT.
    let dot = env.dot(&window);
    graphviz(&dot, "svg");
}

#[test]
fn control_characters_leave_dot_readable_and_svg_valid_xml() {
    let env = TestEnv::start();
    let nasty = "billing\u{1}\u{1b}[31m\u{7f}\u{b}\u{c}\t\n\r\\\"<&>";
    let p = builder::span(nasty, &format!("send {nasty}"), builder::Producer)
        .messaging("rabbitmq", &format!("orders{nasty}"));
    let c = p
        .child(&format!("ship{nasty}"), "process", builder::Consumer)
        .messaging("rabbitmq", &format!("orders{nasty}"));
    let reply = env.post_protobuf(&builder::protobuf(&[&p, &c]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let dot = env.dot(&builder::window());
    assert!(dot.contains("billing"), "{dot}");
    let svg = graphviz(&dot, "svg");
    // Parsed by an XML parser: a control character (even as a reference) fails it.
    let mut py = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.buffer.read()); \
             print(sum(1 for e in r.iter() if e.tag.endswith('title')))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    py.stdin.take().unwrap().write_all(svg.as_bytes()).unwrap();
    let out = py.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "the SVG is not XML: {}\n{svg}",
        String::from_utf8_lossy(&out.stderr)
    );
    let titles: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(titles >= 4, "{titles} titles in {svg}");
}

/// Runs Graphviz `dot -T<format>`; fails the test when it does not accept the input.
fn graphviz(dot: &str, format: &str) -> String {
    let mut child = Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` (run .ci/run, which installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let input = dot.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("dot output");
    writer.join().unwrap().expect("write to dot");
    assert!(
        out.status.success(),
        "dot failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        &dot[..dot.len().min(2000)]
    );
    String::from_utf8(out.stdout).expect("UTF-8 from dot")
}
