//! The embedded broker over real HTTP against the real binary: fan-out, competing consumers,
//! redelivery, dead-letter, long-poll, errors and limits, restart and kill -9 durability, and
//! the topology its spans build.

mod common;

use common::{topo, wait_for, TestEnv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard::broker::client::Client;

/// Pulls and acks until `n` messages came or `deadline` passed; returns their `data.n`.
fn drain(c: &Client, sub: &str, n: usize, deadline: Duration) -> Vec<i64> {
    let until = Instant::now() + deadline;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < until {
        let batch = c.pull(sub, 100, Duration::from_millis(500)).unwrap();
        let leases: Vec<String> = batch.iter().map(|d| d.lease_id.clone()).collect();
        got.extend(batch.iter().map(|d| d.event["data"]["n"].as_i64().unwrap()));
        if !leases.is_empty() {
            let settled = c.ack(sub, &leases).unwrap();
            assert!(settled.unknown.is_empty(), "{settled:?}");
        }
    }
    got
}

#[test]
fn fan_out_reaches_every_subscription() {
    let env = TestEnv::start();
    let c = env.broker("orders");
    assert!(c.declare_topic("orders").unwrap().created);
    for s in ["a", "b", "c"] {
        assert!(
            c.declare_subscription(s, "orders", 30_000, 5)
                .unwrap()
                .created
        );
    }
    for n in 0..20 {
        let p = c.publish_json("orders", &json!({ "n": n }), None).unwrap();
        assert_eq!(p.subscriptions, 3);
    }
    let want: Vec<i64> = (0..20).collect();
    for s in ["a", "b", "c"] {
        let mut got = drain(&c, s, 20, Duration::from_secs(10));
        got.sort();
        assert_eq!(got, want, "subscription {s}");
    }
    for sub in c.subscriptions().unwrap() {
        assert_eq!((sub.ready, sub.leased, sub.dead), (0, 0, 0), "{sub:?}");
    }
}

#[test]
fn competing_consumers_receive_disjoint_sets() {
    let env = TestEnv::start();
    let c = env.broker("producer");
    c.declare_topic("jobs").unwrap();
    c.declare_subscription("workers", "jobs", 60_000, 5)
        .unwrap();
    const N: i64 = 200;
    let done = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Vec<i64>>>> = Arc::default();
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let c = env.broker(&format!("worker-{i}"));
            let (done, seen) = (done.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let batch = c.pull("workers", 5, Duration::from_millis(300)).unwrap();
                    let leases: Vec<String> = batch.iter().map(|d| d.lease_id.clone()).collect();
                    mine.extend(batch.iter().map(|d| d.event["data"]["n"].as_i64().unwrap()));
                    if !leases.is_empty() {
                        assert!(c.ack("workers", &leases).unwrap().unknown.is_empty());
                    }
                }
                seen.lock().unwrap().push(mine);
            })
        })
        .collect();
    for n in 0..N {
        c.publish_json("jobs", &json!({ "n": n }), None).unwrap();
    }
    wait_for("every job acked", Duration::from_secs(20), || {
        let subs = c.subscriptions().unwrap();
        (subs[0].ready + subs[0].leased == 0).then_some(())
    });
    done.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let all: Vec<i64> = seen.iter().flatten().copied().collect();
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), N as usize, "a message was delivered twice");
    assert_eq!(unique, (0..N).collect());
    assert!(
        seen.iter().filter(|s| !s.is_empty()).count() >= 2,
        "work was not shared: {:?}",
        seen.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[test]
fn lease_expiry_redelivers_then_dead_letters_after_max_attempts() {
    let env = TestEnv::start();
    let c = env.broker("flaky");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 300, 2).unwrap();
    c.publish_json("t", &json!({ "n": 1 }), None).unwrap();
    let first = c.pull("s", 10, Duration::ZERO).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    assert!(
        c.pull("s", 10, Duration::ZERO).unwrap().is_empty(),
        "leased"
    );
    // The lease expires: the long-poll is answered by the redelivery.
    let second = c.pull("s", 10, Duration::from_secs(5)).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].event["id"], first[0].event["id"]);
    assert_ne!(second[0].lease_id, first[0].lease_id);
    let stale = c
        .ack("s", std::slice::from_ref(&first[0].lease_id))
        .unwrap();
    assert_eq!(stale.unknown, vec![first[0].lease_id.clone()]);
    // The second lease expires too: out of attempts, the message goes to the dead letters and
    // is never delivered a third time.
    let dead = wait_for(
        "the message in the dead letters",
        Duration::from_secs(20),
        || {
            let third = c.pull("s", 10, Duration::ZERO).unwrap();
            assert!(third.is_empty(), "delivered past max_attempts: {third:?}");
            let dead = c.dead_letters("s", 10).unwrap();
            (!dead.is_empty()).then_some(dead)
        },
    );
    assert!(c.pull("s", 10, Duration::ZERO).unwrap().is_empty());
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].event["data"]["n"], 1);
    let sub = &c.subscriptions().unwrap()[0];
    assert_eq!((sub.ready, sub.leased, sub.dead), (0, 0, 1));
    // A redrive puts it back with a fresh count of attempts.
    assert_eq!(c.redrive("s").unwrap(), 1);
    let again = c.pull("s", 10, Duration::from_secs(2)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 1);
    assert!(c.dead_letters("s", 10).unwrap().is_empty());
    assert_eq!(c.redrive("nope").unwrap_err().status(), Some(404));
}

