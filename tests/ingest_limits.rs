//! Bounded ingest: bodies whose decoded form would dwarf their bytes (empty spans, empty
//! attributes, deep values, huge repeated fields) are refused with 413 / RESOURCE_EXHAUSTED
//! before they are decoded, and store nothing; the server's memory stays bounded; stalled
//! uploads and idle connections do not stop ingest; gRPC answers the OTLP status codes.

mod common;

use common::builder::{self, span, Producer};
use common::{RawRequest, Reply, TestEnv};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::bytes::BufMut;
use prost::Message;
use std::io::{Read, Write};

use std::net::TcpStream;
use std::time::Duration;
use switchyard::ingest::status::{RetryInfo, RpcStatus, RETRY_INFO_TYPE};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JSON: (&str, &str) = ("Content-Type", "application/json");

// ---- wire-format builders: bodies far too large to build as prost values ----

fn varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A length-delimited field.
fn field(number: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    varint(u64::from(number << 3 | 2), &mut out);
    varint(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// `field` repeated `n` times with an empty payload: two bytes each on the wire.
fn empty_fields(number: u32, n: usize) -> Vec<u8> {
    field(number, &[]).repeat(n)
}

fn service_resource() -> Vec<u8> {
    let value = field(1, b"orders"); // AnyValue.string_value
    let kv = [field(1, b"service.name"), field(2, &value)].concat();
    field(1, &field(1, &kv)) // ResourceSpans.resource { attributes }
}

/// A request with one resource and one scope holding `spans` (encoded `Span` fields).
fn request_of_spans(spans: &[u8]) -> Vec<u8> {
    let scope_spans = field(2, spans);
    field(1, &[service_resource(), scope_spans].concat())
}

/// One span whose own fields are `fields`.
fn one_span(fields: &[u8]) -> Vec<u8> {
    request_of_spans(&field(2, fields))
}

/// A key-value whose value is a kvlist nested `depth` levels deep.
fn nested_kv(depth: usize) -> Vec<u8> {
    let mut value = field(1, b"leaf");
    for _ in 0..depth {
        let kv = [field(1, b"k"), field(2, &value)].concat();
        value = field(6, &field(1, &kv)); // AnyValue.kvlist_value { values }
    }
    [field(1, b"deep"), field(2, &value)].concat()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn json_spans(n: usize, span: &str) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"orders"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        vec![span; n].join(",")
    )
}

fn assert_refused_413(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 413, "{what}: {}", reply.text());
    assert!(
        reply.header("retry-after").is_none(),
        "{what}: 413 is not retryable"
    );
}

