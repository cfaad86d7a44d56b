//! OTLP/HTTP receiver: every answer of the contract (200, 400, 413, 415, 429), and that a
//! refused request changes nothing.

mod common;

use common::builder::{self, span, Producer, SpanB};
use common::fixtures::{self, Window};
use common::{topo, Reply, TestEnv};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use serde_json::{json, Value};
use std::io::Write;

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const GZIP: (&str, &str) = ("Content-Encoding", "gzip");

/// `google.rpc.Status`, the body of OTLP/HTTP protobuf errors.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn trace_response(reply: &Reply) -> ExportTraceServiceResponse {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type(), "application/x-protobuf");
    ExportTraceServiceResponse::decode(reply.body.as_slice()).expect("ExportTraceServiceResponse")
}

fn assert_json_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type().starts_with("application/json"),
        "{:?}",
        reply.headers
    );
    assert_eq!(reply.json(), json!({}));
}

/// A protobuf error answer: `google.rpc.Status` with a message.
fn assert_protobuf_error(reply: &Reply, status: u16) -> RpcStatus {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.content_type(), "application/x-protobuf");
    let s = RpcStatus::decode(reply.body.as_slice()).expect("google.rpc.Status body");
    assert_ne!(s.code, 0, "{s:?}");
    assert!(!s.message.is_empty(), "{s:?}");
    s
}

/// A JSON error answer: `{"code": N, "message": "..."}`.
fn assert_json_error(reply: &Reply, status: u16) -> String {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(
        reply.content_type().starts_with("application/json"),
        "{:?}",
        reply.headers
    );
    let body = reply.json();
    assert!(body["code"].as_i64().is_some_and(|c| c != 0), "{body}");
    let message = body["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{body}");
    message
}

/// Nothing reached the store: no span, no node, no edge.
fn assert_nothing_stored(env: &TestEnv) {
    assert_eq!(env.spans_in_store(), 0);
    let t = env.topology(&builder::window());
    assert!(topo::is_empty(&t), "{t:#}");
}

fn assert_stored(env: &TestEnv, spans: &[&SpanB]) {
    for s in spans {
        let stored = env.trace_spans(&s.trace_hex());
        assert!(
            stored.iter().any(|x| x["span_id"] == s.span_hex()),
            "span {} of trace {} is not stored",
            s.span_hex(),
            s.trace_hex()
        );
    }
}

fn producer(dest: &str) -> SpanB {
    span("orders", "orders send", Producer).messaging("kafka", dest)
}

#[test]
fn protobuf_requests_are_committed_when_answered() {
    let env = TestEnv::start();
    let files = fixtures::load(fixtures::PYTHON_PIKA);
    for f in &files {
        let response = trace_response(&env.post_fixture(f));
        assert_eq!(response.partial_success, None, "{}", f.name());
        // 200 means committed: readable at once, no waiting.
        for s in &f.spans {
            let stored = env.trace_spans(&s.trace_id);
            assert!(
                stored.iter().any(|x| x["span_id"] == s.span_id.as_str()),
                "{} {s:?}",
                f.name()
            );
        }
    }
    assert_eq!(env.spans_in_store(), 41);
}

#[test]
fn json_sent_chunked_is_accepted() {
    let env = TestEnv::start();
    let files = fixtures::load(fixtures::NODE_AMQPLIB_JSON);
    for f in &files {
        assert!(f.chunked, "{} was recorded chunked", f.name());
        assert_json_ok(&env.post_fixture(f));
    }
    let all: Vec<_> = files.iter().flat_map(|f| f.spans.clone()).collect();
    for s in &all {
        assert_eq!(env.trace_spans(&s.trace_id).len(), 2, "{s:?}");
    }
    assert_eq!(env.spans_in_store(), 8);
}

#[test]
fn json_with_a_charset_parameter_is_json() {
    let env = TestEnv::start();
    let s = producer("charset");
    let reply = env.post_otlp(
        "/v1/traces",
        &[("Content-Type", "application/json; charset=utf-8")],
        builder::json_body(&[&s]).as_bytes(),
    );
    assert_json_ok(&reply);
    assert_stored(&env, &[&s]);
}

#[test]
fn gzip_bodies_are_inflated() {
    let env = TestEnv::start();
    for f in &fixtures::load(fixtures::PYTHON_PIKA_GZIP) {
        assert_eq!(f.content_encoding, "gzip");
        let response = trace_response(&env.post_fixture(f));
        assert_eq!(response.partial_success, None);
    }
    assert_eq!(env.spans_in_store(), 15);
    let s = producer("gzipped-json");
    let reply = env.post_otlp(
        "/v1/traces",
        &[JSON, GZIP],
        &gzip(builder::json_body(&[&s]).as_bytes()),
    );
    assert_json_ok(&reply);
    assert_stored(&env, &[&s]);
}

