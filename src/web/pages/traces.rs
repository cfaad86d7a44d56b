//! `GET /traces`: trace search by service, destination, time window and limit.

use super::format;
use super::window::{url_encode, PageWindow, WindowQuery};
use crate::ingest::Ingest;
use crate::store::{TraceQuery, TraceSummary};
use crate::web::render::{render, PageError};
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    pub service: Option<String>,
    pub destination: Option<String>,
    pub limit: Option<usize>,
    pub window: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// One result line, formatted.
pub struct TraceItem {
    pub trace_id: String,
    pub root: String,
    pub start: String,
    pub duration: String,
    pub span_count: i64,
    pub error_count: i64,
    pub services: Vec<String>,
    pub destinations: Vec<String>,
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
            root,
            start: format::time(t.start_unix_nanos),
            duration: format::micros(t.duration_micros as f64),
            span_count: t.span_count,
            error_count: t.error_count,
            services: t.services.clone(),
            destinations: t.destinations.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "traces.html")]
pub struct TracesPage {
    pub service: String,
    pub destination: String,
    pub limit: usize,
    /// `None`: all stored traces (no window chosen).
    pub window: Option<PageWindow>,
    pub traces: Vec<TraceItem>,
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
        super::window::PRESETS
    }

    pub fn encode(&self, text: &str) -> String {
        url_encode(text)
    }
}

pub async fn page(
    q: web::Query<SearchParams>,
    ingest: web::Data<Ingest>,
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
    let query = TraceQuery {
        service: nonempty(&q.service),
        destination: nonempty(&q.destination),
        window: window.as_ref().map(|w| w.window),
        limit,
    };
    let traces = ingest
        .store
        .blocking(move |s| {
            Ok(s.search_traces(&query)?
                .iter()
                .map(TraceItem::from_summary)
                .collect())
        })
        .await?;
    render(TracesPage {
        service: nonempty(&q.service).unwrap_or_default(),
        destination: nonempty(&q.destination).unwrap_or_default(),
        limit,
        window,
        traces,
    })
    .await
}
