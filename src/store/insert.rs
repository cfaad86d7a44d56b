//! The span INSERT, with bound parameters only.

use crate::model::span::AttrMap;
use crate::model::{Attributes, Span};
use rusqlite::{params, Transaction};

/// A span with its JSON columns already encoded, so the writer thread only binds values.
pub struct Prepared {
    pub span: Span,
    pub attributes: Option<String>,
    pub events: Option<String>,
    pub links: Option<String>,
}

/// Encodes the JSON columns; runs on the caller's thread, off the single writer.
pub fn prepare(spans: Vec<Span>) -> Vec<Prepared> {
    spans
        .into_iter()
        .map(|span| Prepared {
            attributes: attributes_json(&span.attributes),
            events: (!span.events.is_empty())
                .then(|| serde_json::to_string(&span.events).unwrap_or_default()),
            links: (!span.links.is_empty())
                .then(|| serde_json::to_string(&span.links).unwrap_or_default()),
            span,
        })
        .collect()
}

/// Inserts a span unless (trace_id, span_id) is already stored; returns its row id if new.
pub fn insert_span(
    tx: &Transaction<'_>,
    prepared: &Prepared,
    resource_id: Option<i64>,
    flags: i64,
) -> rusqlite::Result<Option<i64>> {
    let span = &prepared.span;
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO spans (trace_id, trace_key, span_key, parent_key, service, service_namespace, service_instance,
         resource_id, scope, name, kind, start_unix_nanos, end_unix_nanos, status_code, status_message, msg_system,
         msg_destination, msg_operation, msg_consumer_group, msg_message_id, msg_conversation_id, peer, attributes,
         events, links, flags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
    )?;
    let m = span.messaging.as_ref();
    let changed = stmt.execute(params![
        span.trace_id.as_bytes(),
        span.trace_id.key(),
        span.span_id.key(),
        span.parent_span_id.map(|p| p.key()),
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
        prepared.attributes,
        prepared.events,
        prepared.links,
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
