//! `GET /api/pathways?from=&to=&since=&until=`: the journeys of messages over several hops
//! between two nodes (or from one, or to one), aggregated per pathway ([`crate::pathway`]).
//! Bounded: the newest traces holding the start node are read (at most `limit`, within a time
//! budget), then the traces their span links reach (at most
//! [`linked::MAX_LINKED_TRACES`]), walks stop at 8 hops and at cycles; the answer says when a
//! bound left something out (`partial`, `scanned`).

use super::parse_window;
use crate::model::{StoredSpan, TimeWindow, TraceId, TraceQuery};
use crate::pathway::{self, linked, Aggregate, Ends, Pathways};
use crate::store::{Storage, Store, StoreError};
use crate::web::error::ApiError;
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Traces read by default, and at most.
pub const DEFAULT_TRACES: usize = 200;
pub const MAX_TRACES: usize = 10_000;
/// Pathways listed by default, and at most.
pub const DEFAULT_TOP: usize = 50;
pub const MAX_TOP: usize = 1_000;
/// The time one answer may spend reading traces.
pub const BUDGET: Duration = Duration::from_secs(2);
/// The longest node id taken.
const MAX_ID: usize = 1_024;

#[derive(Debug, Deserialize)]
pub struct PathwayParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Traces read at most (the newest in the window).
    pub limit: Option<usize>,
    /// Pathways listed at most (the most taken).
    pub top: Option<usize>,
}

/// How much one answer may read.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub traces: usize,
    pub top: usize,
    pub budget: Duration,
}

/// A node id as an end: a service or a destination id, as in `/api/topology`.
fn node_id(name: &str, text: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if text.len() > MAX_ID {
        return Err(ApiError::BadRequest(format!(
            "{name} is longer than {MAX_ID} bytes"
        )));
    }
    let valid = text
        .strip_prefix("service:")
        .or_else(|| text.strip_prefix("destination:"))
        .is_some_and(|rest| !rest.is_empty());
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "{name} must be a service or destination node id (service:checkout, destination:rabbitmq:orders)"
        )));
    }
    Ok(Some(text.to_string()))
}

/// The trace search that finds the journeys through a node: by service name (`named`, else
/// what follows a namespace, if any) or destination name.
fn search_for(id: &str, window: TimeWindow, limit: usize, named: Option<&str>) -> TraceQuery {
    let mut q = TraceQuery {
        window: Some(window),
        limit,
        ..TraceQuery::default()
    };
    if let Some(rest) = id.strip_prefix("service:") {
        let name = named.unwrap_or(rest.split_once('/').map_or(rest, |(_, name)| name));
        q.service = Some(name.to_string());
    } else if let Some(rest) = id.strip_prefix("destination:") {
        q.destination = rest.split_once(':').map(|(_, name)| name.to_string());
    }
    q
}

/// The store's reads of traces reached through span links.
struct StoreReach<'a> {
    store: &'a dyn Storage,
    deadline: Instant,
}

impl linked::Reach for StoreReach<'_> {
    type Error = StoreError;

    fn traces(&mut self, ids: &[TraceId]) -> Result<(Vec<Vec<StoredSpan>>, bool), StoreError> {
        let set = self.store.spans_of(ids, self.deadline)?;
        Ok((set.traces, set.out_of_time))
    }

    fn linking(
        &mut self,
        id: TraceId,
        since_unix_nanos: u64,
        limit: usize,
    ) -> Result<Vec<TraceId>, StoreError> {
        let found = self.store.linking_spans(id, since_unix_nanos, limit)?;
        Ok(found.into_iter().map(|l| l.trace_id).collect())
    }
}

/// Reads the traces and counts their journeys, on a blocking thread.
pub async fn load(
    store: &Store,
    ends: Ends,
    window: TimeWindow,
    bounds: Bounds,
) -> Result<Pathways, ApiError> {
    let Some(start) = ends.from.clone().or_else(|| ends.to.clone()) else {
        return Err(ApiError::BadRequest(
            "from or to is required (a node id such as service:checkout)".into(),
        ));
    };
    let answer = store
        .blocking(move |s| {
            let deadline = Instant::now() + bounds.budget;
            // `service:a/b` is service b of namespace a, or a service named `a/b`: the
            // window's nodes say which.
            let ambiguous = start
                .strip_prefix("service:")
                .is_some_and(|rest| rest.contains('/'));
            let named = if ambiguous {
                let rows = s.topology(window)?;
                let node = rows.nodes.into_iter().find(|n| n.key.id == start);
                node.map(|n| n.key.name)
            } else {
                None
            };
            let q = search_for(&start, window, bounds.traces, named.as_deref());
            let set = s.search_spans(&q, deadline)?;
            let mut agg = Aggregate::default();
            agg.scan.trace_limit = bounds.traces;
            agg.scan.search_incomplete = !set.search_complete;
            agg.scan.out_of_time = set.out_of_time;
            agg.scan.traces = set.traces.len();
            agg.scan.trace_limit_reached = set.traces.len() >= bounds.traces;
            agg.scan.linked_trace_limit = linked::MAX_LINKED_TRACES;
            let mut reach = StoreReach { store: s, deadline };
            let reached = linked::expand(set.traces, &ends, &mut reach, deadline)?;
            agg.scan.linked_traces = reached.linked;
            agg.scan.linked_limit_reached = reached.limit_reached;
            agg.scan.out_of_time |= reached.out_of_time;
            for (spans, traces) in reached.groups() {
                if Instant::now() >= deadline {
                    agg.scan.out_of_time = true;
                    break;
                }
                pathway::add_group(&mut agg, &spans, &ends, traces);
            }
            Ok(agg.finish(&ends, window, bounds.top))
        })
        .await?;
    Ok(answer)
}

pub async fn pathways(
    q: web::Query<PathwayParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ends = Ends {
        from: node_id("from", q.from.as_deref())?,
        to: node_id("to", q.to.as_deref())?,
    };
    let window = parse_window(q.since.as_deref(), q.until.as_deref())?;
    let bounds = Bounds {
        traces: q.limit.unwrap_or(DEFAULT_TRACES).clamp(1, MAX_TRACES),
        top: q.top.unwrap_or(DEFAULT_TOP).clamp(1, MAX_TOP),
        budget: BUDGET,
    };
    let answer = load(&state.store, ends, window, bounds).await?;
    Ok(HttpResponse::Ok().json(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_are_service_or_destination_ids() {
        assert_eq!(node_id("from", None).ok(), Some(None));
        assert_eq!(node_id("from", Some("  ")).ok(), Some(None));
        assert_eq!(
            node_id("from", Some("service:a")).ok(),
            Some(Some("service:a".into()))
        );
        for bad in ["checkout", "service:", "external:db", "destination:"] {
            assert!(
                matches!(node_id("from", Some(bad)), Err(ApiError::BadRequest(_))),
                "{bad}"
            );
        }
        let long = format!("service:{}", "x".repeat(MAX_ID));
        assert!(node_id("to", Some(&long)).is_err());
    }

    #[test]
    fn the_search_names_the_service_or_destination() {
        let w = TimeWindow::new(1, 2).expect("window");
        let q = search_for("service:shop/orders", w, 10, None);
        assert_eq!(q.service.as_deref(), Some("orders"));
        let q = search_for("service:shop/orders", w, 10, Some("shop/orders"));
        assert_eq!(q.service.as_deref(), Some("shop/orders"));
        let q = search_for("destination:rabbitmq:order.created", w, 10, None);
        assert_eq!(q.destination.as_deref(), Some("order.created"));
        assert_eq!((q.limit, q.window), (10, Some(w)));
    }
}
