//! Store rows -> graph with statistics, derived dependencies and findings.

use super::detect::{self, Finding};
use crate::model::{EdgeKind, Entity, Figures, NodeKind, TimeWindow};
use crate::model::{EdgeRow, TopologyRows};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    pub system: Option<String>,
    pub namespace: Option<String>,
    /// Spans the service emitted in the window (services only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spans: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_errors: Option<i64>,
    /// Where the node was seen: in traces, in a broker's own state, or both.
    #[serde(default)]
    pub seen_in: Vec<SeenIn>,
    /// What a destination is on its broker; null when no broker reported it (absent on other
    /// nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Option<Entity>>,
    /// The broker's own figures, when a broker reports the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Figures>,
    /// The same figures at the broker's oldest poll in the window (for trends; boxed, as
    /// few nodes and edges have them).
    #[serde(skip)]
    pub broker_then: Option<Box<Figures>>,
}

/// Where a node or an edge was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeenIn {
    Traces,
    Broker,
}

impl SeenIn {
    pub fn as_str(self) -> &'static str {
        match self {
            SeenIn::Traces => "traces",
            SeenIn::Broker => "broker",
        }
    }
}

/// Latency summary in microseconds. For consume, route and dependency edges it is the
/// publish-to-consume delay; for publish and call edges, the span duration.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: i64,
    pub mean_micros: Option<f64>,
    pub p50_micros: Option<f64>,
    pub p90_micros: Option<f64>,
    pub p99_micros: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub count: i64,
    pub errors: i64,
    /// Messages (or calls) per second over the window.
    pub rate_per_sec: f64,
    pub latency: Latency,
    pub first_seen_unix_nanos: u64,
    pub last_seen_unix_nanos: u64,
    /// Distinct instances of the consuming service (consume edges; 0 when unknown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<i64>,
    /// Where the edge was seen: in traces, in a broker's own state, or both.
    pub seen_in: Vec<SeenIn>,
    /// The broker's own figures of the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<Figures>,
    /// The same figures at the broker's oldest poll in the window (for trends; boxed, as
    /// few nodes and edges have them).
    #[serde(skip)]
    pub broker_then: Option<Box<Figures>>,
    /// Reported by no one but inferred from a broker's counters.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
    /// The routing or binding key (or filter subject) the broker reports for the flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl Edge {
    /// Seen only in a broker's state: no traced message took it in the window.
    pub fn broker_only(&self) -> bool {
        !self.seen_in.contains(&SeenIn::Traces)
    }
}

impl Node {
    pub fn broker_only(&self) -> bool {
        !self.seen_in.contains(&SeenIn::Traces)
    }
}

/// A service -> service dependency through a destination.
#[derive(Clone, Debug, Serialize)]
pub struct Dependency {
    pub from: String,
    pub to: String,
    pub via: String,
    /// Messages that were traced from producer to consumer; `None` when the dependency is
    /// only inferred from the graph (publisher and consumer of one destination, no pairing).
    pub count: Option<i64>,
    pub latency: Latency,
}

#[derive(Clone, Debug, Serialize)]
pub struct Topology {
    pub since_unix_nanos: u64,
    pub until_unix_nanos: u64,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub dependencies: Vec<Dependency>,
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub graph: DiGraph<usize, usize>,
    #[serde(skip)]
    pub index: foldhash::HashMap<String, NodeIndex>,
    /// The brokers' side of the merge this topology was built with (what
    /// [`super::json::to_vec`] copies instead of serialising again).
    #[serde(skip)]
    pub part: Option<std::sync::Arc<super::brokers::BrokerPart>>,
}

fn latency(row: &EdgeRow) -> Latency {
    let samples = row.latency.count();
    Latency {
        samples,
        mean_micros: (samples > 0).then(|| row.latency_sum_micros as f64 / samples as f64),
        p50_micros: row.latency.quantile(0.5),
        p90_micros: row.latency.quantile(0.9),
        p99_micros: row.latency.quantile(0.99),
    }
}

