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

/// Sends one SQL statement to the test server (database `db`); panics on an error.
fn sql(db: &str, statement: &str) {
    let url = format!("http://127.0.0.1:{}/?database={db}", server().http_port);
    let r = ureq::post(&url).send_string(statement);
    assert!(r.is_ok(), "{statement}: {r:?}");
}

fn database(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// Waits (bounded) until the collector's graph is `want`; answers it.
fn converge(env: &TestEnv, window: &fixtures::Window, want: &(Value, Value)) -> (Value, Value) {
    common::wait_for(
        "the collector's graph to equal SQLite's",
        std::time::Duration::from_secs(90),
        || {
            let got = graph(env.topology(window));
            (&got == want).then_some(got)
        },
    )
}

const SETS: [&str; 3] = [
    fixtures::PYTHON_PIKA,
    fixtures::PYTHON_CELERY,
    fixtures::KAFKA,
];

#[test]
fn two_collectors_sharing_one_database_answer_as_one_in_either_order() {
    for set in SETS {
        let (sqlite, _, window) = TestEnv::with_recording(set);
        let want = graph(sqlite.topology(&window));
        assert!(want.1.as_array().is_some_and(|e| !e.is_empty()));
        for reversed in [false, true] {
            let url = server().fresh_url();
            let a = TestEnv::with_args(&["--clickhouse", &url]);
            let b = TestEnv::with_args(&["--clickhouse", &url]);
            // Requests alternate between the collectors, one after the other.
            let mut files = fixtures::load(set);
            if reversed {
                files.reverse();
            }
            for (i, f) in files.iter().enumerate() {
                let env = if i % 2 == 0 { &a } else { &b };
                assert_eq!(env.post_fixture(f).status, 200);
            }
            assert_eq!(
                graph(a.topology(&window)),
                want,
                "{set} reversed: {reversed}"
            );
            assert_eq!(
                graph(b.topology(&window)),
                want,
                "{set} reversed: {reversed}"
            );
        }
    }
}

#[test]
fn collectors_racing_each_other_answer_as_one_once_reconciled() {
    for set in SETS {
        let (sqlite, _, window) = TestEnv::with_recording(set);
        let want = graph(sqlite.topology(&window));
        // The worst race: every request analysed by a collector that sees none of the
        // other's. Each collector writes a database of its own, then both collectors' rows are
        // put together in one, as their inserts would leave it.
        let urls = [server().fresh_url(), server().fresh_url()];
        {
            let a = TestEnv::with_args(&["--clickhouse", &urls[0]]);
            let b = TestEnv::with_args(&["--clickhouse", &urls[1]]);
            for (i, f) in fixtures::load(set).iter().enumerate() {
                let env = if i % 2 == 0 { &a } else { &b };
                assert_eq!(env.post_fixture(f).status, 200);
            }
        }
        let (into, from) = (database(&urls[0]), database(&urls[1]));
        for t in switchyard::store::clickhouse::schema::DATA_TABLES {
            sql(into, &format!("INSERT INTO {t} SELECT * FROM {from}.{t}"));
        }
        let a = TestEnv::with_args(&["--clickhouse", &urls[0], "--clickhouse-settle", "0s"]);
        let b = TestEnv::with_args(&["--clickhouse", &urls[0], "--clickhouse-settle", "0s"]);
        assert_eq!(converge(&a, &window, &want), want, "{set}");
        assert_eq!(graph(b.topology(&window)), want, "{set}");
        assert_eq!(a.spans_in_store(), sqlite.spans_in_store(), "{set}");
    }
}

#[test]
fn collectors_sent_requests_at_once_answer_as_one() {
    // Celery's broadcast: two instances' consumes of one message stored through two
    // collectors at the same moment both count as first deliveries until the reconciliation
    // pass takes one back.
    for set in [
        fixtures::PYTHON_PIKA,
        fixtures::PYTHON_CELERY,
        fixtures::KAFKA,
    ] {
        let (sqlite, _, window) = TestEnv::with_recording(set);
        let want = graph(sqlite.topology(&window));
        let url = server().fresh_url();
        let args = ["--clickhouse", url.as_str(), "--clickhouse-settle", "3s"];
        let (a, b) = (TestEnv::with_args(&args), TestEnv::with_args(&args));
        let files = fixtures::load(set);
        // Each collector gets every other request, both at once: what pairs inline and what
        // races is up to the scheduler; the answer is the same.
        std::thread::scope(|scope| {
            for (n, env) in [&a, &b].into_iter().enumerate() {
                let files = &files;
                scope.spawn(move || {
                    for f in files.iter().skip(n).step_by(2) {
                        assert_eq!(env.post_fixture(f).status, 200);
                    }
                });
            }
        });
        assert_eq!(converge(&a, &window, &want), want, "{set}");
        assert_eq!(graph(b.topology(&window)), want, "{set}");
    }
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

/// The binary's two-shard cluster (two local servers, `testing::TestCluster`).
fn cluster() -> &'static testing::TestCluster {
    static CLUSTER: OnceLock<testing::TestCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| testing::TestCluster::start().expect("start a two-shard cluster"))
}