#[test]
fn a_waiting_pull_sees_an_expired_lease_while_acks_keep_the_broker_busy() {
    let env = TestEnv::start();
    let c = env.broker("flaky");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 300, 5).unwrap();
    c.declare_topic("busy").unwrap();
    c.declare_subscription("busy.q", "busy", 30_000, 5).unwrap();
    let events: Vec<Value> = (0..3000).map(|n| json!({ "n": n })).collect();
    for chunk in events.chunks(500) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|d| {
                json!({
                    "specversion": "1.0", "id": format!("b{}", d["n"]), "source": "busy",
                    "type": "tick", "datacontenttype": "application/json", "data": d,
                })
            })
            .collect();
        c.publish_events("busy", &batch).unwrap();
    }
    c.publish_json("t", &json!({ "n": 1 }), None).unwrap();
    let first = c.pull("s", 10, Duration::ZERO).unwrap();
    assert_eq!(first.len(), 1);
    // Pulls and acks only, one message at a time: turns that publish nothing, back to back.
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut turns = 0;
            while !stop.load(Ordering::Relaxed) {
                let got = c.pull("busy.q", 1, Duration::ZERO).unwrap();
                let leases: Vec<String> = got.into_iter().map(|d| d.lease_id).collect();
                if leases.is_empty() {
                    break;
                }
                c.ack("busy.q", &leases).unwrap();
                turns += 1;
            }
            turns
        })
    };
    // The lease expires while the acks go on: the long-poll is answered by the redelivery.
    let second = c.pull("s", 10, Duration::from_secs(5)).unwrap();
    stop.store(true, Ordering::Relaxed);
    let turns = busy.join().unwrap();
    assert_eq!(
        second.len(),
        1,
        "no redelivery within the wait ({turns} acks meanwhile)"
    );
    assert_eq!(second[0].attempt, 2);
    assert!(turns > 10, "only {turns} acks went on meanwhile");
}

