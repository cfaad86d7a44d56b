//! The read API: /healthz, /api/traces (filters, limit, order), /api/traces/{id} (spans, hops,
//! replies), /api/topology window handling, /api/stats.

mod common;

use common::builder::{self, span, Consumer, Producer};
use common::fixtures::{self, SpanInfo};
use common::{topo, TestEnv};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use switchyard::api::TraceAnswer;
use switchyard::flow::{Hop, Reply, Via};
use switchyard::model::SpanId;

fn traces(env: &TestEnv, query: &str) -> Vec<Value> {
    env.get_json(&format!("/api/traces?{query}"))["traces"]
        .as_array()
        .expect("traces array")
        .clone()
}

fn ids(traces: &[Value]) -> Vec<String> {
    traces
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn healthz_answers_200() {
    let env = TestEnv::start();
    assert_eq!(env.get("/healthz").status, 200);
}

#[test]
fn traces_are_listed_newest_first_with_their_summaries() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let listed = traces(&env, &format!("limit=1000&{}", window.query()));
    let mut by_trace: BTreeMap<&str, Vec<&SpanInfo>> = BTreeMap::new();
    for s in &spans {
        by_trace.entry(&s.trace_id).or_default().push(s);
    }
    assert_eq!(listed.len(), by_trace.len(), "one summary per trace");
    let starts: Vec<u64> = listed
        .iter()
        .map(|t| t["start_unix_nanos"].as_u64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {starts:?}"
    );
    for t in &listed {
        let id = t["trace_id"].as_str().unwrap();
        let members = &by_trace[id];
        let root = members
            .iter()
            .find(|s| s.parent_span_id.is_empty())
            .expect("a root span");
        let start = members.iter().map(|s| s.start_unix_nanos).min().unwrap();
        let end = members.iter().map(|s| s.end_unix_nanos).max().unwrap();
        assert_eq!(t["span_count"].as_u64(), Some(members.len() as u64), "{t}");
        assert_eq!(
            t["error_count"].as_u64(),
            Some(members.iter().filter(|s| s.error).count() as u64),
            "{t}"
        );
        assert_eq!(t["start_unix_nanos"].as_u64(), Some(start), "{t}");
        assert_eq!(
            t["duration_micros"].as_u64(),
            Some((end - start) / 1000),
            "{t}"
        );
        assert_eq!(t["root_service"], root.service.as_str(), "{t}");
        assert_eq!(t["root_name"], root.name.as_str(), "{t}");
        let services: BTreeSet<&str> = t["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let want: BTreeSet<&str> = members.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(services, want, "{t}");
        let destinations: BTreeSet<&str> = t["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        let want: BTreeSet<&str> = match root.name.as_str() {
            "order.created send" => ["order.created"].into(),
            "tasks send" => ["tasks"].into(),
            "identity.2fa send" => ["identity.2fa", "(temporary)"].into(),
            "audit.events send" => ["audit.events"].into(),
            other => panic!("unexpected root {other}"),
        };
        assert_eq!(destinations, want, "{t}");
    }
    let errors: u64 = listed
        .iter()
        .map(|t| t["error_count"].as_u64().unwrap())
        .sum();
    assert_eq!(errors, 1);
}

#[test]
fn traces_are_filtered_by_service_and_destination() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let q = |extra: &str| -> BTreeSet<String> {
        ids(&traces(
            &env,
            &format!("limit=1000&{}&{extra}", window.query()),
        ))
        .into_iter()
        .collect()
    };
    for service in ["worker", "audit", "billing", "wallet"] {
        assert_eq!(
            q(&format!("service={service}")),
            fixtures::trace_ids_with(&spans, service),
            "service={service}"
        );
    }
    assert_eq!(
        q("destination=tasks"),
        fixtures::trace_ids_with(&spans, "checkout")
    );
    assert_eq!(
        q("destination=order.created"),
        fixtures::trace_ids_with(&spans, "orders")
    );
    assert_eq!(
        q("destination=audit.events"),
        fixtures::trace_ids_with(&spans, "audit")
    );
    assert_eq!(
        q("service=shipping&destination=order.created"),
        fixtures::trace_ids_with(&spans, "shipping")
    );
    assert_eq!(
        q("service=checkout&destination=order.created"),
        BTreeSet::new()
    );
    assert_eq!(q("service=nobody"), BTreeSet::new());
}