/// `/api/traces` for one service over the window: each trace's id, span count and services.
fn search(env: &TestEnv, window: &fixtures::Window, service: &str) -> Vec<(Value, Value, Value)> {
    let found = env.get_json(&format!(
        "/api/traces?service={service}&limit=1000&{}",
        window.query()
    ));
    let mut rows: Vec<(Value, Value, Value)> = found["traces"]
        .as_array()
        .expect("traces")
        .iter()
        .map(|t| {
            (
                t["trace_id"].clone(),
                t["span_count"].clone(),
                t["services"].clone(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0.to_string());
    rows
}

#[test]
fn two_collectors_on_a_two_shard_cluster_answer_as_one_server_and_sqlite() {
    let cluster = cluster();
    for set in SETS {
        let (sqlite, spans, window) = TestEnv::with_recording(set);
        let want = graph(sqlite.topology(&window));
        // One server, the reference the cluster must equal too.
        let single = TestEnv::with_args(&["--clickhouse", &server().fresh_url()]);
        single.post_fixtures(&fixtures::load(set));
        // A collector on each shard's server, requests alternating between them.
        let url = cluster.fresh_url();
        let other = cluster.shards[1].url_of(&url);
        let flags = |u: &str| {
            ["--clickhouse", u, "--clickhouse-cluster", testing::CLUSTER].map(String::from)
        };
        let (fa, fb) = (flags(&url), flags(&other));
        let a = TestEnv::with_args(&fa.iter().map(String::as_str).collect::<Vec<_>>());
        let b = TestEnv::with_args(&fb.iter().map(String::as_str).collect::<Vec<_>>());
        for (i, f) in fixtures::load(set).iter().enumerate() {
            let env = if i % 2 == 0 { &a } else { &b };
            assert_eq!(env.post_fixture(f).status, 200, "{set}");
        }
        assert_eq!(converge(&a, &window, &want), want, "{set}");
        assert_eq!(graph(b.topology(&window)), want, "{set}");
        assert_eq!(graph(single.topology(&window)), want, "{set}");
        assert_eq!(a.dot(&window), sqlite.dot(&window), "{set}");
        assert_eq!(b.dot(&window), single.dot(&window), "{set}");
        assert_eq!(a.spans_in_store(), sqlite.spans_in_store(), "{set}");
        // Each shard holds part of the spans.
        let database = database(&url);
        for (n, shard) in cluster.shards.iter().enumerate() {
            let rows: u64 = shard
                .sql(database, "SELECT count() FROM spans_local")
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            assert!(rows > 0, "{set}: shard {n} holds spans");
        }
        let traces: std::collections::BTreeSet<&str> =
            spans.iter().map(|s| s.trace_id.as_str()).collect();
        for t in traces {
            let want = sqlite.trace_spans(t);
            assert_eq!(a.trace_spans(t), want, "{set} {t}");
            assert_eq!(b.trace_spans(t), single.trace_spans(t), "{set} {t}");
        }
        let services: std::collections::BTreeSet<&str> =
            spans.iter().map(|s| s.service.as_str()).collect();
        for service in services {
            let want = search(&sqlite, &window, service);
            assert!(!want.is_empty(), "{set} {service}");
            assert_eq!(search(&a, &window, service), want, "{set} {service}");
            assert_eq!(search(&single, &window, service), want, "{set} {service}");
        }
        // `export --clickhouse URL --clickhouse-cluster NAME` prints what `export --db` prints.
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
            export(&[
                "--clickhouse",
                &other,
                "--clickhouse-cluster",
                testing::CLUSTER
            ]),
            export(&["--db", db.to_str().unwrap()]),
            "{set}"
        );
    }
}

#[test]
fn a_cluster_with_a_shard_down_answers_503_with_retry_after_and_an_unknown_cluster_is_refused() {
    let mut cluster = testing::TestCluster::start().expect("start a two-shard cluster");
    let url = cluster.fresh_url();
    // A cluster name the servers do not have: the collector does not start, and says why.
    let out = std::process::Command::new(common::binary())
        .args([
            "export",
            "--clickhouse",
            &url,
            "--clickhouse-cluster",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"nope\" is not in system.clusters"),
        "{stderr}"
    );
    let env = TestEnv::with_args(&[
        "--clickhouse",
        &url,
        "--clickhouse-cluster",
        testing::CLUSTER,
    ]);
    let files = fixtures::load(fixtures::PYTHON_PIKA);
    let (first, rest) = files.split_first().unwrap();
    assert_eq!(env.post_fixture(first).status, 200);
    drop(cluster.shards.pop());
    for reply in [
        env.get("/api/topology"),
        env.get("/api/traces?limit=10"),
        env.post_fixture(&rest[0]),
    ] {
        assert_eq!(reply.status, 503, "{}", reply.text());
        assert!(reply.header("retry-after").is_some(), "{:?}", reply.headers);
    }
    // Still serving (the process did not crash).
    assert_eq!(env.get("/healthz").status, 200);
}
