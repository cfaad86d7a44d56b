//! `GET /traces`: trace search by service, destination, operation, attribute `key=value`,
//! status, duration, time window and limit.

use super::format;
use super::window::{PageWindow, WindowQuery};
use crate::model::TraceSummary;
use crate::percent;
use crate::web::render::{render, PageError};
use crate::web::state::AppState;
use crate::web::trace_search::{self, FilterText, Filters};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    pub service: Option<String>,
    pub destination: Option<String>,
    /// A span name some span of the trace carries.
    pub operation: Option<String>,
    /// `key=value`: an attribute some span of the trace carries.
    pub attr: Option<String>,
    pub limit: Option<usize>,
    pub window: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// `error`: only traces with an error span.
    pub status: Option<String>,
    /// Duration bounds in milliseconds (empty form fields mean none).
    pub min_ms: Option<String>,
    pub max_ms: Option<String>,
}

/// One result line, formatted.
pub struct TraceItem {
    pub trace_id: String,
    pub start_unix_nanos: u64,
    pub duration_micros: u64,
    pub root: String,
    pub start: String,
    pub duration: String,
    pub span_count: i64,
    pub error_count: i64,
    pub services: Vec<String>,
    pub destinations: Vec<String>,
    pub hops: i64,
}

impl TraceItem {
    pub fn from_summary(t: &TraceSummary) -> TraceItem {
        let root = match (&t.root_service, &t.root_name) {
            (Some(s), Some(n)) => format!("{s}: {n}"),
            (Some(s), None) => s.clone(),
            (None, Some(n)) => n.clone(),
            (None, None) => "(root not received)".to_string(),
        };
        TraceItem {
            trace_id: t.trace_id.to_hex(),
            start_unix_nanos: t.start_unix_nanos,
            duration_micros: t.duration_micros,
            root,
            start: format::time(t.start_unix_nanos),
            duration: format::micros(t.duration_micros as f64),
            span_count: t.span_count,
            error_count: t.error_count,
            services: t.services.clone(),
            destinations: t.destinations.clone(),
            hops: t.hops,
        }
    }
}

#[derive(Template)]
#[template(path = "traces.html")]
pub struct TracesPage {
    pub service: String,
    pub destination: String,
    pub operation: String,
    pub attr: String,
    pub limit: usize,
    /// `None`: all stored traces (no window chosen).
    pub window: Option<PageWindow>,
    pub errors_only: bool,
    pub min_ms: String,
    pub max_ms: String,
    /// Whether duration bounds narrowed the newest matches (shown with the count).
    pub post_filtered: bool,
    /// False when the search stopped at its bound: matches may be missing (said so).
    pub complete: bool,
    pub traces: Vec<TraceItem>,
    /// The next page: the same search, ending where this page's oldest trace starts.
    pub older_href: String,
    /// Whether the window ends now (a preset or all stored): the results follow new spans.
    pub live: bool,
}

impl TracesPage {
    pub fn preset(&self) -> &str {
        self.window
            .as_ref()
            .map(|w| w.preset.as_str())
            .unwrap_or("all")
    }

    pub fn since(&self) -> &str {
        self.window
            .as_ref()
            .filter(|w| w.is_custom())
            .map(|w| w.since.as_str())
            .unwrap_or("")
    }

    pub fn until(&self) -> &str {
        self.window
            .as_ref()
            .filter(|w| w.is_custom())
            .map(|w| w.until.as_str())
            .unwrap_or("")
    }

    pub fn presets(&self) -> &'static [(&'static str, &'static str, u64)] {
        crate::model::window::PRESETS
    }

    pub fn encode(&self, text: &str) -> String {
        percent::encode(text)
    }
}

impl SearchParams {
    fn filter_text(&self) -> FilterText<'_> {
        FilterText {
            service: self.service.as_deref(),
            destination: self.destination.as_deref(),
            operation: self.operation.as_deref(),
            attr: self.attr.as_deref(),
            status: self.status.as_deref(),
            min_ms: self.min_ms.as_deref(),
            max_ms: self.max_ms.as_deref(),
        }
    }
}

pub async fn page(
    q: web::Query<SearchParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let window = match (
        nonempty(&q.window).as_deref(),
        nonempty(&q.since),
        nonempty(&q.until),
    ) {
        (None | Some("all"), None, None) => None,
        (w, since, until) => Some(
            PageWindow::from_query(&WindowQuery {
                window: w.map(str::to_string),
                since,
                until,
            })
            .map_err(PageError::BadRequest)?,
        ),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let filters = Filters::parse(&q.filter_text()).map_err(PageError::BadRequest)?;
    let found = trace_search::run(
        &state.store,
        &filters,
        window.as_ref().map(|w| w.window),
        limit,
    )
    .await?;
    let traces: Vec<TraceItem> = found.traces.iter().map(TraceItem::from_summary).collect();
    let older_href = match traces.last() {
        Some(oldest) if traces.len() == limit => older_link(&q, window.as_ref(), oldest, limit),
        _ => String::new(),
    };
    render(TracesPage {
        service: nonempty(&q.service).unwrap_or_default(),
        destination: nonempty(&q.destination).unwrap_or_default(),
        operation: nonempty(&q.operation).unwrap_or_default(),
        attr: nonempty(&q.attr).unwrap_or_default(),
        limit,
        live: window.as_ref().is_none_or(|w| !w.is_custom()),
        window,
        errors_only: filters.errors_only,
        min_ms: filters.min_ms.map(|m| m.to_string()).unwrap_or_default(),
        max_ms: filters.max_ms.map(|m| m.to_string()).unwrap_or_default(),
        post_filtered: filters.post_filtered(),
        complete: found.complete,
        traces,
        older_href,
    })
    .await
}

/// The same search over traces that start before `oldest` (half-open window end).
fn older_link(
    q: &SearchParams,
    window: Option<&PageWindow>,
    oldest: &TraceItem,
    limit: usize,
) -> String {
    let mut parts = vec![format!("limit={limit}"), "window=custom".to_string()];
    let fields = [
        ("service", &q.service),
        ("destination", &q.destination),
        ("operation", &q.operation),
        ("attr", &q.attr),
        ("status", &q.status),
        ("min_ms", &q.min_ms),
        ("max_ms", &q.max_ms),
    ];
    for (key, value) in fields {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{key}={}", percent::encode(v)));
        }
    }
    let since = window
        .map(|w| w.since.clone())
        .unwrap_or_else(|| crate::model::window::rfc3339(0));
    parts.push(format!("since={}", percent::encode(&since)));
    parts.push(format!(
        "until={}",
        percent::encode(&crate::model::window::rfc3339(oldest.start_unix_nanos))
    ));
    format!("/traces?{}", parts.join("&"))
}
