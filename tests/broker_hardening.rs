//! The embedded broker against hostile or careless callers, over real HTTP against the real
//! binary: dead-letter listings paged by bytes and read beside the router, deletes, push
//! subscriptions that cannot loop into their own server, validated ranges and names, and the
//! JSON error format for every bad input.

mod common;

use common::{wait_for, RawRequest, TestEnv};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use switchyard::broker::client::Client;

/// A page of dead letters holds about this many bytes of JSON at most (the broker's bound).
const PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

#[test]
fn dead_letter_listings_are_paged_by_bytes_and_read_beside_the_router() {
    const N: usize = 110;
    let env = TestEnv::start();
    let c = env.broker("bulky");
    c.declare_topic("big").unwrap();
    c.declare_subscription("dl", "big", 60_000, 1).unwrap();
    c.declare_topic("small").unwrap();
    c.declare_subscription("small.q", "small", 60_000, 5)
        .unwrap();
    // 110 messages of about 1 MB each, every one dead-lettered (one attempt, then a nack).
    let pad = "x".repeat(1_000_000);
    for n in 0..N {
        c.publish_json("big", &json!({ "n": n, "pad": pad }), None)
            .unwrap();
    }
    wait_for("every message dead", Duration::from_secs(120), || {
        let leases: Vec<String> = c
            .pull("dl", 1000, Duration::ZERO)
            .unwrap()
            .into_iter()
            .map(|d| d.lease_id)
            .collect();
        if !leases.is_empty() {
            c.nack("dl", &leases, 0).unwrap();
        }
        let sub = c.subscriptions().unwrap();
        let dl = sub.iter().find(|s| s.spec.name == "dl").unwrap();
        (dl.dead == N as u64).then_some(())
    });
    let api = env.api();

    // The old way of asking for everything gets one bounded page and a cursor.
    let first = api.get("/broker/subscriptions/dl/dead-letters?max=1000");
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(
        first.body.len() <= PAGE_BYTES + 1024,
        "a page of {} bytes",
        first.body.len()
    );
    let page = first.json();
    assert!(page["dead_letters"].as_array().unwrap().len() < N);
    assert!(page["next"].is_string(), "{}", page["next"]);

    // Paging reaches every dead letter once, while publishes elsewhere are answered.
    let listing = Arc::new(AtomicBool::new(true));
    let lister = {
        let (api, listing) = (api.clone(), listing.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            let mut pages = 0;
            loop {
                let path = match &after {
                    Some(a) => format!("/broker/subscriptions/dl/dead-letters?max=1000&after={a}"),
                    None => "/broker/subscriptions/dl/dead-letters?max=1000".to_string(),
                };
                let reply = api.get(&path);
                assert_eq!(reply.status, 200, "{}", reply.text());
                assert!(reply.body.len() <= PAGE_BYTES + 1024);
                let page = reply.json();
                for d in page["dead_letters"].as_array().unwrap() {
                    seen.push(d["event"]["data"]["n"].as_u64().unwrap());
                    assert_eq!(d["attempts"], 1);
                }
                pages += 1;
                match page["next"].as_str() {
                    Some(next) => after = Some(next.to_string()),
                    None => break,
                }
            }
            listing.store(false, Ordering::Relaxed);
            (seen, pages)
        })
    };
    let mut published = 0;
    while listing.load(Ordering::Relaxed) || published == 0 {
        c.publish_json("small", &json!({ "n": published }), None)
            .unwrap();
        published += 1;
    }
    let (seen, pages) = lister.join().unwrap();
    assert!(pages >= N / 4, "{pages} pages");
    assert_eq!(seen.len(), N, "every dead letter once");
    let unique: BTreeSet<u64> = seen.into_iter().collect();
    assert_eq!(unique, (0..N as u64).collect());
    let small = c.subscriptions().unwrap();
    let small = small.iter().find(|s| s.spec.name == "small.q").unwrap();
    assert_eq!(small.ready, published as u64);

    // A cursor that is not one is a JSON 400.
    let (code, body) = api
        .get("/broker/subscriptions/dl/dead-letters?after=yesterday")
        .answer();
    assert_eq!((code, body["error"].as_str()), (400, Some("bad_request")));
    let peak = peak_rss(env.pid());
    eprintln!("peak RSS after listing: {} MiB", peak / 1024 / 1024);
    assert!(
        peak < 512 * 1024 * 1024,
        "peak RSS {} MiB",
        peak / 1024 / 1024
    );
}

