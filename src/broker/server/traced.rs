//! Telemetry by construction: the router records each publish, delivery, settlement,
//! redelivery and dead-lettering as a span made with the `opentelemetry` tracing API, following
//! the messaging conventions. An in-process [`SpanExporter`] converts finished spans to an OTLP
//! request and hands it to the collector's one ingest path (`ingest::prepare`, then
//! `Ingest::accept`): no network hop, no second code path.
//!
//! Spans of many client services come out of one tracer: each span carries its service in
//! `service.name`, which the exporter moves to the resource of that service's `ResourceSpans`.

use super::event::TraceContext;
use crate::ingest::Ingest;
use crate::priority::Priority;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter,
};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

pub use crate::broker::proto::{SERVICE_HEADER, UNKNOWN_SERVICE};
/// `messaging.system` of every broker span.
pub const SYSTEM: &str = "switchyard";
/// The span attribute that carries the service until the exporter moves it to the resource.
const SERVICE_KEY: &str = "service.name";
/// How often finished spans are handed to ingest.
const EXPORT_DELAY: Duration = Duration::from_millis(50);
/// Spans handed to ingest at once: small, frequent batches keep each store commit short, so
/// broker work is not held up behind a long one.
const EXPORT_BATCH: usize = 512;
/// Finished spans buffered for export at most; past that, spans (never messages) are dropped.
const EXPORT_QUEUE: usize = 65_536;

pub type BrokerSpan = opentelemetry_sdk::trace::Span;

/// The broker's tracer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Tracer {
    tracer: SdkTracer,
    provider: SdkTracerProvider,
}

/// One span to start: what the messaging conventions ask for.
pub struct Op<'a> {
    /// `send`, `receive`, `settle` (`messaging.operation.type`).
    pub operation_type: &'static str,
    /// `publish`, `receive`, `ack`, `nack`, `expire`, `dead_letter` (`messaging.operation.name`).
    pub operation_name: &'static str,
    pub kind: SpanKind,
    pub service: &'a str,
    /// The topic, or the subscription for consumer-side spans.
    pub destination: &'a str,
    /// The subscription (consumer group) of consumer-side spans.
    pub subscription: Option<&'a str>,
    /// The consumer group of a stream read (`messaging.consumer.group.name`).
    pub group: Option<&'a str>,
    pub message_id: &'a str,
    pub parent: Option<SpanContext>,
    pub start: SystemTime,
    pub extra: Vec<KeyValue>,
}

impl Tracer {
    /// A tracer whose spans go to the collector's ingest path.
    pub fn to_ingest(ingest: Ingest) -> Tracer {
        let config = BatchConfigBuilder::default()
            .with_scheduled_delay(EXPORT_DELAY)
            .with_max_queue_size(EXPORT_QUEUE)
            .with_max_export_batch_size(EXPORT_BATCH)
            .build();
        let processor = BatchSpanProcessor::builder(IngestExporter { ingest })
            .with_batch_config(config)
            .build();
        Tracer::with_provider(
            SdkTracerProvider::builder()
                .with_sampler(Sampler::AlwaysOn)
                .with_span_processor(processor)
                .build(),
        )
    }

    /// A tracer whose spans go nowhere (unit tests).
    pub fn off() -> Tracer {
        Tracer::with_provider(
            SdkTracerProvider::builder()
                .with_sampler(Sampler::AlwaysOn)
                .build(),
        )
    }

    fn with_provider(provider: SdkTracerProvider) -> Tracer {
        let tracer = provider.tracer_with_scope(
            opentelemetry::InstrumentationScope::builder("switchyard.broker")
                .with_version(env!("CARGO_PKG_VERSION"))
                .build(),
        );
        Tracer { tracer, provider }
    }

