//! Trace summaries for search results, from the few columns of their spans a summary needs.

use super::client::Client;
use super::reader::{json, query, span_ids, TRACE_SPANS};
use super::sql::Value;
use crate::model::{Operation, SpanId, StatusCode, TraceId, TraceSummary};
use crate::store::StoreError;
use std::collections::HashSet;

/// What a summary reads of a span: not its resource, events, scope or other text, and of
/// its attributes only whether it delivers a message again (found by ClickHouse): a search's summaries read a
/// fraction of the bytes of its traces' whole spans.
#[derive(serde::Deserialize)]
struct SummaryRow {
    trace: String,
    span: String,
    parent: String,
    service: String,
    name: String,
    status: i32,
    msg_destination: String,
    msg_operation: String,
    links: String,
    start: u64,
    end: u64,
    again: u8,
}

pub(super) struct SummarySpan {
    pub(super) trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    service: String,
    name: String,
    error: bool,
    /// The messaging operation and destination (a messaging span).
    messaging: Option<(&'static str, String)>,
    /// The span ids its links point to (hex).
    linked: Vec<String>,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
    /// A redelivery or a replay: the same message again, not another hop.
    again: bool,
}

impl SummaryRow {
    fn span(self) -> Option<SummarySpan> {
        let links = json(&self.links, serde_json::json!([]));
        let linked = links
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|l| l["span_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let (trace_id, span_id, parent_span_id) = span_ids(&self.trace, &self.span, &self.parent)?;
        Some(SummarySpan {
            trace_id,
            span_id,
            parent_span_id,
            service: self.service,
            name: self.name,
            error: StatusCode::from_i32(self.status) == StatusCode::Error,
            messaging: Operation::parse(&self.msg_operation)
                .map(|op| (op.as_str(), self.msg_destination)),
            linked,
            start_unix_nanos: self.start,
            end_unix_nanos: self.end,
            again: self.again != 0,
        })
    }
}

/// The spans of some traces as their summaries need them, each once (of a span stored
/// again marked failed, the failed copy, as the trace read).
/// Pairing's flags of a consume that delivers a message again (as the SQLite store's
/// summaries read them).
const AGAIN_FLAGS: u8 =
    crate::accounting::facts::FLAG_REDELIVERY | crate::accounting::facts::FLAG_REPLAY;

pub(super) fn spans(client: &Client, traces: Vec<TraceId>) -> Result<Vec<SummarySpan>, StoreError> {
    let ids = traces.into_iter().map(Value::Trace).collect();
    let again = [
        crate::model::messaging::REDELIVERED,
        crate::model::messaging::REPLAY,
    ];
    let q = query(
        &format!(
            "SELECT hex(trace_id) AS trace, hex(span_id) AS span, hex(parent_span_id) AS parent,
             service, name, status, msg_destination, msg_operation, links,
             start_unix_nanos AS start, end_unix_nanos AS end,
             visitParamExtractRaw(attributes, ?) = 'true'
             OR visitParamExtractRaw(attributes, ?) = 'true'
             OR bitAnd(flags, {AGAIN_FLAGS}) != 0 AS again
             FROM spans WHERE trace_id IN ? ORDER BY trace_id, span_id, status DESC
             LIMIT 1 BY trace_id, span_id LIMIT {TRACE_SPANS}"
        ),
        &[Value::Str(again[0]), Value::Str(again[1]), Value::List(ids)],
    )?;
    Ok(client
        .rows::<SummaryRow>(&q)?
        .into_iter()
        .filter_map(SummaryRow::span)
        .collect())
}

/// A trace's summary from its spans.
pub(super) fn summarize(trace_id: TraceId, mut spans: Vec<SummarySpan>) -> Option<TraceSummary> {
    spans.sort_by_key(|s| (s.start_unix_nanos, s.span_id));
    let first = spans.first()?;
    let root = spans
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .unwrap_or(first);
    let start = spans.iter().map(|s| s.start_unix_nanos).min().unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.end_unix_nanos)
        .max()
        .unwrap_or(start);
    let mut services: Vec<String> = Vec::new();
    let mut destinations: Vec<String> = Vec::new();
    for s in &spans {
        if !services.contains(&s.service) {
            services.push(s.service.clone());
        }
        if let Some((_, destination)) = &s.messaging {
            if !destinations.contains(destination) {
                destinations.push(destination.clone());
            }
        }
    }
    let is =
        |s: &SummarySpan, op: Operation| s.messaging.as_ref().is_some_and(|m| m.0 == op.as_str());
    let producers: HashSet<String> = spans
        .iter()
        .filter(|s| is(s, Operation::Produce))
        .map(|s| s.span_id.to_hex())
        .collect();
    let hops = spans
        .iter()
        .filter(|s| is(s, Operation::Consume) && !s.again)
        .filter(|s| {
            s.parent_span_id
                .is_some_and(|p| producers.contains(&p.to_hex()))
                || s.linked.iter().any(|id| producers.contains(id))
        })
        .count() as i64;
    Some(TraceSummary {
        trace_id,
        root_service: Some(root.service.clone()),
        root_name: Some(root.name.clone()),
        start_unix_nanos: start,
        duration_micros: end.saturating_sub(start) / 1_000,
        span_count: spans.len() as i64,
        error_count: spans.iter().filter(|s| s.error).count() as i64,
        services,
        destinations,
        hops,
    })
}