fn names(c: &Client) -> Vec<String> {
    let subs = c.subscriptions().unwrap();
    subs.into_iter().map(|s| s.spec.name).collect()
}

#[test]
fn deleting_topics_subscriptions_and_streams_removes_them_and_their_messages() {
    let env = TestEnv::start();
    let c = env.broker("admin");
    c.declare_topic("orders").unwrap();
    for s in ["a", "b"] {
        c.declare_subscription(s, "orders", 60_000, 5).unwrap();
    }
    for n in 0..5 {
        c.publish_json("orders", &json!({ "n": n }), None).unwrap();
    }
    let api = env.api();
    let deleted = c.delete("subscriptions", "a").unwrap();
    assert_eq!(deleted.deleted, "a");
    assert_eq!(names(&c), ["b"]);
    assert_eq!(c.pull("b", 10, Duration::ZERO).unwrap().len(), 5);
    let (code, body) = api
        .send("DELETE", "/broker/subscriptions/a", &[], b"")
        .answer();
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));

    // A pull waiting on a subscription of a deleted topic is answered 404.
    c.declare_subscription("w", "orders", 60_000, 5).unwrap();
    let pull = env.waiting_request("POST", "/broker/subscriptions/w/pull?wait=30s");
    let deleted = c.delete("topics", "orders").unwrap();
    assert_eq!(deleted.subscriptions, ["b", "w"]);
    let (code, body) = pull.read_reply().answer();
    assert_eq!((code, body["error"].as_str()), (404, Some("not_found")));
    assert!(c.topics().unwrap().is_empty());
    assert!(c.subscriptions().unwrap().is_empty());
    // The name is free again, and the new topic starts empty.
    c.declare_topic("orders").unwrap();
    c.declare_subscription("b", "orders", 60_000, 5).unwrap();
    assert!(c.pull("b", 10, Duration::ZERO).unwrap().is_empty());

    let put = api.send("PUT", "/broker/streams/log", &[], b"");
    assert_eq!(put.status, 201);
    for n in 0..3 {
        let r = api.post(
            "/broker/streams/log/events",
            &[("content-type", "application/json")],
            json!({ "n": n }).to_string().as_bytes(),
        );
        assert_eq!(r.status, 200);
    }
    let (code, body) = api.send("DELETE", "/broker/streams/log", &[], b"").answer();
    assert_eq!((code, body["deleted"].as_str()), (200, Some("log")));
    let (code, _) = api.get("/broker/streams/log/events").answer();
    assert_eq!(code, 404);
    assert_eq!(api.send("PUT", "/broker/streams/log", &[], b"").status, 201);
    let read = api.get_json("/broker/streams/log/events");
    assert_eq!(read["events"], json!([]));

    // What was deleted stays deleted after a restart.
    let mut env = env;
    env.restart();
    let c = env.broker("admin");
    assert_eq!(names(&c), ["b"]);
    assert!(c.pull("b", 10, Duration::ZERO).unwrap().is_empty());
}

fn declare_push(env: &TestEnv, name: &str, topic: &str, url: &str) -> (u16, Value) {
    let body = json!({"topic": topic, "max_attempts": 2, "visibility_timeout_ms": 5000,
                      "push": {"url": url, "backoff_ms": 10}});
    env.api()
        .send_json("PUT", &format!("/broker/subscriptions/{name}"), &body)
        .answer()
}