#[test]
fn the_limit_keeps_the_newest_traces() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let all = ids(&traces(&env, &format!("limit=1000&{}", window.query())));
    for limit in [1, 3, 7] {
        let some = ids(&traces(&env, &format!("limit={limit}&{}", window.query())));
        assert_eq!(some, all[..limit].to_vec(), "limit={limit}");
    }
    let workers = traces(&env, &format!("service=worker&limit=2&{}", window.query()));
    assert_eq!(workers.len(), 2);
}

#[test]
fn a_trace_is_returned_with_its_spans() {
    let (env, spans, _) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let failed = spans.iter().find(|s| s.error).expect("the failed delivery");
    let body = env.get_json(&format!("/api/traces/{}", failed.trace_id));
    assert_eq!(body["trace_id"], failed.trace_id.as_str());
    let got = body["spans"].as_array().unwrap();
    let want: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s.trace_id == failed.trace_id)
        .map(|s| s.span_id.as_str())
        .collect();
    let got_ids: BTreeSet<&str> = got.iter().map(|s| s["span_id"].as_str().unwrap()).collect();
    assert_eq!(got_ids, want);
    let producer = got.iter().find(|s| s["service"] == "orders").unwrap();
    assert_eq!(producer["parent_span_id"], Value::Null);
    assert_eq!(producer["messaging"]["operation"], "produce", "{producer}");
    assert_eq!(producer["messaging"]["system"], "rabbitmq");
    assert_eq!(producer["messaging"]["destination"], "order.created");
    for consumer in got.iter().filter(|s| s["service"] != "orders") {
        assert_eq!(consumer["trace_id"], failed.trace_id.as_str());
        assert_eq!(
            consumer["parent_span_id"], producer["span_id"],
            "{consumer}"
        );
        assert_eq!(consumer["messaging"]["operation"], "consume", "{consumer}");
        assert_eq!(
            consumer["attributes"]["messaging.message.id"], "order-3",
            "{consumer}"
        );
        assert!(consumer["events"].is_array() && consumer["links"].is_array());
    }
    let billing = got
        .iter()
        .find(|s| s["span_id"] == failed.span_id.as_str())
        .unwrap();
    assert_eq!(billing["service"], "billing");
    assert_ne!(
        billing["status"],
        got.iter().find(|s| s["service"] == "shipping").unwrap()["status"]
    );
    let events = billing["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["name"] == "exception"), "{billing}");
    assert_eq!(
        billing["start_unix_nanos"].as_u64(),
        Some(failed.start_unix_nanos)
    );
    assert_eq!(
        billing["end_unix_nanos"].as_u64(),
        Some(failed.end_unix_nanos)
    );
}

/// `GET /api/traces/{id}` read as its type, the spans left as JSON.
fn trace_answer(env: &TestEnv, trace_id_hex: &str) -> TraceAnswer<Value> {
    let body = env.get_json(&format!("/api/traces/{trace_id_hex}"));
    serde_json::from_value(body).expect("a trace answer")
}

fn span_id(s: &builder::SpanB) -> SpanId {
    SpanId::from_hex(&s.span_hex()).unwrap()
}

