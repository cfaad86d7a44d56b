//! `switchyard serve --demo`: a simulated shop whose services emit OpenTelemetry traces into
//! the collector's own ingest path, so a newcomer sees a live topology at once. The traces are
//! built as OTLP requests, exactly as an SDK would send them.

use crate::ingest::{self, Ingest};
use crate::model::window::now_unix_nanos;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, ResourceSpans, ScopeSpans, Span, Status,
};
use std::collections::BTreeMap;
use std::time::Duration;

const TICK: Duration = Duration::from_millis(500);

/// Runs until the process stops.
pub async fn run(ingest: Ingest) {
    let mut shop = Shop {
        rng: now_unix_nanos() | 1,
        spans: BTreeMap::new(),
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        let request = shop.tick(now_unix_nanos());
        let batch = match tokio::task::spawn_blocking(move || ingest::prepare(request)).await {
            Ok(b) => b,
            Err(_) => return,
        };
        if let Err(e) = ingest.accept(batch).await {
            tracing::warn!(error = %e, "demo traffic was refused");
        }
    }
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

struct Shop {
    rng: u64,
    /// (service, instance) -> spans of this tick.
    spans: BTreeMap<(&'static str, &'static str), Vec<Span>>,
}

/// One span to emit; ids are filled in by `Shop::emit`.
struct Emit<'a> {
    service: &'static str,
    instance: &'static str,
    name: String,
    kind: SpanKind,
    start: u64,
    micros: u64,
    error: bool,
    attrs: Vec<KeyValue>,
    trace: &'a [u8],
    parent: &'a [u8],
}

fn messaging(system: &str, destination: &str, op: &str) -> Vec<KeyValue> {
    vec![
        kv("messaging.system", system),
        kv("messaging.destination.name", destination),
        kv("messaging.operation.type", op),
    ]
}

impl Shop {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn emit(&mut self, e: Emit<'_>) -> Vec<u8> {
        let id = self.next().to_be_bytes().to_vec();
        let span = Span {
            trace_id: e.trace.to_vec(),
            span_id: id.clone(),
            parent_span_id: e.parent.to_vec(),
            name: e.name,
            kind: e.kind as i32,
            start_time_unix_nano: e.start,
            end_time_unix_nano: e.start + e.micros * 1_000,
            attributes: e.attrs,
            status: Some(Status {
                code: if e.error { 2 } else { 0 },
                message: if e.error {
                    "demo failure".into()
                } else {
                    String::new()
                },
            }),
            ..Default::default()
        };
        self.spans
            .entry((e.service, e.instance))
            .or_default()
            .push(span);
        id
    }

    fn trace(&mut self) -> Vec<u8> {
        [self.next().to_be_bytes(), self.next().to_be_bytes()].concat()
    }

