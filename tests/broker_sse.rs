//! Streaming consume over Server-Sent Events against the real binary: a subscription's
//! deliveries as they are published, a stream's events resumed with `Last-Event-ID`.

mod common;

use common::{wait_for, TestEnv};
use serde_json::json;
use std::time::Duration;
use switchyard::broker::client::Client;

/// A server with topic `orders`, subscription `shipping` and message `{"n": 0}` published.
fn orders_with_one_published() -> (TestEnv, Client) {
    let env = TestEnv::start();
    let c = env.broker("shipping");
    c.declare_topic("orders").unwrap();
    c.declare_subscription("shipping", "orders", 30_000, 5)
        .unwrap();
    c.publish_json("orders", &json!({ "n": 0 }), None).unwrap();
    (env, c)
}

#[test]
fn a_subscription_streams_its_deliveries_as_they_are_published() {
    let (env, c) = orders_with_one_published();
    let mut events = env.api().events(
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
    // Nothing more is published: the reader blocks on the idle stream (the server's step
    // waits 15 s) until it is closed. Only a wait can show that it did not end by itself; a
    // fifth of a second is long enough for a reader that returns at once to have returned.
    assert!(seen.recv_timeout(Duration::from_millis(200)).is_err());
    assert!(
        !reader.is_finished(),
        "the stream ended before it was closed"
    );
    closer.close();
    wait_for("the reader to end", Duration::from_secs(5), || {
        reader.is_finished().then_some(())
    });
    assert_eq!(reader.join().unwrap(), 1);
}

#[test]
fn a_stream_tails_and_resumes_after_the_last_event_id() {
    let env = TestEnv::start();
    let c = env.broker("audit");
    c.declare_stream("audit", None).unwrap();
    for n in 0..2 {
        c.append_json("audit", &json!({ "n": n })).unwrap();
    }
    let mut events = env
        .api()
        .events("/broker/streams/audit/sse?from=earliest&wait=200ms", &[]);
    for n in 0..2 {
        let (id, kind, data) = events.next();
        assert_eq!((id, kind), (n.to_string(), "event".to_string()));
        assert_eq!(data["event"]["data"]["n"], n);
    }
    c.append_json("audit", &json!({ "n": 2 })).unwrap();
    assert_eq!(events.next().0, "2");
    drop(events);
    c.append_json("audit", &json!({ "n": 3 })).unwrap();
    let mut resumed = env
        .api()
        .events("/broker/streams/audit/sse", &[("Last-Event-ID", "1")]);
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
    let c = env.broker("x");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 30_000, 5).unwrap();
    c.declare_stream("log", None).unwrap();
    let mut sub = env.api().events("/broker/subscriptions/s/events", &[]);
    let mut log = env.api().events("/broker/streams/log/sse", &[]);
    let started = std::time::Instant::now();
    let status = env.sigterm();
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Both streams ended (no frame with data ever came).
    let rest = sub.rest() + &log.rest();
    assert!(!rest.contains("data: "), "{rest}");
}
