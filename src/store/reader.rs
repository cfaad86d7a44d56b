//! Read queries: topology rows for a window, trace search, one trace.

use super::StoreError;
use crate::model::{EdgeKind, NodeKey, NodeKind, SpanId, TimeWindow, TraceId};
use crate::topology::sketch::Sketch;
use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug)]
pub struct EdgeRow {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub via: String,
    pub count: i64,
    pub errors: i64,
    pub latency_sum_micros: i64,
    pub latency: Sketch,
    pub first_seen_unix_nanos: u64,
    pub last_seen_unix_nanos: u64,
    /// Distinct instances of the consuming service (consume edges only).
    pub instances: i64,
}

#[derive(Clone, Debug)]
pub struct NodeRow {
    pub key: NodeKey,
    /// Spans the service emitted in the window (0 for other kinds).
    pub spans: i64,
    pub errors: i64,
}

/// Everything the topology needs for one window, merged over its minutes.
#[derive(Clone, Debug, Default)]
pub struct TopologyRows {
    pub nodes: Vec<NodeRow>,
    pub edges: Vec<EdgeRow>,
}

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
    Ok(TopologyRows { nodes, edges })
}

#[derive(Clone, Debug, Default)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub destination: Option<String>,
    pub window: Option<TimeWindow>,
    pub limit: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_unix_nanos: u64,
    pub duration_micros: u64,
    pub span_count: i64,
    pub error_count: i64,
    pub services: Vec<String>,
    pub destinations: Vec<String>,
}

/// The most recent traces matching the query, newest first.
pub fn search_traces(conn: &Connection, q: &TraceQuery) -> Result<Vec<TraceSummary>, StoreError> {
    let (since, until) = q
        .window
        .map(|w| (w.since_unix_nanos as i64, w.until_unix_nanos as i64))
        .unwrap_or((0, i64::MAX));
    let (sql, key) = match (&q.destination, &q.service) {
        (Some(d), _) => ("SELECT trace_id, service FROM spans WHERE msg_destination = ?1 AND start_unix_nanos >= ?2 AND start_unix_nanos < ?3 ORDER BY start_unix_nanos DESC", Some(d.clone())),
        (None, Some(s)) => ("SELECT trace_id, service FROM spans WHERE service = ?1 AND start_unix_nanos >= ?2 AND start_unix_nanos < ?3 ORDER BY start_unix_nanos DESC", Some(s.clone())),
        (None, None) => ("SELECT trace_id, service FROM spans WHERE ?1 IS NULL AND start_unix_nanos >= ?2 AND start_unix_nanos < ?3 ORDER BY start_unix_nanos DESC", None),
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params![key, since, until])?;
    let mut ids: Vec<Vec<u8>> = Vec::new();
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    while let Some(r) = rows.next()? {
        let id: Vec<u8> = r.get(0)?;
        let service: String = r.get(1)?;
        if q.destination.is_some() && q.service.as_ref().is_some_and(|s| *s != service) {
            continue;
        }
        if seen.insert(id.clone()) {
            ids.push(id);
            if ids.len() >= q.limit {
                break;
            }
        }
    }
    ids.iter()
        .filter_map(|id| summary(conn, id).transpose())
        .collect()
}

fn summary(conn: &Connection, trace_id: &[u8]) -> Result<Option<TraceSummary>, StoreError> {
    let Ok(tid) = TraceId::from_bytes(trace_id) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT parent_key, service, name, start_unix_nanos, end_unix_nanos, status_code, msg_destination FROM spans
         WHERE trace_key = ?1 AND trace_id = ?2 ORDER BY start_unix_nanos",
    )?;
    let mut rows = stmt.query(params![tid.key(), trace_id])?;
    let mut s = TraceSummary {
        trace_id: tid,
        root_service: None,
        root_name: None,
        start_unix_nanos: u64::MAX,
        duration_micros: 0,
        span_count: 0,
        error_count: 0,
        services: vec![],
        destinations: vec![],
    };
    let mut end = 0u64;
    while let Some(r) = rows.next()? {
        let parent: Option<i64> = r.get(0)?;
        let service: String = r.get(1)?;
        let start = r.get::<_, i64>(3)? as u64;
        if parent.is_none() && s.root_name.is_none() {
            s.root_service = Some(service.clone());
            s.root_name = Some(r.get(2)?);
        }
        s.start_unix_nanos = s.start_unix_nanos.min(start);
        end = end.max(r.get::<_, i64>(4)? as u64);
        s.span_count += 1;
        s.error_count += (r.get::<_, i64>(5)? == 2) as i64;
        if !s.services.contains(&service) {
            s.services.push(service);
        }
        if let Some(d) = r.get::<_, Option<String>>(6)? {
            if !s.destinations.contains(&d) {
                s.destinations.push(d);
            }
        }
    }
    if s.span_count == 0 {
        return Ok(None);
    }
    s.duration_micros = end.saturating_sub(s.start_unix_nanos) / 1_000;
    Ok(Some(s))
}

