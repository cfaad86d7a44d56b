//! The service page's "downstream journeys from here": the pathways that start at the
//! service (`crate::pathway`), each with its count, end-to-end p50/p99, a bar of its hops
//! (each broker wait and each service's processing at p50, as shares of their sum) and links
//! to example traces and to the search of its traces in the window.

use super::format;
use super::node::node_href;
use super::window::PageWindow;
use crate::pathway::{Pathway, Pathways};
use crate::percent;

/// Traces read for the page (the API reads more on request), and the time it may take.
pub const PAGE_TRACES: usize = 200;
pub const PAGE_TOP: usize = 20;
pub const PAGE_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

pub struct Stop {
    pub name: String,
    /// `service` or `destination`.
    pub kind: &'static str,
    pub href: String,
}

pub struct Segment {
    /// `wait` (in a broker) or `processing` (in a service).
    pub kind: &'static str,
    pub width_pct: String,
    pub title: String,
}

pub struct JourneyRow {
    pub stops: Vec<Stop>,
    pub count: u64,
    pub errors: u64,
    pub p50: String,
    pub p99: String,
    pub segments: Vec<Segment>,
    /// (href, short id) of the newest traces that took it.
    pub examples: Vec<(String, String)>,
    pub search_href: String,
}

pub struct Journeys {
    pub rows: Vec<JourneyRow>,
    /// Empty, or why the table may leave journeys out.
    pub partial: String,
}

fn stop(id: &str, name: &str) -> Stop {
    Stop {
        name: name.to_string(),
        kind: if id.starts_with("service:") {
            "service"
        } else {
            "destination"
        },
        href: node_href(id),
    }
}

/// The name of a node of the pathway (its id when the pathway does not name it).
fn name_of<'a>(p: &'a Pathway, id: &'a str) -> &'a str {
    p.nodes
        .iter()
        .position(|n| n == id)
        .and_then(|i| p.names.get(i))
        .map_or(id, String::as_str)
}

fn segments(p: &Pathway) -> Vec<Segment> {
    let mut parts: Vec<(&'static str, u64, String)> = Vec::new();
    for h in &p.hops {
        let via = h
            .via
            .iter()
            .map(|v| name_of(p, v))
            .collect::<Vec<_>>()
            .join(" → ");
        let to = name_of(p, &h.to);
        parts.push((
            "wait",
            h.wait.p50_micros,
            format!("in {via}: p50 {}", format::micros(h.wait.p50_micros as f64)),
        ));
        parts.push((
            "processing",
            h.processing.p50_micros,
            format!(
                "in {to}: p50 {}",
                format::micros(h.processing.p50_micros as f64)
            ),
        ));
    }
    let total: u64 = parts.iter().map(|p| p.1).sum::<u64>().max(1);
    parts
        .into_iter()
        .map(|(kind, v, title)| Segment {
            kind,
            width_pct: format!("{:.2}", v as f64 * 100.0 / total as f64),
            title,
        })
        .collect()
}

fn row(p: &Pathway, service: &str, window: &PageWindow) -> JourneyRow {
    let first_via = p
        .hops
        .first()
        .and_then(|h| h.via.first())
        .map(|v| name_of(p, v));
    let mut search_href = format!(
        "/traces?service={}&{}",
        percent::encode(service),
        window.page_query()
    );
    if let Some(d) = first_via {
        search_href.push_str(&format!("&destination={}", percent::encode(d)));
    }
    JourneyRow {
        stops: p
            .nodes
            .iter()
            .zip(&p.names)
            .map(|(id, name)| stop(id, name))
            .collect(),
        count: p.count,
        errors: p.errors,
        p50: format::micros(p.end_to_end.p50_micros as f64),
        p99: format::micros(p.end_to_end.p99_micros as f64),
        segments: segments(p),
        examples: p
            .examples
            .iter()
            .map(|t| {
                let hex = t.to_hex();
                (format!("/traces/{hex}"), hex[..8].to_string())
            })
            .collect(),
        search_href,
    }
}

impl Journeys {
    pub fn new(found: &Pathways, service: &str, window: &PageWindow) -> Journeys {
        let s = &found.scanned;
        let mut why: Vec<String> = Vec::new();
        if s.trace_limit_reached {
            why.push(format!("the newest {} traces were read", s.traces));
        }
        if s.out_of_time || s.search_incomplete {
            why.push("the time budget ran out".into());
        }
        if s.walks_cut {
            why.push("long or cyclic journeys were cut".into());
        }
        if s.linked_limit_reached {
            why.push(format!(
                "{} traces reached through span links were read",
                s.linked_traces
            ));
        }
        if found.pathways_total > found.pathways.len() {
            why.push(format!(
                "{} of {} pathways are shown",
                found.pathways.len(),
                found.pathways_total
            ));
        }
        Journeys {
            rows: found
                .pathways
                .iter()
                .map(|p| row(p, service, window))
                .collect(),
            partial: why.join("; "),
        }
    }
}
