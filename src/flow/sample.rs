//! Small builders of stored spans for the tests of the flow and of the pages that show it.

use crate::model::{SpanId, SpanKind, StatusCode, TraceId};
use crate::model::{StoredMessaging, StoredSpan};
use serde_json::json;

pub const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// The span id a test calls `n` (hex `00000000000000nn`).
pub fn id(n: u64) -> SpanId {
    SpanId::from_bytes(&n.to_be_bytes()).expect("test span ids are not zero")
}

/// A span of [`TRACE`] by service `svc-<n>`, lasting the first millisecond, with messaging
/// facts (rabbitmq, `orders`) when `operation` is given.
pub fn span(n: u64, kind: SpanKind, operation: Option<&'static str>) -> StoredSpan {
    StoredSpan {
        trace_id: TraceId::from_hex(TRACE).expect("valid trace id"),
        span_id: id(n),
        parent_span_id: None,
        service: format!("svc-{n:x}"),
        service_namespace: None,
        service_instance: None,
        name: "op".into(),
        kind,
        start_unix_nanos: 1_000_000_000_000,
        end_unix_nanos: 1_000_001_000_000,
        duration_micros: 1000,
        status: StatusCode::Unset,
        status_message: None,
        scope: None,
        messaging: operation.map(|operation| StoredMessaging {
            system: "rabbitmq".into(),
            destination: "orders".into(),
            operation,
            consumer_group: None,
            message_id: None,
            conversation_id: None,
        }),
        peer: None,
        attributes: json!({"k": "v", "n": 3}),
        resource: json!({}),
        events: json!([]),
        links: json!([]),
    }
}

pub fn publish(n: u64) -> StoredSpan {
    span(n, SpanKind::Producer, Some("produce"))
}

pub fn consume(n: u64) -> StoredSpan {
    span(n, SpanKind::Consumer, Some("consume"))
}

/// Chained changes to a built span.
pub trait Change: Sized {
    fn under(self, parent: u64) -> Self;
    /// From `start_ms` to `end_ms` after the trace's base time.
    fn at(self, start_ms: u64, end_ms: u64) -> Self;
    fn by(self, service: &str) -> Self;
    fn on(self, destination: &str) -> Self;
    /// Adds a span link to span `n` of trace `trace` (hex).
    fn linked(self, trace: &str, n: u64) -> Self;
    /// Moves the span to trace `trace` (hex).
    fn of(self, trace: &str) -> Self;
}

impl Change for StoredSpan {
    fn under(mut self, parent: u64) -> Self {
        self.parent_span_id = Some(id(parent));
        self
    }

    fn at(mut self, start_ms: u64, end_ms: u64) -> Self {
        self.start_unix_nanos = 1_000_000_000_000 + start_ms * 1_000_000;
        self.end_unix_nanos = 1_000_000_000_000 + end_ms * 1_000_000;
        self.duration_micros = (end_ms - start_ms) * 1000;
        self
    }

    fn by(mut self, service: &str) -> Self {
        self.service = service.into();
        self
    }

    fn on(mut self, destination: &str) -> Self {
        if let Some(m) = &mut self.messaging {
            m.destination = destination.into();
        }
        self
    }

    fn of(mut self, trace: &str) -> Self {
        self.trace_id = TraceId::from_hex(trace).expect("a test trace id");
        self
    }

    fn linked(mut self, trace: &str, n: u64) -> Self {
        let link = json!({"trace_id": trace, "span_id": id(n).to_hex(), "attributes": {}});
        if let Some(list) = self.links.as_array_mut() {
            list.push(link);
        }
        self
    }
}
