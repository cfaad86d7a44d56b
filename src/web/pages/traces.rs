//! `GET /traces`: trace search by service, destination, operation, attribute `key=value`,
//! status, duration, time window and limit; names picked from what is stored and matched
//! ignoring case; results newest first or longest first (`sort=duration`), with a
//! duration-over-time scatter plot of them.

use super::format;
use super::window::{PageWindow, WindowQuery};
use crate::model::TraceSummary;
use crate::percent;
use crate::web::render::{render_status, PageError};
use crate::web::state::AppState;
use crate::web::trace_search::{self, FilterText, Filters, Names};
use actix_web::http::StatusCode;
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
    /// `time` (newest first, the default) or `duration` (longest first).
    pub sort: Option<String>,
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
    /// The trace page, with the window of the page that lists it once [`TraceItem::in_window`]
    /// set it.
    pub href: String,
}

impl TraceItem {
    /// Links to the trace carry this window.
    pub fn in_window(mut self, window: &PageWindow) -> TraceItem {
        self.href = format!("/traces/{}?{}", self.trace_id, window.page_query());
        self
    }

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
            href: format!("/traces/{}", t.trace_id.to_hex()),
        }
    }
}

/// One dot of the duration-over-time plot (SVG user units) and its trace.
pub struct Dot {
    pub x: String,
    pub y: String,
    pub r: String,
    pub error: bool,
    pub href: String,
    pub label: String,
}

/// The scatter plot of the results: start time across, duration up (Jaeger's).
pub struct Scatter {
    pub dots: Vec<Dot>,
    /// Axis labels: earliest and latest start, longest duration.
    pub from: String,
    pub to: String,
    pub max: String,
}

/// Plot size in SVG user units (the page scales it to its width).
const PLOT_W: f64 = 1000.0;
const PLOT_H: f64 = 160.0;
const PLOT_PAD: f64 = 12.0;

fn scatter(traces: &[TraceItem]) -> Option<Scatter> {
    let first = traces.iter().map(|t| t.start_unix_nanos).min()?;
    let last = traces.iter().map(|t| t.start_unix_nanos).max()?;
    let longest = traces.iter().map(|t| t.duration_micros).max()?.max(1);
    let span = (last - first).max(1) as f64;
    let dots = traces
        .iter()
        .map(|t| {
            let x = if last == first {
                PLOT_W / 2.0
            } else {
                PLOT_PAD + (t.start_unix_nanos - first) as f64 / span * (PLOT_W - 2.0 * PLOT_PAD)
            };
            let y = PLOT_H
                - PLOT_PAD
                - t.duration_micros as f64 / longest as f64 * (PLOT_H - 2.0 * PLOT_PAD);
            Dot {
                x: format!("{x:.1}"),
                y: format!("{y:.1}"),
                r: format!("{:.1}", 3.0 + (t.span_count.max(1) as f64).log10() * 2.0),
                error: t.error_count > 0,
                href: t.href.clone(),
                label: format!("{} · {} · {}", t.root, t.duration, t.start),
            }
        })
        .collect();
    Some(Scatter {
        dots,
        from: format::time(first),
        to: format::time(last),
        max: format::micros(longest as f64),
    })
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
    /// `time` or `duration`.
    pub sort: String,
    pub scatter: Option<Scatter>,
    /// What the pickers offer.
    pub names: std::sync::Arc<Names>,
    /// Names typed in another case, read as stored: (typed, stored).
    pub matched: Vec<(String, String)>,
    /// Why the search could not run (a bad date, a bad filter), shown above the form.
    pub error: String,
    /// The window fields as typed (window, since, until), kept in the form after an error.
    pub typed: (String, String, String),
}

impl TracesPage {
    pub fn preset(&self) -> &str {
        match &self.window {
            Some(w) => w.preset.as_str(),
            None if !self.error.is_empty() && !self.typed.0.is_empty() => self.typed.0.as_str(),
            None => "all",
        }
    }

    pub fn since(&self) -> &str {
        match &self.window {
            Some(w) if w.is_custom() => w.since.as_str(),
            None if !self.error.is_empty() => self.typed.1.as_str(),
            _ => "",
        }
    }

    pub fn until(&self) -> &str {
        match &self.window {
            Some(w) if w.is_custom() => w.until.as_str(),
            None if !self.error.is_empty() => self.typed.2.as_str(),
            _ => "",
        }
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
        (None | Some("all"), None, None) => Ok(None),
        (w, since, until) => PageWindow::from_query(&WindowQuery {
            window: w.map(str::to_string),
            since,
            until,
        })
        .map(Some),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let sort = match q.sort.as_deref() {
        Some("duration") => "duration",
        _ => "time",
    };
    let filters = Filters::parse(&q.filter_text());
    // A bad date or filter is said on the page, with the form as typed, and nothing searched.
    let (window, mut filters, error) = match (window, filters) {
        (Ok(w), Ok(f)) => (w, f, String::new()),
        (Err(e), _) | (_, Err(e)) => (None, Filters::default(), e),
    };
    let names = trace_search::names(&state.store, window.as_ref().map(|w| w.window)).await?;
    let matched = filters.match_names(&names);
    let found = if error.is_empty() {
        trace_search::run(
            &state.store,
            &filters,
            window.as_ref().map(|w| w.window),
            limit,
        )
        .await?
    } else {
        trace_search::Found {
            traces: Vec::new(),
            complete: true,
        }
    };
    let mut traces: Vec<TraceItem> = found
        .traces
        .iter()
        .map(|t| match &window {
            Some(w) => TraceItem::from_summary(t).in_window(w),
            None => TraceItem::from_summary(t),
        })
        .collect();
    let older_href = match traces.last() {
        Some(oldest) if traces.len() == limit => older_link(&q, window.as_ref(), oldest, limit),
        _ => String::new(),
    };
    if sort == "duration" {
        traces.sort_by_key(|t| std::cmp::Reverse((t.duration_micros, t.start_unix_nanos)));
    }
    let scatter = scatter(&traces);
    let text = |v: &Option<String>| nonempty(v).unwrap_or_default();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let page = TracesPage {
        service: text(&q.service),
        destination: text(&q.destination),
        operation: text(&q.operation),
        attr: text(&q.attr),
        limit,
        live: error.is_empty() && window.as_ref().is_none_or(|w| !w.is_custom()),
        errors_only: filters.errors_only,
        min_ms: match filters.min_ms {
            Some(m) => m.to_string(),
            None => text(&q.min_ms),
        },
        max_ms: match filters.max_ms {
            Some(m) => m.to_string(),
            None => text(&q.max_ms),
        },
        post_filtered: filters.post_filtered(),
        complete: found.complete,
        traces,
        older_href,
        sort: sort.to_string(),
        scatter,
        names,
        matched,
        error,
        typed: (text(&q.window), text(&q.since), text(&q.until)),
        window,
    };
    render_status(page, status).await
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
        ("sort", &q.sort),
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
