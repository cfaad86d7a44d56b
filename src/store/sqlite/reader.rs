//! Read queries: topology rows for a window, trace search, one trace.

use super::block;
use super::trace_index::Unwritten;
use super::StoreError;
use crate::model::sketch::Sketch;
use crate::model::{
    EdgeKind, EdgeRow, LinkingSpan, NodeKey, NodeKind, NodeRow, SpanId, StoredMessaging,
    StoredSpan, TimeWindow, TopologyRows, TraceId, TraceSummary,
};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

pub fn topology(conn: &Connection, window: TimeWindow) -> Result<TopologyRows, StoreError> {
    let (first, last) = window.minutes();
    let mut merged: BTreeMap<(String, String, i64, String), EdgeRow> = BTreeMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT from_node, to_node, kind, via, count, errors, latency_sum_micros, latency, first_seen_unix_nanos, last_seen_unix_nanos
         FROM edge_minutes WHERE minute BETWEEN ?1 AND ?2",
    )?;
    let mut rows = stmt.query(params![first, last])?;
    while let Some(r) = rows.next()? {
        let (from, to, kind, via): (String, String, i64, String) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let Some(edge_kind) = EdgeKind::from_i64(kind) else {
            continue;
        };
        let blob: Option<Vec<u8>> = r.get(7)?;
        let sketch = Sketch::decode(blob.as_deref().unwrap_or_default());
        let (first_seen, last_seen) = (r.get::<_, i64>(8)? as u64, r.get::<_, i64>(9)? as u64);
        let e = merged
            .entry((from.clone(), to.clone(), kind, via.clone()))
            .or_insert_with(|| EdgeRow {
                from,
                to,
                kind: edge_kind,
                via,
                count: 0,
                errors: 0,
                latency_sum_micros: 0,
                latency: Sketch::new(),
                first_seen_unix_nanos: first_seen,
                last_seen_unix_nanos: last_seen,
                instances: 0,
            });
        e.count += r.get::<_, i64>(4)?;
        e.errors += r.get::<_, i64>(5)?;
        e.latency_sum_micros += r.get::<_, i64>(6)?;
        e.latency.merge(&sketch);
        e.first_seen_unix_nanos = e.first_seen_unix_nanos.min(first_seen);
        e.last_seen_unix_nanos = e.last_seen_unix_nanos.max(last_seen);
    }
    let mut stmt = conn.prepare_cached(
        "SELECT destination, service, COUNT(DISTINCT instance) FROM consumer_instances WHERE minute BETWEEN ?1 AND ?2 GROUP BY destination, service",
    )?;
    let mut rows = stmt.query(params![first, last])?;
    while let Some(r) = rows.next()? {
        let key = (
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            EdgeKind::Consume.as_i64(),
            String::new(),
        );
        if let Some(e) = merged.get_mut(&key) {
            e.instances = r.get(2)?;
        }
    }
    let edges: Vec<EdgeRow> = merged
        .into_values()
        .filter(|e| e.count > 0 || !e.latency.is_empty())
        .collect();

    let mut activity: HashMap<String, (i64, i64)> = HashMap::new();
    let mut stmt = conn.prepare_cached("SELECT service, SUM(spans), SUM(errors) FROM service_minutes WHERE minute BETWEEN ?1 AND ?2 GROUP BY service")?;
    let mut rows = stmt.query(params![first, last])?;
    while let Some(r) = rows.next()? {
        activity.insert(r.get(0)?, (r.get(1)?, r.get(2)?));
    }
    let wanted: HashSet<&str> = edges
        .iter()
        .flat_map(|e| [e.from.as_str(), e.to.as_str()])
        .chain(activity.keys().map(String::as_str))
        .collect();
    let mut nodes = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT id, kind, name, system, namespace FROM nodes")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        if !wanted.contains(id.as_str()) {
            continue;
        }
        let Some(kind) = NodeKind::parse(&r.get::<_, String>(1)?) else {
            continue;
        };
        let (spans, errors) = activity.get(&id).copied().unwrap_or_default();
        nodes.push(NodeRow {
            key: NodeKey {
                id,
                kind,
                name: r.get(2)?,
                system: r.get(3)?,
                namespace: r.get(4)?,
            },
            spans,
            errors,
        });
    }
    nodes.sort_by(|a, b| a.key.id.cmp(&b.key.id));
    Ok(TopologyRows {
        nodes,
        edges,
        brokers: Vec::new(),
        brokers_then: Vec::new(),
    })
}

