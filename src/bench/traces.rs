//! Synthetic but realistic messaging traces with unique ids: a publisher, a broker hop and a
//! consumer that calls a database, as OTLP protobuf ready to send.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, ResourceSpans, ScopeSpans, Span, Status,
};

pub struct Generator {
    state: u64,
    services: usize,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

impl Generator {
    pub fn new(seed: u64, services: usize) -> Generator {
        Generator {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            services: services.max(2),
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64: unique and well spread ids from a counter.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// One request of about `spans` spans, grouped by service as SDKs send them; returns the
    /// request and its exact span count.
    pub fn request(&mut self, spans: usize, now_nanos: u64) -> (ExportTraceServiceRequest, usize) {
        let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); self.services];
        let mut count = 0;
        while count + 5 <= spans.max(5) {
            let trace: Vec<u8> = [self.next().to_be_bytes(), self.next().to_be_bytes()].concat();
            let r = self.next();
            // A fixed topology, as in a real system: topic t has one producer service and one
            // or two subscribing services, each of which queries a database.
            let t = ((r >> 32) % 40) as usize;
            let producer = t % self.services;
            let consumers = if t.is_multiple_of(3) {
                vec![(t * 7 + 1) % self.services, (t * 7 + 3) % self.services]
            } else {
                vec![(t * 7 + 1) % self.services]
            };
            let topic = format!("topic-{t}");
            let start = now_nanos - (r >> 40) % 1_000_000_000;
            let error = r.is_multiple_of(97);
            let p_id = self.next().to_be_bytes().to_vec();
            let mk = |id: &Vec<u8>,
                      parent: &Vec<u8>,
                      name: String,
                      kind: SpanKind,
                      s: u64,
                      d: u64,
                      attrs: Vec<KeyValue>| Span {
                trace_id: trace.clone(),
                span_id: id.clone(),
                parent_span_id: parent.clone(),
                name,
                kind: kind as i32,
                start_time_unix_nano: s,
                end_time_unix_nano: s + d,
                attributes: attrs,
                status: Some(Status {
                    code: if error { 2 } else { 0 },
                    message: String::new(),
                }),
                ..Default::default()
            };
            by_service[producer].push(mk(
                &p_id,
                &Vec::new(),
                format!("{topic} publish"),
                SpanKind::Producer,
                start,
                150_000,
                vec![
                    kv("messaging.system", "rabbitmq"),
                    kv("messaging.destination.name", &topic),
                    kv("messaging.operation.type", "send"),
                    kv("messaging.message.id", &format!("{r:x}")),
                    kv("server.address", "127.0.0.1"),
                ],
            ));
            count += 1;
            for (n, consumer) in consumers.into_iter().enumerate() {
                let (c_id, d_id) = (
                    self.next().to_be_bytes().to_vec(),
                    self.next().to_be_bytes().to_vec(),
                );
                let delay = 200_000 + (r >> (20 + n)) % 5_000_000;
                by_service[consumer].push(mk(
                    &c_id,
                    &p_id,
                    format!("{topic} process"),
                    SpanKind::Consumer,
                    start + delay,
                    900_000,
                    vec![
                        kv("messaging.system", "rabbitmq"),
                        kv("messaging.destination.name", &topic),
                        kv("messaging.operation.type", "process"),
                        kv("messaging.message.id", &format!("{r:x}")),
                        kv("messaging.consumer.group.name", &format!("svc-{consumer}")),
                    ],
                ));
                by_service[consumer].push(mk(
                    &d_id,
                    &c_id,
                    "SELECT orders".into(),
                    SpanKind::Client,
                    start + delay + 100_000,
                    400_000,
                    vec![
                        kv("db.system", "postgresql"),
                        kv("db.name", "shop"),
                        kv("db.statement", "SELECT * FROM orders WHERE id = $1"),
                    ],
                ));
                count += 2;
            }
        }
        let resource_spans = by_service
            .into_iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .map(|(i, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", &format!("svc-{i}")),
                        kv("service.instance.id", &format!("svc-{i}-1")),
                        kv("telemetry.sdk.language", "rust"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "switchyard-bench".into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        (ExportTraceServiceRequest { resource_spans }, count)
    }
}