    pub fn start(&self, op: Op<'_>) -> BrokerSpan {
        crate::telemetry::METRICS
            .broker
            .operation(op.operation_name);
        let mut attributes = vec![
            KeyValue::new(SERVICE_KEY, op.service.to_string()),
            KeyValue::new("messaging.system", SYSTEM),
            KeyValue::new("messaging.destination.name", op.destination.to_string()),
            KeyValue::new("messaging.operation.type", op.operation_type),
            KeyValue::new("messaging.operation.name", op.operation_name),
            KeyValue::new("messaging.message.id", op.message_id.to_string()),
        ];
        if let Some(sub) = op.subscription {
            attributes.push(KeyValue::new(
                "messaging.destination.subscription.name",
                sub.to_string(),
            ));
            attributes.push(KeyValue::new(
                "messaging.consumer.group.name",
                sub.to_string(),
            ));
        }
        if let Some(group) = op.group {
            attributes.push(KeyValue::new(
                "messaging.consumer.group.name",
                group.to_string(),
            ));
        }
        attributes.extend(op.extra);
        let cx = match op.parent {
            Some(parent) => Context::new().with_remote_span_context(parent),
            None => Context::new(),
        };
        self.tracer
            .span_builder(format!("{} {}", op.operation_name, op.destination))
            .with_kind(op.kind)
            .with_start_time(op.start)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &cx)
    }

    /// Exports what is buffered and stops the exporter (blocking): call before the store stops.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "broker spans not all exported at shutdown");
        }
    }
}

/// Marks a span as a failure of the message it handles: an error status with `description`,
/// and `error.type` set to `reason` (`nack`, `lease_expired`, `dead_letter`), which the
/// topology counts on the consume edge, by reason.
pub fn fail(span: &mut BrokerSpan, reason: &'static str, description: String) {
    span.set_attribute(KeyValue::new(crate::model::messaging::ERROR_TYPE, reason));
    span.set_status(Status::error(description));
}

/// Ends a span at `end`, with an error status when `error` is given.
pub fn finish(mut span: BrokerSpan, end: SystemTime, error: Option<&str>) {
    if let Some(e) = error {
        span.set_status(Status::error(e.to_string()));
    }
    span.end_with_timestamp(end);
}

/// A W3C `traceparent` (and optional `tracestate`) as a remote parent; `None` when invalid.
pub fn parse_traceparent(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let [version, trace, span, flags, ..] = parts[..] else {
        return None;
    };
    let hex_ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex_ok(version, 2) || version == "ff" || !hex_ok(trace, 32) || !hex_ok(span, 16) {
        return None;
    }
    if !hex_ok(flags, 2) || (version == "00" && parts.len() != 4) {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()?);
    let state = tracestate
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(SpanContext::new(trace_id, span_id, flags, true, state))
}

/// A caller's trace context as a parent span context.
pub fn parent_of(trace: &TraceContext) -> Option<SpanContext> {
    trace
        .traceparent
        .as_deref()
        .and_then(|tp| parse_traceparent(tp, trace.tracestate.as_deref()))
}

/// The `traceparent` header value of a span.
pub fn traceparent(span: &BrokerSpan) -> String {
    let cx = span.span_context();
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// Hands finished spans to the collector's ingest path.
struct IngestExporter {
    ingest: Ingest,
}

impl std::fmt::Debug for IngestExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IngestExporter")
    }
}

/// Spans older than this at export mean the exporter is behind: it leaves the background.
const EXPORT_STALE: Duration = Duration::from_secs(1);
/// How long a batch waits for room in a busy store's queue before its spans are dropped.
const EXPORT_WAIT: Duration = Duration::from_secs(10);