/// The traced nodes of the window: the ends of its edge rows with traffic and the services with
/// spans, as [`topology`] lists them, without decoding a sketch.
pub fn node_keys(conn: &Connection, window: TimeWindow) -> Result<Vec<NodeKey>, StoreError> {
    let (first, last) = window.minutes();
    let mut stmt = conn.prepare_cached(
        "SELECT id, kind, name, system, namespace FROM nodes WHERE id IN (
           SELECT from_node FROM edge_minutes WHERE minute BETWEEN ?1 AND ?2 AND (count > 0 OR latency IS NOT NULL)
           UNION SELECT to_node FROM edge_minutes WHERE minute BETWEEN ?1 AND ?2 AND (count > 0 OR latency IS NOT NULL)
           UNION SELECT service FROM service_minutes WHERE minute BETWEEN ?1 AND ?2)
         ORDER BY id",
    )?;
    let mut rows = stmt.query(params![first, last])?;
    let mut keys = Vec::new();
    while let Some(r) = rows.next()? {
        let Some(kind) = NodeKind::parse(&r.get::<_, String>(1)?) else {
            continue;
        };
        keys.push(NodeKey {
            id: r.get(0)?,
            kind,
            name: r.get(2)?,
            system: r.get(3)?,
            namespace: r.get(4)?,
        });
    }
    Ok(keys)
}

/// The summary of a trace from its records (no JSON parsed but the links of consumes).
pub(super) fn summarize(trace_id: TraceId, mut spans: Vec<block::Record>) -> Option<TraceSummary> {
    use crate::model::Operation;
    spans.sort_by_key(|s| (s.start, s.span_id));
    let first = spans.first()?;
    let root = spans.iter().find(|s| s.parent.is_none()).unwrap_or(first);
    let start = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let end = spans.iter().map(|s| s.end).max().unwrap_or(start);
    let mut services: Vec<String> = Vec::new();
    let mut destinations: Vec<String> = Vec::new();
    for s in &spans {
        if !services.contains(&s.service) {
            services.push(s.service.clone());
        }
        if let Some(m) = &s.messaging {
            if !destinations.contains(&m.destination) {
                destinations.push(m.destination.clone());
            }
        }
    }
    let is =
        |s: &block::Record, op: Operation| s.messaging.as_ref().is_some_and(|m| m.operation == op);
    let producers: HashSet<String> = spans
        .iter()
        .filter(|s| is(s, Operation::Produce))
        .map(|s| s.span_id.to_hex())
        .collect();
    // A redelivery or a replay is the same message again, not another hop.
    let again = crate::accounting::facts::FLAG_REDELIVERY | crate::accounting::facts::FLAG_REPLAY;
    let hops = spans
        .iter()
        .filter(|s| is(s, Operation::Consume) && s.flags & again == 0)
        .filter(|s| {
            s.parent.is_some_and(|p| producers.contains(&p.to_hex()))
                || json(s.links.as_deref(), serde_json::json!([]))
                    .as_array()
                    .is_some_and(|links| {
                        links.iter().any(|l| {
                            l["span_id"]
                                .as_str()
                                .is_some_and(|id| producers.contains(id))
                        })
                    })
        })
        .count() as i64;
    Some(TraceSummary {
        trace_id,
        root_service: Some(root.service.clone()),
        root_name: Some(root.name.clone()),
        start_unix_nanos: start,
        duration_micros: end.saturating_sub(start) / 1_000,
        span_count: spans.len() as i64,
        error_count: spans
            .iter()
            .filter(|s| s.status == crate::model::StatusCode::Error)
            .count() as i64,
        services,
        destinations,
        hops,
    })
}

