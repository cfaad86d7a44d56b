//! What pairing needs to know of a span, and the flags it stores with it.

use super::memory::Nodes;
use crate::model::{NodeKey, Operation, Span, SpanId, SpanKind, TraceId};
use std::sync::Arc;

pub const FLAG_COUNTED: u8 = 1;
pub const FLAG_CALL_PAIRED: u8 = 2;
/// A consume that delivers a message again (after a nack or an expired lease): not a new
/// message, not a hop.
pub const FLAG_REDELIVERY: u8 = 4;
/// A consume that reads a stream event again: counted as a replay, its delay kept apart.
pub const FLAG_REPLAY: u8 = 8;
/// A delivery that pairing found failed, though its span did not say so (a RabbitMQ message
/// delivered again to the consumer that had it: the earlier delivery was nacked and requeued,
/// or its consumer stopped): the writer stores the span as an error with this reason
/// ([`failed_reason`]).
pub const FLAG_FAILED: u8 = 16;
/// The instrumentation states whether the delivery is a redelivery (Celery's
/// `delivery_info`), so pairing does not infer one from a second delivery.
pub const FLAG_DELIVERY_STATED: u8 = 32;

/// A consume from where a broker sends dead letters (its dead-letter exchange, or a queue
/// that one routes to): the message was dead-lettered. With [`FLAG_FAILED`].
pub const FLAG_DEAD_LETTERED: u8 = 64;

/// Why pairing marked a span failed ([`FLAG_FAILED`]), or `None`.
pub fn failed_reason(flags: u8) -> Option<&'static str> {
    if flags & FLAG_FAILED == 0 {
        None
    } else if flags & FLAG_DEAD_LETTERED != 0 {
        Some("dead_lettered")
    } else if flags & FLAG_REDELIVERY != 0 {
        Some("redelivered")
    } else {
        None
    }
}

/// The status message of a span stored failed for `reason` ([`failed_reason`]).
pub fn failed_message(reason: &str) -> &'static str {
    match reason {
        "dead_lettered" => "dead_lettered: read from where the broker sends dead letters, so the message was rejected, expired or over a queue's limit where it was first delivered",
        _ => "redelivered: this consumer got the message again, so an earlier delivery failed (nacked or rejected with requeue, or the consumer stopped before its ack)",
    }
}

/// What pairing needs to know of a span.
#[derive(Clone, Debug)]
pub struct Facts {
    pub trace: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: Arc<NodeKey>,
    /// The service instance (`service.instance.id`, `""` when the span names none); `None`
    /// when not known here (a waiting list keeps no instance).
    pub instance: Option<Arc<str>>,
    pub kind: SpanKind,
    pub operation: Option<Operation>,
    pub destination: Option<Arc<NodeKey>>,
    pub start: u64,
    pub end: u64,
    pub error: bool,
    pub peer: Option<Arc<str>>,
    pub flags: u8,
    /// The partition a consume read its message from (Kafka), where its span names one;
    /// `None` also when not known here (a waiting list keeps none: see
    /// [`partition_in_attributes`] for a stored span's).
    pub partition: Option<i32>,
}

impl Facts {
    pub fn of(span: &Span, nodes: &mut Nodes, flags: u8) -> Facts {
        Facts {
            trace: span.trace_id,
            span_id: span.span_id,
            parent: span.parent_span_id,
            service: nodes.service(&span.service.name, span.service.namespace.as_deref()),
            // Only a consume's is read (which instance a message reached).
            instance: span
                .messaging
                .as_ref()
                .filter(|m| m.operation == Operation::Consume)
                .map(|_| Arc::from(span.service.instance.as_deref().unwrap_or(""))),
            kind: span.kind,
            operation: span.messaging.as_ref().map(|m| m.operation),
            destination: span
                .messaging
                .as_ref()
                .map(|m| nodes.destination(&m.system, &m.destination)),
            start: span.start_unix_nanos,
            end: span.end_unix_nanos,
            error: span.is_error(),
            peer: span.peer.as_deref().map(Arc::from),
            flags,
            partition: span
                .messaging
                .as_ref()
                .filter(|m| m.operation == Operation::Consume)
                .and_then(|m| m.partition),
        }
    }

    pub fn duration_micros(&self) -> u64 {
        self.end.saturating_sub(self.start) / 1_000
    }

    pub fn is_client_call(&self) -> bool {
        self.kind == SpanKind::Client && self.operation.is_none()
    }

    /// Whether a later span may refer to this one in a way pairing cares about.
    pub fn referable(&self) -> bool {
        pairable(self.kind, self.operation)
    }

    /// Whether this span waits for its parent when the parent is not stored yet.
    pub fn waits_for_parent(&self) -> bool {
        self.operation.is_some() || self.kind == SpanKind::Server
    }
}

/// The partition a stored span's attributes (one JSON object, as stored) name, by the names
/// ingest reads it from ([`crate::semconv::PARTITION`]): a number or its text, not negative.
pub fn partition_in_attributes(json: &str) -> Option<i32> {
    let attrs: serde_json::Map<String, serde_json::Value> = serde_json::from_str(json).ok()?;
    let value = crate::semconv::PARTITION
        .names
        .iter()
        .find_map(|name| attrs.get(*name))?;
    let n = match value {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s) => s.trim().parse::<i64>().ok()?,
        _ => return None,
    };
    i32::try_from(n).ok().filter(|p| *p >= 0)
}

/// Whether later spans may refer to a span of this kind and operation in a way pairing cares
/// about: produce and consume spans, and CLIENT calls.
pub fn pairable(kind: SpanKind, operation: Option<Operation>) -> bool {
    matches!(operation, Some(Operation::Produce | Operation::Consume))
        || (kind == SpanKind::Client && operation.is_none())
}
