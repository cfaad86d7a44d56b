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
    /// Where the broker segment starts and how long it is, in percent of the trace.
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
    /// The service's node id (`service:[namespace/]name`), for its page.
    pub service_id: String,
    /// The service's colour, an index into the page's palette.
    pub color: usize,
    /// For the inner span of nested spans of one message: the outer span's id (the row is
    /// folded into that one).
    pub folded_into: String,
    /// Inner spans of the same message folded into this row.
    pub folds: usize,
    /// Whether rows hang under this one (it can be collapsed).
    pub has_children: bool,
    pub name: String,
    pub kind: String,
    pub role: &'static str,
    pub destination: String,
    pub system: String,
    pub error: bool,
    pub status_message: String,
    /// An error row's reason (`error.type`: `nack`, `redelivered`, ...), shown on its label.
    pub reason: String,
    /// From the trace's start (`+12.0 ms`), or a time when the trace's start is not known.
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

/// One consumer's receipt of a message, formatted.
pub struct DeliveryItem {
    pub span_id: String,
    pub service: String,
    pub service_id: String,
    pub destination: String,
    pub wait: String,
    pub duration: String,
    pub error: bool,
}

/// One message of the trace, formatted: its publish, who received it and who did not.
pub struct MessageItem {
    pub span_id: String,
    pub service: String,
    pub destination: String,
    pub system: String,
    pub message_id: String,
    /// Publish spans of this message in the trace (nested ones counted).
    pub spans: usize,
    /// The first [`DELIVERIES_SHOWN`] receipts (every consume row is in the waterfall).
    pub deliveries: Vec<DeliveryItem>,
    /// Receipts beyond those shown.
    pub more_deliveries: usize,
    pub missing: Vec<String>,
    /// (reply consume span id, service, round trip).
    pub responses: Vec<(String, String, String)>,
}

pub struct Waterfall {
    pub start: String,
    pub duration: String,
    /// (service, node id, colour), sorted by name.
    pub services: Vec<(String, String, usize)>,
    pub hops: usize,
    pub errors: usize,
    pub rows: Vec<Row>,
    /// Rows shown (spans less the inner spans of nested ones, which are folded).
    pub logical_spans: usize,
    pub messages: Vec<MessageItem>,
    /// First and last span start and end, unix nanos (for the window of links).
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    /// The trace's length in nanoseconds (at least 1), for the axis the script redraws.
    pub total_nanos: u64,
    /// Axis labels at 0, 25, 50, 75 and 100 %.
    pub ticks: Vec<(String, String)>,
}

fn pct(value: u64, start: u64, total: u64) -> f64 {
    (value.saturating_sub(start)) as f64 * 100.0 / total as f64
}

/// Receipts of one message listed in its journey (a fan-out to thousands stays readable and
/// the page small); the waterfall still has a row for each.
pub const DELIVERIES_SHOWN: usize = 200;

/// Colours of the palette (`svc-c0` .. in the style sheet).
pub const PALETTE: usize = 12;

/// The node id of a span's service.
fn service_id(s: &StoredSpan) -> String {
    crate::model::NodeKey::service(&s.service, s.service_namespace.as_deref()).id
}

/// `subscribers(system, destination)`: the services the topology says consume from a
/// destination, to name those a message did not reach.
pub fn build(
    mut spans: Vec<StoredSpan>,
    subscribers: impl Fn(&str, &str) -> Vec<String>,
) -> Waterfall {
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
    let mut services: Vec<(String, String, usize)> = spans
        .iter()
        .map(|s| (s.service.clone(), service_id(s), 0))
        .collect();
    services.sort();
    services.dedup();
    for (k, s) in services.iter_mut().enumerate() {
        s.2 = k % PALETTE;
    }
    let color = |s: &StoredSpan| {
        let id = service_id(s);
        services
            .binary_search_by(|x| (x.0.as_str(), x.1.as_str()).cmp(&(s.service.as_str(), &id)))
            .map(|k| k % PALETTE)
            .unwrap_or(0)
    };
    let mut folds: HashMap<usize, usize> = HashMap::new();
    for i in 0..spans.len() {
        if let Some(o) = journey.nested_in(i) {
            *folds.entry(o).or_default() += 1;
        }
    }
    let mut rows: Vec<Row> = tree_order(&journey, spans.len())
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
            r.color = color(&spans[i]);
            r.folds = folds.get(&i).copied().unwrap_or(0);
            r.folded_into = journey
                .nested_in(i)
                .map(|o| spans[o].span_id.to_hex())
                .unwrap_or_default();
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
    for k in 1..rows.len() {
        if rows[k].depth > rows[k - 1].depth {
            rows[k - 1].has_children = true;
        }
    }
    let messages = journey
        .messages(subscribers)
        .into_iter()
        .map(|m| message_item(&spans, m))
        .collect();
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
        logical_spans: rows.iter().filter(|r| r.folded_into.is_empty()).count(),
        rows,
        messages,
        start_unix_nanos: start,
        end_unix_nanos: end,
        total_nanos: total,
        ticks,
    }
}

