//! The Jaeger query API under `/jaeger` on recorded SDK traffic, checked against the shapes
//! Grafana's Jaeger data source and Jaeger UI read (their `TraceResponse`, `Span`,
//! `TraceSpanReference`, `TraceKeyValuePair`, `TraceLog`, `TraceProcess` and dependency
//! types): the envelope, services and operations, trace search and its filters, one trace,
//! dependencies through the broker, and clear JSON errors for bad parameters.

mod common;

use common::fixtures::{self, SpanInfo, Window};
use common::{topo, TestEnv};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn is_hex(v: &Value, len: usize) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Jaeger's envelope around `data`; returns `data`.
fn data(env: &TestEnv, path: &str) -> Value {
    let reply = env.get(path);
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    let body = reply.json();
    for key in ["data", "total", "limit", "offset", "errors"] {
        assert!(body.get(key).is_some(), "{path}: no {key} in {body}");
    }
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["offset"], 0);
    if let Some(list) = body["data"].as_array() {
        assert_eq!(body["total"].as_u64(), Some(list.len() as u64), "{path}");
    }
    body["data"].clone()
}

/// A 4xx in Jaeger's envelope: `data` null, the status and a message in `errors`.
fn error(env: &TestEnv, path: &str, status: u16, says: &str) {
    let reply = env.get(path);
    assert_eq!(reply.status, status, "{path}: {}", reply.text());
    assert!(
        reply.content_type().starts_with("application/json"),
        "{path}"
    );
    let body = reply.json();
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(body["errors"][0]["code"], status, "{body}");
    let msg = body["errors"][0]["msg"].as_str().unwrap_or_default();
    assert!(msg.contains(says), "{path}: {msg:?} should say {says:?}");
}

/// Every field Grafana's and Jaeger UI's trace types read, with its type; and the spans
/// against the recording.
fn check_trace(t: &Value, recorded: &[&SpanInfo]) {
    assert!(is_hex(&t["traceID"], 32), "{}", t["traceID"]);
    let processes = t["processes"].as_object().expect("processes object");
    for p in processes.values() {
        assert!(p["serviceName"].is_string(), "{p}");
        assert!(p["tags"].is_array(), "{p}");
    }
    let spans = t["spans"].as_array().expect("spans");
    assert_eq!(spans.len(), recorded.len(), "spans of {}", t["traceID"]);
    let by_id: BTreeMap<&str, &&SpanInfo> =
        recorded.iter().map(|s| (s.span_id.as_str(), s)).collect();
    for s in spans {
        assert_eq!(s["traceID"], t["traceID"]);
        assert!(is_hex(&s["spanID"], 16), "{s}");
        let r = by_id[s["spanID"].as_str().unwrap()];
        assert_eq!(s["operationName"], r.name.as_str());
        assert_eq!(
            s["startTime"].as_u64(),
            Some(r.start_unix_nanos / 1_000),
            "µs"
        );
        assert_eq!(
            s["duration"].as_u64(),
            Some(r.end_unix_nanos.saturating_sub(r.start_unix_nanos) / 1_000)
        );
        assert!(s["flags"].is_u64());
        assert!(s["warnings"].is_null());
        let pid = s["processID"].as_str().expect("processID");
        assert_eq!(processes[pid]["serviceName"], r.service.as_str());
        let refs = s["references"].as_array().expect("references");
        for x in refs {
            assert!(
                matches!(x["refType"].as_str(), Some("CHILD_OF" | "FOLLOWS_FROM")),
                "{x}"
            );
            assert!(is_hex(&x["traceID"], 32) && is_hex(&x["spanID"], 16), "{x}");
        }
        let child_of: Vec<&str> = refs
            .iter()
            .filter(|x| x["refType"] == "CHILD_OF")
            .filter_map(|x| x["spanID"].as_str())
            .collect();
        match r.parent_span_id.as_str() {
            "" => assert!(child_of.is_empty(), "{s}"),
            parent => assert_eq!(child_of, vec![parent]),
        }
        for tag in s["tags"].as_array().expect("tags") {
            assert!(tag["key"].is_string(), "{tag}");
            let ok = match tag["type"].as_str() {
                Some("string") => tag["value"].is_string(),
                Some("bool") => tag["value"].is_boolean(),
                Some("int64") => tag["value"].is_i64() || tag["value"].is_u64(),
                Some("float64") => tag["value"].is_number(),
                _ => false,
            };
            assert!(ok, "{tag}");
        }
        let kind = s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["key"] == "span.kind")
            .map(|t| t["value"].clone());
        let want = match r.kind {
            fixtures::KIND_SERVER => Some("server"),
            fixtures::KIND_CLIENT => Some("client"),
            fixtures::KIND_PRODUCER => Some("producer"),
            fixtures::KIND_CONSUMER => Some("consumer"),
            1 => Some("internal"),
            _ => None,
        };
        assert_eq!(kind.as_ref().and_then(Value::as_str), want, "{s}");
        let is_error = s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["key"] == "error" && t["value"] == true);
        assert_eq!(is_error, r.error);
        for log in s["logs"].as_array().expect("logs") {
            assert!(
                log["timestamp"].is_u64() && log["fields"].is_array(),
                "{log}"
            );
        }
    }
}

