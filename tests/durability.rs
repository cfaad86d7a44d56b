//! Acknowledged means durable: kill -9 and SIGTERM during a publish storm, a request in flight
//! at SIGTERM, and restarts on the same database.

mod common;

use common::builder::{self, span, Consumer, Producer, SpanB};
use common::fixtures::{self, Window};
use common::{topo, wait_for, TestEnv};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

const STORM_THREADS: usize = 3;
/// Producer/consumer pairs per request.
const PAIRS: usize = 10;
/// Acknowledged requests to wait for before interrupting the server.
const ACKS_BEFORE_STOP: usize = 40;

/// One request of the storm: a trace of PAIRS producer spans, each with a consumer child.
#[derive(Clone)]
struct Batch {
    trace_hex: String,
    body: Vec<u8>,
}

fn batch() -> Batch {
    let mut spans: Vec<SpanB> = Vec::new();
    let first = span("storm-producer", "storm.q send", Producer).messaging("kafka", "storm.q");
    for i in 0..PAIRS {
        let mut p = span("storm-producer", "storm.q send", Producer).messaging("kafka", "storm.q");
        p.span.trace_id = first.span.trace_id.clone();
        let p = p.at_ms(i as u64);
        let c = p
            .child("storm-consumer", "storm.q process", Consumer)
            .messaging("kafka", "storm.q");
        spans.push(p);
        spans.push(c);
    }
    Batch {
        trace_hex: first.trace_hex(),
        body: builder::protobuf(&spans.iter().collect::<Vec<_>>()),
    }
}

/// Several threads posting batches until the server goes away or they are told to stop.
struct Storm {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Batch>>>,
    attempted: Arc<Mutex<Vec<Batch>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Storm {
    fn start(env: &TestEnv) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let attempted = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..STORM_THREADS)
            .map(|_| {
                let (stop, acked, attempted) = (stop.clone(), acked.clone(), attempted.clone());
                let otlp = env.otlp();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let b = batch();
                        attempted.lock().unwrap().push(b.clone());
                        let headers = [("Content-Type", "application/x-protobuf")];
                        match otlp.try_post("/v1/traces", &headers, &b.body) {
                            Ok(r) if r.status == 200 => acked.lock().unwrap().push(b),
                            // Overload answers are allowed; the batch is simply not acknowledged.
                            // A client's back-off before it sends again (as an SDK's would),
                            // not a wait for anything the test checks.
                            Ok(r) if r.status == 429 || r.status == 503 => {
                                std::thread::sleep(Duration::from_millis(20))
                            }
                            Ok(r) => panic!("unexpected answer {}: {}", r.status, r.text()),
                            Err(_) => break, // the server is gone
                        }
                    }
                })
            })
            .collect();
        Storm {
            stop,
            acked,
            attempted,
            threads,
        }
    }

    fn wait_for_acks(&self, n: usize) {
        wait_for(
            "acknowledged storm requests",
            Duration::from_secs(60),
            || (self.acked.lock().unwrap().len() >= n).then_some(()),
        );
    }

    /// Stops the threads; returns (acknowledged, attempted) batches.
    fn finish(self) -> (Vec<Batch>, Vec<Batch>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("storm thread");
        }
        let acked = self.acked.lock().unwrap().clone();
        let attempted = self.attempted.lock().unwrap().clone();
        (acked, attempted)
    }
}

fn edge_count(t: &Value, kind: &str, from: &str, to: &str) -> i64 {
    topo::edges(t)
        .get(&(kind.into(), from.into(), to.into()))
        .map(|e| e.0)
        .unwrap_or(0)
}

/// Every acknowledged batch is stored whole, and the edge counts agree with the stored spans.
fn assert_acknowledged_present(env: &TestEnv, acked: &[Batch]) {
    assert!(!acked.is_empty());
    for b in acked {
        assert_eq!(
            env.trace_spans(&b.trace_hex).len(),
            2 * PAIRS,
            "acknowledged trace {}",
            b.trace_hex
        );
    }
    let stored = env.spans_in_store();
    assert!(
        stored >= (acked.len() * 2 * PAIRS) as i64,
        "{stored} spans for {} acknowledged requests",
        acked.len()
    );
    let t = env.topology(&builder::window());
    let dest = "destination:kafka:storm.q";
    let publish = edge_count(&t, "publish", "service:storm-producer", dest);
    let consume = edge_count(&t, "consume", dest, "service:storm-consumer");
    assert_eq!(
        publish + consume,
        stored,
        "edge counts vs stored spans: {t:#}"
    );
}

