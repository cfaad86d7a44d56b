//! Recorded SDK payloads (fixtures/otlp) and query windows computed from their contents.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

pub const PYTHON_PIKA: &str = "python-pika";
pub const PYTHON_PIKA_GZIP: &str = "python-pika-gzip";
pub const NODE_AMQPLIB_JSON: &str = "node-amqplib-json";
pub const PYTHON_AIO_PIKA: &str = "python-aio-pika";
pub const PYTHON_CELERY: &str = "python-celery";
pub const PYTHON_NATS: &str = "python-nats";
/// pika instrumented globally: every message has an outer and an inner PRODUCER span; not in
/// `ALL_SETS` (its broadcast and rpc parts are `python-pika`'s, with no golden exports of their own).
pub const PYTHON_PIKA_GLOBAL: &str = "python-pika-global";
/// kafkajs and confluent-kafka together (tools/record/kafka_scenario.sh); not in `ALL_SETS`:
/// its spans link to their producers.
pub const KAFKA: &str = "kafka";
pub const ALL_SETS: &[&str] = &[
    PYTHON_PIKA,
    PYTHON_PIKA_GZIP,
    NODE_AMQPLIB_JSON,
    PYTHON_AIO_PIKA,
    PYTHON_CELERY,
    PYTHON_NATS,
];

pub const KIND_SERVER: i64 = 2;
pub const KIND_CLIENT: i64 = 3;
pub const KIND_PRODUCER: i64 = 4;
pub const KIND_CONSUMER: i64 = 5;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// What the tests need to know of one recorded span.
#[derive(Clone, Debug)]
pub struct SpanInfo {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub service: String,
    pub name: String,
    pub kind: i64,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// Status code ERROR.
    pub error: bool,
    /// Each link's (trace id, span id), hex.
    pub links: Vec<(String, String)>,
}

/// One recorded `POST /v1/traces`, with the headers its SDK sent.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub set: String,
    pub file: String,
    /// The body exactly as sent (still gzip-compressed for `.bin.gz`).
    pub body: Vec<u8>,
    pub content_type: String,
    pub content_encoding: String,
    pub chunked: bool,
    pub spans: Vec<SpanInfo>,
}

impl Fixture {
    pub fn name(&self) -> String {
        format!("{}/{}", self.set, self.file)
    }

    pub fn is_json(&self) -> bool {
        self.content_type.starts_with("application/json")
    }

    /// The decoded request (protobuf fixtures only).
    pub fn request(&self) -> ExportTraceServiceRequest {
        assert!(!self.is_json(), "{} is JSON", self.name());
        ExportTraceServiceRequest::decode(self.plain_body().as_slice())
            .unwrap_or_else(|e| panic!("{}: {e}", self.name()))
    }

    /// The body with its content encoding undone.
    pub fn plain_body(&self) -> Vec<u8> {
        if self.content_encoding == "gzip" {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(self.body.as_slice())
                .read_to_end(&mut out)
                .unwrap_or_else(|e| panic!("{}: {e}", self.name()));
            out
        } else {
            self.body.clone()
        }
    }

    /// Whether every span of this file is a CONSUMER span.
    pub fn only_consumers(&self) -> bool {
        self.spans.iter().all(|s| s.kind == KIND_CONSUMER)
    }
}

/// The trace ids of the spans that have a span of `service`.
pub fn trace_ids_with(spans: &[SpanInfo], service: &str) -> BTreeSet<String> {
    spans
        .iter()
        .filter(|s| s.service == service)
        .map(|s| s.trace_id.clone())
        .collect()
}

/// Every request of one fixture directory, in file name order.
pub fn load(set: &str) -> Vec<Fixture> {
    let dir = root().join("otlp").join(set);
    let mut metas: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    metas.sort();
    assert!(!metas.is_empty(), "no fixtures in {}", dir.display());
    metas
        .iter()
        .map(|meta_path| {
            let meta: Value =
                serde_json::from_slice(&std::fs::read(meta_path).unwrap()).expect("meta JSON");
            let file = meta["file"].as_str().expect("meta.file").to_string();
            let body = std::fs::read(dir.join(&file)).expect("fixture body");
            let mut f = Fixture {
                set: set.to_string(),
                file,
                body,
                content_type: meta["content_type"].as_str().unwrap_or("").to_string(),
                content_encoding: meta["content_encoding"].as_str().unwrap_or("").to_string(),
                chunked: meta["transfer_encoding"].as_str() == Some("chunked"),
                spans: Vec::new(),
            };
            f.spans = if f.is_json() {
                json_spans(&f.plain_body())
            } else {
                proto_spans(&f.request())
            };
            f
        })
        .collect()
}

pub fn proto_spans(req: &ExportTraceServiceRequest) -> Vec<SpanInfo> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| match &v.value {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => {
                    Some(s.clone())
                }
                _ => None,
            })
            .unwrap_or_default();
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            out.push(SpanInfo {
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: hex::encode(&span.parent_span_id),
                service: service.clone(),
                name: span.name.clone(),
                kind: span.kind as i64,
                start_unix_nanos: span.start_time_unix_nano,
                end_unix_nanos: span.end_time_unix_nano,
                error: span.status.as_ref().is_some_and(|s| s.code == 2),
                links: span
                    .links
                    .iter()
                    .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                    .collect(),
            });
        }
    }
    out
}

