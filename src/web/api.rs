//! JSON and DOT API handlers.

use super::error::ApiError;
use crate::export;
use crate::ingest::Ingest;
use crate::model::window::now_unix_nanos;
use crate::model::{TimeWindow, TraceId};
use crate::topology::{self, Topology};
use crate::web::trace_search::{self, FilterText, Filters};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Deserialize)]
pub struct WindowParams {
    pub since: Option<String>,
    pub until: Option<String>,
}

const DEFAULT_WINDOW_SECS: u64 = 3600;

/// Parses RFC 3339 `since`/`until`; the default is the hour that ends now.
pub fn parse_window(since: Option<&str>, until: Option<&str>) -> Result<TimeWindow, String> {
    let parse = |name: &str, text: &str| -> Result<u64, String> {
        let t = time::OffsetDateTime::parse(
            text.trim(),
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| {
            format!("{name} must be an RFC 3339 timestamp such as 2026-01-02T15:04:05Z: {e}")
        })?;
        u64::try_from(t.unix_timestamp_nanos()).map_err(|_| format!("{name} is before 1970"))
    };
    let until = match until.filter(|s| !s.is_empty()) {
        Some(u) => parse("until", u)?,
        None => now_unix_nanos(),
    };
    let since = match since.filter(|s| !s.is_empty()) {
        Some(s) => parse("since", s)?,
        None => until.saturating_sub(DEFAULT_WINDOW_SECS * 1_000_000_000),
    };
    TimeWindow::new(since, until).ok_or_else(|| "since must not be after until".to_string())
}

pub async fn load_topology(ingest: &Ingest, window: TimeWindow) -> Result<Topology, ApiError> {
    // Reading, merging and the detectors all run on a blocking thread.
    let topo = ingest
        .store
        .blocking(move |s| Ok(topology::build(s.topology(window)?, window)))
        .await?;
    Ok(topo)
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

pub async fn topology_json(
    q: web::Query<WindowParams>,
    ingest: web::Data<Ingest>,
) -> Result<HttpResponse, ApiError> {
    let window =
        parse_window(q.since.as_deref(), q.until.as_deref()).map_err(ApiError::BadRequest)?;
    let topo = load_topology(&ingest, window).await?;
    Ok(HttpResponse::Ok().json(&topo))
}

pub async fn topology_dot(
    q: web::Query<WindowParams>,
    ingest: web::Data<Ingest>,
) -> Result<HttpResponse, ApiError> {
    let window =
        parse_window(q.since.as_deref(), q.until.as_deref()).map_err(ApiError::BadRequest)?;
    let topo = load_topology(&ingest, window).await?;
    let dot = web::block(move || export::dot::to_dot(&topo))
        .await
        .map_err(|e| ApiError::Internal(format!("rendering DOT failed: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/vnd.graphviz; charset=utf-8")
        .insert_header(("Content-Disposition", "inline; filename=\"switchyard.dot\""))
        .body(dot))
}

/// `/api/traces`: the filters of `/traces` under the same names, an RFC 3339 window, a limit.
#[derive(Debug, Deserialize)]
pub struct TraceParams {
    pub service: Option<String>,
    pub destination: Option<String>,
    pub operation: Option<String>,
    /// `key=value`.
    pub attr: Option<String>,
    /// `error`: only traces with an error span.
    pub status: Option<String>,
    pub min_ms: Option<String>,
    pub max_ms: Option<String>,
    pub limit: Option<usize>,
    pub since: Option<String>,
    pub until: Option<String>,
}

pub async fn traces(
    q: web::Query<TraceParams>,
    ingest: web::Data<Ingest>,
) -> Result<HttpResponse, ApiError> {
    let window = match (&q.since, &q.until) {
        (None, None) => None,
        _ => Some(
            parse_window(q.since.as_deref(), q.until.as_deref()).map_err(ApiError::BadRequest)?,
        ),
    };
    let filters = Filters::parse(&FilterText {
        service: q.service.as_deref(),
        destination: q.destination.as_deref(),
        operation: q.operation.as_deref(),
        attr: q.attr.as_deref(),
        status: q.status.as_deref(),
        min_ms: q.min_ms.as_deref(),
        max_ms: q.max_ms.as_deref(),
    })
    .map_err(ApiError::BadRequest)?;
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    let found = trace_search::run(&ingest.store, &filters, window, limit).await?;
    // The next (older) page: the same query with `until` at the oldest trace's start.
    let older_until = found
        .traces
        .last()
        .filter(|_| found.traces.len() == limit)
        .map(|t| crate::web::pages::window::rfc3339(t.start_unix_nanos));
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "traces": found.traces,
        "complete": found.complete,
        "older_until": older_until,
    })))
}

pub async fn trace(
    path: web::Path<String>,
    ingest: web::Data<Ingest>,
) -> Result<HttpResponse, ApiError> {
    let id = TraceId::from_hex(path.trim())
        .map_err(|e| ApiError::BadRequest(format!("invalid trace id: {e}")))?;
    let spans = ingest.store.blocking(move |s| s.trace(id)).await?;
    if spans.is_empty() {
        return Err(ApiError::NotFound(format!("no trace {id}")));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "trace_id": id, "spans": spans })))
}

pub async fn stats(ingest: web::Data<Ingest>) -> Result<HttpResponse, ApiError> {
    let stored = ingest.store.blocking(|s| s.span_count()).await?;
    let c = &ingest.counters;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "spans_in_store": stored,
        "requests": c.requests.load(Ordering::Relaxed),
        "spans_stored": c.spans_stored.load(Ordering::Relaxed),
        "spans_duplicate": c.spans_duplicate.load(Ordering::Relaxed),
        "spans_rejected": c.spans_rejected.load(Ordering::Relaxed),
        "requests_refused": c.requests_refused.load(Ordering::Relaxed),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_validate() {
        let w = parse_window(
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T01:00:00+00:00"),
        )
        .unwrap();
        assert_eq!(w.until_unix_nanos - w.since_unix_nanos, 3_600_000_000_000);
        assert!(parse_window(Some("yesterday"), None)
            .unwrap_err()
            .contains("RFC 3339"));
        assert!(parse_window(Some("2026-01-02T00:00:00Z"), Some("2026-01-01T00:00:00Z")).is_err());
    }
}