fn message_item(spans: &[StoredSpan], m: flow::Message) -> MessageItem {
    MessageItem {
        span_id: spans[m.publish].span_id.to_hex(),
        service: m.service,
        destination: m.destination.unwrap_or_default(),
        system: m.system.unwrap_or_default(),
        message_id: m.message_id.unwrap_or_default(),
        spans: 1 + m.nested.len(),
        more_deliveries: m.deliveries.len().saturating_sub(DELIVERIES_SHOWN),
        deliveries: m
            .deliveries
            .into_iter()
            .take(DELIVERIES_SHOWN)
            .map(|d| DeliveryItem {
                span_id: spans[d.consume].span_id.to_hex(),
                service_id: service_id(&spans[d.consume]),
                service: d.service,
                destination: d.destination.unwrap_or_default(),
                wait: format::micros(d.wait_micros),
                duration: format::micros(d.duration_micros as f64),
                error: d.error,
            })
            .collect(),
        missing: m.missing,
        responses: m
            .replies
            .into_iter()
            .map(|x| {
                (
                    x.reply_consume_span_id.to_hex(),
                    x.service,
                    format::micros(x.round_trip_micros),
                )
            })
            .collect(),
    }
}

/// Rows in tree order with their depth: each span under the span it follows, roots in time
/// order; spans only reachable through a cycle of parents still get a row. What hangs under
/// the inner span of nested spans of one message hangs under the outer one (whose row shows
/// the message), the inner span's row right under it.
fn tree_order(journey: &Journey<'_>, len: usize) -> Vec<(usize, usize)> {
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for i in 0..len {
        let under = journey
            .follows(i)
            .map(|p| journey.nested_in(p).unwrap_or(p));
        children.entry(under).or_default().push(i);
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

/// One span's row for its details alone (`GET /traces/{id}/spans/{span}`): what the span
/// holds, without what only the whole trace tells (depth, hop, consumers, responses: the page's
/// script adds those from its rows). Starts at an offset from `trace_start`, else at its time.
pub fn details_row(s: &StoredSpan, trace_start: Option<u64>) -> Row {
    let mut r = row(
        s,
        0,
        trace_start.unwrap_or(s.start_unix_nanos),
        1,
        None,
        Vec::new(),
    );
    if trace_start.is_none() {
        r.start = format!("{} UTC", format::time(s.start_unix_nanos));
    }
    r
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
        service_id: service_id(s),
        color: 0,
        folded_into: String::new(),
        folds: 0,
        has_children: false,
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
        reason: s
            .attributes
            .get(crate::model::messaging::ERROR_TYPE)
            .and_then(|v| v.as_str())
            .filter(|_| s.status == crate::model::StatusCode::Error)
            .unwrap_or_default()
            .to_string(),
        start: format!(
            "+{}",
            format::micros(s.start_unix_nanos.saturating_sub(start) as f64 / 1000.0)
        ),
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
        let w = build(
            vec![
                linked,
                consume(0xa2).under(0xa1).at(40, 50),
                publish(0xa1).at(0, 10),
            ],
            |_, _| Vec::new(),
        );
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
        let w = build(
            vec![
                publish(0xc1).at(0, 1).by("wallet"),
                consume(0xc2).under(0xc1).at(2, 6).by("identity"),
                publish(0xc3).under(0xc2).at(4, 5).by("identity"),
                consume(0xc4).under(0xc3).at(8, 9).by("wallet"),
            ],
            |_, _| Vec::new(),
        );
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
    fn a_span_alone_starts_from_the_trace_start_it_is_given() {
        let s = consume(0xe1).under(0xe0).at(40, 50);
        let start = s.start_unix_nanos - 40_000_000;
        let r = details_row(&s, Some(start));
        assert_eq!(
            (r.start.as_str(), r.duration.as_str()),
            ("+40.0 ms", "10.0 ms")
        );
        assert_eq!(r.parent_span_id, "00000000000000e0");
        assert!(r.hop.is_none() && r.consumers.is_empty());
        assert_eq!(r.attributes.len(), 2);
        let alone = details_row(&s, None);
        assert!(alone.start.ends_with(" UTC"), "{}", alone.start);
    }

    #[test]
    fn a_parent_cycle_still_shows_every_span() {
        let w = build(
            vec![
                span(0xb1, SpanKind::Internal, None).under(0xb2).at(0, 5),
                span(0xb2, SpanKind::Internal, None).under(0xb1).at(1, 4),
            ],
            |_, _| Vec::new(),
        );
        assert_eq!(w.rows.len(), 2);
        assert_eq!(w.hops, 0);
    }

    #[test]
    fn a_nested_publish_folds_into_its_outer_row_and_its_consumers_hang_under_that() {
        let w = build(
            vec![
                publish(0xd1).at(0, 10).by("orders"),
                publish(0xd2).under(0xd1).at(1, 9).by("orders"),
                consume(0xd3).under(0xd2).at(20, 30).by("shipping"),
            ],
            |_, _| vec!["shipping".to_string(), "billing".to_string()],
        );
        let rows: Vec<(&str, usize, &str, usize)> = w
            .rows
            .iter()
            .map(|r| (r.span_id.as_str(), r.depth, r.folded_into.as_str(), r.folds))
            .collect();
        assert_eq!(
            rows,
            [
                ("00000000000000d1", 0, "", 1),
                ("00000000000000d2", 1, "00000000000000d1", 0),
                ("00000000000000d3", 1, "", 0),
            ]
        );
        assert_eq!(w.logical_spans, 2);
        assert_eq!(w.messages.len(), 1);
        let m = &w.messages[0];
        assert_eq!((m.spans, m.deliveries.len()), (2, 1));
        assert_eq!(m.deliveries[0].wait, "19.0 ms");
        assert_eq!(m.missing, ["billing"]);
        let colors: Vec<(&str, usize)> = w.services.iter().map(|s| (s.0.as_str(), s.2)).collect();
        assert_eq!(colors, [("orders", 0), ("shipping", 1)]);
        assert_eq!(w.rows[2].color, 1);
    }
}
