//! Lays one trace out as a waterfall: rows in tree order (children under their parent, a
//! consume under the publish it is tied to by a span link when it has no parent in the trace),
//! bars positioned as percentages of the trace, and each asynchronous hop made explicit: the
//! time between a publish and each of its consumes is the message's time in the broker.
//! Pure: no IO, unit-tested.

use super::format;
use crate::model::StoredSpan;
use std::collections::{HashMap, HashSet};

/// A publish that a consume row is tied to, and the broker segment drawn before the consume.
pub struct Hop {
    pub from_span_id: String,
    pub from_service: String,
    pub gap_left_pct: String,
    pub gap_width_pct: String,
    /// Publish start to consume start, as the topology's edge latency measures it.
    pub delay: String,
}

pub struct LinkItem {
    pub trace_id: String,
    pub span_id: String,
    pub same_trace: bool,
}

pub struct EventItem {
    pub offset: String,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

pub struct Row {
    pub span_id: String,
    pub parent_span_id: String,
    pub depth: usize,
    pub indent_px: usize,
    pub service: String,
    pub name: String,
    pub kind: String,
    pub role: &'static str,
    pub destination: String,
    pub system: String,
    pub error: bool,
    pub status_message: String,
    pub start: String,
    pub duration: String,
    pub left_pct: String,
    pub width_pct: String,
    /// The duration label sits left of the bar when the bar starts late in the trace.
    pub flip_text: bool,
    pub hop: Option<Hop>,
    /// Consume rows tied to this publish: (span id, service).
    pub consumers: Vec<(String, String)>,
    /// For a request publish (action/response): the replies its service consumed, as
    /// (span id, service, delay from the request's publish).
    pub responses: Vec<(String, String, String)>,
    pub attributes: Vec<(String, String)>,
    pub resource: Vec<(String, String)>,
    pub events: Vec<EventItem>,
    pub links: Vec<LinkItem>,
}

pub struct Waterfall {
    pub start: String,
    pub duration: String,
    pub services: Vec<String>,
    pub hops: usize,
    pub errors: usize,
    pub rows: Vec<Row>,
    /// Axis labels at 0, 25, 50, 75 and 100 %.
    pub ticks: Vec<(String, String)>,
}

fn is_produce(s: &StoredSpan) -> bool {
    match &s.messaging {
        Some(m) => m.operation == "produce",
        None => s.kind == crate::model::SpanKind::Producer,
    }
}

fn is_consume(s: &StoredSpan) -> bool {
    match &s.messaging {
        Some(m) => m.operation == "consume",
        None => s.kind == crate::model::SpanKind::Consumer,
    }
}

/// `(trace id, span id)` of each link of a span, as stored.
fn links(s: &StoredSpan) -> Vec<(String, String)> {
    let Some(list) = s.links.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|l| {
            Some((
                l.get("trace_id")?.as_str()?.to_string(),
                l.get("span_id")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The publish in this trace that a consume span is tied to: its parent, else a link.
fn producer_of(
    s: &StoredSpan,
    by_id: &HashMap<String, usize>,
    spans: &[StoredSpan],
) -> Option<usize> {
    if !is_consume(s) {
        return None;
    }
    let trace = s.trace_id.to_hex();
    let parent = s.parent_span_id.map(|p| p.to_hex());
    let linked = links(s)
        .into_iter()
        .filter(|(t, _)| *t == trace)
        .map(|(_, id)| id);
    parent
        .into_iter()
        .chain(linked)
        .filter_map(|id| by_id.get(&id).copied())
        .find(|&i| is_produce(&spans[i]))
}

/// Action/response: for each publish `p`, the consumes by `p`'s own service of messages
/// published while a consumer of `p` handled it (searched in that consumer's subtree).
fn responses(
    spans: &[StoredSpan],
    producers: &[Option<usize>],
    children: &HashMap<Option<usize>, Vec<usize>>,
) -> HashMap<usize, Vec<usize>> {
    const MAX_VISIT: usize = 256;
    let mut out: HashMap<usize, Vec<usize>> = HashMap::new();
    for (c, p) in producers.iter().enumerate() {
        let Some(p) = *p else { continue };
        let mut stack = vec![c];
        let mut visited = HashSet::new();
        while let Some(x) = stack.pop() {
            if visited.len() >= MAX_VISIT || !visited.insert(x) {
                continue;
            }
            let reply = x != c
                && producers[x].is_some_and(|px| px != p)
                && spans[x].service == spans[p].service;
            if reply {
                out.entry(p).or_default().push(x);
            }
            if let Some(kids) = children.get(&Some(x)) {
                stack.extend(kids);
            }
        }
    }
    out
}

fn pct(value: u64, start: u64, total: u64) -> f64 {
    (value.saturating_sub(start)) as f64 * 100.0 / total as f64
}

pub fn build(mut spans: Vec<StoredSpan>) -> Waterfall {
    spans.sort_by_key(|s| (s.start_unix_nanos, s.end_unix_nanos));
    let start = spans.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.end_unix_nanos)
        .max()
        .unwrap_or(start);
    let total = (end - start).max(1);
    let by_id: HashMap<String, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.to_hex(), i))
        .collect();
    let producers: Vec<Option<usize>> = spans
        .iter()
        .map(|s| producer_of(s, &by_id, &spans))
        .collect();
    // Tree parent for ordering: the parent span, else the linked publish.
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let parent = s
            .parent_span_id
            .and_then(|p| by_id.get(&p.to_hex()).copied())
            .or(producers[i])
            .filter(|&p| p != i);
        children.entry(parent).or_default().push(i);
    }
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    let mut seen = HashSet::new();
    let mut stack: Vec<(usize, usize)> = children
        .get(&None)
        .map(|r| r.iter().rev().map(|&i| (i, 0)).collect())
        .unwrap_or_default();
    while let Some((i, depth)) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        order.push((i, depth));
        if let Some(kids) = children.get(&Some(i)) {
            stack.extend(kids.iter().rev().map(|&k| (k, depth + 1)));
        }
    }
    // Spans only reachable through a cycle of parents still get a row.
    for i in 0..spans.len() {
        if seen.insert(i) {
            order.push((i, 0));
        }
    }
    let mut replies = responses(&spans, &producers, &children);
    let mut consumers: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for (i, p) in producers.iter().enumerate() {
        if let Some(p) = p {
            consumers
                .entry(*p)
                .or_default()
                .push((spans[i].span_id.to_hex(), spans[i].service.clone()));
        }
    }
    let rows: Vec<Row> = order
        .iter()
        .map(|&(i, depth)| {
            let hop = producers[i].map(|p| {
                let (publish, consume) = (&spans[p], &spans[i]);
                let gap_from = publish.end_unix_nanos.min(consume.start_unix_nanos);
                let gap_to = consume.start_unix_nanos;
                Hop {
                    from_span_id: publish.span_id.to_hex(),
                    from_service: publish.service.clone(),
                    gap_left_pct: format!("{:.3}", pct(gap_from, start, total)),
                    gap_width_pct: format!("{:.3}", pct(gap_to, gap_from, total)),
                    delay: format::micros(
                        consume
                            .start_unix_nanos
                            .saturating_sub(publish.start_unix_nanos)
                            as f64
                            / 1000.0,
                    ),
                }
            });
            let mut r = row(
                &spans[i],
                depth,
                start,
                total,
                hop,
                consumers.remove(&i).unwrap_or_default(),
            );
            r.responses = replies
                .remove(&i)
                .unwrap_or_default()
                .into_iter()
                .map(|x| {
                    let delay = spans[x]
                        .start_unix_nanos
                        .saturating_sub(spans[i].start_unix_nanos);
                    (
                        spans[x].span_id.to_hex(),
                        spans[x].service.clone(),
                        format::micros(delay as f64 / 1000.0),
                    )
                })
                .collect();
            r
        })
        .collect();
    let mut services: Vec<String> = spans.iter().map(|s| s.service.clone()).collect();
    services.sort();
    services.dedup();
    let ticks = (0..=4)
        .map(|q| {
            (
                format!("{}", q * 25),
                format::micros((total as f64 / 1000.0) * q as f64 / 4.0),
            )
        })
        .collect();
    Waterfall {
        start: format::time(start),
        duration: format::micros(total as f64 / 1000.0),
        services,
        hops: producers.iter().filter(|p| p.is_some()).count(),
        errors: rows.iter().filter(|r| r.error).count(),
        rows,
        ticks,
    }
}