#[test]
fn a_trace_comes_with_its_hops_by_parent_and_by_link() {
    let env = TestEnv::start();
    let publish = span("orders", "order.created send", Producer)
        .messaging("rabbitmq", "order.created")
        .lasting_ms(2);
    let by_parent = publish
        .child("billing", "billing.q process", Consumer)
        .messaging("rabbitmq", "billing.q")
        .at_ms(25);
    let by_link = span("shipping", "shipping.q process", Consumer)
        .messaging("rabbitmq", "shipping.q")
        .ids(publish.span.trace_id.clone(), builder::new_span_id())
        .link(&publish)
        .at_ms(40);
    let body = builder::protobuf(&[&publish, &by_parent, &by_link]);
    assert_eq!(env.post_protobuf(&body).status, 200);
    let answer = trace_answer(&env, &publish.trace_hex());
    assert_eq!(answer.trace_id.to_hex(), publish.trace_hex());
    assert_eq!(answer.spans.len(), 3, "the spans are still all there");
    let hop = |consume: &builder::SpanB, destination: &str, via: Via, wait_ms: f64| Hop {
        publish_span_id: span_id(&publish),
        consume_span_id: span_id(consume),
        destination: Some("order.created".into()),
        consume_destination: Some(destination.into()),
        system: Some("rabbitmq".into()),
        publish_service: "orders".into(),
        consume_service: consume.svc.name.clone().unwrap(),
        broker_wait_micros: wait_ms * 1000.0,
        via,
    };
    assert_eq!(
        answer.hops,
        [
            hop(&by_parent, "billing.q", Via::Parent, 25.0),
            hop(&by_link, "shipping.q", Via::Link, 40.0)
        ]
    );
    assert!(answer.replies.is_empty());
}

#[test]
fn a_request_comes_with_its_reply() {
    let env = TestEnv::start();
    let request =
        span("wallet", "identity.check send", Producer).messaging("nats", "identity.check");
    let handle = request
        .child("identity", "identity.check process", Consumer)
        .messaging("nats", "identity.check")
        .lasting_ms(5);
    let reply = handle
        .child("identity", "reply send", Producer)
        .messaging("nats", "_INBOX.wallet");
    let got = reply
        .child("wallet", "reply process", Consumer)
        .messaging("nats", "_INBOX.wallet")
        .at_ms(9);
    let body = builder::protobuf(&[&request, &handle, &reply, &got]);
    assert_eq!(env.post_protobuf(&body).status, 200);
    let answer = trace_answer(&env, &request.trace_hex());
    assert_eq!(answer.hops.len(), 2);
    assert_eq!(
        answer.replies,
        [Reply {
            request_span_id: span_id(&request),
            reply_publish_span_id: span_id(&reply),
            reply_consume_span_id: span_id(&got),
            service: "wallet".into(),
            round_trip_micros: 9_000.0,
        }]
    );
}

