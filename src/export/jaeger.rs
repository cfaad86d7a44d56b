//! Pure conversions to the JSON of Jaeger's query API (the shapes `jaeger-ui` and Grafana's
//! Jaeger data source read): a trace with its spans and processes, typed tags, and dependency
//! links between services, those through a broker included.
//!
//! A span's `tags` are its attributes (typed: `string`, `bool`, `int64`, `float64`; arrays and
//! maps as JSON text), then `span.kind`, `otel.status_code`, `otel.status_description`,
//! `error` and `otel.scope.name` as Jaeger's OTLP translation writes them. Its parent is a
//! `CHILD_OF` reference, each span link a `FOLLOWS_FROM`; events are `logs` (the name as the
//! `event` field). One process per service and resource, `p1`, `p2`... in order of first use.

use crate::model::EdgeKind;
use crate::model::{NodeKind, SpanKind, StatusCode, StoredSpan, TopologyRows};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};

/// A Jaeger typed key/value from a JSON attribute value.
pub fn tag(key: &str, v: &Value) -> Value {
    let (kind, value) = match v {
        Value::String(_) => ("string", v.clone()),
        Value::Bool(_) => ("bool", v.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => ("int64", v.clone()),
        Value::Number(_) => ("float64", v.clone()),
        Value::Null => ("string", Value::String(String::new())),
        other => ("string", Value::String(other.to_string())),
    };
    json!({"key": key, "type": kind, "value": value})
}

fn tags_of(attrs: &Value) -> Vec<Value> {
    match attrs {
        Value::Object(map) => map.iter().map(|(k, v)| tag(k, v)).collect(),
        _ => Vec::new(),
    }
}

fn kind_name(kind: SpanKind) -> Option<&'static str> {
    match kind {
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
        SpanKind::Internal => Some("internal"),
        SpanKind::Unspecified => None,
    }
}

/// Jaeger's name of a span kind (`server`, ...; `""` for unspecified), as `spanKind`.
pub fn span_kind(kind: SpanKind) -> &'static str {
    kind_name(kind).unwrap_or("")
}

fn span_tags(s: &StoredSpan) -> Vec<Value> {
    let mut tags = tags_of(&s.attributes);
    let s_tag = |k: &str, v: &str| tag(k, &Value::String(v.to_string()));
    if let Some(k) = kind_name(s.kind) {
        tags.push(s_tag("span.kind", k));
    }
    match s.status {
        StatusCode::Error => {
            tags.push(s_tag("otel.status_code", "ERROR"));
            tags.push(tag("error", &Value::Bool(true)));
        }
        StatusCode::Ok => tags.push(s_tag("otel.status_code", "OK")),
        StatusCode::Unset => {}
    }
    if let Some(m) = s.status_message.as_deref().filter(|m| !m.is_empty()) {
        tags.push(s_tag("otel.status_description", m));
    }
    if let Some(scope) = s.scope.as_deref().filter(|m| !m.is_empty()) {
        tags.push(s_tag("otel.scope.name", scope));
    }
    tags
}

fn references(s: &StoredSpan) -> Vec<Value> {
    let mut refs = Vec::new();
    if let Some(parent) = s.parent_span_id {
        refs.push(json!({"refType": "CHILD_OF", "traceID": s.trace_id.to_hex(), "spanID": parent.to_hex()}));
    }
    if let Value::Array(links) = &s.links {
        for l in links {
            if let (Some(t), Some(id)) = (l["trace_id"].as_str(), l["span_id"].as_str()) {
                refs.push(json!({"refType": "FOLLOWS_FROM", "traceID": t, "spanID": id}));
            }
        }
    }
    refs
}

fn logs(s: &StoredSpan) -> Vec<Value> {
    let Value::Array(events) = &s.events else {
        return Vec::new();
    };
    events
        .iter()
        .map(|e| {
            let mut fields = vec![tag("event", &e["name"])];
            fields.extend(tags_of(&e["attributes"]));
            json!({"timestamp": e["time_unix_nanos"].as_u64().unwrap_or(0) / 1_000, "fields": fields})
        })
        .collect()
}

fn process_tags(s: &StoredSpan) -> Vec<Value> {
    let mut tags = tags_of(&s.resource);
    let s_tag = |k: &str, v: &str| tag(k, &Value::String(v.to_string()));
    if let Some(ns) = &s.service_namespace {
        tags.push(s_tag("service.namespace", ns));
    }
    if let Some(i) = &s.service_instance {
        tags.push(s_tag("service.instance.id", i));
    }
    tags
}