#[test]
fn nack_redelivers_at_once_or_after_a_delay_and_dead_letters_at_the_last_attempt() {
    let env = TestEnv::start();
    let c = env.broker("picky");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 60_000, 3).unwrap();
    c.publish_json("t", &json!({ "n": 7 }), None).unwrap();
    let d1 = c.pull("s", 1, Duration::ZERO).unwrap();
    assert_eq!(
        c.nack("s", &[d1[0].lease_id.clone()], 0)
            .unwrap()
            .settled
            .len(),
        1
    );
    let d2 = c.pull("s", 1, Duration::ZERO).unwrap();
    assert_eq!(d2[0].attempt, 2);
    c.nack("s", &[d2[0].lease_id.clone()], 400).unwrap();
    assert!(
        c.pull("s", 1, Duration::ZERO).unwrap().is_empty(),
        "delayed"
    );
    let started = Instant::now();
    let d3 = c.pull("s", 1, Duration::from_secs(5)).unwrap();
    assert_eq!(d3[0].attempt, 3);
    assert!(started.elapsed() >= Duration::from_millis(250));
    c.nack("s", &[d3[0].lease_id.clone()], 0).unwrap();
    assert!(c.pull("s", 1, Duration::ZERO).unwrap().is_empty());
    assert_eq!(c.dead_letters("s", 10).unwrap().len(), 1);
}

#[test]
fn a_long_poll_is_answered_by_the_next_publish() {
    let env = TestEnv::start();
    let c = env.broker("p");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 30_000, 5).unwrap();
    let started = Instant::now();
    let pull = env.waiting_request("POST", "/broker/subscriptions/s/pull?max=1&wait=20000ms");
    c.publish_json("t", &json!({ "n": 1 }), None).unwrap();
    let (code, got) = pull.read_reply().answer();
    let waited = started.elapsed();
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["messages"].as_array().map(Vec::len), Some(1), "{got}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // Nothing to deliver: an empty answer once the wait is over.
    let started = Instant::now();
    assert!(c
        .pull("s", 1, Duration::from_millis(300))
        .unwrap()
        .is_empty());
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[test]
fn declarations_events_and_errors_over_http() {
    let env = TestEnv::with_args(&["--broker-max-message", "1KiB"]);
    let api = env.api();
    let status = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        api.send(method, path, headers, body).answer()
    };
    let json_ct = [("content-type", "application/json")];
    assert_eq!(status("PUT", "/broker/topics/orders", &[], b"").0, 201);
    assert_eq!(status("PUT", "/broker/topics/orders", &[], b"").0, 200);
    let sub = br#"{"topic":"orders","max_attempts":3}"#;
    assert_eq!(
        status("PUT", "/broker/subscriptions/billing", &json_ct, sub).0,
        201
    );
    assert_eq!(
        status("PUT", "/broker/subscriptions/billing", &json_ct, sub).0,
        200
    );
    let (code, body) = status(
        "PUT",
        "/broker/subscriptions/billing",
        &json_ct,
        br#"{"topic":"orders","max_attempts":4}"#,
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(
        status("PUT", "/broker/subscriptions/orders", &json_ct, sub).0,
        409
    );
    let (code, body) = status(
        "PUT",
        "/broker/subscriptions/x",
        &json_ct,
        br#"{"topic":"nope"}"#,
    );
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    assert_eq!(status("PUT", "/broker/topics/bad%20name", &[], b"").0, 400);

    // Structured, binary and plain JSON publishes.
    let ce = [("content-type", "application/cloudevents+json")];
    let event = br#"{"specversion":"1.0","id":"e-1","source":"/shop/orders","type":"order.created","data":{"n":1}}"#;
    let (code, body) = status("POST", "/broker/topics/orders/events", &ce, event);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["id"], "e-1");
    let binary = [
        ("content-type", "application/json"),
        ("ce-specversion", "1.0"),
        ("ce-id", "e-2"),
        ("ce-source", "/shop/orders"),
        ("ce-type", "order.created"),
        ("ce-subject", "order%2042"),
    ];
    assert_eq!(
        status(
            "POST",
            "/broker/topics/orders/events",
            &binary,
            br#"{"n":2}"#
        )
        .0,
        200
    );
    assert_eq!(
        status(
            "POST",
            "/broker/topics/orders/events",
            &json_ct,
            br#"{"n":3}"#
        )
        .0,
        200
    );
    let (code, body) = status(
        "POST",
        "/broker/subscriptions/billing/pull?max=10",
        &[],
        b"",
    );
    assert_eq!(code, 200, "{body}");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0]["event"]["type"], "order.created");
    assert_eq!(messages[0]["event"]["data"]["n"], 1);
    assert_eq!(messages[1]["event"]["id"], "e-2");
    assert_eq!(messages[1]["event"]["subject"], "order 42");
    assert_eq!(messages[1]["event"]["data"]["n"], 2);
    assert_eq!(messages[2]["event"]["data"]["n"], 3);
    assert_eq!(messages[2]["event"]["specversion"], "1.0");

    // Errors.
    let missing_type = br#"{"specversion":"1.0","id":"x","source":"s"}"#;
    let (code, body) = status("POST", "/broker/topics/orders/events", &ce, missing_type);
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert_eq!(
        status("POST", "/broker/topics/orders/events", &json_ct, b"{oops").0,
        400
    );
    assert_eq!(
        status("POST", "/broker/topics/nope/events", &json_ct, b"{}").0,
        404
    );
    assert_eq!(
        status("POST", "/broker/subscriptions/nope/pull", &[], b"").0,
        404
    );
    assert_eq!(
        status(
            "POST",
            "/broker/subscriptions/billing/pull?wait=soon",
            &[],
            b""
        )
        .0,
        400
    );
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2048));
    let (code, body) = status(
        "POST",
        "/broker/topics/orders/events",
        &json_ct,
        big.as_bytes(),
    );
    assert_eq!(
        (code, body["error"].as_str()),
        (413, Some("payload_too_large"))
    );
    assert_eq!(
        status(
            "POST",
            "/broker/topics/orders/events",
            &[("content-type", "text/plain")],
            b"hi"
        )
        .0,
        415
    );
    let (code, body) = status(
        "POST",
        "/broker/subscriptions/billing/ack",
        &json_ct,
        br#"{"lease_ids":["1.abc"]}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(body["unknown"], json!(["1.abc"]));
    let (code, body) = status("GET", "/broker/topics", &[], b"");
    assert_eq!(code, 200);
    assert_eq!(
        body["topics"],
        json!([{"name": "orders", "subscriptions": ["billing"]}])
    );
}