/// The server still stores a normal request, and nothing else was stored.
fn assert_still_serving_and_nothing_stored(env: &TestEnv) {
    assert_eq!(env.spans_in_store(), 0, "a refused request was stored");
    let s = span("orders", "orders send", Producer).messaging("kafka", "after");
    let reply = env.post_protobuf(&builder::protobuf(&[&s]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(env.trace_spans(&s.trace_hex()).len(), 1);
}

/// The peak resident memory of a process (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// What a case is, the headers it is sent with, its body.
type Case = (&'static str, Vec<(&'static str, &'static str)>, Vec<u8>);

#[test]
fn worst_shaped_bodies_are_413_before_decoding_and_store_nothing() {
    let env = TestEnv::with_args(&["--max-decoded", "2MiB", "--max-spans-per-request", "10000"]);
    let empty_attributes = one_span(&empty_fields(9, 200_000));
    let deep = one_span(&field(9, &nested_kv(25)).repeat(3_000));
    let cases: Vec<Case> = vec![
        (
            "empty spans over the span limit",
            vec![PROTOBUF],
            request_of_spans(&empty_fields(2, 20_000)),
        ),
        (
            "empty spans under the span limit, over the decoded limit",
            vec![PROTOBUF],
            request_of_spans(&empty_fields(2, 9_000)),
        ),
        ("empty attributes", vec![PROTOBUF], empty_attributes.clone()),
        ("deep but legal nesting", vec![PROTOBUF], deep),
        (
            "many empty events",
            vec![PROTOBUF],
            one_span(&empty_fields(11, 200_000)),
        ),
        (
            "many empty links",
            vec![PROTOBUF],
            one_span(&empty_fields(13, 200_000)),
        ),
        (
            "many empty scopes",
            vec![PROTOBUF],
            field(1, &empty_fields(2, 200_000)),
        ),
        (
            "gzip of empty spans",
            vec![PROTOBUF, ("Content-Encoding", "gzip")],
            gzip(&request_of_spans(&empty_fields(2, 2_000_000))),
        ),
        (
            "gzip of empty attributes",
            vec![PROTOBUF, ("Content-Encoding", "gzip")],
            gzip(&empty_attributes),
        ),
        (
            "JSON empty spans",
            vec![JSON],
            json_spans(20_000, "{}").into_bytes(),
        ),
        (
            "JSON empty attributes",
            vec![JSON],
            json_spans(
                1,
                &format!(r#"{{"attributes":[{}]}}"#, vec!["{}"; 100_000].join(",")),
            )
            .into_bytes(),
        ),
    ];
    for (what, headers, body) in &cases {
        let reply = env.post_otlp("/v1/traces", headers, body);
        assert_refused_413(&reply, what);
    }
    assert_still_serving_and_nothing_stored(&env);
}

#[test]
fn a_32_mib_body_of_empty_spans_is_refused_and_memory_stays_bounded() {
    let env = TestEnv::start();
    // 16 Mi empty spans: 2 bytes each on the wire, several GiB decoded.
    let body = request_of_spans(&empty_fields(2, 16 << 20));
    assert!(body.len() > 32 << 20);
    let reply = env.post_protobuf(&body);
    assert_refused_413(&reply, "32 MiB of empty spans");
    let json = json_spans(8 << 20, "{}");
    let reply = env.post_otlp("/v1/traces", &[JSON], json.as_bytes());
    assert_refused_413(&reply, "24 MiB of empty JSON spans");
    let peak = peak_rss(env.pid());
    assert!(
        peak < 600 << 20,
        "peak RSS {} MiB after the refused bodies",
        peak >> 20
    );
    assert_still_serving_and_nothing_stored(&env);
}

#[test]
fn real_sdk_batches_pass_the_default_limits() {
    let env = TestEnv::start();
    let spans: Vec<_> = (0..8192)
        .map(|i| {
            span("orders", "orders send", Producer)
                .messaging("kafka", "orders")
                .attr("messaging.message.id", format!("m-{i}").as_str())
                .attr("http.request.method", "POST")
                .attr("server.address", "broker-1.example")
        })
        .collect();
    let refs: Vec<_> = spans.iter().collect();
    let reply = env.post_protobuf(&builder::protobuf(&refs));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply = env.post_otlp(
        "/v1/traces",
        &[JSON],
        builder::json_body(&refs[..4096]).as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(env.spans_in_store(), 8192);
}

// ---- stalled uploads and idle connections ----

#[test]
fn stalled_uploads_do_not_stop_ingest_and_are_answered_408() {
    let env = TestEnv::with_args(&["--body-timeout", "3s", "--body-min-rate", "1KiB"]);
    let addr = env.server().otlp_http;
    // More stalled uploads than --max-in-flight (64): each announces a body and sends nothing.
    let stalled: Vec<RawRequest> = (0..80)
        .map(|_| RawRequest::start(addr, "/v1/traces", &[PROTOBUF]))
        .collect();
    // Read by the server: nothing left queued towards it, or already answered (on a loaded
    // machine the first uploads may reach their body timeout before the last is read).
    common::wait_for(
        "the server to read every stalled request's head",
        Duration::from_secs(30),
        || {
            stalled
                .iter()
                .all(|r| r.answered_early() || r.read_by_server())
                .then_some(())
        },
    );
    let s = span("orders", "orders send", Producer).messaging("kafka", "during");
    let reply = env.post_protobuf(&builder::protobuf(&[&s]));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(env.trace_spans(&s.trace_hex()).len(), 1);
    // Each stalled upload is answered 408 (unless the hang-up comes first) and closed.
    for mut r in stalled {
        let mut raw = Vec::new();
        let closed = r.read_to_end(&mut raw);
        assert!(
            closed.is_ok()
                || closed
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "a stalled upload stayed open: {closed:?} after {:?}",
            String::from_utf8_lossy(&raw)
        );
        if !raw.is_empty() {
            let head = String::from_utf8_lossy(&raw);
            assert!(head.starts_with("HTTP/1.1 408"), "{head}");
        }
    }
    assert_eq!(env.spans_in_store(), 1);
}

/// Reads from `stream` until the server closes it; false when it stays open past `deadline`.
fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> bool {
    stream.set_read_timeout(Some(deadline)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_grpc_connections_are_closed() {
    let env = TestEnv::with_args(&["--idle-timeout", "1s"]);
    let mut idle = TcpStream::connect(env.server().otlp_grpc).unwrap();
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(30)),
        "an idle gRPC connection stayed open"
    );
    // And an idle HTTP keep-alive connection.
    let mut keep_alive = TcpStream::connect(env.server().otlp_http).unwrap();
    keep_alive
        .write_all(
            format!(
                "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
                env.server().otlp_http
            )
            .as_bytes(),
        )
        .unwrap();
    assert!(
        closed_by_server(&mut keep_alive, Duration::from_secs(30)),
        "an idle keep-alive connection stayed open"
    );
}

#[test]
fn grpc_connections_over_the_cap_are_closed() {
    let env = TestEnv::with_args(&["--max-connections", "2", "--idle-timeout", "120s"]);
    let addr = env.server().otlp_grpc;
    let mut first = TcpStream::connect(addr).unwrap();
    let _second = TcpStream::connect(addr).unwrap();
    let mut third = TcpStream::connect(addr).unwrap();
    assert!(
        closed_by_server(&mut third, Duration::from_secs(30)),
        "a connection over --max-connections stayed open"
    );
    // The first stays open (the server may have sent its HTTP/2 settings on it).
    first.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 256];
    assert!(
        !matches!(first.read(&mut buf), Ok(0)),
        "a connection under the cap was closed"
    );
    drop(first);
    // Once the server has seen a place freed, exports work again.
    let s = span("orders", "orders send", Producer).messaging("kafka", "grpc-ok");
    let body = builder::protobuf(&[&s]);
    common::wait_for(
        "an export after a place freed",
        Duration::from_secs(30),
        || export_raw(&env.grpc_url(), body.clone()).ok(),
    );
    assert_eq!(env.trace_spans(&s.trace_hex()).len(), 1);
}

// ---- gRPC status codes (OTLP: which are retried, and RetryInfo) ----

/// Sends raw bytes as the `Export` message, as a broken or hostile client would.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn export_raw(url: &str, body: Vec<u8>) -> Result<ExportTraceServiceResponse, Status> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = url.to_string();
    rt.block_on(async move {
        let channel = tonic::transport::Endpoint::from_shared(url)
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .connect()
            .await
            .map_err(|e| Status::unavailable(format!("connect: {e}")))?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        );
        grpc.unary(tonic::Request::new(body), path, RawCodec)
            .await
            .map(|r| r.into_inner())
    })
}

fn export_raw_ok(env: &TestEnv) {
    let s = span("orders", "orders send", Producer).messaging("kafka", "grpc-ok");
    export_raw(&env.grpc_url(), builder::protobuf(&[&s])).expect("a normal export succeeds");
    assert_eq!(env.trace_spans(&s.trace_hex()).len(), 1);
}

fn details(status: &Status) -> RpcStatus {
    RpcStatus::decode(status.details()).expect("google.rpc.Status details")
}

fn assert_not_retryable(status: &Status, code: Code) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        details(status)
            .details
            .iter()
            .all(|d| d.type_url != RETRY_INFO_TYPE),
        "{code:?} must come without RetryInfo: {status:?}"
    );
}