/// Blocks read at most when looking for spans that link to a trace.
const LINKING_BLOCKS: usize = 32;
/// How long after a trace's start a span linking to it is looked for.
const LINKING_AFTER_NANOS: u64 = 10 * 60 * 1_000_000_000;

/// Spans of other traces whose links point into `trace_id` (batch consumers, follow-ups),
/// at most `limit` traces. Bounded: the blocks that start within ten minutes after the trace's
/// start, at most 32, each skipped unless its bytes hold the trace id's hex.
pub fn linking_spans(
    conn: &Connection,
    trace_id: TraceId,
    start_unix_nanos: u64,
    limit: usize,
) -> Result<Vec<LinkingSpan>, StoreError> {
    let hex = trace_id.to_hex();
    let until = start_unix_nanos.saturating_add(LINKING_AFTER_NANOS);
    let mut stmt = conn.prepare_cached(
        "SELECT data FROM blocks WHERE max_start_unix_nanos >= ?1 AND min_start_unix_nanos <= ?2
         ORDER BY min_start_unix_nanos LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![
        start_unix_nanos.min(i64::MAX as u64) as i64,
        until.min(i64::MAX as u64) as i64,
        LINKING_BLOCKS as i64
    ])?;
    let mut out: Vec<LinkingSpan> = Vec::new();
    let mut inflater = block::Inflater::default();
    let finder = memchr::memmem::Finder::new(hex.as_bytes());
    while let Some(r) = rows.next()? {
        let rusqlite::types::ValueRef::Blob(data) = r.get_ref(0)? else {
            continue;
        };
        let Ok(inflated) = inflater.inflate(data) else {
            continue;
        };
        if finder.find(inflated).is_none() {
            continue;
        }
        for rec in block::records(inflated) {
            let Ok(s) = block::decode(rec) else { continue };
            let links_here =
                s.trace_id != trace_id && s.links.as_deref().is_some_and(|l| l.contains(&hex));
            if links_here && !out.iter().any(|o| o.trace_id == s.trace_id) {
                out.push(LinkingSpan {
                    trace_id: s.trace_id,
                    service: s.service,
                    name: s.name,
                });
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

fn json(text: Option<&str>, empty: serde_json::Value) -> serde_json::Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(empty)
}

/// The stored blocks that hold spans of these traces, each with the traces it holds of them.
pub(super) type Holding = BTreeMap<i64, foldhash::HashSet<TraceId>>;

pub(super) fn holding(
    conn: &Connection,
    unwritten: &Unwritten,
    ids: &[TraceId],
) -> Result<Holding, StoreError> {
    let mut by_block = Holding::new();
    for &id in ids {
        for block in super::trace_index::blocks_of(conn, unwritten, id.key())? {
            by_block.entry(block).or_default().insert(id);
        }
    }
    Ok(by_block)
}

/// Calls `each` with every stored record of the traces in `blocks` (the trace and the block
/// it is in), reading each block once, newest first, into one buffer. Past `deadline`, no
/// block is read: answers the block it stopped at (it and every older one unread).
pub(super) fn each_record(
    conn: &Connection,
    blocks: &Holding,
    deadline: Option<Instant>,
    mut each: impl FnMut(TraceId, i64, &[u8]),
) -> Result<Option<i64>, StoreError> {
    let mut inflater = block::Inflater::default();
    for (&id, wanted) in blocks.iter().rev() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Some(id));
        }
        let Some(inflated) = inflater.block(conn, id)? else {
            continue;
        };
        for rec in block::records(inflated) {
            // The trace key is the id's first half: the block may hold other traces'.
            let trace = block::record_trace(rec).and_then(|t| TraceId::from_bytes(t).ok());
            if let Some(t) = trace.filter(|t| wanted.contains(t)) {
                each(t, id, rec);
            }
        }
    }
    Ok(None)
}