/// One trace as Jaeger's `/api/traces/{id}` lists it (`spans` in the order given).
pub fn trace(spans: &[StoredSpan]) -> Value {
    let mut pids: HashMap<(String, String), String> = HashMap::new();
    let mut processes = Map::new();
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        let tags = process_tags(s);
        let key = (s.service.clone(), Value::Array(tags.clone()).to_string());
        let next = pids.len() + 1;
        let pid = pids
            .entry(key)
            .or_insert_with(|| {
                let pid = format!("p{next}");
                processes.insert(pid.clone(), json!({"serviceName": s.service, "tags": tags}));
                pid
            })
            .clone();
        out.push(json!({
            "traceID": s.trace_id.to_hex(),
            "spanID": s.span_id.to_hex(),
            "flags": 1,
            "operationName": s.name,
            "references": references(s),
            "startTime": s.start_unix_nanos / 1_000,
            "duration": s.duration_micros,
            "tags": span_tags(s),
            "logs": logs(s),
            "processID": pid,
            "warnings": Value::Null,
        }));
    }
    let trace_id = spans
        .first()
        .map(|s| s.trace_id.to_hex())
        .unwrap_or_default();
    json!({"traceID": trace_id, "spans": out, "processes": processes, "warnings": Value::Null})
}

/// The text a tag value compares as: strings as they are, other values as JSON.
fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether a span of a converted trace (from [`trace`]) matches the search: of `service`,
/// named `operation` (when given), lasting within the bounds, and carrying every tag (on the
/// span or its process).
pub fn span_matches(
    trace: &Value,
    span: &Value,
    service: &str,
    operation: Option<&str>,
    (min_micros, max_micros): (u64, u64),
    tags: &[(String, String)],
) -> bool {
    let process = &trace["processes"][span["processID"].as_str().unwrap_or("")];
    if process["serviceName"].as_str() != Some(service) {
        return false;
    }
    if operation.is_some_and(|op| span["operationName"].as_str() != Some(op)) {
        return false;
    }
    let d = span["duration"].as_u64().unwrap_or(0);
    if d < min_micros || d > max_micros {
        return false;
    }
    let has = |list: &Value, k: &str, v: &str| {
        list.as_array().is_some_and(|l| {
            l.iter()
                .any(|t| t["key"].as_str() == Some(k) && as_text(&t["value"]) == v)
        })
    };
    tags.iter()
        .all(|(k, v)| has(&span["tags"], k, v) || has(&process["tags"], k, v))
}

/// A dependency link as Jaeger's `/api/dependencies` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DependencyLink {
    pub parent: String,
    pub child: String,
    #[serde(rename = "callCount")]
    pub call_count: u64,
}