#[test]
fn a_restart_keeps_unacked_messages_leases_and_attempts() {
    let mut env = TestEnv::start();
    let c = env.broker("r");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 3_000, 5).unwrap();
    for n in 0..5 {
        c.publish_json("t", &json!({ "n": n }), None).unwrap();
    }
    let leased = c.pull("s", 3, Duration::ZERO).unwrap();
    assert_eq!(leased.len(), 3);
    c.ack("s", &[leased[0].lease_id.clone()]).unwrap();
    env.restart();
    let c = env.broker("r");
    let sub = &c.subscriptions().unwrap()[0];
    assert_eq!(sub.spec.max_attempts, 5);
    assert_eq!(sub.ready + sub.leased, 4, "{sub:?}");
    // Only the two never delivered are ready while the leases run.
    let now = c.pull("s", 10, Duration::ZERO).unwrap();
    assert_eq!(now.len(), sub.ready as usize);
    assert!(now.iter().all(|d| d.attempt == 1));
    // Settled, so that only the leases from before the restart can come back.
    let fresh: Vec<String> = now.iter().map(|d| d.lease_id.clone()).collect();
    assert!(c.ack("s", &fresh).unwrap().unknown.is_empty());
    // The leases survived the restart: they expire and come back as second attempts.
    let mut again = Vec::new();
    wait_for("the leases to expire", Duration::from_secs(30), || {
        again.extend(c.pull("s", 10, Duration::from_secs(5)).unwrap());
        (again.len() >= leased.len() - 1).then_some(())
    });
    let attempts: BTreeMap<i64, u32> = again
        .iter()
        .map(|d| (d.event["data"]["n"].as_i64().unwrap(), d.attempt))
        .collect();
    let expected: BTreeMap<i64, u32> = leased[1..]
        .iter()
        .map(|d| (d.event["data"]["n"].as_i64().unwrap(), 2))
        .collect();
    assert_eq!(attempts, expected);
}

#[test]
fn kill9_during_a_publish_storm_loses_no_acknowledged_message() {
    storm_then(|env| env.kill9());
}