/// The records of these traces, without their attributes and events unless `full`, reading
/// each block once (a search's results often share blocks).
pub(super) fn records_by_trace(
    conn: &Connection,
    unwritten: &Unwritten,
    ids: &[TraceId],
    full: bool,
) -> Result<foldhash::HashMap<TraceId, Vec<block::Record>>, StoreError> {
    let blocks = holding(conn, unwritten, ids)?;
    let mut read = Tagged::default();
    each_record(conn, &blocks, None, |t, id, rec| {
        decode_into(&mut read, t, id, rec, full)
    })?;
    Ok(newest_copies(&blocks, read))
}

/// Records read by trace, each with the block it was read from.
pub(super) type Tagged = foldhash::HashMap<TraceId, Vec<(i64, block::Record)>>;

/// The records read, one per span ([`keep_newest_copies`] where a trace may hold copies:
/// spans in several blocks, or a failed one).
pub(super) fn newest_copies(
    blocks: &Holding,
    read: Tagged,
) -> foldhash::HashMap<TraceId, Vec<block::Record>> {
    let mut out: foldhash::HashMap<TraceId, Vec<block::Record>> = Default::default();
    for (t, mut records) in read {
        let copies_possible = blocks.values().filter(|w| w.contains(&t)).count() > 1
            || records
                .iter()
                .any(|(_, r)| r.status == crate::model::StatusCode::Error);
        if copies_possible && records.len() > 1 {
            keep_newest_copies(&mut records);
        }
        out.insert(t, records.into_iter().map(|(_, r)| r).collect());
    }
    out
}

/// Keeps one record of each span: its newest copy (a span stored again, marked failed after it
/// was stored, see `backlog::Correction`), the last in the newest block that holds it. Blocks
/// come newest first, each's records in the order they were written.
fn keep_newest_copies(records: &mut Vec<(i64, block::Record)>) {
    let mut newest: foldhash::HashMap<crate::model::SpanId, (i64, usize)> = Default::default();
    for (i, (block, r)) in records.iter().enumerate() {
        let place = newest.entry(r.span_id).or_insert((*block, i));
        if (*block, i) > *place {
            *place = (*block, i);
        }
    }
    let mut i = 0;
    records.retain(|(_, r)| {
        let keep = newest.get(&r.span_id).is_some_and(|&(_, at)| at == i);
        i += 1;
        keep
    });
}

/// Decodes a record into its trace's list with its block (a damaged one is logged and left
/// out).
pub(super) fn decode_into(out: &mut Tagged, trace: TraceId, block: i64, rec: &[u8], full: bool) {
    match block::decode_with(rec, full) {
        Ok(r) => out.entry(trace).or_default().push((block, r)),
        Err(e) => tracing::warn!(block, error = %e, "skipping a damaged record"),
    }
}

/// The start of each of these traces and the end of its last span (nanoseconds), as
/// [`summarize`] finds them, from the records' fixed heads alone (nothing else decoded).
pub(super) fn times_by_trace(
    conn: &Connection,
    unwritten: &Unwritten,
    ids: &[TraceId],
) -> Result<foldhash::HashMap<TraceId, (u64, u64)>, StoreError> {
    let mut out: foldhash::HashMap<TraceId, (u64, u64)> = Default::default();
    let blocks = holding(conn, unwritten, ids)?;
    each_record(conn, &blocks, None, |t, _, rec| {
        if let Some((start, end)) = block::record_times(rec) {
            let e = out.entry(t).or_insert((start, end));
            *e = (e.0.min(start), e.1.max(end));
        }
    })?;
    Ok(out)
}

/// Every span of one trace, oldest first.
pub fn trace(
    conn: &Connection,
    unwritten: &Unwritten,
    trace_id: TraceId,
) -> Result<Vec<StoredSpan>, StoreError> {
    let mut records = records_by_trace(conn, unwritten, &[trace_id], true)?;
    let mut resources: HashMap<i64, serde_json::Value> = HashMap::new();
    let mut spans = Vec::new();
    for r in records.remove(&trace_id).unwrap_or_default() {
        spans.push(full_span(conn, trace_id, r, &mut resources)?);
    }
    spans.sort_by_key(|s| (s.start_unix_nanos, s.span_id));
    Ok(spans)
}