fn row(
    s: &StoredSpan,
    depth: usize,
    start: u64,
    total: u64,
    hop: Option<Hop>,
    consumers: Vec<(String, String)>,
) -> Row {
    let trace = s.trace_id.to_hex();
    let events = s
        .events
        .as_array()
        .map(|list| {
            list.iter()
                .map(|e| EventItem {
                    offset: format::micros(
                        e.get("time_unix_nanos")
                            .and_then(|t| t.as_u64())
                            .unwrap_or(s.start_unix_nanos)
                            .saturating_sub(s.start_unix_nanos) as f64
                            / 1000.0,
                    ),
                    name: e.get("name").map(format::value).unwrap_or_default(),
                    attributes: e.get("attributes").map(format::pairs).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    let role = if is_produce(s) {
        "publish"
    } else if is_consume(s) {
        "consume"
    } else {
        ""
    };
    Row {
        span_id: s.span_id.to_hex(),
        parent_span_id: s.parent_span_id.map(|p| p.to_hex()).unwrap_or_default(),
        depth,
        indent_px: depth.min(24) * 14,
        service: s.service.clone(),
        name: s.name.clone(),
        kind: serde_json::to_value(s.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        role,
        destination: s
            .messaging
            .as_ref()
            .map(|m| m.destination.clone())
            .unwrap_or_default(),
        system: s
            .messaging
            .as_ref()
            .map(|m| m.system.clone())
            .unwrap_or_default(),
        error: s.status == crate::model::StatusCode::Error,
        status_message: s.status_message.clone().unwrap_or_default(),
        start: format::micros(s.start_unix_nanos.saturating_sub(start) as f64 / 1000.0),
        duration: format::micros(s.duration_micros as f64),
        left_pct: format!("{:.3}", pct(s.start_unix_nanos, start, total)),
        flip_text: pct(s.start_unix_nanos, start, total) > 60.0,
        width_pct: format!(
            "{:.3}",
            pct(s.end_unix_nanos, s.start_unix_nanos, total).max(0.2)
        ),
        hop,
        consumers,
        responses: Vec::new(),
        attributes: format::pairs(&s.attributes),
        resource: format::pairs(&s.resource),
        events,
        links: links(s)
            .into_iter()
            .map(|(t, id)| LinkItem {
                same_trace: t == trace,
                trace_id: t,
                span_id: id,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoredMessaging;
    use crate::model::{SpanId, SpanKind, StatusCode, TraceId};
    use serde_json::json;

    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

    fn span(
        id: &str,
        parent: Option<&str>,
        kind: SpanKind,
        op: Option<&'static str>,
        start_ms: u64,
        end_ms: u64,
    ) -> StoredSpan {
        StoredSpan {
            trace_id: TraceId::from_hex(TRACE).unwrap(),
            span_id: SpanId::from_hex(id).unwrap(),
            parent_span_id: parent.map(|p| SpanId::from_hex(p).unwrap()),
            service: format!("svc-{id}"),
            service_namespace: None,
            service_instance: None,
            name: "op".into(),
            kind,
            start_unix_nanos: 1_000_000_000_000 + start_ms * 1_000_000,
            end_unix_nanos: 1_000_000_000_000 + end_ms * 1_000_000,
            duration_micros: (end_ms - start_ms) * 1000,
            status: StatusCode::Unset,
            status_message: None,
            scope: None,
            messaging: op.map(|operation| StoredMessaging {
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

    #[test]
    fn consumes_hang_under_their_publish_with_the_broker_gap() {
        let publish = span(
            "00000000000000a1",
            None,
            SpanKind::Producer,
            Some("produce"),
            0,
            10,
        );
        let child = span(
            "00000000000000a2",
            Some("00000000000000a1"),
            SpanKind::Consumer,
            Some("consume"),
            40,
            50,
        );
        let mut linked = span(
            "00000000000000a3",
            None,
            SpanKind::Consumer,
            Some("consume"),
            90,
            100,
        );
        linked.links = json!([{"trace_id": TRACE, "span_id": "00000000000000a1", "attributes": {}},
                              {"trace_id": "ffffffffffffffffffffffffffffffff", "span_id": "00000000000000ff", "attributes": {}}]);
        let w = build(vec![linked, child, publish]);
        let order: Vec<(&str, usize)> = w
            .rows
            .iter()
            .map(|r| (r.span_id.as_str(), r.depth))
            .collect();
        assert_eq!(
            order,
            [
                ("00000000000000a1", 0),
                ("00000000000000a2", 1),
                ("00000000000000a3", 1)
            ]
        );
        assert_eq!(w.hops, 2);
        let hop = w.rows[1].hop.as_ref().unwrap();
        assert_eq!(
            (hop.gap_left_pct.as_str(), hop.gap_width_pct.as_str()),
            ("10.000", "30.000")
        );
        assert_eq!(hop.delay, "40.0 ms");
        assert_eq!(w.rows[0].consumers.len(), 2);
        assert_eq!(w.rows[0].role, "publish");
        let links = &w.rows[2].links;
        assert!(links[0].same_trace && !links[1].same_trace);
        assert_eq!(
            w.rows[0].attributes,
            [
                ("k".to_string(), "v".to_string()),
                ("n".to_string(), "3".to_string())
            ]
        );
        assert_eq!(w.duration, "100.0 ms");
        assert!(w.rows[2].flip_text);
    }

    #[test]
    fn a_reply_consumed_by_the_requester_is_the_response() {
        let mut request = span(
            "00000000000000c1",
            None,
            SpanKind::Producer,
            Some("produce"),
            0,
            1,
        );
        request.service = "wallet".into();
        let mut handle = span(
            "00000000000000c2",
            Some("00000000000000c1"),
            SpanKind::Consumer,
            Some("consume"),
            2,
            6,
        );
        handle.service = "identity".into();
        let mut reply = span(
            "00000000000000c3",
            Some("00000000000000c2"),
            SpanKind::Producer,
            Some("produce"),
            4,
            5,
        );
        reply.service = "identity".into();
        let mut got = span(
            "00000000000000c4",
            Some("00000000000000c3"),
            SpanKind::Consumer,
            Some("consume"),
            8,
            9,
        );
        got.service = "wallet".into();
        let w = build(vec![request, handle, reply, got]);
        assert_eq!(
            w.rows[0].responses,
            [(
                "00000000000000c4".to_string(),
                "wallet".to_string(),
                "8.0 ms".to_string()
            )]
        );
        assert!(
            w.rows[2].responses.is_empty(),
            "the reply has no response of its own"
        );
    }

    #[test]
    fn a_parent_cycle_still_shows_every_span() {
        let a = span(
            "00000000000000b1",
            Some("00000000000000b2"),
            SpanKind::Internal,
            None,
            0,
            5,
        );
        let b = span(
            "00000000000000b2",
            Some("00000000000000b1"),
            SpanKind::Internal,
            None,
            1,
            4,
        );
        let w = build(vec![a, b]);
        assert_eq!(w.rows.len(), 2);
        assert_eq!(w.hops, 0);
    }
}
