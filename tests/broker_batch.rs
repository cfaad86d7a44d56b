//! Batched publishes (CloudEvents' batched content mode) over real HTTP against the real
//! binary, and the client's coalescing of concurrent publishes.

mod common;

use common::TestEnv;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard::broker::client::Client;

const BATCH: &str = "application/cloudevents-batch+json";

fn event(id: &str, n: i64, traceparent: Option<&str>) -> Value {
    let mut e = json!({
        "specversion": "1.0", "id": id, "source": "billing", "type": "invoice.issued",
        "datacontenttype": "application/json", "data": { "n": n },
    });
    if let Some(tp) = traceparent {
        e["traceparent"] = Value::String(tp.into());
    }
    e
}

/// `POST` of a batch (CloudEvents' batched content mode) to `path`: status and JSON answer.
fn post_batch(env: &TestEnv, path: &str, body: &[u8]) -> (u16, Value) {
    env.api()
        .post(path, &[("Content-Type", BATCH)], body)
        .answer()
}

/// The trace id of a `traceparent`.
fn trace_of(tp: &str) -> &str {
    tp.split('-').nth(1).unwrap()
}

#[test]
fn a_batch_is_published_whole_in_order_each_event_in_its_own_trace() {
    let env = TestEnv::start();
    let c = env.broker("billing");
    c.declare_topic("invoices").unwrap();
    c.declare_subscription("invoices.mail", "invoices", 30_000, 5)
        .unwrap();
    let traces = [
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ];
    let batch = json!([
        event("e1", 1, Some(traces[0])),
        event("e2", 2, Some(traces[1])),
        event("e3", 3, None),
    ]);
    let (code, answer) = post_batch(
        &env,
        "/broker/topics/invoices/events",
        batch.to_string().as_bytes(),
    );
    assert_eq!(code, 200, "{answer}");
    let published = answer["published"].as_array().unwrap();
    let ids: Vec<&str> = published
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e1", "e2", "e3"]);
    assert!(published.iter().all(|p| p["subscriptions"] == 1));
    // Each publish span continues its own event's trace; the one without starts a new trace.
    let tps: Vec<&str> = published
        .iter()
        .map(|p| p["traceparent"].as_str().unwrap())
        .collect();
    assert_eq!(trace_of(tps[0]), trace_of(traces[0]));
    assert_eq!(trace_of(tps[1]), trace_of(traces[1]));
    assert!(!traces.iter().any(|t| trace_of(t) == trace_of(tps[2])));

    let got = c.pull("invoices.mail", 10, Duration::from_secs(2)).unwrap();
    let delivered: Vec<(&str, i64)> = got
        .iter()
        .map(|d| {
            (
                d.event["id"].as_str().unwrap(),
                d.event["data"]["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(delivered, [("e1", 1), ("e2", 2), ("e3", 3)]);
    for (d, tp) in got.iter().zip(&tps) {
        assert_eq!(trace_of(&d.traceparent), trace_of(tp));
    }
}

#[test]
fn a_bad_batch_is_refused_whole_and_publishes_nothing() {
    let env = TestEnv::with_args(&["--broker-max-message", "1KiB"]);
    let c = env.broker("billing");
    c.declare_topic("invoices").unwrap();
    c.declare_subscription("invoices.mail", "invoices", 30_000, 5)
        .unwrap();
    let mut no_type = event("e2", 2, None);
    no_type.as_object_mut().unwrap().remove("type");
    let big = json!({
        "specversion": "1.0", "id": "big", "source": "billing", "type": "t",
        "data": "x".repeat(2048),
    });
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            json!([event("e1", 1, None), no_type])
                .to_string()
                .into_bytes(),
            400,
            "event 1",
        ),
        (
            json!([event("e1", 1, None), big]).to_string().into_bytes(),
            413,
            "",
        ),
        (b"[]".to_vec(), 400, "1 to 1000"),
        (event("e1", 1, None).to_string().into_bytes(), 400, "array"),
        (b"[{".to_vec(), 400, "not JSON"),
    ];
    for (body, want, says) in cases {
        let (code, answer) = post_batch(&env, "/broker/topics/invoices/events", &body);
        assert_eq!(code, want, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
    let (code, answer) = post_batch(
        &env,
        "/broker/topics/nowhere/events",
        json!([event("e1", 1, None)]).to_string().as_bytes(),
    );
    assert_eq!((code, answer["error"].as_str()), (404, Some("not_found")));
    assert!(c
        .pull("invoices.mail", 10, Duration::ZERO)
        .unwrap()
        .is_empty());
    assert_eq!(c.subscriptions().unwrap()[0].ready, 0);
}

#[test]
fn a_batch_appended_to_a_stream_takes_consecutive_offsets() {
    let env = TestEnv::start();
    let c = env.broker("ledger");
    c.declare_stream("ledger", None).unwrap();
    c.append_json("ledger", &json!({ "n": 0 })).unwrap();
    let events: Vec<Value> = (1..=4).map(|n| event(&format!("l{n}"), n, None)).collect();
    let published = c.append_events("ledger", &events).unwrap();
    let offsets: Vec<Option<u64>> = published.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [Some(1), Some(2), Some(3), Some(4)]);
    let read = c
        .read("ledger", "earliest", None, 10, Duration::ZERO)
        .unwrap();
    let ns: Vec<i64> = read
        .events
        .iter()
        .map(|e| e.event["data"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2, 3, 4]);
}

#[test]
fn concurrent_publishes_share_requests_and_each_is_acknowledged_once() {
    let env = TestEnv::start();
    let c = orders(&env);
    let before = c.requests();
    let (threads, each) = (32i64, 40i64);
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (c, ids) = (c.clone(), ids.clone());
            std::thread::spawn(move || {
                for i in 0..each {
                    let p = c
                        .publish_json("orders", &json!({ "n": t * 1000 + i }), None)
                        .unwrap();
                    assert_eq!(p.subscriptions, 1);
                    ids.lock().unwrap().push(p.id);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let total = (threads * each) as usize;
    let requests = c.requests() - before;
    assert!(
        requests < total as u64,
        "{requests} requests for {total} publishes: nothing was coalesced"
    );
    let ids = ids.lock().unwrap();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), total);

    let got = drain(&c, total);
    let want: BTreeSet<i64> = (0..threads)
        .flat_map(|t| (0..each).map(move |i| t * 1000 + i))
        .collect();
    assert_eq!(got.len(), total, "a message was delivered twice");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
}

/// A client of a server with topic `orders` and its subscription `orders.q`.
fn orders(env: &TestEnv) -> Client {
    let c = env.broker("orders");
    c.declare_topic("orders").unwrap();
    c.declare_subscription("orders.q", "orders", 30_000, 5)
        .unwrap();
    c
}

/// Every message of `orders.q`, pulled and acked until `total` arrived: their `n`s.
fn drain(c: &Client, total: usize) -> Vec<i64> {
    let mut got = Vec::new();
    while got.len() < total {
        let batch = c.pull("orders.q", 100, Duration::from_secs(2)).unwrap();
        assert!(!batch.is_empty(), "{} of {total} delivered", got.len());
        let leases: Vec<String> = batch.iter().map(|d| d.lease_id.clone()).collect();
        c.ack("orders.q", &leases).unwrap();
        got.extend(batch.iter().map(|d| d.event["data"]["n"].as_i64().unwrap()));
    }
    got
}

#[test]
fn async_publishes_from_tasks_share_requests_with_blocking_ones() {
    let env = TestEnv::start();
    let c = orders(&env);
    let before = c.requests();
    let (tasks, threads, each) = (64i64, 4i64, 25i64);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Threads publishing with the blocking call at the same time, on the same topic.
    let blocking: Vec<_> = (0..threads)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                (0..each)
                    .map(|i| {
                        let n = 100_000 + t * 1000 + i;
                        c.publish_json("orders", &json!({ "n": n }), None)
                            .unwrap()
                            .id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..tasks {
            let c = c.clone();
            set.spawn(async move {
                let mut ids = Vec::new();
                for i in 0..each {
                    let data = json!({ "n": t * 1000 + i });
                    let p = c.publish_json_async("orders", &data, None).await.unwrap();
                    assert_eq!(p.subscriptions, 1);
                    ids.push(p.id);
                }
                ids
            });
        }
        let mut ids = Vec::new();
        while let Some(done) = set.join_next().await {
            ids.extend(done.unwrap());
        }
        ids
    });
    for h in blocking {
        ids.extend(h.join().unwrap());
    }
    let total = ((tasks + threads) * each) as usize;
    let requests = c.requests() - before;
    assert!(
        requests < total as u64 / 2,
        "{requests} requests for {total} publishes: too little was coalesced"
    );
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), total);
    let got = drain(&c, total);
    assert_eq!(got.len(), total, "a message was delivered twice");
    let want: BTreeSet<i64> = (0..tasks)
        .flat_map(|t| (0..each).map(move |i| t * 1000 + i))
        .chain((0..threads).flat_map(|t| (0..each).map(move |i| 100_000 + t * 1000 + i)))
        .collect();
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), want);
    // Outside a runtime the async call says so instead of panicking.
    let outside =
        futures_util::FutureExt::now_or_never(c.publish_json_async("orders", &json!({}), None));
    let err = outside.expect("answered at once").unwrap_err();
    assert!(err.to_string().contains("tokio runtime"), "{err}");
}

