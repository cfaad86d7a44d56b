//! The ClickHouse side of pairing (`accounting::pairing::Backlog`), for one writer's group:
//! older spans read back from `spans` (with their latest `span_flags`), spans waiting for one
//! not stored yet (`pending_refs`, settled ones in `pending_done`), and flag changes. What a
//! group produces is buffered here and inserted by the writer with the group's spans; a wait
//! settled within the group is never inserted at all.
//!
//! Within one collector this pairs in any arrival order. Across collectors sharing the
//! database it can miss: two collectors that receive a publish and its consume at the same
//! moment each look before the other's insert landed, and both wait. docs/SCALE.md describes
//! the reconciliation pass that pairs those.

use super::client::{Client, ClientError};
use super::rowbinary::Rows;
use super::sql::{render, Value};
use crate::accounting::memory::Nodes;
use crate::accounting::pairing::{Backlog, Facts};
use crate::model::{Operation, SpanId, SpanKind, StatusCode, TraceId};
use std::sync::Arc;

/// A wait recorded in this group: the referred span, the waiting span's facts, expiry.
pub struct Wait {
    pub ref_trace: TraceId,
    pub ref_span: SpanId,
    pub facts: Facts,
    pub expires: u64,
}

/// What a group adds to the pairing tables, inserted with its spans.
#[derive(Default)]
pub struct GroupBacklog {
    pub waits: Vec<Wait>,
    /// (referred trace, referred span, waiting trace, waiting span, day of the wait).
    pub done: Vec<(TraceId, SpanId, TraceId, SpanId, u64)>,
    /// (trace, span, new flags, version, the span's start).
    pub flags: Vec<(TraceId, SpanId, u8, u64, u64)>,
    /// Spans stored earlier found failed now (trace, span, new flags): [`mark_failed`].
    pub failed: Vec<(TraceId, SpanId, u8)>,
}

impl GroupBacklog {
    pub fn clear(&mut self) {
        self.waits.clear();
        self.done.clear();
        self.flags.clear();
        self.failed.clear();
    }
}

/// Pairing's backlog for one group: ClickHouse for what earlier groups stored, the group's
/// own buffers for the rest.
pub struct ChBacklog<'a> {
    pub client: &'a Client,
    pub group: &'a mut GroupBacklog,
    /// Version of the next flag change (increasing across the writer's life).
    pub flag_version: &'a mut u64,
}

/// A span's pairing facts as a query returns them.
#[derive(serde::Deserialize)]
struct FactsRow {
    trace: String,
    span: String,
    parent: String,
    service: String,
    namespace: String,
    /// The service instance (the waiting list does not keep it: `None`).
    #[serde(default)]
    instance: Option<String>,
    kind: i32,
    operation: String,
    system: String,
    destination: String,
    start: u64,
    end: u64,
    error: u8,
    peer: String,
    flags: u8,
    /// A consume's attributes, where the query reads them (its partition).
    #[serde(default)]
    attributes: Option<String>,
}

impl FactsRow {
    fn facts(self, nodes: &mut Nodes) -> Option<Facts> {
        let parent = SpanId::from_hex(&self.parent).ok();
        let operation = Operation::parse(&self.operation);
        Some(Facts {
            trace: TraceId::from_hex(&self.trace).ok()?,
            span_id: SpanId::from_hex(&self.span).ok()?,
            parent: parent.filter(|p| p.0 != [0; 8]),
            service: nodes.service(
                &self.service,
                Some(self.namespace.as_str()).filter(|n| !n.is_empty()),
            ),
            instance: self.instance.map(Arc::from),
            kind: SpanKind::from_i32(self.kind),
            operation,
            destination: operation.map(|_| nodes.destination(&self.system, &self.destination)),
            start: self.start,
            end: self.end,
            error: self.error != 0,
            peer: Some(self.peer).filter(|p| !p.is_empty()).map(Arc::from),
            flags: self.flags,
            partition: self
                .attributes
                .as_deref()
                .filter(|a| !a.is_empty())
                .and_then(crate::accounting::facts::partition_in_attributes),
        })
    }
}

const STORED: &str =
    "SELECT hex(trace_id) AS trace, hex(span_id) AS span, hex(parent_span_id) AS parent,
    service, service_namespace AS namespace, service_instance AS instance, kind,
    msg_operation AS operation, msg_system AS system,
    msg_destination AS destination, start_unix_nanos AS start, end_unix_nanos AS end,
    toUInt8(status = ?) AS error, peer, flags,
    if(msg_operation = 'consume', attributes, '') AS attributes
    FROM spans WHERE trace_id = ? AND span_id = ? LIMIT 1";

