//! JSON and DOT API handlers; the Prometheus scrape ([`metrics`]) and the Jaeger query API
//! ([`jaeger`]) in their own files.

pub mod diff;
pub mod exposition;
pub mod jaeger;
pub mod metrics;

use super::error::ApiError;
use crate::api::{Stats, TraceAnswer, TraceList};
use crate::export;
use crate::model::window::{self, now_unix_nanos};
use crate::model::{TimeWindow, TraceId};
use crate::store::{Store, StoreError};
use crate::topology::{self, Topology};
use crate::web::state::AppState;
use crate::web::trace_search::{self, FilterText, Filters};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Deserialize)]
pub struct WindowParams {
    pub since: Option<String>,
    pub until: Option<String>,
}

/// RFC 3339 `since`/`until`; the default is the hour that ends now.
fn parse_window(since: Option<&str>, until: Option<&str>) -> Result<TimeWindow, ApiError> {
    window::parse_window(since, until, now_unix_nanos()).map_err(ApiError::BadRequest)
}

pub async fn load_topology(store: &Store, window: TimeWindow) -> Result<Topology, ApiError> {
    // Reading, merging and the detectors all run on a blocking thread.
    let topo = store
        .blocking(move |s| Ok(topology::build(s.topology(window)?, window)))
        .await?;
    Ok(topo)
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

pub async fn topology_json(
    q: web::Query<WindowParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    // Reading, building and serialising all happen on a blocking thread: a topology merged
    // with a large broker is megabytes of JSON.
    let body = state
        .store
        .blocking(move |s| {
            let topo = topology::build(s.topology(window)?, window);
            topology::json::to_vec(&topo)
                .map_err(|e| StoreError::Backend(format!("topology JSON: {e}")))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

pub async fn topology_dot(
    q: web::Query<WindowParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    let topo = load_topology(&state.store, window).await?;
    let dot = web::block(move || export::dot::to_dot(&topo))
        .await
        .map_err(|e| ApiError::Internal(format!("rendering DOT failed: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/vnd.graphviz; charset=utf-8")
        .insert_header(("Content-Disposition", "inline; filename=\"switchyard.dot\""))
        .body(dot))
}

/// `/api/reach` and `/api/impact`: a node id and an RFC 3339 window.
#[derive(Debug, Deserialize)]
pub struct NodeParams {
    pub node: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Builds the window's topology and answers `answer` for the node named by `q.node` (404 when
/// the window has no such node), all on a blocking thread.
async fn about_node<T: serde::Serialize + Send + 'static>(
    q: &NodeParams,
    state: &AppState,
    answer: fn(&Topology, &str) -> Option<T>,
) -> Result<HttpResponse, ApiError> {
    let node = q
        .node
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest("node is required (a node id such as service:checkout)".into())
        })?
        .to_string();
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    let id = node.clone();
    let out = state
        .store
        .blocking(move |s| Ok(answer(&topology::build(s.topology(window)?, window), &id)))
        .await?;
    match out {
        Some(out) => Ok(HttpResponse::Ok().json(out)),
        None => Err(ApiError::NotFound(format!("no node {node} in this window"))),
    }
}

/// `GET /api/reach?node=ID`: everything the node depends on and everything that depends on
/// it, through destinations, to any depth.
pub async fn reach(
    q: web::Query<NodeParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    about_node(&q, &state, topology::reach::reach).await
}

/// `GET /api/impact?node=ID`: what breaks if the node goes down.
pub async fn impact(
    q: web::Query<NodeParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    about_node(&q, &state, topology::reach::impact).await
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
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = match (&q.since, &q.until) {
        (None, None) => None,
        _ => Some(parse_window(q.since.as_deref(), q.until.as_deref())?),
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
    let found = trace_search::run(&state.store, &filters, window, limit).await?;
    // The next (older) page: the same query with `until` at the oldest trace's start.
    let older_until = found
        .traces
        .last()
        .filter(|_| found.traces.len() == limit)
        .map(|t| window::rfc3339(t.start_unix_nanos));
    Ok(HttpResponse::Ok().json(TraceList {
        complete: found.complete,
        older_until,
        traces: found.traces,
    }))
}

pub async fn trace(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = TraceId::from_hex(path.trim())
        .map_err(|e| ApiError::BadRequest(format!("invalid trace id: {e}")))?;
    // Reading the trace and following its hops both run on a blocking thread.
    let answer = state
        .store
        .blocking(move |s| {
            let spans = s.trace(id)?;
            Ok((!spans.is_empty()).then(|| TraceAnswer::new(id, spans)))
        })
        .await?;
    let Some(answer) = answer else {
        return Err(ApiError::NotFound(format!("no trace {id}")));
    };
    Ok(HttpResponse::Ok().json(answer))
}

pub async fn stats(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stored = state.store.blocking(|s| s.span_count()).await?;
    let c = &state.counters;
    Ok(HttpResponse::Ok().json(Stats {
        requests: c.requests.load(Ordering::Relaxed),
        requests_refused: c.requests_refused.load(Ordering::Relaxed),
        spans_duplicate: c.spans_duplicate.load(Ordering::Relaxed),
        spans_in_store: stored,
        spans_rejected: c.spans_rejected.load(Ordering::Relaxed),
        spans_stored: c.spans_stored.load(Ordering::Relaxed),
        spans_expired: c.spans_expired.load(Ordering::Relaxed),
        names_truncated: c.names_truncated.load(Ordering::Relaxed),
        values_truncated: c.values_truncated.load(Ordering::Relaxed),
    }))
}