/// Ten request/reply exchanges with known legs: the request waits 1 ms in the broker (40 ms
/// for the last), the reply 1 ms (40 ms for the first). Each round trip is its two legs: 41 ms
/// for the first and the last, 2 ms for the others. The p99 of round trips is 41 ms, where the
/// sum of the legs' p99s says about 80 ms.
#[test]
fn round_trips_are_measured_per_request_reply_pair() {
    let env = TestEnv::start();
    let mut all = Vec::new();
    for k in 0..10u64 {
        let there = if k == 9 { 40 } else { 1 };
        let back = if k == 0 { 40 } else { 1 };
        let at = k * 1000;
        let request = span("wallet", "identity.check send", Producer)
            .messaging("rabbitmq", "identity.check")
            .at_ms(at);
        let handle = request
            .child("identity", "identity.check receive", Consumer)
            .messaging("rabbitmq", "identity.check")
            .at_ms(at + there);
        let reply = handle
            .child("identity", "wallet.replies send", Producer)
            .messaging("rabbitmq", "wallet.replies")
            .at_ms(at + there);
        let got = reply
            .child("wallet", "wallet.replies receive", Consumer)
            .messaging("rabbitmq", "wallet.replies")
            .at_ms(at + there + back);
        all.extend([request, handle, reply, got]);
    }
    let refs: Vec<&builder::SpanB> = all.iter().collect();
    assert_eq!(env.post_protobuf(&builder::protobuf(&refs)).status, 200);
    let window = builder::window();
    let exchange = "asker=service%3Awallet&answerer=service%3Aidentity\
                    &request=destination%3Arabbitmq%3Aidentity.check\
                    &reply=destination%3Arabbitmq%3Awallet.replies";
    let r = env.get_json(&format!("/api/round-trips?{exchange}&{}", window.query()));
    assert_eq!(r["pairs"], 10, "{r}");
    assert_eq!(r["p50_micros"], 2000.0, "{r}");
    assert_eq!(r["p99_micros"], 41_000.0, "{r}");
    assert_eq!(r["max_micros"], 41_000.0, "{r}");
    assert_eq!(r["traces_read"], 10, "{r}");
    assert_eq!(r["complete"], true, "{r}");
    // The legs, as the topology measures them: each one's p99 is about 40 ms.
    let t = env.topology(&window);
    let legs: f64 = t["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| {
            (d["from"] == "service:wallet" && d["to"] == "service:identity")
                || (d["from"] == "service:identity" && d["to"] == "service:wallet")
        })
        .map(|d| d["latency"]["p99_micros"].as_f64().unwrap())
        .sum();
    assert!(legs > 70_000.0, "legs p99 sum {legs}: {t}");
    // The other way round there is no pair; a missing or wrong id is a 400.
    let swapped = exchange
        .replace("asker=service%3Awallet", "asker=service%3Ax")
        .replace("answerer=service%3Aidentity", "asker2=service%3Aidentity");
    assert_eq!(
        env.get(&format!("/api/round-trips?{swapped}")).status,
        400,
        "no answerer"
    );
    let reversed = "asker=service%3Aidentity&answerer=service%3Awallet\
                    &request=destination%3Arabbitmq%3Aidentity.check\
                    &reply=destination%3Arabbitmq%3Awallet.replies";
    let r = env.get_json(&format!("/api/round-trips?{reversed}&{}", window.query()));
    assert_eq!(
        (r["pairs"].as_u64(), r["p99_micros"].is_null()),
        (Some(0), true),
        "{r}"
    );
    let wrong = exchange.replace("request=destination%3A", "request=service%3A");
    let reply = env.get(&format!("/api/round-trips?{wrong}"));
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("request is required"),
        "{}",
        reply.text()
    );
}

#[test]
fn a_span_without_messaging_has_null_messaging() {
    let env = TestEnv::start();
    let call = span("frontend", "GET /items", builder::Client).attr("peer.service", "catalog");
    assert_eq!(env.post_protobuf(&builder::protobuf(&[&call])).status, 200);
    let spans = env.trace_spans(&call.trace_hex());
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0]["messaging"], Value::Null, "{}", spans[0]);
    assert_eq!(spans[0]["name"], "GET /items");
}