/// One stored span as the API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StoredSpan {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub service: String,
    pub service_namespace: Option<String>,
    pub service_instance: Option<String>,
    pub name: String,
    pub kind: crate::model::SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub duration_micros: u64,
    pub status: crate::model::StatusCode,
    pub status_message: Option<String>,
    pub messaging: Option<StoredMessaging>,
    pub peer: Option<String>,
    pub attributes: serde_json::Value,
    pub resource: serde_json::Value,
    pub events: serde_json::Value,
    pub links: serde_json::Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct StoredMessaging {
    pub system: String,
    pub destination: String,
    pub operation: String,
    pub consumer_group: Option<String>,
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
}

/// Every span of one trace, oldest first.
pub fn trace(conn: &Connection, trace_id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.span_key, s.parent_key, s.service, s.service_namespace, s.service_instance, s.name, s.kind,
                s.start_unix_nanos, s.end_unix_nanos, s.status_code, s.status_message, s.msg_system, s.msg_destination,
                s.msg_operation, s.msg_consumer_group, s.msg_message_id, s.msg_conversation_id, s.peer, s.attributes,
                r.attributes, s.events, s.links
         FROM spans s LEFT JOIN resources r ON r.id = s.resource_id WHERE s.trace_key = ?1 AND s.trace_id = ?2 ORDER BY s.start_unix_nanos, s.id",
    )?;
    let json = |text: Option<String>, empty: serde_json::Value| {
        text.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(empty)
    };
    let spans = stmt
        .query_map(params![trace_id.key(), trace_id.as_bytes()], |r| {
            let start = r.get::<_, i64>(7)? as u64;
            let end = r.get::<_, i64>(8)? as u64;
            let system: Option<String> = r.get(11)?;
            let messaging = match (system, r.get::<_, Option<String>>(12)?) {
                (Some(system), Some(destination)) => Some(StoredMessaging {
                    system,
                    destination,
                    operation: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
                    consumer_group: r.get(14)?,
                    message_id: r.get(15)?,
                    conversation_id: r.get(16)?,
                }),
                _ => None,
            };
            Ok(StoredSpan {
                trace_id,
                span_id: SpanId::from_key(r.get(0)?).unwrap_or(SpanId([0xff; 8])),
                parent_span_id: r.get::<_, Option<i64>>(1)?.and_then(SpanId::from_key),
                service: r.get(2)?,
                service_namespace: r.get(3)?,
                service_instance: r.get(4)?,
                name: r.get(5)?,
                kind: crate::model::SpanKind::from_i32(r.get(6)?),
                start_unix_nanos: start,
                end_unix_nanos: end,
                duration_micros: end.saturating_sub(start) / 1_000,
                status: crate::model::StatusCode::from_i32(r.get(9)?),
                status_message: r.get(10)?,
                messaging,
                peer: r.get(17)?,
                attributes: json(r.get(18)?, serde_json::json!({})),
                resource: json(r.get(19)?, serde_json::json!({})),
                events: json(r.get(20)?, serde_json::json!([])),
                links: json(r.get(21)?, serde_json::json!([])),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(spans)
}

/// Span count and database size, for `/api/stats` and the bench.
pub fn span_count(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM spans", [], |r| r.get(0))?)
}