impl SpanExporter for IngestExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // The batch processor runs this on its own thread: waiting for the store is fine, and
        // nothing else needs the batch, so it is converted without a copy. Export runs in the
        // background, off the messages' way, even with full batches: at a few thousand
        // messages a second every batch is full, and a full batch at normal priority holds a
        // CPU for milliseconds that a message waits behind. Only a backlog, spans that ended
        // long ago because the thread was starved of CPU, gets a fair share until it is gone.
        let spans = batch.len();
        let oldest = batch.iter().map(|s| s.end_time).min();
        let stale = oldest
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > EXPORT_STALE);
        let priority = if stale {
            Priority::Normal
        } else {
            Priority::Background
        };
        crate::priority::set(priority);
        let prepared = self.ingest.prepare(to_request(batch));
        match self
            .ingest
            .accept_within(prepared, EXPORT_WAIT, priority)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Some(suppressed) = crate::lograte::ERRORS.allow("broker.spans_dropped") {
                    tracing::warn!(error = %e, spans, suppressed, "broker spans dropped");
                }
                Err(OTelSdkError::InternalFailure(e.to_string()))
            }
        }
    }
}

/// A client's resource attributes: `name@instance` names the service and its instance.
fn resource(
    service: &str,
    string: impl Fn(&str, &str) -> opentelemetry_proto::tonic::common::v1::KeyValue,
) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    let mut attributes = vec![string("telemetry.sdk.name", "switchyard-broker")];
    match service.split_once('@') {
        Some((name, instance)) if !name.is_empty() && !instance.is_empty() => {
            attributes.push(string(SERVICE_KEY, name));
            attributes.push(string("service.instance.id", instance));
        }
        _ => attributes.push(string(SERVICE_KEY, service)),
    }
    attributes
}

/// Groups spans by the service each carries into one `ResourceSpans` per service.
pub fn to_request(batch: Vec<SpanData>) -> ExportTraceServiceRequest {
    let mut by_service: BTreeMap<String, Vec<opentelemetry_proto::tonic::trace::v1::Span>> =
        BTreeMap::new();
    for mut span in batch {
        let service = match span
            .attributes
            .iter()
            .position(|kv| kv.key.as_str() == SERVICE_KEY)
        {
            Some(i) => span.attributes.swap_remove(i).value.as_str().into_owned(),
            None => UNKNOWN_SERVICE.to_string(),
        };
        by_service.entry(service).or_default().push(span.into());
    }
    let string = |key: &str, value: &str| opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    };
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: resource(&service, string),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "switchyard.broker".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_only_valid_headers() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let cx = parse_traceparent(tp, Some("k=v")).unwrap();
        assert_eq!(
            cx.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert!(cx.is_remote() && cx.is_sampled());
        assert_eq!(cx.trace_state().header(), "k=v");
        for bad in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",
        ] {
            assert!(parse_traceparent(bad, None).is_none(), "{bad}");
        }
    }

    /// Keeps exported spans (the SDK's in-memory exporter needs its `testing` feature).
    #[derive(Clone, Debug, Default)]
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collect {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    #[test]
    fn spans_are_grouped_by_service_with_messaging_attributes() {
        let exporter = Collect::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = Tracer::with_provider(provider);
        let parent = parse_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            None,
        );
        for service in ["a", "b", "a"] {
            let span = tracer.start(Op {
                operation_type: "send",
                operation_name: "publish",
                kind: SpanKind::Producer,
                service,
                destination: "orders",
                subscription: None,
                group: None,
                message_id: "m1",
                parent: parent.clone(),
                start: SystemTime::now(),
                extra: vec![],
            });
            assert!(traceparent(&span).starts_with("00-0af7651916cd43dd8448eb211c80319c-"));
            finish(span, SystemTime::now(), None);
        }
        let spans = std::mem::take(&mut *exporter.0.lock().unwrap());
        let request = to_request(spans);
        assert_eq!(request.resource_spans.len(), 2);
        let a = &request.resource_spans[0];
        assert_eq!(a.scope_spans[0].spans.len(), 2);
        let span = &a.scope_spans[0].spans[0];
        assert_eq!(span.name, "publish orders");
        assert!(span.attributes.iter().all(|kv| kv.key != SERVICE_KEY));
        let batch = crate::ingest::prepare(request);
        assert_eq!(batch.rejected, 0, "{}", batch.message);
        assert_eq!(batch.spans.len(), 3);
    }
}