fn traces_of(spans: &[SpanInfo]) -> BTreeMap<&str, Vec<&SpanInfo>> {
    let mut out: BTreeMap<&str, Vec<&SpanInfo>> = BTreeMap::new();
    for s in spans {
        out.entry(&s.trace_id).or_default().push(s);
    }
    out
}

fn ids(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .expect("traces")
        .iter()
        .map(|t| t["traceID"].as_str().unwrap().to_string())
        .collect()
}

fn micros(w: &Window) -> String {
    format!(
        "start={}&end={}",
        w.since_unix_nanos / 1_000,
        w.until_unix_nanos / 1_000
    )
}

#[test]
fn services_operations_and_traces_have_jaeger_shapes() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let services: BTreeSet<String> = spans.iter().map(|s| s.service.clone()).collect();
    let listed: BTreeSet<String> = data(&env, "/jaeger/api/services")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, services);
    for svc in &services {
        let want: BTreeSet<&str> = spans
            .iter()
            .filter(|s| &s.service == svc)
            .map(|s| s.name.as_str())
            .collect();
        let ops = data(
            &env,
            &format!("/jaeger/api/services/{}/operations", urlencode(svc)),
        );
        let got: BTreeSet<&str> = ops
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(got, want, "{svc}");
        let with_kinds = data(
            &env,
            &format!("/jaeger/api/operations?service={}", urlencode(svc)),
        );
        for op in with_kinds.as_array().unwrap() {
            assert!(want.contains(op["name"].as_str().unwrap()), "{op}");
            assert!(op["spanKind"].is_string(), "{op}");
        }
    }
    let by_trace = traces_of(&spans);
    for (id, recorded) in &by_trace {
        let list = data(&env, &format!("/jaeger/api/traces/{id}"));
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        check_trace(&list[0], recorded);
    }
    // Search: the traces with a span of the service in the window, whole.
    let svc = spans
        .iter()
        .find(|s| s.kind == fixtures::KIND_CONSUMER)
        .expect("a consumer")
        .service
        .clone();
    let found = data(
        &env,
        &format!(
            "/jaeger/api/traces?service={}&{}&limit=1000",
            urlencode(&svc),
            micros(&window)
        ),
    );
    assert_eq!(ids(&found), fixtures::trace_ids_with(&spans, &svc));
    for t in found.as_array().unwrap() {
        check_trace(t, &by_trace[t["traceID"].as_str().unwrap()]);
    }
    assert_eq!(
        data(
            &env,
            &format!(
                "/jaeger/api/traces?service={}&{}&limit=1",
                urlencode(&svc),
                micros(&window)
            )
        )
        .as_array()
        .unwrap()
        .len(),
        1
    );
}

