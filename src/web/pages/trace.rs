//! `GET /traces/{trace_id}`: one trace as a waterfall with its asynchronous hops, and the
//! journey of each of its messages. The page's window (`?window=` or `?since=&until=`, else
//! minutes around the trace) travels with its links to services and destinations.

use super::script_json::ScriptJson;
use super::trace_rows;
use super::waterfall::{self, Waterfall};
use super::window::{PageWindow, WindowQuery};
use crate::model::{EdgeKind, SpanId, TimeWindow, TopologyRows, TraceId};
use crate::web::render::{render, PageError};
use crate::web::state::AppState;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;

/// Links from a trace without a window of its own show this much before and after it.
const AROUND_TRACE_NANOS: u64 = 5 * 60 * 1_000_000_000;
/// Who subscribes to a destination is read from the topology of the trace's minutes and this
/// much around them (a short read: a minute's rows per minute).
const SUBSCRIBERS_AROUND_NANOS: u64 = 60 * 1_000_000_000;

#[derive(Template)]
#[template(path = "trace.html")]
pub struct TracePage {
    pub trace_id: String,
    pub view: Waterfall,
    /// Other traces with a span linking into this one: (trace id, "service: operation").
    pub linked_from: Vec<(String, String)>,
    /// The window links carry (`window=...` or `window=custom&since=..&until=..`).
    pub window_query: String,
    /// Why the window asked for was not used (a bad date), shown on the page.
    pub window_error: String,
    /// Rows carry no details (a large trace): each row loads its span's details when opened,
    /// and only the first [`trace_rows::FIRST_ROWS`] rows are HTML, the rest `rows_data`.
    pub lazy_details: bool,
    /// Rows written as HTML.
    pub shown_rows: usize,
    /// The room the rows after those take until the script builds them, in pixels.
    pub rest_px: usize,
    /// Every row as compact data for the script (a large trace; else empty).
    pub rows_data: ScriptJson,
}

/// Past this many rows a trace's page leaves out the details under each row (two thirds of
/// its bytes, parsed by the browser before the page can be used) and loads them from
/// [`span_details`] when a row is opened; its rows past the first screenful come as compact
/// data that the page's script builds rows from as they scroll into view.
pub const LAZY_DETAILS_ROWS: usize = 1000;

/// One span's details as they show under its row (`GET /traces/{trace_id}/spans/{span_id}`).
#[derive(Template)]
#[template(path = "trace_span.html")]
pub struct SpanDetails {
    pub r: waterfall::Row,
    pub window_query: String,
}

/// Who consumes from each destination in the topology rows: `system:name` -> service names,
/// following routes one step (an exchange's consumers are its queues' consumers).
fn subscribers(rows: &TopologyRows) -> HashMap<String, Vec<String>> {
    let names: HashMap<&str, &str> = rows
        .nodes
        .iter()
        .map(|n| (n.key.id.as_str(), n.key.name.as_str()))
        .collect();
    let mut direct: HashMap<&str, Vec<String>> = HashMap::new();
    for e in rows.edges.iter().filter(|e| e.kind == EdgeKind::Consume) {
        let name = names
            .get(e.to.as_str())
            .map(|n| n.to_string())
            .unwrap_or_else(|| e.to.trim_start_matches("service:").to_string());
        direct.entry(e.from.as_str()).or_default().push(name);
    }
    let mut all: HashMap<String, Vec<String>> = HashMap::new();
    for (from, list) in &direct {
        all.entry(from.to_string())
            .or_default()
            .extend(list.clone());
    }
    for e in rows.edges.iter().filter(|e| e.kind == EdgeKind::Route) {
        if let Some(list) = direct.get(e.to.as_str()) {
            all.entry(e.from.clone()).or_default().extend(list.clone());
        }
    }
    all
}

