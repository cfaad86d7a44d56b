//! Streaming consume over Server-Sent Events against the real binary: a subscription's
//! deliveries as they are published, a stream's events resumed with `Last-Event-ID`.

mod common;

use common::TestEnv;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;
use switchyard::broker::client::Client;

fn client(env: &TestEnv, service: &str) -> Client {
    Client::new(&env.server().http.to_string()).with_service(service)
}

/// An open SSE response, read frame by frame.
struct Events {
    lines: BufReader<Box<dyn Read + Send + Sync>>,
}

impl Events {
    fn open(env: &TestEnv, path: &str, headers: &[(&str, &str)]) -> Events {
        let agent = ureq::AgentBuilder::new()
            .timeout_read(Duration::from_secs(10))
            .build();
        let mut req = agent.get(&env.api_url(path));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(resp.content_type(), "text/event-stream");
        Events {
            lines: BufReader::new(resp.into_reader()),
        }
    }

    /// The next frame with data: (id, event, data); comments are skipped.
    fn next(&mut self) -> (String, String, Value) {
        let (mut id, mut kind, mut data) = (String::new(), String::new(), None);
        loop {
            let mut line = String::new();
            assert!(self.lines.read_line(&mut line).unwrap() > 0, "stream ended");
            let line = line.trim_end_matches('\n');
            if line.is_empty() {
                if let Some(d) = data.take() {
                    return (id, kind, d);
                }
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = v.to_string();
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str(v).unwrap());
            }
        }
    }
}

/// A server with topic `orders`, subscription `shipping` and message `{"n": 0}` published.
fn orders_with_one_published() -> (TestEnv, Client) {
    let env = TestEnv::start();
    let c = client(&env, "shipping");
    c.declare_topic("orders").unwrap();
    c.declare_subscription("shipping", "orders", 30_000, 5)
        .unwrap();
    c.publish_json("orders", &json!({ "n": 0 }), None).unwrap();
    (env, c)
}

#[test]
fn a_subscription_streams_its_deliveries_as_they_are_published() {
    let (env, c) = orders_with_one_published();
    let mut events = Events::open(
        &env,
        "/broker/subscriptions/shipping/events?wait=200ms",
        &[("Switchyard-Service", "shipping")],
    );
    let mut leases = Vec::new();
    for n in 0..3 {
        if n > 0 {
            c.publish_json("orders", &json!({ "n": n }), None).unwrap();
        }
        let (id, kind, data) = events.next();
        assert_eq!(kind, "delivery");
        assert_eq!(data["lease_id"], id.as_str());
        assert_eq!(data["event"]["data"]["n"], n);
        leases.push(id);
    }
    assert_eq!(c.ack("shipping", &leases).unwrap().settled.len(), 3);
    let sub = &c.subscriptions().unwrap()[0];
    assert_eq!((sub.ready, sub.leased), (0, 0));
}

#[test]
fn the_clients_closer_ends_a_reader_blocked_on_an_idle_stream() {
    let (_server, c) = orders_with_one_published();
    let mut deliveries = c.consume("shipping", 10).unwrap();
    let closer = deliveries.closer();
    let (seen_tx, seen) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        for d in deliveries.by_ref() {
            // The stream ends (`None`): no error for the shutdown.
            let d = d.unwrap();
            seen_tx.send(d.event["data"]["n"].clone()).unwrap();
            n += 1;
        }
        // And stays ended.
        assert!(deliveries.next().is_none());
        n
    });
    assert_eq!(seen.recv_timeout(Duration::from_secs(10)).unwrap(), 0);
    // Nothing more is published: the reader waits on the stream until it is closed.
    std::thread::sleep(Duration::from_millis(200));
    assert!(!reader.is_finished());
    closer.close();
    let started = std::time::Instant::now();
    while !reader.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the reader still waits"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(reader.join().unwrap(), 1);
}

#[test]
fn a_stream_tails_and_resumes_after_the_last_event_id() {
    let env = TestEnv::start();
    let c = client(&env, "audit");
    c.declare_stream("audit", None).unwrap();
    for n in 0..2 {
        c.append_json("audit", &json!({ "n": n })).unwrap();
    }
    let mut events = Events::open(
        &env,
        "/broker/streams/audit/sse?from=earliest&wait=200ms",
        &[],
    );
    for n in 0..2 {
        let (id, kind, data) = events.next();
        assert_eq!((id, kind), (n.to_string(), "event".to_string()));
        assert_eq!(data["event"]["data"]["n"], n);
    }
    c.append_json("audit", &json!({ "n": 2 })).unwrap();
    assert_eq!(events.next().0, "2");
    drop(events);
    c.append_json("audit", &json!({ "n": 3 })).unwrap();
    let mut resumed = Events::open(&env, "/broker/streams/audit/sse", &[("Last-Event-ID", "1")]);
    assert_eq!(resumed.next().0, "2");
    assert_eq!(resumed.next().0, "3");
}

#[test]
fn an_unknown_subscription_or_stream_is_a_plain_404() {
    let env = TestEnv::start();
    for path in [
        "/broker/subscriptions/nope/events",
        "/broker/streams/nope/sse",
    ] {
        let reply = env.get(path);
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json()["error"], "not_found");
    }
}

#[test]
fn sigterm_ends_open_event_streams_and_exits_promptly() {
    let mut env = TestEnv::start();
    let c = client(&env, "x");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 30_000, 5).unwrap();
    c.declare_stream("log", None).unwrap();
    let mut sub = Events::open(&env, "/broker/subscriptions/s/events", &[]);
    let mut log = Events::open(&env, "/broker/streams/log/sse", &[]);
    let started = std::time::Instant::now();
    let status = env.sigterm();
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Both streams ended (no frame with data ever came).
    let mut rest = String::new();
    let _ = sub.lines.read_to_string(&mut rest);
    let _ = log.lines.read_to_string(&mut rest);
    assert!(!rest.contains("data: "), "{rest}");
}