#[test]
fn sigterm_during_a_publish_storm_loses_no_acknowledged_message() {
    storm_then(|env| {
        let status = env.sigterm();
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after SIGTERM: {status}"
        );
    });
}

/// Publishes from three threads, stops the server with `stop` once 300 publishes were
/// acknowledged, starts it again and checks that every acknowledged message is there.
fn storm_then(stop: impl FnOnce(&mut TestEnv)) {
    let mut env = TestEnv::start();
    let c = env.broker("storm");
    c.declare_topic("storm").unwrap();
    c.declare_subscription("storm.q", "storm", 60_000, 5)
        .unwrap();
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let threads: Vec<_> = (0..3i64)
        .map(|t| {
            let (c, acked) = (c.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let n = t * 1_000_000 + i;
                    match c.publish_json("storm", &json!({ "n": n }), None) {
                        Ok(_) => acked.lock().unwrap().push(n),
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    wait_for("acknowledged publishes", Duration::from_secs(20), || {
        (acked.lock().unwrap().len() >= 300).then_some(())
    });
    stop(&mut env);
    for t in threads {
        t.join().unwrap();
    }
    let acked: BTreeSet<i64> = acked.lock().unwrap().iter().copied().collect();
    env.start_again();
    let c = env.broker("storm");
    let total = c.subscriptions().unwrap()[0].ready as usize;
    assert!(
        total >= acked.len(),
        "{total} stored, {} acknowledged",
        acked.len()
    );
    let got: BTreeSet<i64> = drain(&c, "storm.q", total, Duration::from_secs(30))
        .into_iter()
        .collect();
    let lost: Vec<_> = acked.difference(&got).take(10).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[test]
fn broker_traffic_builds_the_topology_and_joins_the_client_trace() {
    let env = TestEnv::start();
    let orders = env.broker("orders");
    orders.declare_topic("order.created").unwrap();
    orders
        .declare_subscription("billing.order-created", "order.created", 30_000, 5)
        .unwrap();
    orders
        .declare_subscription("shipping.order-created", "order.created", 30_000, 5)
        .unwrap();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace}-{client_span}-01");
    for n in 0..3 {
        orders
            .publish_json("order.created", &json!({ "n": n }), Some(&traceparent))
            .unwrap();
    }
    for (service, sub) in [
        ("billing", "billing.order-created"),
        ("shipping", "shipping.order-created"),
    ] {
        let c = env.broker(service);
        let got = c.pull(sub, 10, Duration::ZERO).unwrap();
        assert_eq!(got.len(), 3);
        assert!(got
            .iter()
            .all(|d| d.traceparent.starts_with(&format!("00-{trace}-"))));
        let leases: Vec<String> = got.iter().map(|d| d.lease_id.clone()).collect();
        c.ack(sub, &leases).unwrap();
    }
    let topic = "destination:switchyard:order.created";
    let t = wait_for(
        "broker spans in the topology",
        Duration::from_secs(20),
        || {
            let t = env.get_json("/api/topology");
            let edges = topo::edges(&t);
            let has = |kind: &str, from: &str, to: &str| {
                edges
                    .get(&(kind.to_string(), from.to_string(), to.to_string()))
                    .is_some_and(|(count, _)| *count == 3)
            };
            let ready = has("publish", &topo::service("orders"), topic)
                && ["billing", "shipping"].iter().all(|s| {
                    let sub = format!("destination:switchyard:{s}.order-created");
                    has("route", topic, &sub) && has("consume", &sub, &topo::service(s))
                });
            ready.then_some(t)
        },
    );
    let deps = topo::dependencies(&t);
    for s in ["billing", "shipping"] {
        let key = (
            topo::service("orders"),
            topo::service(s),
            format!("destination:switchyard:{s}.order-created"),
        );
        assert_eq!(deps.get(&key), Some(&Some(3)), "{deps:?}");
    }
    // The publish spans are children of the client's span; receives and acks follow.
    let spans = wait_for("the whole trace", Duration::from_secs(10), || {
        let spans = env.trace_spans(trace);
        (spans.len() >= 3 + 6 + 6).then_some(spans)
    });
    let publishes: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "producer").collect();
    assert_eq!(publishes.len(), 3);
    assert!(publishes.iter().all(|s| s["parent_span_id"] == client_span));
    assert!(publishes
        .iter()
        .all(|s| s["attributes"]["messaging.system"] == "switchyard"));
    let receives = spans
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("receive "))
        .count();
    let acks = spans
        .iter()
        .filter(|s| s["name"].as_str().unwrap().starts_with("ack "))
        .count();
    assert_eq!((receives, acks), (6, 6));
}

#[test]
fn sigterm_answers_a_waiting_pull_and_exits_promptly() {
    let mut env = TestEnv::start();
    let c = env.broker("w");
    c.declare_topic("t").unwrap();
    c.declare_subscription("s", "t", 30_000, 5).unwrap();
    let pull = env.waiting_request("POST", "/broker/subscriptions/s/pull?max=1&wait=30000ms");
    let started = Instant::now();
    let status = env.sigterm();
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (code, answer) = pull.read_reply().answer();
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["messages"], json!([]), "{answer}");
}

#[test]
fn a_filtered_subscription_queues_only_matching_events() {
    let env = TestEnv::start();
    let c = env.broker("shop");
    c.declare_topic("shop").unwrap();
    c.declare_subscription("everything", "shop", 30_000, 5)
        .unwrap();
    let eu_orders = switchyard::broker::Filter {
        kind: Some("order.created".into()),
        subject_prefix: Some("eu/".into()),
    };
    assert!(
        c.declare_filtered_subscription("eu-orders", "shop", &eu_orders)
            .unwrap()
            .created
    );
    assert!(
        !c.declare_filtered_subscription("eu-orders", "shop", &eu_orders)
            .unwrap()
            .created
    );
    let other = switchyard::broker::Filter {
        kind: Some("order.created".into()),
        subject_prefix: None,
    };
    let err = c
        .declare_filtered_subscription("eu-orders", "shop", &other)
        .unwrap_err();
    assert_eq!(err.status(), Some(409));
    let event = |id: &str, kind: &str, subject: &str| json!({"specversion": "1.0", "id": id, "source": "/shop", "type": kind, "subject": subject, "data": {"id": id}});
    let sent = [
        ("1", "order.created", "eu/fr/1", 2),
        ("2", "order.created", "us/1", 1),
        ("3", "order.paid", "eu/fr/1", 1),
        ("4", "order.created", "eu/de/2", 2),
    ];
    for (id, kind, subject, subs) in sent {
        let p = c.publish_event("shop", &event(id, kind, subject)).unwrap();
        assert_eq!(p.subscriptions, subs, "event {id}");
    }
    let ids = |sub: &str| -> Vec<String> {
        c.pull(sub, 10, Duration::ZERO)
            .unwrap()
            .iter()
            .map(|d| d.event["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("eu-orders"), vec!["1", "4"]);
    assert_eq!(ids("everything"), vec!["1", "2", "3", "4"]);
    let subs = c.subscriptions().unwrap();
    assert_eq!(subs[0].spec.filter.as_ref(), Some(&eu_orders));
}

#[test]
fn names_with_spaces_or_line_breaks_are_refused_by_the_broker_not_smuggled() {
    let env = TestEnv::start();
    let c = env.broker("orders");
    c.declare_topic("orders").unwrap();
    for name in ["a b", "a\r\nHost: elsewhere", "orders/../x", "ünï"] {
        let err = c.declare_topic(name).unwrap_err();
        assert_eq!(err.status(), Some(400), "{name:?}: {err}");
        let err = c.publish_json(name, &json!({ "n": 1 }), None).unwrap_err();
        assert!(matches!(err.status(), Some(400 | 404)), "{name:?}: {err}");
    }
    // The connection is still in step: the next call gets its own answer.
    let topics: Vec<String> = c.topics().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(topics, ["orders"]);
}
