//! Builders for synthetic traces, made of opentelemetry-proto types, encoded as OTLP protobuf
//! or OTLP/JSON.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

#[allow(unused_imports)]
pub use SpanKind::{Client, Consumer, Internal, Producer, Server};

const MILLI: u64 = 1_000_000;

pub fn now_unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The time synthetic spans start at: ten minutes ago (whole second), fixed per test process.
pub fn base_time() -> u64 {
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| (now_unix_nanos() / 1_000_000_000 - 600) * 1_000_000_000)
}

/// A window that covers every synthetic span of this process.
pub fn window() -> super::fixtures::Window {
    super::fixtures::Window::covering(
        base_time() - 3_600_000_000_000,
        base_time() + 3_600_000_000_000,
    )
}

/// Well-spread, never-zero ids, distinct across calls and processes.
fn next_random() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = now_unix_nanos() ^ ((std::process::id() as u64) << 32);
    let mut z = seed.wrapping_add(
        SEQ.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

pub fn new_trace_id() -> Vec<u8> {
    let mut id = next_random().to_be_bytes().to_vec();
    id.extend_from_slice(&next_random().to_be_bytes());
    id
}

pub fn new_span_id() -> Vec<u8> {
    next_random().to_be_bytes().to_vec()
}

/// An attribute value.
pub enum Val {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for Val {
    fn from(s: &str) -> Val {
        Val::Str(s.to_string())
    }
}
impl From<String> for Val {
    fn from(s: String) -> Val {
        Val::Str(s)
    }
}
impl From<i64> for Val {
    fn from(i: i64) -> Val {
        Val::Int(i)
    }
}
impl From<bool> for Val {
    fn from(b: bool) -> Val {
        Val::Bool(b)
    }
}

pub fn kv(key: &str, value: impl Into<Val>) -> KeyValue {
    let value = match value.into() {
        Val::Str(s) => any_value::Value::StringValue(s),
        Val::Int(i) => any_value::Value::IntValue(i),
        Val::Bool(b) => any_value::Value::BoolValue(b),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// The resource a span is reported under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Svc {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub instance: Option<String>,
}

/// One span and the service that reports it.
#[derive(Clone, Debug)]
pub struct SpanB {
    pub svc: Svc,
    pub span: Span,
}

/// A root span of a new trace, starting at [`base_time`], lasting 1 ms.
pub fn span(service: &str, name: &str, kind: SpanKind) -> SpanB {
    SpanB {
        svc: Svc {
            name: Some(service.to_string()),
            namespace: None,
            instance: None,
        },
        span: Span {
            trace_id: new_trace_id(),
            span_id: new_span_id(),
            name: name.to_string(),
            kind: kind as i32,
            start_time_unix_nano: base_time(),
            end_time_unix_nano: base_time() + MILLI,
            ..Default::default()
        },
    }
}

impl SpanB {
    /// A child in the same trace, starting 1 ms after this span.
    pub fn child(&self, service: &str, name: &str, kind: SpanKind) -> SpanB {
        let mut c = span(service, name, kind);
        c.span.trace_id = self.span.trace_id.clone();
        c.span.parent_span_id = self.span.span_id.clone();
        c.at(self.span.start_time_unix_nano + MILLI)
    }

    /// Moves the span to start at `unix_nanos` (same duration).
    pub fn at(mut self, unix_nanos: u64) -> SpanB {
        let d = self.span.end_time_unix_nano - self.span.start_time_unix_nano;
        self.span.start_time_unix_nano = unix_nanos;
        self.span.end_time_unix_nano = unix_nanos + d;
        self
    }

    /// Starts `ms` milliseconds after [`base_time`].
    pub fn at_ms(self, ms: u64) -> SpanB {
        self.at(base_time() + ms * MILLI)
    }

    pub fn lasting_ms(mut self, ms: u64) -> SpanB {
        self.span.end_time_unix_nano = self.span.start_time_unix_nano + ms * MILLI;
        self
    }

    pub fn attr(mut self, key: &str, value: impl Into<Val>) -> SpanB {
        self.span.attributes.push(kv(key, value));
        self
    }

    /// `messaging.system` and the current `messaging.destination.name`.
    pub fn messaging(self, system: &str, destination: &str) -> SpanB {
        self.attr("messaging.system", system)
            .attr("messaging.destination.name", destination)
    }

    pub fn link(mut self, to: &SpanB) -> SpanB {
        self.span.links.push(Link {
            trace_id: to.span.trace_id.clone(),
            span_id: to.span.span_id.clone(),
            ..Default::default()
        });
        self
    }

    pub fn error(mut self, message: &str) -> SpanB {
        self.span.status = Some(Status {
            message: message.to_string(),
            code: StatusCode::Error as i32,
        });
        self
    }

    pub fn namespace(mut self, ns: &str) -> SpanB {
        self.svc.namespace = Some(ns.to_string());
        self
    }

    pub fn instance(mut self, id: &str) -> SpanB {
        self.svc.instance = Some(id.to_string());
        self
    }

    /// Reports the span under a resource without `service.name`.
    pub fn without_service(mut self) -> SpanB {
        self.svc.name = None;
        self
    }

    pub fn ids(mut self, trace_id: Vec<u8>, span_id: Vec<u8>) -> SpanB {
        self.span.trace_id = trace_id;
        self.span.span_id = span_id;
        self
    }

    pub fn trace_hex(&self) -> String {
        hex::encode(&self.span.trace_id)
    }

    pub fn span_hex(&self) -> String {
        hex::encode(&self.span.span_id)
    }
}

/// Two valid spans and five invalid ones (bad id lengths, all-zero ids, no service.name).
pub fn mixed_validity() -> (Vec<SpanB>, Vec<SpanB>) {
    let p = || span("orders", "orders send", Producer).messaging("kafka", "mixed");
    let valid = vec![p(), p()];
    let invalid = vec![
        p().ids(vec![1; 8], new_span_id()),
        p().ids(new_trace_id(), vec![1; 4]),
        p().ids(vec![0; 16], new_span_id()),
        p().ids(new_trace_id(), vec![0; 8]),
        p().without_service(),
    ];
    (valid, invalid)
}

/// One request: a ResourceSpans per distinct service (first-seen order), one ScopeSpans each.
pub fn request(spans: &[&SpanB]) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Svc, Vec<Span>)> = Vec::new();
    for s in spans {
        match groups.iter_mut().find(|(svc, _)| *svc == s.svc) {
            Some((_, list)) => list.push(s.span.clone()),
            None => groups.push((s.svc.clone(), vec![s.span.clone()])),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(svc, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: resource_attributes(&svc),
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "switchyard-tests".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect(),
    }
}

fn resource_attributes(svc: &Svc) -> Vec<KeyValue> {
    let mut attrs = vec![kv("telemetry.sdk.language", "rust")];
    if let Some(name) = &svc.name {
        attrs.push(kv("service.name", name.as_str()));
    }
    if let Some(ns) = &svc.namespace {
        attrs.push(kv("service.namespace", ns.as_str()));
    }
    if let Some(id) = &svc.instance {
        attrs.push(kv("service.instance.id", id.as_str()));
    }
    attrs
}

pub fn protobuf(spans: &[&SpanB]) -> Vec<u8> {
    request(spans).encode_to_vec()
}

/// The OTLP/JSON encoding of a request (hex ids, decimal-string times and integers).
pub fn to_json(req: &ExportTraceServiceRequest) -> String {
    let attrs = |list: &[KeyValue]| -> Value {
        list.iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => json!({"stringValue": s}),
                    Some(any_value::Value::IntValue(i)) => json!({"intValue": i.to_string()}),
                    Some(any_value::Value::BoolValue(b)) => json!({"boolValue": b}),
                    other => panic!("no JSON encoding in the tests for {other:?}"),
                };
                json!({"key": kv.key, "value": v})
            })
            .collect()
    };
    let spans = |list: &[Span]| -> Value {
        list.iter()
            .map(|s| {
                json!({
                    "traceId": hex::encode(&s.trace_id),
                    "spanId": hex::encode(&s.span_id),
                    "parentSpanId": hex::encode(&s.parent_span_id),
                    "name": s.name,
                    "kind": s.kind,
                    "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                    "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                    "attributes": attrs(&s.attributes),
                    "links": s.links.iter().map(|l| json!({
                        "traceId": hex::encode(&l.trace_id),
                        "spanId": hex::encode(&l.span_id),
                    })).collect::<Vec<_>>(),
                    "status": s.status.as_ref().map(|st| json!({"code": st.code, "message": st.message})).unwrap_or(json!({})),
                })
            })
            .collect()
    };
    let root = json!({
        "resourceSpans": req.resource_spans.iter().map(|rs| json!({
            "resource": {"attributes": attrs(rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or(&[]))},
            "scopeSpans": rs.scope_spans.iter().map(|ss| json!({
                "scope": {"name": ss.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default()},
                "spans": spans(&ss.spans),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    root.to_string()
}

pub fn json_body(spans: &[&SpanB]) -> String {
    to_json(&request(spans))
}
