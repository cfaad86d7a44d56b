//! Spans as the store gives them back: one trace's spans, trace summaries, linking spans, and
//! the trace search's query and answer. Plain values shared by every store implementation.

use super::{SpanId, TimeWindow, TraceId};
use serde::Serialize;

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
    pub scope: Option<String>,
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
    pub operation: &'static str,
    pub consumer_group: Option<String>,
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
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
    /// Produce -> consume hops: consume spans whose parent or a link is a produce span of
    /// this trace.
    pub hops: i64,
}

/// Whole traces read for an analysis over many of them (pathways), newest first, and which
/// bound stopped the reading.
#[derive(Clone, Debug, Default)]
pub struct TraceSet {
    /// Each trace's spans, oldest first; a backend may leave attributes, events and resource
    /// empty (`null`).
    pub traces: Vec<Vec<StoredSpan>>,
    /// False when the search stopped at its bound (as [`TraceSearch::complete`]).
    pub search_complete: bool,
    /// The deadline came before every trace found was read.
    pub out_of_time: bool,
}

/// A span of another trace that links to a given trace: the trace and the span's label.
#[derive(Clone, Debug, Serialize)]
pub struct LinkingSpan {
    pub trace_id: TraceId,
    pub service: String,
    pub name: String,
}

/// Service, destination, operation, attribute and status must hold on one span together
/// (as in Jaeger); the span must start in the window.
#[derive(Clone, Debug, Default)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub destination: Option<String>,
    /// A span name (operation).
    pub operation: Option<String>,
    /// An attribute `key` with this value (compared as text: numbers and booleans as JSON).
    pub attribute: Option<(String, String)>,
    /// Only spans with status error.
    pub errors_only: bool,
    pub window: Option<TimeWindow>,
    pub limit: usize,
}

/// The traces found, newest first, and whether the search covered everything it had to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TraceSearch {
    pub traces: Vec<TraceSummary>,
    /// False when the search stopped at its bound on decoding (the SQLite store decodes at most 128 blocks, for at most 30 ms)
    /// before it could tell that no newer match remained: matches in the blocks it did not
    /// read may be missing, some newer than the last one listed.
    pub complete: bool,
}