const STORED_FLAGS: &str = "SELECT argMax(flags, version) AS flags FROM span_flags
    WHERE trace_id = ? AND span_id = ? GROUP BY trace_id, span_id";

const WAITING: &str = "SELECT hex(trace_id) AS trace, hex(span_id) AS span, hex(parent_span_id) AS parent,
    service, namespace, kind, operation, system, destination, start_unix_nanos AS start,
    end_unix_nanos AS end, error, peer, flags, toUInt16(day) AS day
    FROM pending_refs WHERE ref_trace = ? AND ref_span = ?
    AND (trace_id, span_id) NOT IN (SELECT trace_id, span_id FROM pending_done WHERE ref_trace = ? AND ref_span = ?)
    LIMIT 1 BY trace_id, span_id LIMIT 10000";

fn template(e: super::sql::TemplateError) -> ClientError {
    ClientError::BadAnswer(e.to_string())
}

impl Backlog for ChBacklog<'_> {
    type Error = ClientError;

    fn stored(
        &mut self,
        nodes: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> Result<Option<Facts>, ClientError> {
        let q = render(
            STORED,
            &[
                Value::U64(StatusCode::Error.as_i32() as u64),
                Value::Trace(trace),
                Value::Span(span),
            ],
        )
        .map_err(template)?;
        let Some(row) = self.client.rows::<FactsRow>(&q)?.into_iter().next() else {
            return Ok(None);
        };
        let Some(mut facts) = row.facts(nodes) else {
            return Ok(None);
        };
        #[derive(serde::Deserialize)]
        struct F {
            flags: u8,
        }
        let q =
            render(STORED_FLAGS, &[Value::Trace(trace), Value::Span(span)]).map_err(template)?;
        if let Some(f) = self.client.rows::<F>(&q)?.into_iter().next() {
            facts.flags = f.flags;
        }
        // A change made earlier in this group, not inserted yet.
        if let Some(&(_, _, flags, _, _)) = self
            .group
            .flags
            .iter()
            .rev()
            .find(|(t, s, _, _, _)| *t == trace && *s == span)
        {
            facts.flags = flags;
        }
        Ok(Some(facts))
    }

    fn wait(
        &mut self,
        trace: TraceId,
        span: SpanId,
        waiting: &Facts,
        expires_unix_nanos: u64,
    ) -> Result<(), ClientError> {
        self.group.waits.push(Wait {
            ref_trace: trace,
            ref_span: span,
            facts: waiting.clone(),
            expires: expires_unix_nanos,
        });
        Ok(())
    }

    fn take_waiting(
        &mut self,
        nodes: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> Result<Vec<Facts>, ClientError> {
        let mut out = Vec::new();
        // Waits of this group: settled before they are ever inserted.
        let waits = std::mem::take(&mut self.group.waits);
        for w in waits {
            if w.ref_trace == trace && w.ref_span == span {
                out.push(w.facts);
            } else {
                self.group.waits.push(w);
            }
        }
        let q = render(
            WAITING,
            &[
                Value::Trace(trace),
                Value::Span(span),
                Value::Trace(trace),
                Value::Span(span),
            ],
        )
        .map_err(template)?;
        #[derive(serde::Deserialize)]
        struct W {
            #[serde(flatten)]
            facts: FactsRow,
            day: u64,
        }
        for w in self.client.rows::<W>(&q)? {
            let day = w.day * 86_400_000_000_000;
            if let Some(f) = w.facts.facts(nodes) {
                self.group.done.push((trace, span, f.trace, f.span_id, day));
                out.push(f);
            }
        }
        Ok(out)
    }

    fn flags_changed(&mut self, f: &Facts) -> Result<(), ClientError> {
        *self.flag_version += 1;
        self.group
            .flags
            .push((f.trace, f.span_id, f.flags, *self.flag_version, f.start));
        Ok(())
    }

    fn failed_later(&mut self, f: &Facts) -> Result<(), ClientError> {
        self.group.failed.push((f.trace, f.span_id, f.flags));
        Ok(())
    }
}

/// A stored span as [`mark_failed`] reads it.
#[derive(serde::Deserialize)]
struct StatusRow {
    status: i32,
    status_message: String,
    attributes: String,
}

const FAILED_SPAN: &str = "SELECT status, status_message, attributes FROM spans
    WHERE trace_id = ? AND span_id = ? ORDER BY status DESC LIMIT 1";

/// The search index's error terms of a span marked failed after it was stored (its row was
/// indexed as it was then): written before the copy, as the writer indexes before it stores.
fn failed_terms() -> String {
    format!(
        "INSERT INTO {table} ({columns})
        SELECT day, term, {tick}, 0, trace_id
        FROM (SELECT day, service, start_unix_nanos, trace_id FROM spans
            WHERE trace_id = ? AND span_id = ? LIMIT 1)
        ARRAY JOIN ['e', concat('e:', service)] AS term",
        table = super::index::TABLE,
        columns = super::index::TERM_COLUMNS,
        tick = super::index::tick_sql("start_unix_nanos"),
    )
}

const FAILED_COPY: &str = "INSERT INTO spans (day, trace_id, span_id, parent_span_id,
    start_unix_nanos, end_unix_nanos, service, service_namespace, service_instance, name, kind,
    status, status_message, scope, msg_system, msg_destination, msg_operation,
    msg_consumer_group, msg_message_id, msg_conversation_id, peer, attributes, resource, events,
    links, link_trace_ids, flags)
    SELECT day, trace_id, span_id, parent_span_id, start_unix_nanos, end_unix_nanos, service,
    service_namespace, service_instance, name, kind, toUInt8(?), ?, scope, msg_system,
    msg_destination, msg_operation, msg_consumer_group, msg_message_id, msg_conversation_id,
    peer, ?, resource, events, links, link_trace_ids, toUInt8(?)
    FROM spans WHERE trace_id = ? AND span_id = ? LIMIT 1";

