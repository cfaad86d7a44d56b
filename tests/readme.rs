//! The README's commands work as written: its shell blocks run against a real server (the
//! address swapped for the test server's), and its `cargo run` export line runs the binary.
//! Every GET page and API route answers HEAD as well.

mod common;

use common::builder;
use common::TestEnv;
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

/// The README's ```sh blocks, in order.
fn shell_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The one block that holds `needle`.
fn block_with(needle: &str) -> String {
    let found: Vec<String> = shell_blocks(&readme())
        .into_iter()
        .filter(|b| b.contains(needle))
        .collect();
    assert_eq!(found.len(), 1, "blocks with {needle:?}: {found:?}");
    found.into_iter().next().unwrap()
}

/// Runs a block with bash (stopping at the first failing command) in `dir`, the README's
/// addresses pointing at the test server; returns stdout.
fn run(env: &TestEnv, block: &str, dir: &std::path::Path) -> String {
    let addr = env.server().http.to_string();
    let script = block
        .replace("http://127.0.0.1:8080", &format!("http://{addr}"))
        .replace("localhost:8080", &addr);
    let out = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", &script])
        .current_dir(dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{script}\nfailed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_broker_example_publishes_pulls_and_acks_its_message() {
    let env = TestEnv::start();
    let out = run(&env, &block_with("/broker/topics/order.created"), env.dir());
    // The last command's answer (the answers have no newline between them): the lease was
    // current, and the message is gone.
    let last = &out[out.rfind("{\"settled\"").unwrap_or(0)..];
    let answer: serde_json::Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(answer["settled"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(answer["unknown"], serde_json::json!([]), "{out}");
    let again = env.api().post(
        "/broker/subscriptions/billing.order-created/pull?max=10",
        &[("Switchyard-Service", "billing")],
        b"",
    );
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(
        again.json()["messages"],
        serde_json::json!([]),
        "{}",
        again.text()
    );
}

#[test]
fn the_first_run_commands_and_the_export_line_work() {
    let env = TestEnv::start();
    let p = builder::span("checkout", "send", builder::Producer).messaging("kafka", "orders");
    let c = p
        .child("billing", "process", builder::Consumer)
        .messaging("kafka", "orders");
    let reply = env.post_protobuf(&builder::protobuf(&[&p, &c]));
    assert_eq!(reply.status, 200, "{}", reply.text());

    let out = run(&env, &block_with("dot -Tsvg > topology.svg"), env.dir());
    assert!(out.starts_with('{'), "{out}");
    let svg = std::fs::read_to_string(env.dir().join("topology.svg")).expect("topology.svg");
    assert!(svg.contains("<svg") && svg.contains("checkout"), "{svg}");

    // The export line as the README writes it for a checkout without an install step.
    let line = "cargo run --release -- export --db ./switchyard.db --format dot";
    assert!(readme().contains(line), "the README lost {line:?}");
    let args: Vec<&str> = line
        .trim_start_matches("cargo run --release -- ")
        .split(' ')
        .collect();
    let out = Command::new(common::binary())
        .args(&args)
        .current_dir(env.dir())
        .output()
        .expect("switchyard export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(
        dot.starts_with("digraph") && dot.contains("checkout"),
        "{dot}"
    );
}

#[test]
fn the_prometheus_and_jaeger_examples_answer() {
    let env = TestEnv::start();
    let p = builder::span("checkout", "send", builder::Producer).messaging("kafka", "orders");
    assert_eq!(env.post_protobuf(&builder::protobuf(&[&p])).status, 200);
    let out = run(&env, &block_with("/jaeger/api/services"), env.dir());
    assert!(
        out.contains("switchyard_ingest_spans_stored_total 1\n"),
        "{out}"
    );
    assert!(out.contains("switchyard_store_spans 1\n"), "{out}");
    assert!(out.contains(r#"{"data":["checkout"],"total":1"#), "{out}");
    assert!(out.contains(r#"{"data":[],"total":0"#), "{out}");
}

#[test]
fn get_routes_answer_head_with_the_get_status_and_no_body() {
    let env = TestEnv::start();
    let p = builder::span("checkout", "send", builder::Producer).messaging("kafka", "orders");
    let reply = env.post_protobuf(&builder::protobuf(&[&p]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let trace = p.trace_hex();
    for path in [
        "/healthz".to_string(),
        "/api/topology".into(),
        "/api/topology.json".into(),
        "/api/topology.dot".into(),
        "/api/asyncapi".into(),
        "/api/traces".into(),
        format!("/api/traces/{trace}"),
        "/api/stats".into(),
        "/api/brokers".into(),
        "/api/topology/diff".into(),
        "/api/topology/diff.dot".into(),
        "/api/changes".into(),
        "/changes".into(),
        "/".into(),
        "/traces".into(),
        "/brokers".into(),
        format!("/traces/{trace}"),
        "/services/service%3Acheckout".into(),
        "/destinations/destination%3Akafka%3Aorders".into(),
        "/static/app/svg.js".into(),
        "/api/traces/not-an-id".into(),
        "/metrics".into(),
        "/jaeger/api/services".into(),
        format!("/jaeger/api/traces/{trace}"),
        "/jaeger/api/traces".into(),
        "/jaeger/api/dependencies".into(),
    ] {
        let get = env.api().get(&path);
        let head = env.api().send("HEAD", &path, &[], b"");
        assert_eq!(head.status, get.status, "HEAD {path}");
        assert!(head.body.is_empty(), "HEAD {path} has a body");
        assert_eq!(
            head.header("content-type"),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
    // The README's export by curl, as a HEAD.
    let head = env.api().send("HEAD", "/api/topology.dot", &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/vnd.graphviz; charset=utf-8")
    );
}