pub async fn page(
    path: web::Path<String>,
    q: web::Query<WindowQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let id = TraceId::from_hex(path.trim())
        .map_err(|e| PageError::BadRequest(format!("invalid trace id: {e}")))?;
    let asked = [&q.window, &q.since, &q.until]
        .iter()
        .any(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()));
    let (asked, window_error) = match asked.then(|| PageWindow::from_query(&q)) {
        None => (None, String::new()),
        Some(Ok(w)) => (Some(w), String::new()),
        Some(Err(e)) => (None, e),
    };
    // Reading and laying out the trace both run on a blocking thread.
    let view = state
        .store
        .blocking(move |s| {
            let spans = s.trace(id)?;
            let Some(start) = spans.iter().map(|s| s.start_unix_nanos).min() else {
                return Ok(None);
            };
            let end = spans
                .iter()
                .map(|s| s.end_unix_nanos)
                .max()
                .unwrap_or(start);
            let linked_from = s
                .linking_spans(id, start, 20)?
                .into_iter()
                .map(|l| (l.trace_id.to_hex(), format!("{}: {}", l.service, l.name)))
                .collect();
            // Who subscribes to what around the trace, to name consumers a message missed.
            let around = TimeWindow::new(
                start.saturating_sub(SUBSCRIBERS_AROUND_NANOS),
                end.saturating_add(SUBSCRIBERS_AROUND_NANOS),
            );
            let subs = match around {
                Some(w) => subscribers(&s.topology(w)?),
                None => HashMap::new(),
            };
            let view = waterfall::build(spans, |system, destination| {
                subs.get(&format!("destination:{system}:{destination}"))
                    .cloned()
                    .unwrap_or_default()
            });
            Ok(Some((view, linked_from)))
        })
        .await?;
    let Some((view, linked_from)) = view else {
        return Err(PageError::NotFound(format!("no trace {id} is stored")));
    };
    let window = link_window(asked, view.start_unix_nanos, view.end_unix_nanos);
    let lazy_details = view.rows.len() > LAZY_DETAILS_ROWS;
    let shown_rows = if lazy_details {
        trace_rows::FIRST_ROWS
    } else {
        view.rows.len()
    };
    render(TracePage {
        trace_id: id.to_hex(),
        linked_from,
        window_query: window.page_query(),
        window_error,
        lazy_details,
        shown_rows,
        rest_px: trace_rows::rest_px(&view, shown_rows),
        rows_data: if lazy_details {
            trace_rows::data(&view)
        } else {
            ScriptJson::empty()
        },
        view,
    })
    .await
}

/// The window a page's links carry: the one asked for, else minutes around the trace.
fn link_window(asked: Option<PageWindow>, start: u64, end: u64) -> PageWindow {
    asked.unwrap_or_else(|| {
        PageWindow::custom(
            start.saturating_sub(AROUND_TRACE_NANOS),
            end.saturating_add(AROUND_TRACE_NANOS),
        )
    })
}

/// A span's details: the page's window, and the trace's start (unix nanoseconds) the span's
/// start is shown from.
#[derive(Deserialize)]
pub struct DetailsQuery {
    #[serde(flatten)]
    window: WindowQuery,
    start: Option<String>,
}

/// `GET /traces/{trace_id}/spans/{span_id}[?start=NANOS]`: the details of one span of a
/// trace, as the trace page shows them under the span's row (an HTML fragment, for the rows of
/// a large trace). Only that span is read; what only the whole trace tells (its hop, consumers
/// and responses) the page's script adds from its rows.
pub async fn span_details(
    path: web::Path<(String, String)>,
    q: web::Query<DetailsQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let (trace, span) = path.into_inner();
    let id = TraceId::from_hex(trace.trim())
        .map_err(|e| PageError::BadRequest(format!("invalid trace id: {e}")))?;
    let span_id = SpanId::from_hex(span.trim()).map_err(|_| {
        PageError::BadRequest("invalid span id: 16 hexadecimal digits expected".to_string())
    })?;
    let trace_start = match q.start.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| {
            PageError::BadRequest(
                "invalid start: the trace's start in unix nanoseconds expected".to_string(),
            )
        })?),
    };
    let w = &q.window;
    let asked = PageWindow::from_query(w).ok().filter(|_| {
        [&w.window, &w.since, &w.until]
            .iter()
            .any(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
    });
    let found = state
        .store
        .blocking(move |s| s.trace_span(id, span_id))
        .await?;
    let Some(found) = found else {
        return Err(PageError::NotFound(format!(
            "no span {} in trace {id}",
            span_id.to_hex()
        )));
    };
    let start = trace_start.unwrap_or(found.start_unix_nanos);
    let window = link_window(asked, start, found.end_unix_nanos.max(start));
    render(SpanDetails {
        r: waterfall::details_row(&found, trace_start),
        window_query: window.page_query(),
    })
    .await
}
