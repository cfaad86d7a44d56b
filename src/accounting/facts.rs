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

/// What pairing needs to know of a span.
#[derive(Clone, Debug)]
pub struct Facts {
    pub trace: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: Arc<NodeKey>,
    pub kind: SpanKind,
    pub operation: Option<Operation>,
    pub destination: Option<Arc<NodeKey>>,
    pub start: u64,
    pub end: u64,
    pub error: bool,
    pub peer: Option<Arc<str>>,
    pub flags: u8,
}

impl Facts {
    pub fn of(span: &Span, nodes: &mut Nodes, flags: u8) -> Facts {
        Facts {
            trace: span.trace_id,
            span_id: span.span_id,
            parent: span.parent_span_id,
            service: nodes.service(&span.service.name, span.service.namespace.as_deref()),
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

/// Whether later spans may refer to a span of this kind and operation in a way pairing cares
/// about: produce and consume spans, and CLIENT calls.
pub fn pairable(kind: SpanKind, operation: Option<Operation>) -> bool {
    matches!(operation, Some(Operation::Produce | Operation::Consume))
        || (kind == SpanKind::Client && operation.is_none())
}