#[test]
fn search_filters_narrow_the_traces_as_jaeger_does() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let consumer = spans
        .iter()
        .find(|s| s.kind == fixtures::KIND_CONSUMER)
        .expect("a consumer");
    let (svc, op) = (consumer.service.as_str(), consumer.name.as_str());
    let w = micros(&window);
    let by_op: BTreeSet<String> = spans
        .iter()
        .filter(|s| s.service == svc && s.name == op)
        .map(|s| s.trace_id.clone())
        .collect();
    let enc = urlencode(svc);
    let q = |extra: &str| {
        ids(&data(
            &env,
            &format!("/jaeger/api/traces?service={enc}&{w}&limit=1000&{extra}"),
        ))
    };
    assert_eq!(q(&format!("operation={}", urlencode(op))), by_op);
    // Duration bounds apply to the service's spans (Go durations).
    let longest = spans
        .iter()
        .filter(|s| s.service == svc)
        .map(|s| (s.end_unix_nanos - s.start_unix_nanos) / 1_000)
        .max()
        .unwrap();
    assert!(q(&format!("minDuration={}us", longest + 1)).is_empty());
    assert!(!q(&format!("minDuration={}us", longest)).is_empty());
    assert_eq!(q("maxDuration=1h"), fixtures::trace_ids_with(&spans, svc));
    // Tags: a span tag (the kind) and a process tag; a value nobody has finds nothing.
    assert!(!q(&format!(
        "tags={}",
        urlencode(r#"{"span.kind":"consumer"}"#)
    ))
    .is_empty());
    assert!(q(&format!(
        "tags={}",
        urlencode(r#"{"span.kind":"no-such-kind"}"#)
    ))
    .is_empty());
    assert_eq!(
        q("tag=span.kind:consumer"),
        q(&format!(
            "tags={}",
            urlencode(r#"{"span.kind":"consumer"}"#)
        ))
    );
    // A window before the recording holds nothing.
    let before = format!(
        "start=1000&end={}",
        window.since_unix_nanos / 1_000 - 60_000_000
    );
    assert!(ids(&data(
        &env,
        &format!("/jaeger/api/traces?service={enc}&{before}")
    ))
    .is_empty());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn dependencies_include_service_edges_through_brokers() {
    let (env, _spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let end_ms = window.until_unix_nanos / 1_000_000;
    let lookback = (window.until_unix_nanos - window.since_unix_nanos) / 1_000_000;
    let links = data(
        &env,
        &format!("/jaeger/api/dependencies?endTs={end_ms}&lookback={lookback}"),
    );
    let got: BTreeMap<(String, String), u64> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            assert!(l["callCount"].is_u64(), "{l}");
            (
                (
                    l["parent"].as_str().unwrap().to_string(),
                    l["child"].as_str().unwrap().to_string(),
                ),
                l["callCount"].as_u64().unwrap(),
            )
        })
        .collect();
    let t = env.topology(&window);
    let nodes = topo::nodes(&t);
    let name = |id: &str| nodes[id]["name"].as_str().unwrap().to_string();
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for ((kind, from, to), (count, _)) in topo::edges(&t) {
        if kind == "call" && to.starts_with("service:") {
            *want.entry((name(&from), name(&to))).or_default() += count as u64;
        }
    }
    let through_brokers = topo::dependencies(&t);
    assert!(
        !through_brokers.is_empty(),
        "the recording has producer -> consumer dependencies"
    );
    for ((from, to, _via), count) in through_brokers {
        *want.entry((name(&from), name(&to))).or_default() += count.expect("a count") as u64;
    }
    assert_eq!(got, want);
    // A window before the recording has none.
    let early = data(
        &env,
        &format!(
            "/jaeger/api/dependencies?endTs={}&lookback=60000",
            end_ms - lookback - 120_000
        ),
    );
    assert_eq!(early.as_array().map(Vec::len), Some(0));
}

#[test]
fn bad_parameters_get_clear_json_errors_and_limits_are_bounded() {
    let (env, spans, window) = TestEnv::with_recording(fixtures::PYTHON_PIKA);
    let svc = urlencode(&spans[0].service);
    error(&env, "/jaeger/api/traces", 400, "'service' is required");
    error(
        &env,
        &format!("/jaeger/api/traces?service={svc}&limit=lots"),
        400,
        "'limit'",
    );
    error(
        &env,
        &format!("/jaeger/api/traces?service={svc}&start=20&end=10"),
        400,
        "after",
    );
    error(
        &env,
        &format!("/jaeger/api/traces?service={svc}&tags=notjson"),
        400,
        "'tags'",
    );
    error(
        &env,
        &format!("/jaeger/api/traces?service={svc}&tag=novalue"),
        400,
        "'tag'",
    );
    error(
        &env,
        &format!("/jaeger/api/traces?service={svc}&minDuration=fast"),
        400,
        "minDuration",
    );
    error(
        &env,
        &format!("/jaeger/api/traces?service={svc}&minDuration=2s&maxDuration=1s"),
        400,
        "minDuration",
    );
    error(&env, "/jaeger/api/traces/not-hex", 400, "invalid trace id");
    error(
        &env,
        &format!("/jaeger/api/traces/{}", "a".repeat(40)),
        400,
        "invalid trace id",
    );
    error(
        &env,
        "/jaeger/api/traces/0123456789abcdef0123456789abcdef",
        404,
        "trace not found",
    );
    error(
        &env,
        "/jaeger/api/dependencies?lookback=0",
        400,
        "'lookback'",
    );
    error(
        &env,
        "/jaeger/api/dependencies?endTs=yesterday",
        400,
        "'endTs'",
    );
    error(&env, "/jaeger/api/operations", 400, "'service' is required");
    let reply = env.get(&format!(
        "/jaeger/api/traces?service={svc}&limit=99999&{}",
        micros(&window)
    ));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["limit"], 1500);
    assert_eq!(
        data(&env, "/jaeger/api/services/no-such-service/operations"),
        serde_json::json!([])
    );
}