/// Service-to-service links of a window: calls (a client span answered by another service's
/// server span) and messages through a broker (a producer's message consumed by another
/// service), summed per pair of service names, sorted.
pub fn dependencies(rows: &TopologyRows) -> Vec<DependencyLink> {
    let names: HashMap<&str, &str> = rows
        .nodes
        .iter()
        .filter(|n| n.key.kind == NodeKind::Service)
        .map(|n| (n.key.id.as_str(), n.key.name.as_str()))
        .collect();
    let name = |id: &str| -> Option<String> {
        names.get(id).map(|n| n.to_string()).or_else(|| {
            let rest = id.strip_prefix("service:")?;
            Some(rest.rsplit_once('/').map_or(rest, |(_, n)| n).to_string())
        })
    };
    let mut links: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in &rows.edges {
        if !matches!(e.kind, EdgeKind::Call | EdgeKind::Dependency) || e.count <= 0 {
            continue;
        }
        if let (Some(parent), Some(child)) = (name(&e.from), name(&e.to)) {
            *links.entry((parent, child)).or_default() += e.count as u64;
        }
    }
    links
        .into_iter()
        .map(|((parent, child), call_count)| DependencyLink {
            parent,
            child,
            call_count,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeKey, NodeRow, SpanId, TraceId};

    fn stored(id: u8, parent: Option<u8>, service: &str) -> StoredSpan {
        StoredSpan {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.map(|p| SpanId([p; 8])),
            service: service.into(),
            service_namespace: None,
            service_instance: Some("i-1".into()),
            name: format!("op {id}"),
            kind: SpanKind::Consumer,
            start_unix_nanos: 1_700_000_000_123_456_789,
            end_unix_nanos: 1_700_000_000_125_456_789,
            duration_micros: 2_000,
            status: StatusCode::Error,
            status_message: Some("boom".into()),
            scope: None,
            messaging: None,
            peer: None,
            attributes: json!({"n": 3, "f": 1.5, "b": true, "s": "x", "a": [1, 2]}),
            resource: json!({"host.name": "h"}),
            events: json!([{"time_unix_nanos": 1_700_000_000_124_000_000u64, "name": "retry", "attributes": {"attempt": 2}}]),
            links: json!([{"trace_id": "0102030405060708090a0b0c0d0e0f10", "span_id": "0102030405060708", "attributes": {}}]),
        }
    }

    #[test]
    fn spans_have_jaeger_shapes_typed_tags_and_references() {
        let t = trace(&[
            stored(1, None, "a"),
            stored(2, Some(1), "b"),
            stored(3, Some(1), "a"),
        ]);
        let s = &t["spans"][1];
        assert_eq!(t["traceID"], "07070707070707070707070707070707");
        assert_eq!(s["spanID"], "0202020202020202");
        assert_eq!(s["startTime"], 1_700_000_000_123_456u64);
        assert_eq!(s["duration"], 2_000);
        assert_eq!(
            s["references"][0],
            json!({"refType": "CHILD_OF", "traceID": "07070707070707070707070707070707", "spanID": "0101010101010101"})
        );
        assert_eq!(s["references"][1]["refType"], "FOLLOWS_FROM");
        let tags = s["tags"].as_array().unwrap();
        let find = |k: &str| tags.iter().find(|t| t["key"] == k).unwrap().clone();
        assert_eq!(find("n"), json!({"key": "n", "type": "int64", "value": 3}));
        assert_eq!(find("f")["type"], "float64");
        assert_eq!(find("b")["type"], "bool");
        assert_eq!(
            find("a"),
            json!({"key": "a", "type": "string", "value": "[1,2]"})
        );
        assert_eq!(find("span.kind")["value"], "consumer");
        assert_eq!(find("error")["value"], true);
        assert_eq!(s["logs"][0]["timestamp"], 1_700_000_000_124_000u64);
        assert_eq!(
            s["logs"][0]["fields"][0],
            json!({"key": "event", "type": "string", "value": "retry"})
        );
        // One process per service (and resource), shared by its spans.
        assert_eq!(t["spans"][0]["processID"], "p1");
        assert_eq!(t["spans"][2]["processID"], "p1");
        assert_eq!(s["processID"], "p2");
        assert_eq!(t["processes"]["p2"]["serviceName"], "b");
        let ok = |tags: &[(String, String)]| span_matches(&t, s, "b", None, (0, u64::MAX), tags);
        assert!(ok(&[
            ("n".into(), "3".into()),
            ("host.name".into(), "h".into())
        ]));
        assert!(!ok(&[("n".into(), "4".into())]));
        assert!(!span_matches(&t, s, "b", None, (2_001, u64::MAX), &[]));
    }

    #[test]
    fn dependencies_sum_calls_and_messages_per_service_pair() {
        use crate::model::{sketch::Sketch, EdgeRow};
        let node = |name: &str| NodeRow {
            key: NodeKey::service(name, Some("shop")),
            spans: 1,
            errors: 0,
        };
        let edge = |from: &str, to: &str, kind, count| EdgeRow {
            from: from.into(),
            to: to.into(),
            kind,
            via: String::new(),
            count,
            errors: 0,
            latency_sum_micros: 0,
            latency: Sketch::new(),
            first_seen_unix_nanos: 0,
            last_seen_unix_nanos: 0,
            instances: 0,
        };
        let rows = TopologyRows {
            nodes: vec![node("a"), node("b")],
            edges: vec![
                edge("service:shop/a", "service:shop/b", EdgeKind::Dependency, 4),
                edge("service:shop/a", "service:shop/b", EdgeKind::Call, 1),
                edge(
                    "service:shop/a",
                    "destination:rabbitmq:q",
                    EdgeKind::Publish,
                    9,
                ),
                edge("service:shop/b", "service:c", EdgeKind::Call, 2),
            ],
            ..Default::default()
        };
        let d = dependencies(&rows);
        assert_eq!(
            d,
            vec![
                DependencyLink {
                    parent: "a".into(),
                    child: "b".into(),
                    call_count: 5
                },
                DependencyLink {
                    parent: "b".into(),
                    child: "c".into(),
                    call_count: 2
                },
            ]
        );
    }
}
