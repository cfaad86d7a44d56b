//! Counting the journeys of many traces per pathway (the sequence of nodes), with exact
//! percentiles of their end-to-end latency and of each hop's wait and processing.

use super::walk::Step;
use super::StepNodes;
use crate::model::{StatusCode, StoredSpan, TraceId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Journeys counted at most per answer (each keeps its latencies until the answer is built).
pub const MAX_JOURNEYS: u64 = 200_000;
/// Example traces kept per pathway (the newest).
pub const EXAMPLES: usize = 3;

/// Percentiles of a set of durations, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spread {
    pub p50_micros: u64,
    pub p99_micros: u64,
    pub max_micros: u64,
}

impl Spread {
    fn of(mut v: Vec<u64>) -> Spread {
        v.sort_unstable();
        Spread {
            p50_micros: nearest_rank(&v, 0.50),
            p99_micros: nearest_rank(&v, 0.99),
            max_micros: v.last().copied().unwrap_or(0),
        }
    }
}

/// The nearest-rank percentile of sorted values (0 when there are none).
pub fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One hop of a pathway: a message from a service through a destination (two when an
/// exchange routes it to a queue) to a service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub from: String,
    pub via: Vec<String>,
    pub to: String,
    /// Publish start to consume start: the message's time in the broker.
    pub wait: Spread,
    /// The consuming service's time with the message: consume start to the start of the
    /// next hop's publish, or the consume span's duration on the pathway's last hop.
    pub processing: Spread,
}

/// The journeys that took one sequence of nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pathway {
    /// Node ids in order (services and destinations, as in `/api/topology`).
    pub nodes: Vec<String>,
    /// Each node's name (a service's without its namespace), in the order of `nodes`.
    pub names: Vec<String>,
    pub count: u64,
    /// Journeys with an error on a publish or consume span.
    pub errors: u64,
    /// First publish start to the end of the last consume.
    pub end_to_end: Spread,
    pub hops: Vec<StepStats>,
    /// The newest traces that took it (hex ids).
    pub examples: Vec<TraceId>,
}

/// What was read to answer, and which bound (if any) left something out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scan {
    /// Traces read (the newest in the window that hold the start node).
    pub traces: usize,
    /// The most traces read for one answer.
    pub trace_limit: usize,
    /// True when `trace_limit` traces were read: older ones were left out.
    pub trace_limit_reached: bool,
    /// The trace search stopped at its own bound before it could rule out newer matches.
    pub search_incomplete: bool,
    /// The time budget ran out before every trace found was read.
    pub out_of_time: bool,
    /// A walk was cut at the hop limit, at a cycle, or at the walks per trace.
    pub walks_cut: bool,
    /// The journeys counted reached their cap.
    pub journeys_capped: bool,
    /// Traces read because span links tie them to the traces found (a batch consumer's
    /// trace, the publisher's trace of a message it consumed).
    pub linked_traces: usize,
    /// The most traces read through links for one answer.
    pub linked_trace_limit: usize,
    /// Links led to more traces than the limits allow (traces, lookups): some were not read.
    pub linked_limit_reached: bool,
}

impl Scan {
    pub fn partial(&self) -> bool {
        self.trace_limit_reached
            || self.search_incomplete
            || self.out_of_time
            || self.walks_cut
            || self.journeys_capped
            || self.linked_limit_reached
    }
}

/// `GET /api/pathways`: the pathways between the ends in the window, most taken first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pathways {
    pub from: Option<String>,
    pub to: Option<String>,
    pub since_unix_nanos: u64,
    pub until_unix_nanos: u64,
    /// True when a bound left journeys out (`scanned` says which).
    pub partial: bool,
    pub scanned: Scan,
    /// Journeys counted over every pathway.
    pub journeys: u64,
    /// Distinct pathways found (`pathways` lists at most the answer's limit).
    pub pathways_total: usize,
    pub pathways: Vec<Pathway>,
}

struct Group {
    names: Vec<String>,
    hops: Vec<(String, Vec<String>, String)>,
    count: u64,
    errors: u64,
    end_to_end: Vec<u64>,
    wait: Vec<Vec<u64>>,
    processing: Vec<Vec<u64>>,
    /// (first publish start, trace), newest first.
    examples: Vec<(u64, TraceId)>,
}

