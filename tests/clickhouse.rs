//! `switchyard serve --clickhouse URL` against real clickhouse-server processes: the same
//! recorded spans give the same answers as on SQLite, and collectors sharing one database
//! answer as one.

mod common;
#[path = "../src/store/clickhouse/testing.rs"]
mod testing;

use common::{fixtures, TestEnv};
use serde_json::Value;
use std::sync::OnceLock;

fn server() -> &'static testing::TestServer {
    static SERVER: OnceLock<testing::TestServer> = OnceLock::new();
    SERVER.get_or_init(|| testing::TestServer::start().expect("start clickhouse-server"))
}

/// The graph's nodes and edges (what the two stores must agree on).
fn graph(topology: Value) -> (Value, Value) {
    (topology["nodes"].clone(), topology["edges"].clone())
}

#[test]
fn recorded_spans_give_the_same_topology_and_traces_as_on_sqlite() {
    for set in [fixtures::PYTHON_PIKA, fixtures::PYTHON_CELERY] {
        let (sqlite, spans, window) = TestEnv::with_recording(set);
        let url = server().fresh_url();
        let clickhouse = TestEnv::with_args(&["--clickhouse", &url]);
        clickhouse.post_fixtures(&fixtures::load(set));
        let (_, edges) = graph(sqlite.topology(&window));
        assert!(
            edges.as_array().is_some_and(|e| e.len() >= 2),
            "{set}: a graph to compare"
        );
        assert_eq!(
            graph(clickhouse.topology(&window)),
            graph(sqlite.topology(&window)),
            "{set}"
        );
        assert_eq!(clickhouse.dot(&window), sqlite.dot(&window), "{set}");
        // `export --clickhouse` prints what `export --db` prints.
        let export = |args: &[&str]| {
            let out = std::process::Command::new(common::binary())
                .arg("export")
                .args(args)
                .args(["--since", &window.since(), "--until", &window.until()])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let db = sqlite.dir().join("switchyard.db");
        assert_eq!(
            export(&["--clickhouse", &url]),
            export(&["--db", db.to_str().unwrap()]),
            "{set}"
        );
        assert_eq!(clickhouse.spans_in_store(), sqlite.spans_in_store());
        let traces: std::collections::BTreeSet<&str> =
            spans.iter().map(|s| s.trace_id.as_str()).collect();
        for t in traces {
            assert_eq!(
                clickhouse.trace_spans(t),
                sqlite.trace_spans(t),
                "{set} {t}"
            );
        }
    }
}

#[test]
fn two_collectors_sharing_one_database_answer_as_one() {
    let (sqlite, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let url = server().fresh_url();
    let a = TestEnv::with_args(&["--clickhouse", &url]);
    let b = TestEnv::with_args(&["--clickhouse", &url]);
    // Requests alternate between the collectors, one after the other (a race between two
    // collectors is left to the reconciliation pass, docs/SCALE.md).
    for (i, f) in fixtures::load(fixtures::PYTHON_PIKA).iter().enumerate() {
        let env = if i % 2 == 0 { &a } else { &b };
        assert_eq!(env.post_fixture(f).status, 200);
    }
    let want = graph(sqlite.topology(&window));
    assert!(want.1.as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(graph(a.topology(&window)), want);
    assert_eq!(graph(b.topology(&window)), want);
}

#[test]
fn export_refuses_a_missing_database_without_showing_the_password() {
    let url = format!(
        "http://writer:s3cret%3A%40%2Fpass@127.0.0.1:{}/never_created",
        server().http_port
    );
    let out = std::process::Command::new(common::binary())
        .args(["export", "--clickhouse", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("never_created"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}