/// Clients retry what was not acknowledged: after that, every batch is there exactly once.
fn assert_retries_are_not_doubled(env: &TestEnv, attempted: &[Batch]) {
    for b in attempted {
        assert_eq!(env.post_protobuf(&b.body).status, 200);
    }
    let total = (attempted.len() * 2 * PAIRS) as i64;
    assert_eq!(env.spans_in_store(), total);
    let t = env.topology(&builder::window());
    let dest = "destination:kafka:storm.q";
    assert_eq!(
        edge_count(&t, "publish", "service:storm-producer", dest),
        total / 2
    );
    assert_eq!(
        edge_count(&t, "consume", dest, "service:storm-consumer"),
        total / 2
    );
}

#[test]
fn kill_9_during_a_publish_storm_loses_no_acknowledged_span() {
    let mut env = TestEnv::start();
    let storm = Storm::start(&env);
    storm.wait_for_acks(ACKS_BEFORE_STOP);
    env.kill9();
    let (acked, attempted) = storm.finish();
    env.start_again();
    assert_acknowledged_present(&env, &acked);
    assert_retries_are_not_doubled(&env, &attempted);
}

#[test]
fn sigterm_during_a_publish_storm_exits_0_and_keeps_every_acknowledged_span() {
    let mut env = TestEnv::start();
    let storm = Storm::start(&env);
    storm.wait_for_acks(ACKS_BEFORE_STOP);
    env.send_sigterm();
    let status = env.wait_exit();
    let (acked, attempted) = storm.finish();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status}; log:\n{}",
        env.log(1)
    );
    env.start_again();
    assert_acknowledged_present(&env, &acked);
    assert_retries_are_not_doubled(&env, &attempted);
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    let mut env = TestEnv::with_args(&["--max-uploads", "1"]);
    let s = span("orders", "orders send", Producer).messaging("kafka", "last-words");
    let body = builder::protobuf(&[&s]);
    let (first, rest) = body.split_at(body.len() / 2);
    let addr = env.server().otlp_http;
    let (mut held, _) =
        env.hold_the_only_slot(&[("Content-Type", "application/x-protobuf")], first);
    env.send_sigterm();
    wait_for(
        "the receiver to stop accepting connections",
        Duration::from_secs(20),
        || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))
                .is_err()
                .then_some(())
        },
    );
    held.chunk(rest);
    let reply = held.finish();
    assert_eq!(
        reply.status,
        200,
        "the request in flight at SIGTERM: {}",
        reply.text()
    );
    let status = env.wait_exit();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    env.start_again();
    assert_eq!(env.trace_spans(&s.trace_hex()).len(), 1);
}

#[test]
fn sigint_stops_cleanly_too() {
    let mut env = TestEnv::start();
    env.post_fixtures(&fixtures::load(fixtures::NODE_AMQPLIB_JSON));
    let status = env.signal(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "exit status {status}");
    env.start_again();
    assert_eq!(env.spans_in_store(), 8);
}

#[test]
fn data_survives_a_normal_restart() {
    let mut env = TestEnv::start();
    let pika = fixtures::load(fixtures::PYTHON_PIKA);
    let window = Window::of_sets(&[fixtures::PYTHON_PIKA, fixtures::NODE_AMQPLIB_JSON]);
    env.post_fixtures(&pika);
    let before = env.topology(&window);
    let traces_query = format!("/api/traces?limit=1000&{}", window.query());
    let traces_before = env.get_json(&traces_query);
    env.restart();
    assert_eq!(env.spans_in_store(), 41);
    topo::assert_same_topology(&before, &env.topology(&window), "after a restart");
    assert_eq!(traces_before, env.get_json(&traces_query));
    // Re-sent after the restart: still counted once.
    env.post_fixtures(&pika);
    topo::assert_same_topology(&before, &env.topology(&window), "re-sent after a restart");
    // New data joins the old.
    env.post_fixtures(&fixtures::load(fixtures::NODE_AMQPLIB_JSON));
    common::expected::python_pika("")
        .and(common::expected::node_amqplib(""))
        .assert_topology(&env.topology(&window));
}

#[test]
fn a_consumer_waiting_for_its_producer_is_paired_after_a_restart() {
    let mut env = TestEnv::start();
    let (consumers, producers): (Vec<_>, Vec<_>) = fixtures::load(fixtures::PYTHON_PIKA)
        .into_iter()
        .partition(|f| f.only_consumers());
    assert!(!consumers.is_empty() && !producers.is_empty());
    env.post_fixtures(&consumers);
    env.restart();
    env.post_fixtures(&producers);
    common::expected::python_pika("")
        .assert_topology(&env.topology(&Window::of_sets(&[fixtures::PYTHON_PIKA])));
}