    fn tick(&mut self, now: u64) -> ExportTraceServiceRequest {
        let flows: [fn(&mut Shop, u64); 7] = [
            Shop::order,
            Shop::payment,
            Shop::two_factor,
            Shop::prices,
            Shop::task,
            Shop::audit,
            Shop::order,
        ];
        for (i, flow) in flows.iter().enumerate() {
            flow(self, now - (i as u64 + 1) * 40_000_000);
        }
        let resource_spans = std::mem::take(&mut self.spans)
            .into_iter()
            .map(|((service, instance), spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", service),
                        kv("service.namespace", "shop"),
                        kv("service.instance.id", instance),
                        kv("telemetry.sdk.name", "switchyard-demo"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    /// orders publishes to a fanout exchange; shipping and billing each have a queue bound to
    /// it (broadcast); billing sometimes fails and retries.
    fn order(&mut self, t: u64) {
        let trace = self.trace();
        let publish = self.emit(Emit {
            service: "orders",
            instance: "orders-1",
            name: "order.created publish".into(),
            kind: SpanKind::Producer,
            start: t,
            micros: 300,
            error: false,
            attrs: [
                messaging("rabbitmq", "order.created", "publish"),
                vec![kv(
                    "messaging.rabbitmq.destination.routing_key",
                    "order.created",
                )],
            ]
            .concat(),
            trace: &trace,
            parent: &[],
        });
        for (service, queue, delay) in [
            ("shipping", "shipping.order-created", 2_000_000),
            ("billing", "billing.order-created", 3_500_000),
        ] {
            let error = service == "billing" && self.chance(4);
            let consume = self.emit(Emit {
                service,
                instance: if service == "shipping" {
                    "shipping-1"
                } else {
                    "billing-1"
                },
                name: format!("{queue} process"),
                kind: SpanKind::Consumer,
                start: t + delay,
                micros: 4_000,
                error,
                attrs: messaging("rabbitmq", queue, "process"),
                trace: &trace,
                parent: &publish,
            });
            if service == "billing" {
                self.emit(Emit {
                    service,
                    instance: "billing-1",
                    name: "INSERT invoices".into(),
                    kind: SpanKind::Client,
                    start: t + delay + 500_000,
                    micros: 1_800,
                    error,
                    attrs: vec![kv("db.system", "postgresql"), kv("db.name", "billing")],
                    trace: &trace,
                    parent: &consume,
                });
            }
        }
    }

    /// payments appends to a Kafka topic read by wallet and by reporting (two consumer groups).
    fn payment(&mut self, t: u64) {
        let trace = self.trace();
        let publish = self.emit(Emit {
            service: "payments",
            instance: "payments-1",
            name: "payment.processed send".into(),
            kind: SpanKind::Producer,
            start: t,
            micros: 900,
            error: false,
            attrs: messaging("kafka", "payment.processed", "send"),
            trace: &trace,
            parent: &[],
        });
        for (service, group, delay) in [
            ("wallet", "wallet", 6_000_000),
            ("reporting", "reporting", 25_000_000),
        ] {
            let attrs = [
                messaging("kafka", "payment.processed", "process"),
                vec![kv("messaging.consumer.group.name", group)],
            ]
            .concat();
            self.emit(Emit {
                service,
                instance: if service == "wallet" {
                    "wallet-1"
                } else {
                    "reporting-1"
                },
                name: "payment.processed process".into(),
                kind: SpanKind::Consumer,
                start: t + delay,
                micros: 2_500,
                error: false,
                attrs,
                trace: &trace,
                parent: &publish,
            });
        }
    }

    /// wallet asks identity for a user's 2FA status by request/reply over a queue and a
    /// temporary reply queue: an action/response pair.
    fn two_factor(&mut self, t: u64) {
        let trace = self.trace();
        let corr = format!("2fa-{}", self.next() % 100_000);
        let with_corr = |mut a: Vec<KeyValue>| {
            a.push(kv("messaging.message.conversation_id", &corr));
            a
        };
        let request = self.emit(Emit {
            service: "wallet",
            instance: "wallet-1",
            name: "identity.2fa publish".into(),
            kind: SpanKind::Producer,
            start: t,
            micros: 200,
            error: false,
            attrs: with_corr(messaging("rabbitmq", "identity.2fa", "publish")),
            trace: &trace,
            parent: &[],
        });
        let handle = self.emit(Emit {
            service: "identity",
            instance: "identity-1",
            name: "identity.2fa process".into(),
            kind: SpanKind::Consumer,
            start: t + 1_200_000,
            micros: 3_000,
            error: false,
            attrs: with_corr(messaging("rabbitmq", "identity.2fa", "process")),
            trace: &trace,
            parent: &request,
        });
        let reply_queue = "amq.gen-Jz4pQ1wallet";
        let reply = self.emit(Emit {
            service: "identity",
            instance: "identity-1",
            name: "reply publish".into(),
            kind: SpanKind::Producer,
            start: t + 3_800_000,
            micros: 150,
            error: false,
            attrs: with_corr(messaging("rabbitmq", reply_queue, "publish")),
            trace: &trace,
            parent: &handle,
        });
        self.emit(Emit {
            service: "wallet",
            instance: "wallet-1",
            name: "reply process".into(),
            kind: SpanKind::Consumer,
            start: t + 4_600_000,
            micros: 400,
            error: false,
            attrs: with_corr(messaging("rabbitmq", reply_queue, "process")),
            trace: &trace,
            parent: &reply,
        });
    }

    /// cart calls catalog over HTTP for prices (a synchronous call edge).
    fn prices(&mut self, t: u64) {
        let trace = self.trace();
        let error = self.chance(2);
        let call = self.emit(Emit {
            service: "cart",
            instance: "cart-1",
            name: "GET /prices".into(),
            kind: SpanKind::Client,
            start: t,
            micros: 8_000,
            error,
            attrs: vec![
                kv("http.request.method", "GET"),
                kv("server.address", "catalog"),
                kv("peer.service", "catalog"),
            ],
            trace: &trace,
            parent: &[],
        });
        let serve = self.emit(Emit {
            service: "catalog",
            instance: "catalog-1",
            name: "GET /prices".into(),
            kind: SpanKind::Server,
            start: t + 500_000,
            micros: 6_500,
            error,
            attrs: vec![
                kv("http.request.method", "GET"),
                kv("http.route", "/prices"),
            ],
            trace: &trace,
            parent: &call,
        });
        self.emit(Emit {
            service: "catalog",
            instance: "catalog-1",
            name: "GET prices:*".into(),
            kind: SpanKind::Client,
            start: t + 900_000,
            micros: 700,
            error: false,
            attrs: vec![kv("db.system", "redis")],
            trace: &trace,
            parent: &serve,
        });
    }

    /// checkout hands work to a queue drained by two worker instances (a work queue).
    fn task(&mut self, t: u64) {
        let trace = self.trace();
        let publish = self.emit(Emit {
            service: "checkout",
            instance: "checkout-1",
            name: "tasks publish".into(),
            kind: SpanKind::Producer,
            start: t,
            micros: 250,
            error: false,
            attrs: messaging("rabbitmq", "tasks", "publish"),
            trace: &trace,
            parent: &[],
        });
        let instance = if self.chance(50) {
            "worker-1"
        } else {
            "worker-2"
        };
        let work = self.emit(Emit {
            service: "worker",
            instance,
            name: "tasks process".into(),
            kind: SpanKind::Consumer,
            start: t + 9_000_000,
            micros: 30_000,
            error: false,
            attrs: messaging("rabbitmq", "tasks", "process"),
            trace: &trace,
            parent: &publish,
        });
        self.emit(Emit {
            service: "worker",
            instance,
            name: "UPDATE orders".into(),
            kind: SpanKind::Client,
            start: t + 12_000_000,
            micros: 4_000,
            error: false,
            attrs: vec![kv("db.system", "postgresql"), kv("db.name", "shop")],
            trace: &trace,
            parent: &work,
        });
    }

    /// audit publishes events nobody subscribes to (a dead-end topic).
    fn audit(&mut self, t: u64) {
        let trace = self.trace();
        self.emit(Emit {
            service: "audit",
            instance: "audit-1",
            name: "audit.events publish".into(),
            kind: SpanKind::Producer,
            start: t,
            micros: 120,
            error: false,
            attrs: messaging("rabbitmq", "audit.events", "publish"),
            trace: &trace,
            parent: &[],
        });
    }
}