/// Journeys counted so far.
#[derive(Default)]
pub struct Aggregate {
    pub scan: Scan,
    journeys: u64,
    groups: HashMap<Vec<String>, Group>,
}

fn micros(from_unix_nanos: u64, to_unix_nanos: u64) -> u64 {
    to_unix_nanos.saturating_sub(from_unix_nanos) / 1_000
}

impl Aggregate {
    /// Counts one journey: `steps` of one trace's `spans`, `nodes` the nodes of each step.
    pub fn add(&mut self, spans: &[StoredSpan], steps: &[Step], nodes: &[StepNodes]) {
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            return;
        };
        if self.journeys >= MAX_JOURNEYS {
            self.scan.journeys_capped = true;
            return;
        }
        self.journeys += 1;
        let mut path: Vec<String> = Vec::new();
        for n in nodes {
            if path.last() != Some(&n.publisher) {
                path.push(n.publisher.clone());
            }
            path.extend(n.via.iter().cloned());
            path.push(n.consumer.clone());
        }
        let name = |id: &String| -> String {
            let found = nodes.iter().find_map(|n| n.names.get(id));
            found.cloned().unwrap_or_else(|| id.clone())
        };
        let group = self.groups.entry(path).or_insert_with_key(|path| Group {
            names: path.iter().map(name).collect(),
            hops: nodes
                .iter()
                .map(|n| (n.publisher.clone(), n.via.clone(), n.consumer.clone()))
                .collect(),
            count: 0,
            errors: 0,
            end_to_end: Vec::new(),
            wait: vec![Vec::new(); steps.len()],
            processing: vec![Vec::new(); steps.len()],
            examples: Vec::new(),
        });
        let start = spans[first.publish].start_unix_nanos;
        group.count += 1;
        let failed = steps.iter().any(|s| {
            spans[s.publish].status == StatusCode::Error
                || spans[s.consume].status == StatusCode::Error
        });
        group.errors += u64::from(failed);
        group
            .end_to_end
            .push(micros(start, spans[last.consume].end_unix_nanos));
        for (k, s) in steps.iter().enumerate() {
            let (p, c) = (&spans[s.publish], &spans[s.consume]);
            group.wait[k].push(micros(p.start_unix_nanos, c.start_unix_nanos));
            let processed = match steps.get(k + 1) {
                Some(next) => micros(c.start_unix_nanos, spans[next.publish].start_unix_nanos),
                None => micros(c.start_unix_nanos, c.end_unix_nanos),
            };
            group.processing[k].push(processed);
        }
        let trace = spans[first.publish].trace_id;
        if !group.examples.iter().any(|(_, t)| *t == trace) {
            group.examples.push((start, trace));
            group.examples.sort_by(|a, b| b.cmp(a));
            group.examples.truncate(EXAMPLES);
        }
    }

    /// The answer: at most `limit` pathways, most taken first (then by their nodes).
    pub fn finish(
        self,
        ends: &super::Ends,
        window: crate::model::TimeWindow,
        limit: usize,
    ) -> Pathways {
        let mut list: Vec<Pathway> = self
            .groups
            .into_iter()
            .map(|(nodes, g)| Pathway {
                nodes,
                names: g.names,
                count: g.count,
                errors: g.errors,
                end_to_end: Spread::of(g.end_to_end),
                hops: g
                    .hops
                    .into_iter()
                    .zip(g.wait.into_iter().zip(g.processing))
                    .map(|((from, via, to), (wait, processing))| StepStats {
                        from,
                        via,
                        to,
                        wait: Spread::of(wait),
                        processing: Spread::of(processing),
                    })
                    .collect(),
                examples: g.examples.into_iter().map(|(_, t)| t).collect(),
            })
            .collect();
        list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.nodes.cmp(&b.nodes)));
        let total = list.len();
        list.truncate(limit);
        Pathways {
            from: ends.from.clone(),
            to: ends.to.clone(),
            since_unix_nanos: window.since_unix_nanos,
            until_unix_nanos: window.until_unix_nanos,
            partial: self.scan.partial(),
            scanned: self.scan,
            journeys: self.journeys,
            pathways_total: total,
            pathways: list,
        }
    }
}
