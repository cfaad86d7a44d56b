//! The span INSERT, with bound parameters only.

use crate::model::span::AttrMap;
use crate::model::{Attributes, Span};
use rusqlite::{params, Transaction};

/// Inserts a span unless (trace_id, span_id) is already stored; returns its row id if new.
pub fn insert_span(tx: &Transaction<'_>, span: &Span, resource_id: Option<i64>, flags: i64) -> rusqlite::Result<Option<i64>> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO spans (trace_id, span_id, parent_span_id, service, service_namespace, service_instance,
         resource_id, scope, name, kind, start_unix_nanos, end_unix_nanos, status_code, status_message, msg_system,
         msg_destination, msg_operation, msg_consumer_group, msg_message_id, msg_conversation_id, peer, attributes,
         events, links, flags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?;
    let m = span.messaging.as_ref();
    let events = (!span.events.is_empty()).then(|| serde_json::to_string(&span.events).unwrap_or_default());
    let links = (!span.links.is_empty()).then(|| serde_json::to_string(&span.links).unwrap_or_default());
    let changed = stmt.execute(params![
        span.trace_id.as_bytes(),
        span.span_id.as_bytes(),
        span.parent_span_id.as_ref().map(|p| p.as_bytes()),
        span.service.name,
        span.service.namespace,
        span.service.instance,
        resource_id,
        (!span.scope.is_empty()).then_some(span.scope.as_str()),
        span.name,
        span.kind.as_i32(),
        span.start_unix_nanos as i64,
        span.end_unix_nanos as i64,
        span.status.as_i32(),
        (!span.status_message.is_empty()).then_some(span.status_message.as_str()),
        m.map(|m| m.system.as_str()),
        m.map(|m| m.destination.as_str()),
        m.map(|m| m.operation.as_str()),
        m.and_then(|m| m.consumer_group.as_deref()),
        m.and_then(|m| m.message_id.as_deref()),
        m.and_then(|m| m.conversation_id.as_deref()),
        span.peer,
        attributes_json(&span.attributes),
        events,
        links,
        flags,
    ])?;
    Ok((changed == 1).then(|| tx.last_insert_rowid()))
}

/// Attributes as one JSON object (`null` when there are none).
pub fn attributes_json(attrs: &Attributes) -> Option<String> {
    if attrs.is_empty() {
        return None;
    }
    serde_json::to_string(&AttrMap(attrs)).ok()
}
