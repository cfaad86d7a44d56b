//! The JSON answers of the `--http` server's read API as types. The handlers (`web::api`,
//! `web::live`, `web::error`) serialize them and clients (the `bench` subcommands, the tests)
//! read them back, so both sides agree field for field. The fields of the answers that were
//! once built as JSON objects are in alphabetical order, the order those answers always had.
//! docs/API.md describes each answer.

use crate::flow::{self, Hop, Reply};
use crate::model::TraceId;
use crate::model::{StoredSpan, TraceSummary};
use crate::topology::Node;
use serde::{Deserialize, Serialize};

/// `GET /api/traces`: matching traces, newest first. `T` is the summary: the store's
/// [`TraceSummary`] on the server; a client may read only the fields it needs ([`TraceRef`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceList<T = TraceSummary> {
    /// False when the search stopped at its bound before it could rule out newer matches.
    pub complete: bool,
    /// The `until` of the next, older page (RFC 3339), when the page is full.
    pub older_until: Option<String>,
    pub traces: Vec<T>,
}

/// The fields of a trace summary that a client follows up on.
#[derive(Clone, Debug, Deserialize)]
pub struct TraceRef {
    pub trace_id: TraceId,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_unix_nanos: u64,
}

/// `GET /api/traces/{trace_id}`: every span of one trace, oldest first, and the messages'
/// journeys through it. `S` is the span: the store's [`StoredSpan`] on the server.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TraceAnswer<S = StoredSpan> {
    /// Each consume tied to a publish of this trace, in the order of the consumes.
    pub hops: Vec<Hop>,
    /// Each request answered by a reply that the requester's service consumed.
    pub replies: Vec<Reply>,
    pub spans: Vec<S>,
    pub trace_id: TraceId,
}

impl TraceAnswer {
    pub fn new(trace_id: TraceId, spans: Vec<StoredSpan>) -> TraceAnswer {
        let journey = flow::follow(&spans);
        let (hops, replies) = (journey.hops(), journey.replies());
        TraceAnswer {
            hops,
            replies,
            spans,
            trace_id,
        }
    }
}

/// `GET /api/stats`: spans in the store and the ingest counters since the server started.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub requests_refused: u64,
    pub spans_duplicate: u64,
    pub spans_in_store: u64,
    pub spans_rejected: u64,
    pub spans_stored: u64,
    /// Of `spans_rejected`: spans that started before the retention period.
    #[serde(default)]
    pub spans_expired: u64,
    /// Service, destination and operation names cut to `model::limits::MAX_NAME_CHARS`.
    #[serde(default)]
    pub names_truncated: u64,
    /// Attribute values (and status messages) cut to `model::limits::MAX_VALUE_BYTES`.
    #[serde(default)]
    pub values_truncated: u64,
}

/// The data of a `stored` event of `GET /api/live`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub spans_stored: u64,
}

/// The body of every error answer of the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// The error code (`bad_request`, `not_found`...).
    pub error: String,
    pub message: String,
}

/// The nodes of `GET /api/topology`, for a client that needs only them.
#[derive(Clone, Debug, Deserialize)]
pub struct TopologyNodes {
    pub nodes: Vec<Node>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::sample::{consume, publish, Change};

    #[test]
    fn a_trace_answer_keeps_its_spans_and_adds_the_hops() {
        let spans = vec![publish(1).at(0, 1), consume(2).under(1).at(3, 4)];
        let want_spans = serde_json::to_value(&spans).unwrap();
        let answer = serde_json::to_value(TraceAnswer::new(spans[0].trace_id, spans)).unwrap();
        assert_eq!(answer["spans"], want_spans);
        assert_eq!(answer["trace_id"], crate::flow::sample::TRACE);
        assert_eq!(answer["hops"][0]["consume_span_id"], "0000000000000002");
        assert_eq!(answer["hops"][0]["broker_wait_micros"], 3000.0);
        assert_eq!(answer["replies"], serde_json::json!([]));
        let back: TraceAnswer<serde_json::Value> = serde_json::from_value(answer).unwrap();
        assert_eq!(back.hops.len(), 1);
    }

    #[test]
    fn answers_have_the_fields_they_always_had() {
        let text = serde_json::to_string(&Stats::default()).unwrap();
        assert_eq!(
            text,
            r#"{"requests":0,"requests_refused":0,"spans_duplicate":0,"spans_in_store":0,"spans_rejected":0,"spans_stored":0,"spans_expired":0,"names_truncated":0,"values_truncated":0}"#
        );
        // An answer of an older server (without the newer counters) still reads.
        let old: Stats = serde_json::from_str(
            r#"{"requests":1,"requests_refused":0,"spans_duplicate":0,"spans_in_store":0,"spans_rejected":0,"spans_stored":0}"#,
        )
        .unwrap();
        assert_eq!(old.requests, 1);
        let list = TraceList::<TraceSummary> {
            complete: true,
            older_until: None,
            traces: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"complete":true,"older_until":null,"traces":[]}"#
        );
    }
}