#[test]
fn grpc_undecodable_is_invalid_argument() {
    let env = TestEnv::start();
    for body in [
        vec![0x0a, 0x05, 1],
        vec![0xff; 16],
        one_span(&[0x4a, 0x03, 0x0a]),
    ] {
        let status = export_raw(&env.grpc_url(), body).expect_err("refused");
        assert_not_retryable(&status, Code::InvalidArgument);
    }
    assert_eq!(env.spans_in_store(), 0);
    export_raw_ok(&env);
}

#[test]
fn grpc_oversized_is_resource_exhausted_without_retry_info() {
    let env = TestEnv::with_args(&["--max-body", "1MiB", "--max-decoded", "4MiB"]);
    // Past --max-body on the wire (tonic's OUT_OF_RANGE, which exporters would retry).
    let wire = one_span(&field(5, &vec![b'x'; 2 << 20]));
    let status = export_raw(&env.grpc_url(), wire).expect_err("refused");
    assert_not_retryable(&status, Code::ResourceExhausted);
    // Within --max-body, but decoding past --max-decoded.
    let decoded = request_of_spans(&empty_fields(2, 100_000));
    assert!(decoded.len() < 1 << 20);
    let status = export_raw(&env.grpc_url(), decoded).expect_err("refused");
    assert_not_retryable(&status, Code::ResourceExhausted);
    assert!(status.message().contains("--max-decoded"), "{status:?}");
    assert_eq!(env.spans_in_store(), 0);
    export_raw_ok(&env);
}

#[test]
fn grpc_overload_is_unavailable_with_retry_info() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let env = TestEnv::with_args(&["--queue-depth", "1"]);
    let seen: Arc<Mutex<Option<Status>>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    // Concurrent writers outpace the single store writer until one finds the queue full.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (url, seen, done) = (env.grpc_url(), seen.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                    let spans: Vec<_> = (0..2000)
                        .map(|_| span("orders", "orders send", Producer).messaging("kafka", "q"))
                        .collect();
                    let refs: Vec<_> = spans.iter().collect();
                    if let Err(status) = export_raw(&url, builder::protobuf(&refs)) {
                        done.store(true, Ordering::SeqCst);
                        *seen.lock().unwrap() = Some(status);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let status = seen
        .lock()
        .unwrap()
        .clone()
        .expect("no refusal within 60 s of concurrent exports");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let info = details(&status)
        .details
        .into_iter()
        .find(|d| d.type_url == RETRY_INFO_TYPE)
        .expect("RetryInfo in the details");
    let delay = RetryInfo::decode(info.value.as_slice())
        .unwrap()
        .retry_delay
        .expect("retry_delay");
    assert!(delay.seconds >= 1, "{delay:?}");
}
