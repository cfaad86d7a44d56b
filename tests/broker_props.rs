//! Property tests of the broker API's inputs against the real binary: arbitrary names in every
//! path, arbitrary query values, headers and bodies are answered with a success or the JSON
//! error format (`{"error", "message"}`, a 4xx), never a 5xx, a plain-text error or a crash.
//! Requests go over raw TCP, so nothing is normalised or refused on the client side. Bounded:
//! a fixed number of cases per property, one server for them all, no long waits (pulls go to a
//! subscription that always has messages, requests to a topic that does not exist).

mod common;

use common::{RawRequest, Reply, TestEnv};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::fmt::Write;

const CASES: u32 = 128;

/// Percent-encodes every byte outside the unreserved set (so the bytes reach the server as
/// they are, one path segment or query value).
fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn send(env: &TestEnv, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    RawRequest::send(env.server().http, method, path, headers, body).read_reply()
}

/// A success, or a 4xx in the JSON error format.
fn json_or_success(what: &str, reply: &Reply) -> Result<(), TestCaseError> {
    if (200..300).contains(&reply.status) {
        return Ok(());
    }
    prop_assert!(
        (400..500).contains(&reply.status),
        "{what}: {} {}",
        reply.status,
        reply.text()
    );
    prop_assert_eq!(reply.content_type(), "application/json", "{}", what);
    let body: Value = serde_json::from_slice(&reply.body)
        .map_err(|e| TestCaseError::fail(format!("{what}: not JSON ({e}): {}", reply.text())))?;
    prop_assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{}: {}",
        what,
        body
    );
    Ok(())
}

/// A server with a topic `t`, a subscription `always` that always has a message due (a lease
/// of 1 ms and attempts enough), and a stream `log` with events.
fn server() -> TestEnv {
    let env = TestEnv::start();
    let c = env.broker("props");
    c.declare_topic("t").unwrap();
    c.declare_subscription("always", "t", 1, u32::MAX).unwrap();
    for n in 0..20 {
        c.publish_json("t", &json!({ "n": n }), None).unwrap();
    }
    let ok = |r: Reply| assert!((200..300).contains(&r.status), "{}", r.text());
    ok(send(&env, "PUT", "/broker/streams/log", &[], b""));
    for n in 0..5 {
        let body = json!({ "n": n }).to_string();
        let ct = [("content-type", "application/json")];
        ok(send(
            &env,
            "POST",
            "/broker/streams/log/events",
            &ct,
            body.as_bytes(),
        ));
    }
    env
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Every path of the API with `{}` where a name goes (SSE paths aside: they stream).
const PATHS: &[&str] = &[
    "/broker/topics/{}",
    "/broker/topics/{}/events",
    "/broker/topics/{}/request?reply_to=t&timeout=1ms",
    "/broker/subscriptions/{}",
    "/broker/subscriptions/{}/pull",
    "/broker/subscriptions/{}/ack",
    "/broker/subscriptions/{}/nack",
    "/broker/subscriptions/{}/dead-letters",
    "/broker/subscriptions/{}/dead-letters/redrive",
    "/broker/streams/{}",
    "/broker/streams/{}/events",
    "/broker/streams/log/groups/{}/commit",
    "/broker/{}",
];

const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH"];

/// Names: arbitrary text, and the shapes that broke things before.
fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z.]{0,4}",
        Just(".".to_string()),
        Just("..".to_string()),
        "[A-Za-z0-9._-]{190,210}",
    ]
    .prop_filter("existing names", |n| {
        !["t", "always", "log"].contains(&n.as_str())
    })
}

#[test]
fn arbitrary_names_in_every_path_get_json_answers() {
    let env = server();
    runner()
        .run(
            &(
                prop::sample::select(METHODS),
                prop::sample::select(PATHS),
                names(),
            ),
            |(method, template, name)| {
                let path = template.replace("{}", &enc(&name));
                let reply = send(&env, method, &path, &[], b"");
                json_or_success(&format!("{method} {path}"), &reply)
            },
        )
        .unwrap();
    assert_eq!(send(&env, "GET", "/broker/topics", &[], b"").status, 200);
}