fn json_spans(body: &[u8]) -> Vec<SpanInfo> {
    let root: Value = serde_json::from_slice(body).expect("JSON fixture");
    let nanos = |v: &Value| -> u64 {
        v.as_str()
            .map(|s| s.parse().expect("decimal nanos"))
            .or_else(|| v.as_u64())
            .expect("a time")
    };
    let mut out = Vec::new();
    for rs in root["resourceSpans"].as_array().expect("resourceSpans") {
        let service = rs["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|kv| kv["key"] == "service.name")
            .and_then(|kv| kv["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_string();
        for ss in rs["scopeSpans"].as_array().expect("scopeSpans") {
            for span in ss["spans"].as_array().expect("spans") {
                out.push(SpanInfo {
                    trace_id: span["traceId"].as_str().unwrap().to_string(),
                    span_id: span["spanId"].as_str().unwrap().to_string(),
                    parent_span_id: span["parentSpanId"].as_str().unwrap_or("").to_string(),
                    service: service.clone(),
                    name: span["name"].as_str().unwrap_or("").to_string(),
                    kind: span["kind"].as_i64().expect("integer kind"),
                    start_unix_nanos: nanos(&span["startTimeUnixNano"]),
                    end_unix_nanos: nanos(&span["endTimeUnixNano"]),
                    error: span["status"]["code"].as_i64() == Some(2),
                    links: span["links"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| {
                            Some((
                                l["traceId"].as_str()?.to_lowercase(),
                                l["spanId"].as_str()?.to_lowercase(),
                            ))
                        })
                        .collect(),
                });
            }
        }
    }
    out
}

const MINUTE: u64 = 60_000_000_000;

/// A query window `[since, until)` on whole minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since_unix_nanos: u64,
    pub until_unix_nanos: u64,
}

impl Window {
    /// The whole minutes that cover `[first, last]`, plus one minute on each side.
    pub fn covering(first: u64, last: u64) -> Window {
        Window {
            since_unix_nanos: (first / MINUTE - 1) * MINUTE,
            until_unix_nanos: (last / MINUTE + 2) * MINUTE,
        }
    }

    /// The window covering every span of the given fixture sets.
    pub fn of_sets(sets: &[&str]) -> Window {
        let spans: Vec<SpanInfo> = sets
            .iter()
            .flat_map(|s| load(s))
            .flat_map(|f| f.spans)
            .collect();
        Window::of_spans(&spans)
    }

    pub fn of_spans(spans: &[SpanInfo]) -> Window {
        let first = spans
            .iter()
            .map(|s| s.start_unix_nanos)
            .min()
            .expect("spans");
        let last = spans
            .iter()
            .map(|s| s.end_unix_nanos.max(s.start_unix_nanos))
            .max()
            .unwrap();
        Window::covering(first, last)
    }

    pub fn since(&self) -> String {
        rfc3339(self.since_unix_nanos)
    }

    pub fn until(&self) -> String {
        rfc3339(self.until_unix_nanos)
    }

    /// `since=...&until=...` for the API.
    pub fn query(&self) -> String {
        format!("since={}&until={}", self.since(), self.until())
    }
}

pub fn rfc3339(unix_nanos: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(unix_nanos as i128)
        .expect("a valid time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// The requests of `set` with every time (span start and end, event times) moved by one
/// offset so that the last span ends at `last_end_unix_nanos`: ids, names, attributes and the
/// time between spans as recorded. Gzip bodies come back uncompressed (the offset is applied
/// to the decoded request); JSON bodies stay JSON, with times as decimal strings.
pub fn retimed(set: &str, last_end_unix_nanos: u64) -> Vec<Fixture> {
    let files = load(set);
    let last = files
        .iter()
        .flat_map(|f| &f.spans)
        .map(|s| s.end_unix_nanos.max(s.start_unix_nanos))
        .max()
        .expect("spans");
    let offset = i128::from(last_end_unix_nanos) - i128::from(last);
    let shift = |t: u64| -> u64 {
        if t == 0 {
            0
        } else {
            u64::try_from(i128::from(t) + offset).expect("a time after 1970")
        }
    };
    files
        .into_iter()
        .map(|mut f| {
            if f.is_json() {
                let mut root: Value = serde_json::from_slice(&f.plain_body()).expect("JSON");
                let at = |v: &mut Value| {
                    let t: u64 = match &*v {
                        Value::Null => return,
                        Value::String(s) => s.parse().expect("decimal nanos"),
                        other => other.as_u64().expect("a time"),
                    };
                    *v = Value::String(shift(t).to_string());
                };
                for rs in root["resourceSpans"].as_array_mut().expect("resourceSpans") {
                    for ss in rs["scopeSpans"].as_array_mut().expect("scopeSpans") {
                        for s in ss["spans"].as_array_mut().expect("spans") {
                            at(&mut s["startTimeUnixNano"]);
                            at(&mut s["endTimeUnixNano"]);
                            for e in s["events"].as_array_mut().into_iter().flatten() {
                                at(&mut e["timeUnixNano"]);
                            }
                        }
                    }
                }
                f.body = serde_json::to_vec(&root).expect("JSON");
            } else {
                let mut req = f.request();
                for s in req
                    .resource_spans
                    .iter_mut()
                    .flat_map(|rs| &mut rs.scope_spans)
                    .flat_map(|ss| &mut ss.spans)
                {
                    s.start_time_unix_nano = shift(s.start_time_unix_nano);
                    s.end_time_unix_nano = shift(s.end_time_unix_nano);
                    for e in &mut s.events {
                        e.time_unix_nano = shift(e.time_unix_nano);
                    }
                }
                f.body = req.encode_to_vec();
            }
            f.content_encoding = String::new();
            for s in &mut f.spans {
                s.start_unix_nanos = shift(s.start_unix_nanos);
                s.end_unix_nanos = shift(s.end_unix_nanos);
            }
            f
        })
        .collect()
}
