//! Named patterns in a topology, one detector per file. Each detector has `check` (its
//! findings), and each finding a one-sentence `description` of this instance.

mod action_response;
mod broadcast;
mod cycle;
mod dead_end;
mod idle_subscriber;
mod work_queue;

use super::Topology;
use crate::model::EdgeKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `broadcast`, `work_queue`, `action_response`, `dead_end`, `idle_subscriber`, `cycle`.
    pub pattern: &'static str,
    /// Node ids involved, the main one first.
    pub nodes: Vec<String>,
    pub description: String,
}

pub trait Detector {
    fn pattern(&self) -> &'static str;
    /// What the pattern means, for every instance.
    fn summary(&self) -> &'static str;
    fn check(&self, topo: &Topology) -> Vec<Finding>;
}

pub fn detectors() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(broadcast::Broadcast),
        Box::new(work_queue::WorkQueue),
        Box::new(action_response::ActionResponse),
        Box::new(dead_end::DeadEnd),
        Box::new(idle_subscriber::IdleSubscriber),
        Box::new(cycle::Cycle),
    ]
}

pub fn run_all(topo: &Topology) -> Vec<Finding> {
    detectors().iter().flat_map(|d| d.check(topo)).collect()
}

/// Node name for descriptions.
fn name<'a>(topo: &'a Topology, id: &'a str) -> &'a str {
    topo.node(id).map(|n| n.name.as_str()).unwrap_or(id)
}

/// Per destination: its publishing services, consuming services, and routes in and out.
#[derive(Default)]
struct Flows<'a> {
    publishers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    consumers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    routes_out: BTreeMap<&'a str, BTreeSet<&'a str>>,
    routes_in: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

impl<'a> Flows<'a> {
    fn of(topo: &'a Topology) -> Flows<'a> {
        let mut f = Flows::default();
        for e in &topo.edges {
            match e.kind {
                EdgeKind::Publish => {
                    f.publishers.entry(&e.to).or_default().insert(&e.from);
                }
                EdgeKind::Consume => {
                    f.consumers.entry(&e.from).or_default().insert(&e.to);
                }
                EdgeKind::Route => {
                    f.routes_out.entry(&e.from).or_default().insert(&e.to);
                    f.routes_in.entry(&e.to).or_default().insert(&e.from);
                }
                EdgeKind::Call | EdgeKind::Dependency => {}
            }
        }
        f
    }

    /// Services that receive what is published to `dest`, directly or through its routes.
    fn receivers(&self, dest: &'a str) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&str> = self.consumers.get(dest).cloned().unwrap_or_default();
        for q in self.routes_out.get(dest).into_iter().flatten() {
            out.extend(self.consumers.get(q).into_iter().flatten());
        }
        out
    }

    fn is_fed(&self, dest: &str) -> bool {
        self.publishers.contains_key(dest) || self.routes_in.contains_key(dest)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use crate::model::sketch::Sketch;
    use crate::model::EdgeKind;
    use crate::model::{EdgeRow, NodeRow, TopologyRows};
    use crate::model::{NodeKey, TimeWindow};
    use crate::topology::{build, Topology};

    /// Builds a topology from `(from, to, kind, count)`; ids name their kind (`s:` service,
    /// `d:` destination).
    pub fn topo(edges: &[(&str, &str, EdgeKind, i64)]) -> Topology {
        let mut ids: Vec<&str> = edges.iter().flat_map(|e| [e.0, e.1]).collect();
        ids.sort();
        ids.dedup();
        let nodes = ids
            .iter()
            .map(|id| {
                let key = match id.split_once(':') {
                    Some(("d", n)) => NodeKey {
                        id: id.to_string(),
                        ..NodeKey::destination("test", n)
                    },
                    Some((_, n)) => NodeKey {
                        id: id.to_string(),
                        ..NodeKey::service(n, None)
                    },
                    None => NodeKey::service(id, None),
                };
                NodeRow {
                    key,
                    spans: 1,
                    errors: 0,
                }
            })
            .collect();
        let edges = edges
            .iter()
            .map(|(f, t, k, c)| EdgeRow {
                from: f.to_string(),
                to: t.to_string(),
                kind: *k,
                via: String::new(),
                count: *c,
                errors: 0,
                latency_sum_micros: 0,
                latency: Sketch::new(),
                first_seen_unix_nanos: 0,
                last_seen_unix_nanos: 0,
                instances: 1,
            })
            .collect();
        build(
            TopologyRows { nodes, edges },
            TimeWindow::new(0, 60_000_000_000).unwrap(),
        )
    }
}
