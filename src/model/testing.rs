//! Span builders for unit tests (the store suite, the accounting rules, the SQLite store).

use super::{Messaging, Operation, ServiceRef, Span, SpanId, SpanKind, StatusCode, TraceId};

/// A fixed time base for test spans (2027).
pub const T0: u64 = 1_800_000_000_000_000_000;

/// A span builder: `svc`, `kind`, ids from small numbers.
pub fn span(trace: u8, id: u8, parent: Option<u8>, svc: &str, kind: SpanKind) -> Span {
    Span {
        trace_id: TraceId([trace; 16]),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        service: ServiceRef {
            name: svc.into(),
            namespace: None,
            instance: None,
        },
        kind,
        name: format!("{svc} op"),
        start_unix_nanos: T0 + id as u64 * 1_000_000,
        end_unix_nanos: T0 + id as u64 * 1_000_000 + 500_000,
        status: StatusCode::Unset,
        status_message: String::new(),
        attributes: vec![],
        resource: Default::default(),
        scope: String::new(),
        events: vec![],
        links: vec![],
        messaging: None,
        peer: None,
    }
}

pub fn msg(mut s: Span, dest: &str, op: Operation) -> Span {
    s.messaging = Some(Messaging {
        system: "kafka".into(),
        destination: dest.into(),
        operation: op,
        consumer_group: None,
        message_id: None,
        conversation_id: None,
        temporary: false,
        batch_count: None,
        partition: None,
    });
    s
}