#[test]
fn one_oversized_publish_among_concurrent_ones_fails_only_its_caller() {
    let env = TestEnv::with_args(&["--broker-max-message", "1KiB"]);
    let c = orders(&env);
    let handles: Vec<_> = (0..16i64)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                (0..20i64)
                    .map(|i| {
                        let data = if t == 7 && i == 10 {
                            json!({ "n": -1, "pad": "x".repeat(4096) })
                        } else {
                            json!({ "n": t * 100 + i })
                        };
                        c.publish_json("orders", &data, None)
                            .map_err(|e| e.status())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert_eq!(failed, [&Some(413)]);
    assert_eq!(
        c.subscriptions().unwrap()[0].ready,
        outcomes.len() as u64 - 1
    );
}

#[test]
fn an_acker_sends_leases_handed_over_together_in_few_requests_and_counts_failures() {
    let env = TestEnv::start();
    let c = orders(&env);
    for n in 0..60 {
        c.publish_json("orders", &json!({ "n": n }), None).unwrap();
    }
    let mut leases = Vec::new();
    while leases.len() < 60 {
        let batch = c.pull("orders.q", 100, Duration::from_secs(2)).unwrap();
        assert!(!batch.is_empty(), "{} of 60 delivered", leases.len());
        leases.extend(batch.into_iter().map(|d| d.lease_id));
    }
    let acker = c.acker("orders.q").unwrap();
    for lease in &leases {
        acker.ack(lease.clone()).unwrap();
    }
    // Finishing sends what is still queued.
    let done = acker.finish();
    assert_eq!(
        (done.acked, done.unknown, done.failed),
        (60, 0, 0),
        "{done:?}"
    );
    assert!(
        done.requests < 10,
        "60 leases handed over at once took {} requests",
        done.requests
    );
    let sub = c
        .subscriptions()
        .unwrap()
        .into_iter()
        .find(|s| s.spec.name == "orders.q")
        .unwrap();
    assert_eq!((sub.ready, sub.leased, sub.dead), (0, 0, 0));
    assert!(c.pull("orders.q", 10, Duration::ZERO).unwrap().is_empty());

    // Acks the broker refuses (an unknown subscription) are counted, not lost silently.
    let bad = c.acker("no.such.subscription").unwrap();
    for lease in leases.iter().take(3) {
        bad.ack(lease.clone()).unwrap();
    }
    let done = bad.finish();
    assert_eq!((done.acked, done.failed), (0, 3), "{done:?}");

    // Leases no longer current (acked above) are told apart from acked ones.
    let again = c.acker("orders.q").unwrap();
    for lease in leases.iter().take(5) {
        again.ack(lease.clone()).unwrap();
    }
    let done = again.finish();
    assert_eq!(
        (done.acked, done.unknown, done.failed),
        (0, 5, 0),
        "{done:?}"
    );
}

#[test]
fn an_acker_whose_broker_is_gone_counts_every_lease_as_failed() {
    // An address where nothing listens: every request is refused at once.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let c = Client::new(&addr).with_service("orders");
    let acker = c.acker("orders.q").unwrap();
    for n in 0..3000 {
        acker.ack(format!("{n}.lease")).unwrap();
    }
    let done = acker.finish();
    assert_eq!(
        (done.acked, done.unknown, done.failed),
        (0, 0, 3000),
        "{done:?}"
    );
    assert!(done.requests >= 1, "{done:?}");
}