/// Query keys each path reads, on names that exist (pulls never wait: `always` has messages).
const QUERIES: &[(&str, &str)] = &[
    ("POST", "/broker/subscriptions/always/pull"),
    ("GET", "/broker/subscriptions/always/dead-letters"),
    ("GET", "/broker/streams/log/events"),
    ("POST", "/broker/topics/nosuch/request"),
];
const KEYS: &[&str] = &[
    "max", "wait", "after", "from", "group", "timeout", "reply_to",
];

/// Query values: arbitrary text, numbers at the edges, durations.
fn values() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "[0-9]{0,3}(ms|s|m|h|y|ns)",
        Just("18446744073709551616".to_string()),
    ]
}

#[test]
fn arbitrary_query_values_get_json_answers() {
    let env = server();
    runner()
        .run(
            &(
                prop::sample::select(QUERIES),
                prop::collection::vec((prop::sample::select(KEYS), values()), 0..4),
            ),
            |((method, path), params)| {
                let query: Vec<String> = params
                    .iter()
                    .map(|(k, v)| {
                        // A wait on a stream read would hold the test: reads get none.
                        let v = if *k == "wait" && path.contains("streams") {
                            ""
                        } else {
                            v
                        };
                        format!("{k}={}", enc(v))
                    })
                    .collect();
                let path = format!("{path}?{}", query.join("&"));
                let ct = [("content-type", "application/json")];
                let reply = send(&env, method, &path, &ct, b"{}");
                json_or_success(&format!("{method} {path}"), &reply)
            },
        )
        .unwrap();
}

/// Bodies of the paths that read one, on names that exist.
const BODIES: &[(&str, &str)] = &[
    ("PUT", "/broker/subscriptions/s.props"),
    ("POST", "/broker/subscriptions/always/ack"),
    ("POST", "/broker/subscriptions/always/nack"),
    ("PUT", "/broker/streams/s.stream"),
    ("POST", "/broker/streams/log/groups/g/commit"),
    ("POST", "/broker/topics/t/events"),
    ("POST", "/broker/streams/log/events"),
];
const FIELDS: &[&str] = &[
    "topic",
    "visibility_timeout_ms",
    "max_attempts",
    "filter",
    "push",
    "lease_ids",
    "delay_ms",
    "max_age_ms",
    "max_bytes",
    "offset",
    "specversion",
    "id",
    "source",
    "type",
    "data",
    "data_base64",
    "switchyardhops",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "text/plain",
    "application/json; charset=utf-8",
    "",
];

/// JSON values, numbers at the edges of every integer type included.
fn json_values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        prop::sample::select(&[0u64, 1, u32::MAX as u64, 1 << 63, u64::MAX][..])
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        Just(Value::from("t")),
        Just(Value::from("http://127.0.0.1:9/hook")),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec((prop::sample::select(FIELDS), json_values()), 0..6).prop_map(|kv| {
            let object: serde_json::Map<String, Value> =
                kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            Value::Object(object).to_string().into_bytes()
        }),
        prop::collection::vec(json_values(), 0..3)
            .prop_map(|v| Value::from(v).to_string().into_bytes()),
    ]
}

/// Headers a publish reads: CloudEvents binary-mode attributes, the hop count, trace context.
fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let names = prop::sample::select(
        &[
            "ce-specversion",
            "ce-id",
            "ce-source",
            "ce-type",
            "ce-subject",
            "ce-x",
            "switchyard-hops",
            "switchyard-service",
            "traceparent",
            "tracestate",
        ][..],
    );
    prop::collection::vec((names, "[ -~]{0,40}"), 0..5)
}

#[test]
fn arbitrary_bodies_and_headers_get_json_answers() {
    let env = server();
    runner()
        .run(
            &(
                prop::sample::select(BODIES),
                prop::sample::select(CONTENT_TYPES),
                bodies(),
                headers(),
            ),
            |((method, path), content_type, body, extra)| {
                let mut headers: Vec<(&str, &str)> =
                    extra.iter().map(|(k, v)| (*k, v.trim())).collect();
                if !content_type.is_empty() {
                    headers.push(("content-type", content_type));
                }
                let reply = send(&env, method, path, &headers, &body);
                json_or_success(
                    &format!(
                        "{method} {path} {headers:?} {}",
                        String::from_utf8_lossy(&body)
                    ),
                    &reply,
                )
            },
        )
        .unwrap();
    assert_eq!(send(&env, "GET", "/broker/topics", &[], b"").status, 200);
}