#[test]
fn unknown_traces_are_404_and_malformed_ids_400() {
    let env = TestEnv::start();
    let reply = env.get("/api/traces/0af7651916cd43dd8448eb211c80319c");
    assert_eq!(reply.status, 404, "{}", reply.text());
    let body = reply.json();
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
    for bad in [
        "xyz",
        "0af7651916cd43dd",
        "0af7651916cd43dd8448eb211c80319c00",
        "00000000000000000000000000000000",
    ] {
        let reply = env.get(&format!("/api/traces/{bad}"));
        assert_eq!(reply.status, 400, "{bad}: {}", reply.text());
        let body = reply.json();
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
}

#[test]
fn bad_windows_are_400_with_a_json_error() {
    let env = TestEnv::start();
    for path in [
        "/api/topology?since=yesterday",
        "/api/topology?since=2026-01-01T00:00:00Z&until=soon",
        "/api/topology?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
        "/api/topology.dot?since=yesterday",
        "/api/traces?since=yesterday",
    ] {
        let reply = env.get(path);
        assert_eq!(reply.status, 400, "{path}: {}", reply.text());
        let body = reply.json();
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(
            !body["message"].as_str().unwrap_or("").is_empty(),
            "{path}: {body}"
        );
    }
}

#[test]
fn the_default_topology_window_is_the_last_hour() {
    let env = TestEnv::start();
    let recent = span("orders", "recent send", Producer).messaging("kafka", "recent");
    let two_hours = 2 * 3600 * 1_000_000_000;
    let old = span("orders", "old send", Producer)
        .messaging("kafka", "old")
        .at(builder::now_unix_nanos() - two_hours);
    assert_eq!(
        env.post_protobuf(&builder::protobuf(&[&recent, &old]))
            .status,
        200
    );
    let t = env.get_json("/api/topology");
    let span = t["until_unix_nanos"].as_u64().unwrap() - t["since_unix_nanos"].as_u64().unwrap();
    let hour = 3600 * 1_000_000_000u64;
    assert!(span.abs_diff(hour) <= 60_000_000_000, "window of {span} ns");
    topo::assert_same_set(
        "edges of the last hour",
        topo::edges(&t).into_keys(),
        [(
            "publish".to_string(),
            topo::service("orders"),
            "destination:kafka:recent".to_string(),
        )],
    );
    // The old span is stored, and visible with a window that covers it.
    assert_eq!(env.trace_spans(&old.trace_hex()).len(), 1);
}

#[test]
fn stats_count_the_spans_in_store() {
    let env = TestEnv::start();
    assert_eq!(env.spans_in_store(), 0);
    env.post_fixtures(&fixtures::load(fixtures::NODE_AMQPLIB_JSON));
    assert_eq!(env.spans_in_store(), 8);
}

/// `/api/traces` takes the filters of `/traces` under the same names (operation, attr,
/// status, min_ms, max_ms) and pages older through `older_until`.
#[test]
fn the_api_takes_the_search_pages_filters_and_pages_older() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let api = |extra: &str| -> BTreeSet<String> {
        let body = env.get_json(&format!(
            "/api/traces?limit=1000&{}&{extra}",
            window.query()
        ));
        assert_eq!(body["complete"], true, "{extra}: {body}");
        ids(body["traces"].as_array().unwrap())
            .into_iter()
            .collect()
    };
    let with = |pred: &dyn Fn(&SpanInfo) -> bool| -> BTreeSet<String> {
        spans
            .iter()
            .filter(|s| pred(s))
            .map(|s| s.trace_id.clone())
            .collect()
    };
    let errors = with(&|s| s.error);
    assert!(!errors.is_empty());
    assert_eq!(api("status=error"), errors);
    assert_eq!(
        api("operation=order.created%20send"),
        with(&|s| s.name == "order.created send")
    );
    assert_eq!(
        api("service=billing&status=error"),
        with(&|s| s.service == "billing" && s.error)
    );
    assert_eq!(api("attr=messaging.system%3Drabbitmq"), api(""));
    assert!(api("attr=messaging.system%3Dkafka").is_empty());
    assert!(api("min_ms=100000000").is_empty());
    assert_eq!(api("min_ms=0&max_ms=100000000"), api(""));
    assert_eq!(env.get("/api/traces?attr=novalue").status, 400);
    assert_eq!(env.get("/api/traces?min_ms=x").status, 400);
    // Paging by two walks every trace once.
    let mut seen = BTreeSet::new();
    let mut until = window.until();
    for _ in 0..100 {
        let body = env.get_json(&format!(
            "/api/traces?limit=2&since={}&until={}",
            window.since(),
            until
        ));
        for id in ids(body["traces"].as_array().unwrap()) {
            assert!(seen.insert(id.clone()), "{id} listed twice");
        }
        match body["older_until"].as_str() {
            Some(next) => until = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, api(""));
}

#[test]
fn celery_spans_say_how_their_system_was_inferred_and_what_was_learned() {
    let (env, spans, _) = TestEnv::with_recording(fixtures::PYTHON_CELERY);
    let flush = spans
        .iter()
        .find(|s| s.name == "run/press.flush")
        .expect("a broadcast task run");
    let got = env.trace_spans(&flush.trace_id);
    // One flush: its publish and a run on each renderer instance.
    assert_eq!(got.len(), 3, "{got:?}");
    let consumers = got.iter().filter(|s| s["kind"] == "consumer").count();
    assert_eq!(consumers, 2, "{got:?}");
    for span in &got {
        assert_eq!(span["messaging"]["system"], "rabbitmq", "{span}");
        assert_eq!(span["messaging"]["destination"], "cache.flush", "{span}");
        let attr = |key: &str| span["attributes"].get(key).cloned().unwrap_or(Value::Null);
        assert_eq!(
            attr("switchyard.messaging.system_inferred"),
            "instrumentation scope opentelemetry.instrumentation.celery",
            "{span}"
        );
        if span["kind"] == "consumer" {
            assert_eq!(
                attr("switchyard.messaging.exchange"),
                "cache.flush",
                "{span}"
            );
            assert_eq!(attr("switchyard.messaging.routing_key"), "", "{span}");
        }
    }
}

fn reached(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r["depth"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn reach_follows_a_recorded_shop_through_its_destinations_both_ways() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let q = window.query();
    let r = env.get_json(&format!("/api/reach?node=service:shipping&{q}"));
    assert_eq!(r["node"], "service:shipping");
    assert_eq!(
        reached(&r["depends_on"]),
        [
            ("destination:rabbitmq:order.created".to_string(), 1),
            (topo::service("orders"), 2)
        ]
    );
    assert_eq!(reached(&r["dependents"]), []);
    let r = env.get_json(&format!("/api/reach?node=service:orders&{q}"));
    assert_eq!(
        reached(&r["dependents"]),
        [
            ("destination:rabbitmq:order.created".to_string(), 1),
            (topo::service("billing"), 2),
            (topo::service("shipping"), 2)
        ]
    );
    // wallet asks identity and reads the reply: each depends on the other, through both queues.
    let r = env.get_json(&format!("/api/reach?node=service:wallet&{q}"));
    let up: Vec<String> = reached(&r["depends_on"]).into_iter().map(|r| r.0).collect();
    assert!(up.contains(&topo::service("identity")), "{r}");
    assert!(
        up.contains(&"destination:rabbitmq:identity.2fa".to_string()),
        "{r}"
    );
}

#[test]
fn impact_names_the_services_that_stop_receiving_and_the_queues_that_pile_up() {
    let (env, _, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let q = window.query();
    // The publisher down: both consumers of order.created stop receiving, nothing piles up.
    let i = env.get_json(&format!("/api/impact?node=service:orders&{q}"));
    assert_eq!(i["node"], "service:orders");
    let services: Vec<(&str, bool)> = i["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["all_inputs"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        services,
        [("service:billing", true), ("service:shipping", true)]
    );
    assert_eq!(
        i["services"][0]["via"],
        serde_json::json!(["destination:rabbitmq:order.created"])
    );
    assert!(i["services"][0]["rate_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(i["destinations"], serde_json::json!([]));
    assert_eq!(
        reached(&i["silent_destinations"]),
        [("destination:rabbitmq:order.created".to_string(), 1)]
    );
    // The only consumer of tasks down: tasks piles up at checkout's rate.
    let i = env.get_json(&format!("/api/impact?node=service:worker&{q}"));
    let piling = i["destinations"].as_array().unwrap();
    assert_eq!(piling.len(), 1, "{i}");
    assert_eq!(piling[0]["id"], "destination:rabbitmq:tasks");
    assert_eq!(piling[0]["depth"], 1);
    let t = env.topology(&window);
    let publish = t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["to"] == "destination:rabbitmq:tasks" && e["kind"] == "publish")
        .unwrap()["rate_per_sec"]
        .as_f64()
        .unwrap();
    assert!((piling[0]["rate_per_sec"].as_f64().unwrap() - publish).abs() < 1e-9);
    // A destination down: its consumer stops receiving.
    let i = env.get_json(&format!(
        "/api/impact?node=destination%3Arabbitmq%3Aidentity.2fa&{q}"
    ));
    assert_eq!(i["services"][0]["id"], "service:identity", "{i}");
}

#[test]
fn reach_and_impact_refuse_a_missing_or_unknown_node_with_a_json_error() {
    let env = TestEnv::start();
    for (path, status) in [
        ("/api/impact", 400),
        ("/api/impact?node=", 400),
        ("/api/reach?node=%20", 400),
        ("/api/impact?node=service:nobody", 404),
        ("/api/reach?node=service:nobody", 404),
        ("/api/reach?node=service:x&since=yesterday", 400),
    ] {
        let reply = env.get(path);
        assert_eq!(reply.status, status, "{path}: {}", reply.text());
        let body = reply.json();
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
}

/// Windows over the same minutes of the same stored spans (a window ending "now", asked again
/// a second later) are answered from one template kept per minutes: each with its own bounds
/// and its own rates, byte for byte what a server asked that window alone answers.
#[test]
fn windows_over_the_same_minutes_answer_what_a_fresh_build_gives() {
    const S: u64 = 1_000_000_000;
    let t0 = builder::base_time() / (60 * S) * (60 * S);
    let mut spans = Vec::new();
    for (i, at) in [20, 100, 170].into_iter().enumerate() {
        let publish = span("orders", "orders send", Producer)
            .messaging("rabbitmq", "orders")
            .at(t0 + at * S);
        let consume = publish
            .child("billing", "orders process", Consumer)
            .messaging("rabbitmq", "orders")
            .instance(&format!("billing-{i}"));
        spans.extend([publish, consume]);
    }
    let spans: Vec<&builder::SpanB> = spans.iter().collect();
    let path = |since: u64, until: u64| {
        format!(
            "/api/topology?since={}&until={}",
            fixtures::rfc3339(t0 + since * S),
            fixtures::rfc3339(t0 + until * S)
        )
    };
    // Minutes 0 to 2 of t0: since in [0 s, 60 s), until in (120 s, 180 s].
    let (first, second) = (path(5, 175), path(30, 179));
    let (asked_before, asked_alone) = (TestEnv::start(), TestEnv::start());
    for env in [&asked_before, &asked_alone] {
        assert_eq!(env.post_protobuf(&builder::protobuf(&spans)).status, 200);
    }
    let before = asked_before.get(&first);
    let kept = asked_before.get(&second);
    let alone = asked_alone.get(&second);
    assert_eq!((before.status, kept.status, alone.status), (200, 200, 200));
    assert_eq!(
        String::from_utf8_lossy(&kept.body),
        String::from_utf8_lossy(&alone.body)
    );
    assert_ne!(before.body, kept.body);
    let t = kept.json();
    assert_eq!(t["since_unix_nanos"].as_u64(), Some(t0 + 30 * S));
    assert_eq!(t["until_unix_nanos"].as_u64(), Some(t0 + 179 * S));
    let publish = t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "publish" && e["from"] == topo::service("orders").as_str())
        .expect("the publish edge");
    assert_eq!(publish["count"], 3);
    assert_eq!(publish["rate_per_sec"].as_f64(), Some(3.0 / 149.0));
    // From its first message (before the window) to its last: 30 s to 170 s.
    assert_eq!(publish["active_secs"].as_f64(), Some(140.0));
}