pub fn build(mut rows: TopologyRows, window: TimeWindow) -> Topology {
    // The brokers' side is built once per poll ([`super::brokers::part`]) and joined below.
    let part =
        (!rows.brokers.is_empty()).then(|| super::brokers::part(&rows.brokers, &rows.brokers_then));
    super::subjects::resolve(&mut rows);
    super::routing::resolve(&mut rows, part.as_deref().map(|p| &p.routing));
    let secs = window.duration_secs().max(1.0);
    let nodes: Vec<Node> = rows
        .nodes
        .iter()
        .map(|n| Node {
            id: n.key.id.clone(),
            kind: n.key.kind,
            name: n.key.name.clone(),
            system: n.key.system.clone(),
            namespace: n.key.namespace.clone(),
            spans: (n.key.kind == NodeKind::Service).then_some(n.spans),
            span_errors: (n.key.kind == NodeKind::Service).then_some(n.errors),
            seen_in: vec![SeenIn::Traces],
            entity: (n.key.kind == NodeKind::Destination).then_some(None),
            broker: None,
            broker_then: None,
        })
        .collect();
    let mut edges = Vec::new();
    let mut dependencies = Vec::new();
    for row in &rows.edges {
        if row.kind == EdgeKind::Dependency {
            dependencies.push(Dependency {
                from: row.from.clone(),
                to: row.to.clone(),
                via: row.via.clone(),
                count: Some(row.count),
                latency: latency(row),
            });
        } else if row.count > 0 {
            edges.push(Edge {
                from: row.from.clone(),
                to: row.to.clone(),
                kind: row.kind,
                count: row.count,
                errors: row.errors,
                rate_per_sec: row.count as f64 / secs,
                latency: latency(row),
                first_seen_unix_nanos: row.first_seen_unix_nanos,
                last_seen_unix_nanos: row.last_seen_unix_nanos,
                instances: (row.kind == EdgeKind::Consume).then_some(row.instances),
                seen_in: vec![SeenIn::Traces],
                broker: None,
                broker_then: None,
                inferred: false,
                key: None,
            });
        }
    }
    let mut nodes = nodes;
    // Edges come out sorted by (from, to, kind).
    match &part {
        Some(part) => {
            super::brokers::merge_part(&mut nodes, &mut edges, part);
            super::brokers::resolve_consumes(&mut edges, &mut dependencies, &mut nodes, part);
        }
        None => edges.sort_by(|a, b| super::brokers::edge_key(a).cmp(&super::brokers::edge_key(b))),
    }
    let inferred = infer_dependencies(&edges, &dependencies);
    dependencies.extend(inferred);
    dependencies.sort_by(|a, b| (&a.from, &a.to, &a.via).cmp(&(&b.from, &b.to, &b.via)));

    let mut graph = DiGraph::new();
    let mut index = foldhash::HashMap::default();
    for (i, n) in nodes.iter().enumerate() {
        index.insert(n.id.clone(), graph.add_node(i));
    }
    for (i, e) in edges.iter().enumerate() {
        if let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) {
            graph.add_edge(a, b, i);
        }
    }
    let mut topo = Topology {
        since_unix_nanos: window.since_unix_nanos,
        until_unix_nanos: window.until_unix_nanos,
        nodes,
        edges,
        dependencies,
        findings: Vec::new(),
        graph,
        index,
        part: None,
    };
    topo.findings = detect::run_on_traffic(&topo);
    if let Some(part) = &part {
        topo.findings.extend(part.findings.iter().cloned());
    }
    topo.part = part;
    topo
}

/// Publisher x consumer pairs of each destination (following route edges, exchange -> queue)
/// that tracing did not already connect.
fn infer_dependencies(edges: &[Edge], traced: &[Dependency]) -> Vec<Dependency> {
    let mut publishers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut consumers: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut routes: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        match e.kind {
            EdgeKind::Publish => {
                publishers.entry(&e.to).or_default().insert(&e.from);
            }
            EdgeKind::Consume => {
                consumers.entry(&e.from).or_default().insert(&e.to);
            }
            EdgeKind::Route => {
                routes.entry(&e.from).or_default().insert(&e.to);
            }
            _ => {}
        }
    }
    let known: BTreeSet<(&str, &str, &str)> = traced
        .iter()
        .map(|d| (d.from.as_str(), d.to.as_str(), d.via.as_str()))
        .collect();
    let mut out = Vec::new();
    for (dest, pubs) in &publishers {
        let mut reached: Vec<&str> = vec![dest];
        reached.extend(routes.get(dest).into_iter().flatten().copied());
        for via in reached {
            for consumer in consumers.get(via).into_iter().flatten() {
                for publisher in pubs {
                    if !known.contains(&(*publisher, *consumer, via)) {
                        out.push(Dependency {
                            from: publisher.to_string(),
                            to: consumer.to_string(),
                            via: via.to_string(),
                            count: None,
                            latency: Latency::default(),
                        });
                    }
                }
            }
        }
    }
    out
}

impl Topology {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[self.graph[i]])
    }

    pub fn edges_of_kind(&self, kind: EdgeKind) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.kind == kind)
    }
}