#[test]
fn a_push_to_the_servers_own_addresses_is_refused() {
    let env = TestEnv::start();
    env.broker("admin").declare_topic("t").unwrap();
    let (http, otlp) = (env.server().http, env.server().otlp_http);
    for url in [
        format!("http://{http}/broker/topics/t/events"),
        format!("http://localhost:{}/broker/topics/t/events", http.port()),
        format!("http://[::1]:{}/anything", http.port()),
        format!("http://0.0.0.0:{}/", http.port()),
        format!("http://{otlp}/v1/traces"),
    ] {
        let (code, body) = declare_push(&env, "loop", "t", &url);
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("bad_request")),
            "{url}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("--broker-allow-push-to-self"),
            "{body}"
        );
    }
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", elsewhere.local_addr().unwrap());
    assert_eq!(declare_push(&env, "hook", "t", &url).0, 201);
}

/// Allowed to push into its own topic, a message goes round at most 8 hops and then to the
/// dead-letter queue: the loop ends by itself.
#[test]
fn a_push_loop_into_its_own_topic_ends_at_the_hop_bound() {
    let env = TestEnv::with_args(&["--broker-allow-push-to-self"]);
    let c = env.broker("looper");
    c.declare_topic("loop").unwrap();
    c.declare_subscription("watch", "loop", 60_000, 5).unwrap();
    let url = format!("http://{}/broker/topics/loop/events", env.server().http);
    assert_eq!(declare_push(&env, "again", "loop", &url).0, 201);
    c.publish_json("loop", &json!({ "n": 1 }), None).unwrap();
    wait_for("the looping message dead", Duration::from_secs(60), || {
        let subs = c.subscriptions().unwrap();
        let again = subs.iter().find(|s| s.spec.name == "again").unwrap();
        (again.dead == 1 && again.ready == 0 && again.leased == 0).then_some(())
    });
    // The original and its 8 pushed copies, each with its hop count.
    let got = c.pull("watch", 100, Duration::ZERO).unwrap();
    let hops: Vec<u64> = got
        .iter()
        .map(|d| {
            d.event
                .get("switchyardhops")
                .and_then(Value::as_u64)
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(hops, (0..=8).collect::<Vec<u64>>(), "{got:?}");
    let dead = c.dead_letters("again", 10).unwrap();
    assert_eq!(dead[0].event["switchyardhops"], 8);

    // A publish that says it went through more hops than the bound is refused.
    let (code, body) = env
        .api()
        .post(
            "/broker/topics/loop/events",
            &[
                ("content-type", "application/json"),
                ("switchyard-hops", "9"),
            ],
            b"{}",
        )
        .answer();
    assert_eq!(
        (code, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
}

#[test]
fn ranges_names_and_query_parameters_are_checked_with_json_errors() {
    let env = TestEnv::start();
    let api = env.api();
    let json_ct = [("content-type", "application/json")];
    assert_eq!(api.send("PUT", "/broker/topics/t", &[], b"").status, 201);
    let bad = |method: &str, path: &str, body: &[u8]| {
        let reply = api.send(method, path, &json_ct, body);
        assert_eq!(
            reply.content_type(),
            "application/json",
            "{method} {path}: {}",
            reply.text()
        );
        let (code, body) = reply.answer();
        assert!(
            (400..500).contains(&code) && body["error"].is_string() && body["message"].is_string(),
            "{method} {path}: {code} {body}"
        );
        code
    };
    for timeout in [u64::MAX, 1 << 63, 12 * 3_600_000 + 1] {
        let body = json!({"topic": "t", "visibility_timeout_ms": timeout}).to_string();
        assert_eq!(bad("PUT", "/broker/subscriptions/s", body.as_bytes()), 400);
    }
    let ok = json!({"topic": "t", "visibility_timeout_ms": 12 * 3_600_000}).to_string();
    assert_eq!(
        api.send("PUT", "/broker/subscriptions/s", &json_ct, ok.as_bytes())
            .status,
        201
    );
    let body = json!({"max_age_ms": u64::MAX}).to_string();
    assert_eq!(bad("PUT", "/broker/streams/x", body.as_bytes()), 400);
    // Sent as they are (an HTTP library would resolve the dot segments away).
    for name in [".", "..", "%2E", "%2E%2E", "..."] {
        let path = format!("/broker/topics/{name}");
        let reply = RawRequest::send(env.server().http, "PUT", &path, &[], b"").read_reply();
        let (code, body) = reply.answer();
        assert_eq!(
            (code, body["error"].as_str()),
            (400, Some("bad_request")),
            "{name}"
        );
    }
    assert_eq!(bad("POST", "/broker/subscriptions/s/pull?max=-1", b""), 400);
    assert_eq!(bad("POST", "/broker/subscriptions/s/pull?max=x", b""), 400);
    assert_eq!(
        bad("GET", "/broker/subscriptions/s/dead-letters?max=1e9", b""),
        400
    );
    assert_eq!(bad("GET", "/broker/streams/x/events?max=%FF", b""), 400);
    assert_eq!(bad("GET", "/broker/no/such/thing", b""), 404);
    assert_eq!(bad("PATCH", "/broker/topics/t", b""), 404);
    // The web API's query parameters too.
    assert_eq!(bad("GET", "/api/traces?limit=many", b""), 400);

    // A nack delay near 2^63 does not wrap into "at once".
    let c = env.broker("p");
    c.publish_json("t", &json!({ "n": 1 }), None).unwrap();
    let d = c.pull("s", 1, Duration::ZERO).unwrap();
    let lease = d[0].lease_id.clone();
    for delay in [u64::MAX, 1 << 63, 12 * 3_600_000 + 1] {
        let body = json!({"lease_ids": [lease], "delay_ms": delay}).to_string();
        assert_eq!(
            bad("POST", "/broker/subscriptions/s/nack", body.as_bytes()),
            400
        );
    }
    assert!(
        c.pull("s", 1, Duration::ZERO).unwrap().is_empty(),
        "still leased"
    );
}

/// 300 idle long-polls on one subscription: 256 wait (its share), the rest get 429, and a
/// pull on another subscription still waits and gets its message.
#[test]
fn idle_consumers_of_one_subscription_leave_room_for_the_others() {
    const HELD: usize = 300;
    const PER_SUBSCRIPTION: usize = 256;
    // Room for every long-poll: the listener's connection cap (256 by default) would hold the
    // ones past it in the accept queue, unanswered.
    let env = TestEnv::with_args(&["--max-connections", "1024"]);
    let c = env.broker("fair");
    for t in ["busy", "quiet"] {
        c.declare_topic(t).unwrap();
        c.declare_subscription(&format!("{t}.q"), t, 60_000, 5)
            .unwrap();
    }
    let path = "/broker/subscriptions/busy.q/pull?wait=60s";
    let held: Vec<RawRequest> = (0..HELD)
        .map(|_| RawRequest::send(env.server().http, "POST", path, &[], b""))
        .collect();
    let refused = || held.iter().filter(|r| r.answered_early()).count();
    wait_for(
        "the long-polls past the subscription's bound refused",
        Duration::from_secs(30),
        || (refused() >= HELD - PER_SUBSCRIPTION).then_some(()),
    );
    let (refused, waiting): (Vec<RawRequest>, Vec<RawRequest>) =
        held.into_iter().partition(|r| r.answered_early());
    assert_eq!(refused.len(), HELD - PER_SUBSCRIPTION);
    for r in refused {
        let (code, body) = r.read_reply().answer();
        assert_eq!(
            (code, body["error"].as_str()),
            (429, Some("too_many_requests"))
        );
    }
    let pull = env.waiting_request("POST", "/broker/subscriptions/quiet.q/pull?wait=30s");
    c.publish_json("quiet", &json!({ "n": 1 }), None).unwrap();
    let (code, body) = pull.read_reply().answer();
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["messages"][0]["event"]["data"]["n"], 1);
    drop(waiting);
}