#[test]
fn invalid_spans_are_counted_in_partial_success_protobuf() {
    let env = TestEnv::start();
    let (valid, invalid) = builder::mixed_validity();
    let all: Vec<&SpanB> = valid.iter().chain(&invalid).collect();
    let response = trace_response(&env.post_protobuf(&builder::protobuf(&all)));
    let partial = response.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 5, "{partial:?}");
    assert!(!partial.error_message.is_empty());
    assert_stored(&env, &valid.iter().collect::<Vec<_>>());
    assert_eq!(env.spans_in_store(), 2);
}

#[test]
fn invalid_spans_are_counted_in_partial_success_json() {
    let env = TestEnv::start();
    let (valid, invalid) = builder::mixed_validity();
    let all: Vec<&SpanB> = valid.iter().chain(&invalid).collect();
    let reply = env.post_otlp("/v1/traces", &[JSON], builder::json_body(&all).as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "5", "{body}");
    assert!(
        !body["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{body}"
    );
    assert_stored(&env, &valid.iter().collect::<Vec<_>>());
    assert_eq!(env.spans_in_store(), 2);
}

#[test]
fn undecodable_protobuf_is_400_with_a_status_message() {
    let env = TestEnv::start();
    // Field 1 (resource_spans), length-delimited, announcing far more bytes than follow.
    let truncated = b"\x0a\xff\xff\xff\x0f\x0a\x02ab".to_vec();
    assert_protobuf_error(&env.post_protobuf(&truncated), 400);
    // A valid request behind a gzip header that is not gzip.
    let valid = builder::protobuf(&[&producer("garbage")]);
    assert_protobuf_error(&env.post_otlp("/v1/traces", &[PROTOBUF, GZIP], &valid), 400);
    assert_nothing_stored(&env);
}

/// Makes a valid JSON request invalid.
type Breakage = fn(&mut Value);

/// The second span of a one-resource, one-scope JSON request.
fn second(v: &mut Value) -> &mut Value {
    &mut v["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
}

#[test]
fn json_with_wrong_types_is_400_with_a_message_and_stores_nothing() {
    let env = TestEnv::start();
    let good = producer("typed");
    let other = producer("typed");
    let base: Value = serde_json::from_str(&builder::json_body(&[&good, &other])).unwrap();
    // Each case breaks the second span (or its list) and names the field the error must cite.
    let cases: [(&str, Breakage); 7] = [
        ("startTimeUnixNano", |v| {
            second(v)["startTimeUnixNano"] = json!(true)
        }),
        ("traceId", |v| second(v)["traceId"] = json!(12345)),
        ("kind", |v| second(v)["kind"] = json!("sideways")),
        // Beyond 32 bits: refused, not cut to the low bits (2^33 would read as kind 0).
        ("kind must fit in 32 bits", |v| {
            second(v)["kind"] = json!(1u64 << 33)
        }),
        ("droppedAttributesCount must fit in 32 bits", |v| {
            second(v)["droppedAttributesCount"] = json!(1u64 << 40)
        }),
        ("boolValue", |v| {
            second(v)["attributes"][0]["value"] = json!({"boolValue": "yes"})
        }),
        ("spans", |v| {
            v["resourceSpans"][0]["scopeSpans"][0]["spans"] = json!({})
        }),
    ];
    for (field, mutate) in cases {
        let mut body = base.clone();
        mutate(&mut body);
        let reply = env.post_otlp("/v1/traces", &[JSON], body.to_string().as_bytes());
        let message = assert_json_error(&reply, 400);
        assert!(
            message.contains(field),
            "the message should name {field}: {message}"
        );
    }
    let reply = env.post_otlp("/v1/traces", &[JSON], b"{\"resourceSpans\": [");
    assert_json_error(&reply, 400);
    assert_nothing_stored(&env);
}

/// A valid request of about `bytes` bytes (one span carrying a large attribute).
fn padded(dest: &str, bytes: usize) -> SpanB {
    producer(dest).attr("payload", "a".repeat(bytes))
}

#[test]
fn a_body_above_max_body_is_413_whether_sized_or_chunked() {
    let env = TestEnv::with_args(&["--max-body", "64KiB"]);
    let big = padded("big", 100 * 1024);
    let body = builder::protobuf(&[&big]);
    assert_protobuf_error(&env.post_protobuf(&body), 413);
    assert_protobuf_error(
        &env.post_otlp_chunked("/v1/traces", &[PROTOBUF], &body),
        413,
    );
    let json_body = builder::json_body(&[&big]);
    assert_json_error(
        &env.post_otlp("/v1/traces", &[JSON], json_body.as_bytes()),
        413,
    );
    assert_nothing_stored(&env);

    let fits = padded("fits", 60 * 1024);
    let body = builder::protobuf(&[&fits]);
    assert!(body.len() < 64 * 1024);
    trace_response(&env.post_protobuf(&body));
    assert_stored(&env, &[&fits]);
}

#[test]
fn a_gzip_bomb_is_413_on_its_inflated_size() {
    let env = TestEnv::with_args(&["--max-body", "64KiB"]);
    let bomb = padded("bomb", 16 * 1024 * 1024);
    let plain = builder::protobuf(&[&bomb]);
    let packed = gzip(&plain);
    assert!(
        packed.len() < 64 * 1024,
        "compressed {} bytes",
        packed.len()
    );
    assert_protobuf_error(
        &env.post_otlp("/v1/traces", &[PROTOBUF, GZIP], &packed),
        413,
    );
    assert_nothing_stored(&env);

    let fits = padded("fits", 60 * 1024);
    let reply = env.post_otlp(
        "/v1/traces",
        &[PROTOBUF, GZIP],
        &gzip(&builder::protobuf(&[&fits])),
    );
    trace_response(&reply);
    assert_stored(&env, &[&fits]);
}

#[test]
fn other_content_types_and_encodings_are_415() {
    let env = TestEnv::start();
    let body = builder::protobuf(&[&producer("refused")]);
    for content_type in [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let reply = env.post_otlp("/v1/traces", &[("Content-Type", content_type)], &body);
        assert_eq!(reply.status, 415, "{content_type}: {}", reply.text());
    }
    for encoding in ["br", "deflate", "zstd"] {
        let reply = env.post_otlp(
            "/v1/traces",
            &[PROTOBUF, ("Content-Encoding", encoding)],
            &body,
        );
        assert_eq!(reply.status, 415, "{encoding}: {}", reply.text());
    }
    assert_nothing_stored(&env);
}

#[test]
fn uploads_beyond_max_uploads_are_429_with_retry_after() {
    let env = TestEnv::with_args(&["--max-uploads", "1"]);
    let held_span = producer("held");
    let held_body = builder::protobuf(&[&held_span]);
    let (first, rest) = held_body.split_at(held_body.len() / 2);
    let (mut held, refused) = env.hold_the_only_slot(&[PROTOBUF], first);
    refused.retry_after_secs();

    let late = producer("late");
    let reply = env.post_protobuf(&builder::protobuf(&[&late]));
    assert_eq!(reply.status, 429, "{}", reply.text());
    reply.retry_after_secs();
    let reply = env.post_otlp(
        "/v1/traces",
        &[JSON],
        builder::json_body(&[&late]).as_bytes(),
    );
    assert_json_error(&reply, 429);
    reply.retry_after_secs();

    held.chunk(rest);
    let done = held.finish();
    trace_response(&done);
    // The slot is free again.
    trace_response(&env.post_protobuf(&[]));
    assert_stored(&env, &[&held_span]);
    assert!(
        env.trace_spans(&late.trace_hex()).is_empty(),
        "a refused request was stored"
    );
    assert_eq!(env.spans_in_store(), 1);
}

#[test]
fn metrics_and_logs_are_answered_200() {
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
    use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    let env = TestEnv::start();
    let resource = Some(Resource {
        attributes: vec![builder::kv("service.name", "orders")],
        ..Default::default()
    });
    let metrics = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource.clone(),
            ..Default::default()
        }],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource,
            ..Default::default()
        }],
    };
    for (path, body) in [
        ("/v1/metrics", metrics.encode_to_vec()),
        ("/v1/logs", logs.encode_to_vec()),
    ] {
        let reply = env.post_otlp(path, &[PROTOBUF], &body);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    for (path, body) in [
        ("/v1/metrics", r#"{"resourceMetrics":[]}"#),
        ("/v1/logs", r#"{"resourceLogs":[]}"#),
    ] {
        assert_json_ok(&env.post_otlp(path, &[JSON], body.as_bytes()));
    }
    assert_nothing_stored(&env);
}

#[test]
fn resending_the_same_spans_does_not_double_any_count() {
    let env = TestEnv::start();
    let files = fixtures::load(fixtures::PYTHON_PIKA);
    let window = Window::of_sets(&[fixtures::PYTHON_PIKA]);
    env.post_fixtures(&files);
    let once = env.topology(&window);
    let traces_once = env.get_json(&format!("/api/traces?limit=1000&{}", window.query()));
    env.post_fixtures(&files);
    env.post_fixtures(files.iter().rev());
    assert_eq!(env.spans_in_store(), 41);
    topo::assert_same_topology(
        &once,
        &env.topology(&window),
        "after re-sending every request",
    );
    assert_eq!(
        traces_once,
        env.get_json(&format!("/api/traces?limit=1000&{}", window.query()))
    );
}

#[test]
fn spans_are_identified_by_the_whole_trace_id() {
    let env = TestEnv::start();
    // Two traces with 64-bit ids widened to 128 bits (zero high half, as B3/Zipkin/Jaeger
    // clients send them), each holding a span with the same span id: different spans.
    let span_id = vec![7u8; 8];
    let a = producer("keys").ids([vec![0; 8], vec![1; 8]].concat(), span_id.clone());
    let b = producer("keys").ids([vec![0; 8], vec![2; 8]].concat(), span_id);
    for s in [&a, &b] {
        trace_response(&env.post_protobuf(&builder::protobuf(&[s])));
    }
    assert_eq!(
        env.trace_spans(&a.trace_hex()).len(),
        1,
        "trace {}",
        a.trace_hex()
    );
    assert_eq!(
        env.trace_spans(&b.trace_hex()).len(),
        1,
        "trace {}",
        b.trace_hex()
    );
    assert_eq!(env.spans_in_store(), 2);
    let t = env.topology(&builder::window());
    let publish = topo::edge(
        &t,
        "publish",
        &topo::service("orders"),
        "destination:kafka:keys",
    );
    assert_eq!(publish["count"], 2, "{publish}");
}

#[test]
fn a_span_repeated_inside_one_request_is_stored_once() {
    let env = TestEnv::start();
    let s = producer("twice");
    trace_response(&env.post_protobuf(&builder::protobuf(&[&s, &s])));
    assert_eq!(env.spans_in_store(), 1);
    let t = env.topology(&builder::window());
    let publish = topo::edge(
        &t,
        "publish",
        &topo::service("orders"),
        "destination:kafka:twice",
    );
    assert_eq!(publish["count"], 1, "{publish}");
}

/// One request of `spans` producer spans in a single new trace.
fn big_batch(spans: usize) -> (String, Vec<u8>) {
    let first = producer("queue");
    let mut all = vec![first.clone()];
    for _ in 1..spans {
        let mut s = producer("queue");
        s.span.trace_id = first.span.trace_id.clone();
        all.push(s);
    }
    (
        first.trace_hex(),
        builder::protobuf(&all.iter().collect::<Vec<_>>()),
    )
}

#[test]
fn a_full_write_queue_is_503_with_retry_after_and_stores_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let env = TestEnv::with_args(&["--queue-depth", "1"]);
    let otlp = env.otlp();
    let seen_503 = Arc::new(AtomicBool::new(false));
    let results: Arc<Mutex<Vec<(String, Reply)>>> = Arc::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // Concurrent writers outpace the single store writer until one finds the queue full.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (otlp, seen_503, results) = (otlp.clone(), seen_503.clone(), results.clone());
            std::thread::spawn(move || {
                while !seen_503.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    let (trace, body) = big_batch(2000);
                    let reply = otlp.post("/v1/traces", &[PROTOBUF], &body);
                    if reply.status == 503 {
                        seen_503.store(true, Ordering::SeqCst);
                    }
                    results.lock().unwrap().push((trace, reply));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let results = results.lock().unwrap();
    assert!(
        seen_503.load(Ordering::SeqCst),
        "no 503 within 60 s of concurrent writes"
    );
    for (trace, reply) in results.iter() {
        match reply.status {
            200 => assert_eq!(env.trace_spans(trace).len(), 2000, "acknowledged {trace}"),
            503 => {
                assert_protobuf_error(reply, 503);
                reply.retry_after_secs();
                assert!(
                    env.trace_spans(trace).is_empty(),
                    "refused {trace} was stored"
                );
            }
            s => panic!("unexpected {s}: {}", reply.text()),
        }
    }
}