/// Stores again, marked failed (`store::insert::failed_mark`), each span of the group's list
/// stored before it was found failed (after the group's spans, which may hold it). The copy
/// has status `Error`, which reads prefer (`reader::spans_of`); the table keeps the last
/// inserted row when it merges them.
pub fn mark_failed(client: &Client, group: &GroupBacklog) -> Result<(), ClientError> {
    for &(trace, span, flags) in &group.failed {
        let q = render(FAILED_SPAN, &[Value::Trace(trace), Value::Span(span)]).map_err(template)?;
        let Some(row) = client.rows::<StatusRow>(&q)?.into_iter().next() else {
            continue;
        };
        let status = StatusCode::from_i32(row.status);
        let attributes = (!row.attributes.is_empty()).then_some(row.attributes.as_str());
        let Some(mark) =
            crate::store::insert::failed_mark(status, &row.status_message, attributes, flags)
        else {
            continue;
        };
        let q =
            render(&failed_terms(), &[Value::Trace(trace), Value::Span(span)]).map_err(template)?;
        client.execute(&q, true)?;
        let q = render(
            FAILED_COPY,
            &[
                Value::U64(StatusCode::Error.as_i32() as u64),
                Value::Str(&mark.status_message),
                Value::Str(&mark.attributes),
                Value::U64(u64::from(flags)),
                Value::Trace(trace),
                Value::Span(span),
            ],
        )
        .map_err(template)?;
        client.execute(&q, true)?;
    }
    Ok(())
}

/// Encodes the group's pairing rows for their tables.
pub fn encode(group: &GroupBacklog) -> [Rows; 3] {
    let mut flags = Rows::default();
    for &(t, s, f, version, start) in &group.flags {
        flags.date(start).fixed(&t.0).fixed(&s.0).u8(f).u64(version);
        flags.end_row();
    }
    let mut waits = Rows::default();
    for w in &group.waits {
        let f = &w.facts;
        let dest = f.destination.as_deref();
        waits
            .date(f.start)
            .fixed(&w.ref_trace.0)
            .fixed(&w.ref_span.0)
            .fixed(&f.trace.0)
            .fixed(&f.span_id.0)
            .fixed(&f.parent.map_or([0; 8], |p| p.0))
            .str(&f.service.name)
            .str(f.service.namespace.as_deref().unwrap_or(""))
            .u8(f.kind.as_i32() as u8)
            .str(f.operation.map_or("", |o| o.as_str()))
            .str(dest.and_then(|d| d.system.as_deref()).unwrap_or(""))
            .str(dest.map_or("", |d| d.name.as_str()))
            .u64(f.start)
            .u64(f.end)
            .u8(u8::from(f.error))
            .str(f.peer.as_deref().unwrap_or(""))
            .u8(f.flags)
            .u64(w.expires);
        waits.end_row();
    }
    let mut done = Rows::default();
    for &(rt, rs, t, s, day) in &group.done {
        done.date(day)
            .fixed(&rt.0)
            .fixed(&rs.0)
            .fixed(&t.0)
            .fixed(&s.0);
        done.end_row();
    }
    [flags, waits, done]
}

pub const FLAG_COLUMNS: &str = "day, trace_id, span_id, flags, version";
pub const WAIT_COLUMNS: &str = "day, ref_trace, ref_span, trace_id, span_id, parent_span_id, service, namespace, kind, operation, system, destination, start_unix_nanos, end_unix_nanos, error, peer, flags, expires_unix_nanos";
pub const DONE_COLUMNS: &str = "day, ref_trace, ref_span, trace_id, span_id";