/// A span from its fully decoded record, its resource read once per request (`resources`).
fn full_span(
    conn: &Connection,
    trace_id: TraceId,
    mut r: block::Record,
    resources: &mut HashMap<i64, serde_json::Value>,
) -> Result<StoredSpan, StoreError> {
    let resource = match r.resource_id {
        Some(rid) => match resources.get(&rid) {
            Some(v) => v.clone(),
            None => {
                let text: Option<String> = conn
                    .prepare_cached("SELECT attributes FROM resources WHERE id = ?1")?
                    .query_row(params![rid], |r| r.get(0))
                    .optional()?;
                let v = json(text.as_deref(), serde_json::json!({}));
                resources.insert(rid, v.clone());
                v
            }
        },
        None => serde_json::json!({}),
    };
    // The skeleton's fields, and what it leaves out read here.
    let status_message = r.status_message.take();
    let scope = r.scope.take();
    let attributes = json(r.attributes.take().as_deref(), serde_json::json!({}));
    let events = json(r.events.take().as_deref(), serde_json::json!([]));
    Ok(StoredSpan {
        status_message,
        scope,
        attributes,
        resource,
        events,
        ..skeleton(trace_id, r)
    })
}

/// One span of a trace: its blocks are inflated until the span's record is found, and only
/// that record is decoded (the rest of the trace is neither decoded nor laid out).
pub fn trace_span(
    conn: &Connection,
    unwritten: &Unwritten,
    trace_id: TraceId,
    span_id: SpanId,
) -> Result<Option<StoredSpan>, StoreError> {
    for id in super::trace_index::blocks_of(conn, unwritten, trace_id.key())? {
        let Some(inflated) = block::inflated_block(conn, id)? else {
            continue;
        };
        // The last copy in the newest block holding the span is its newest (see
        // `keep_newest_copies`).
        let found = block::records(&inflated)
            .filter(|rec| {
                block::record_trace(rec) == Some(trace_id.as_bytes())
                    && block::record_span(rec) == Some(span_id.as_bytes())
            })
            .last();
        let Some(rec) = found else { continue };
        match block::decode(rec) {
            Ok(r) => return full_span(conn, trace_id, r, &mut HashMap::new()).map(Some),
            Err(e) => tracing::warn!(block = id, error = %e, "skipping a damaged record"),
        }
    }
    Ok(None)
}

/// A span from its record with what ties it to others and times it (its links parsed); its
/// attributes, events and resource are left empty (`null`).
pub(super) fn skeleton(trace_id: TraceId, r: block::Record) -> StoredSpan {
    StoredSpan {
        trace_id,
        span_id: r.span_id,
        parent_span_id: r.parent,
        service: r.service,
        service_namespace: r.namespace,
        service_instance: r.instance,
        name: r.name,
        kind: r.kind,
        start_unix_nanos: r.start,
        end_unix_nanos: r.end,
        duration_micros: r.end.saturating_sub(r.start) / 1_000,
        status: r.status,
        status_message: None,
        scope: None,
        messaging: r.messaging.map(|m| StoredMessaging {
            system: m.system,
            destination: m.destination,
            operation: m.operation.as_str(),
            consumer_group: m.consumer_group,
            message_id: m.message_id,
            conversation_id: m.conversation_id,
        }),
        peer: r.peer,
        attributes: serde_json::Value::Null,
        resource: serde_json::Value::Null,
        events: serde_json::Value::Null,
        links: json(r.links.as_deref(), serde_json::json!([])),
    }
}

/// Spans in the store.
pub fn span_count(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn.query_row("SELECT COALESCE(SUM(span_count), 0) FROM blocks", [], |r| {
        r.get(0)
    })?;
    // A sum of non-negative counts: never negative in a valid file.
    Ok(u64::try_from(n).unwrap_or(0))
}
