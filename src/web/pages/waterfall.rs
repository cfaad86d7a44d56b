//! Lays one trace out as a waterfall: rows in tree order (children under their parent, a
//! consume under the publish it is tied to by a span link when it has no parent in the trace),
//! bars positioned as percentages of the trace, and each asynchronous hop that [`crate::flow`]
//! finds made explicit: the time between a publish and each of its consumes is the message's
//! time in the broker. Pure: no IO, unit-tested.

use super::format;
use crate::flow::{self, Journey};
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
    let journey = flow::follow(&spans);
    let mut consumers: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        if let Some(p) = journey.producer(i) {
            consumers
                .entry(p)
                .or_default()
                .push((s.span_id.to_hex(), s.service.clone()));
        }
    }
    let rows: Vec<Row> = tree_order(&journey, spans.len())
        .into_iter()
        .map(|(i, depth)| {
            let hop = hop(&journey, &spans, i, start, total);
            let mut r = row(
                &spans[i],
                depth,
                start,
                total,
                hop,
                consumers.remove(&i).unwrap_or_default(),
            );
            r.responses = journey
                .replies_to(i)
                .into_iter()
                .map(|x| {
                    (
                        x.reply_consume_span_id.to_hex(),
                        x.service,
                        format::micros(x.round_trip_micros),
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
        hops: journey.hop_count(),
        errors: rows.iter().filter(|r| r.error).count(),
        rows,
        ticks,
    }
}

/// Rows in tree order with their depth: each span under the span it follows, roots in time
/// order; spans only reachable through a cycle of parents still get a row.
fn tree_order(journey: &Journey<'_>, len: usize) -> Vec<(usize, usize)> {
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for i in 0..len {
        children.entry(journey.follows(i)).or_default().push(i);
    }
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(len);
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
    for i in 0..len {
        if seen.insert(i) {
            order.push((i, 0));
        }
    }
    order
}

/// The broker segment drawn before consume `i`: from the publish's end (or the consume's start,
/// if that is earlier) to the consume's start.
fn hop(
    journey: &Journey<'_>,
    spans: &[StoredSpan],
    i: usize,
    start: u64,
    total: u64,
) -> Option<Hop> {
    let p = journey.producer(i)?;
    let found = journey.hop(i)?;
    let gap_from = spans[p].end_unix_nanos.min(spans[i].start_unix_nanos);
    let gap_to = spans[i].start_unix_nanos;
    Some(Hop {
        from_span_id: found.publish_span_id.to_hex(),
        from_service: found.publish_service,
        gap_left_pct: format!("{:.3}", pct(gap_from, start, total)),
        gap_width_pct: format!("{:.3}", pct(gap_to, gap_from, total)),
        delay: format::micros(found.broker_wait_micros),
    })
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
    let role = if flow::is_publish(s) {
        "publish"
    } else if flow::is_consume(s) {
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
        links: flow::links(s)
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
    use crate::flow::sample::{consume, publish, span, Change, TRACE};
    use crate::model::SpanKind;

    #[test]
    fn consumes_hang_under_their_publish_with_the_broker_gap() {
        let linked = consume(0xa3)
            .at(90, 100)
            .linked(TRACE, 0xa1)
            .linked("ffffffffffffffffffffffffffffffff", 0xff);
        let w = build(vec![
            linked,
            consume(0xa2).under(0xa1).at(40, 50),
            publish(0xa1).at(0, 10),
        ]);
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
        let w = build(vec![
            publish(0xc1).at(0, 1).by("wallet"),
            consume(0xc2).under(0xc1).at(2, 6).by("identity"),
            publish(0xc3).under(0xc2).at(4, 5).by("identity"),
            consume(0xc4).under(0xc3).at(8, 9).by("wallet"),
        ]);
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
        let w = build(vec![
            span(0xb1, SpanKind::Internal, None).under(0xb2).at(0, 5),
            span(0xb2, SpanKind::Internal, None).under(0xb1).at(1, 4),
        ]);
        assert_eq!(w.rows.len(), 2);
        assert_eq!(w.hops, 0);
    }
}
