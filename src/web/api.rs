//! JSON and DOT API handlers; the Prometheus scrape ([`metrics`]) and the Jaeger query API
//! ([`jaeger`]) in their own files.

pub mod ahead;
pub mod answers;
pub mod diff;
pub mod exposition;
pub mod jaeger;
pub mod metrics;
pub mod pathways;

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
use answers::How;
use serde::Deserialize;
use std::sync::atomic::Ordering;

#[derive(Debug, Deserialize)]
pub struct WindowParams {
    pub since: Option<String>,
    pub until: Option<String>,
}

/// RFC 3339 `since`/`until`; the default is the hour that ends now.
pub(super) fn parse_window(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<TimeWindow, ApiError> {
    window::parse_window(since, until, now_unix_nanos()).map_err(ApiError::BadRequest)
}

pub async fn load_topology(store: &Store, window: TimeWindow) -> Result<Topology, ApiError> {
    // Reading, merging and the detectors all run on a blocking thread.
    let topo = store
        .blocking(move |s| Ok(topology::build(s.topology(window)?, window)))
        .await?;
    Ok(topo)
}

/// [`load_topology`] compared with the `--declared` documents (their drift findings, and the
/// declared-only nodes and edges), on the same blocking thread.
pub async fn load_declared_topology(
    state: &AppState,
    window: TimeWindow,
) -> Result<Topology, ApiError> {
    let declared = state.declared.clone();
    let topo = state
        .store
        .blocking(move |s| {
            let mut topo = topology::build(s.topology(window)?, window);
            declared.apply(&mut topo);
            Ok(topo)
        })
        .await?;
    Ok(topo)
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

pub async fn topology_json(
    q: web::Query<WindowParams>,
    state: web::Data<AppState>,
    builder: web::Data<ahead::Ahead>,
) -> Result<HttpResponse, ApiError> {
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    // The generation is read before the data: what is built after it is at least as new.
    let generation = state.store.generation();
    let key = generation.map(|g| (window.since_unix_nanos, window.until_unix_nanos, g));
    if let Some(body) = key.and_then(answers::get) {
        answers::COUNTS.kept_answer.fetch_add(1, Ordering::Relaxed);
        builder.asked(q.since.as_deref(), q.until.as_deref());
        return Ok(json(answers::Sent::of([body])));
    }
    let minutes = generation.map(|g| {
        let (first, last) = window.minutes();
        (first, last, g)
    });
    // Reading, building and serialising all happen on a blocking thread: a topology merged
    // with a large broker is megabytes of JSON.
    let declared = state.declared.clone();
    let (body, how) = state
        .store
        .blocking(move |s| {
            let Some(minutes) = minutes else {
                let t = std::sync::Arc::new(ahead::build(s, &declared, window)?);
                return Ok((answers::Sent::of([answers::body(&t)]), How::Built));
            };
            let (t, how) = answers::kept_or_built(minutes, || ahead::build(s, &declared, window))?;
            if how == How::Built {
                // Built for this very window: its body is the answer.
                let body = answers::body(&t);
                if let Some(key) = key {
                    answers::put(key, &body);
                }
                return Ok((answers::Sent::of([body]), how));
            }
            // The traced edges written again for this window (the rest of the template is
            // sent as it is).
            let pieces = t
                .pieces(&window)
                .map_err(|e| StoreError::Backend(format!("topology JSON: {e}")))?;
            Ok((answers::answer(&t, pieces), how))
        })
        .await?;
    answers::COUNTS.answered(how);
    // Remembered once answered: the builder ahead then finds this build kept.
    builder.asked(q.since.as_deref(), q.until.as_deref());
    Ok(json(body))
}

fn json(body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

pub async fn topology_dot(
    q: web::Query<WindowParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    let topo = load_declared_topology(&state, window).await?;
    let dot = web::block(move || export::dot::to_dot(&topo))
        .await
        .map_err(|e| ApiError::Internal(format!("rendering DOT failed: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/vnd.graphviz; charset=utf-8")
        .insert_header(("Content-Disposition", "inline; filename=\"switchyard.dot\""))
        .body(dot))
}

/// `GET /api/asyncapi`: the window's observed architecture as an AsyncAPI 3.0 document (the
/// topology without the `--declared` documents: what was seen, not what was said).
pub async fn asyncapi(
    req: actix_web::HttpRequest,
    q: web::Query<WindowParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    // The embedded broker's API is this listener: its bound address, not the Host header.
    let opts = export::asyncapi::Options {
        embedded_host: Some(req.app_config().local_addr().to_string()),
    };
    let body = state
        .store
        .blocking(move |s| {
            let topo = topology::build(s.topology(window)?, window);
            Ok(export::asyncapi::to_json(&topo, &opts))
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
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
    about_node_read(q, state, move |_, topo, id, _| Ok(answer(topo, id))).await
}

/// [`about_node`] for an answer that also reads the store (with the window).
async fn about_node_read<T: serde::Serialize + Send + 'static>(
    q: &NodeParams,
    state: &AppState,
    answer: impl FnOnce(
            &dyn crate::store::Storage,
            &Topology,
            &str,
            crate::model::TimeWindow,
        ) -> Result<Option<T>, crate::store::StoreError>
        + Send
        + 'static,
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
        .blocking(move |s| {
            answer(
                s,
                &topology::build(s.topology(window)?, window),
                &id,
                window,
            )
        })
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

/// `GET /api/partitions?node=ID`: a partitioned destination (a Kafka topic) partition by
/// partition, with each consumer group's lag on it and the traced messages of each service.
pub async fn partitions(
    q: web::Query<NodeParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    about_node_read(&q, &state, |s, topo, id, window| {
        if topo.node(id).is_none() {
            return Ok(None);
        }
        let traffic = s.partition_traffic(id, window)?;
        Ok(topology::partitions::partitions(topo, id, &traffic))
    })
    .await
}

/// `/api/round-trips`: an action/response exchange by node ids, and an RFC 3339 window.
#[derive(Debug, Deserialize)]
pub struct RoundTripParams {
    pub asker: Option<String>,
    pub answerer: Option<String>,
    pub request: Option<String>,
    pub reply: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// The newest traces with a request that `/api/round-trips` reads.
pub const ROUND_TRIP_TRACES: usize = 200;

/// `GET /api/round-trips?asker=&answerer=&request=&reply=`: the round trip of an
/// action/response exchange (request publish to the reply's consume), per request/reply pair
/// in the newest [`ROUND_TRIP_TRACES`] traces with a request; percentiles of those pairs.
pub async fn round_trips(
    q: web::Query<RoundTripParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = |v: &Option<String>, name: &str, prefix: &str| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| v.starts_with(prefix) && v.len() > prefix.len())
            .map(str::to_string)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name} is required: a node id that starts with {prefix}"
                ))
            })
    };
    let exchange = crate::flow::Exchange {
        asker: id(&q.asker, "asker", "service:")?,
        answerer: id(&q.answerer, "answerer", "service:")?,
        request: id(&q.request, "request", "destination:")?,
        reply: id(&q.reply, "reply", "destination:")?,
    };
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    // `destination:system:name`; a service id without a namespace is `service:name`.
    let request_name = exchange.request.splitn(3, ':').nth(2).unwrap_or_default();
    let asker_name = exchange
        .asker
        .strip_prefix("service:")
        .filter(|n| !n.contains('/'));
    let query = crate::model::TraceQuery {
        service: asker_name.map(str::to_string),
        destination: Some(request_name.to_string()),
        window: Some(window),
        limit: ROUND_TRIP_TRACES,
        ..Default::default()
    };
    let answer = state
        .store
        .blocking(move |s| {
            let found = s.search_traces(&query)?;
            let mut samples = Vec::new();
            for t in &found.traces {
                samples.extend(exchange.round_trips(&s.trace(t.trace_id)?));
            }
            let complete = found.complete && found.traces.len() < ROUND_TRIP_TRACES;
            Ok(crate::flow::RoundTrips::of(
                samples,
                found.traces.len(),
                complete,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer))
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
