//! Store rows -> graph with statistics, derived dependencies and findings.

use super::detect::{self, Finding};
use crate::model::{EdgeKind, Entity, Figures, NodeKind, TimeWindow};
use crate::model::{EdgeRow, TopologyRows};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

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
    /// What a destination is on its broker: what a broker reported, else what its messaging
    /// system implies ([`Entity::implied_by`]: a Kafka topic, a NATS subject); null when
    /// neither tells (absent on other nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<Option<Entity>>,
    /// The broker's own figures, when a broker reports the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broker: Option<Figures>,
    /// The same figures at the broker's oldest poll in the window (for trends; boxed, as
    /// few nodes and edges have them).
    #[serde(skip)]
    pub broker_then: Option<Box<Figures>>,
    /// Destinations: errors of the consumes of their messages (failed consumes, nacks, expired
    /// leases, dead-letterings), summed over their consume edges (absent on other nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<i64>,
    /// Destinations: the failures of their consumes by reason, summed over their consume edges.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, i64>,
}

/// Where a node or an edge was seen; `declared`: an AsyncAPI document (`serve --declared`)
/// names it (see `topology::declared`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeenIn {
    Traces,
    Broker,
    Declared,
}

impl SeenIn {
    pub fn as_str(self) -> &'static str {
        match self {
            SeenIn::Traces => "traces",
            SeenIn::Broker => "broker",
            SeenIn::Declared => "declared",
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
    /// Consume edges: failures by reason (`nack`, `lease_expired`, `dead_letter`,
    /// `redelivered`, a failed consume's `error.type` or `error`). Every reason but
    /// `redelivered` is also in `errors`; redeliveries are not in `count`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, i64>,
    /// Consume edges of streams: events read again, not in `count`, with their own delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replays: Option<Replays>,
    /// Seconds of the window the edge carried traffic: from its first to its last message in
    /// the window, at least a minute (the statistics' resolution) or the whole window when
    /// shorter; 0 for what only a broker reported.
    pub active_secs: f64,
    /// `count` per second over `active_secs` (0 when nothing was traced).
    pub active_rate_per_sec: f64,
    /// The traced counts `rate_per_sec` sums, each over the window's length: with
    /// `active_secs`, all of an edge that depends on the window's exact bounds rather than on
    /// the minutes it covers (see [`Edge::set_window`]).
    #[serde(skip)]
    pub rate_terms: Vec<i64>,
}

/// Stream events read again on one consume edge.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Replays {
    pub count: i64,
    /// Publish-to-read delay of the replayed events.
    pub latency: Latency,
}

impl Edge {
    /// An edge with no traffic, no figures and no source yet: what each builder fills in.
    pub fn new(from: String, to: String, kind: EdgeKind) -> Edge {
        Edge {
            from,
            to,
            kind,
            count: 0,
            errors: 0,
            rate_per_sec: 0.0,
            latency: Latency::default(),
            first_seen_unix_nanos: 0,
            last_seen_unix_nanos: 0,
            instances: None,
            seen_in: Vec::new(),
            broker: None,
            broker_then: None,
            inferred: false,
            key: None,
            failures: BTreeMap::new(),
            replays: None,
            active_secs: 0.0,
            active_rate_per_sec: 0.0,
            rate_terms: Vec::new(),
        }
    }

    /// Sets what depends on the window's exact bounds: the rate over the window and the
    /// active time and rate. The rest of an edge is the same for every window over the same
    /// minutes of the same stored rows (what `topology::json::Template` relies on).
    pub fn set_window(&mut self, window: &TimeWindow) {
        let secs = window.duration_secs().max(1.0);
        self.rate_per_sec = (self.rate_terms.iter()).fold(0.0, |r, &n| r + n as f64 / secs);
        (self.active_secs, self.active_rate_per_sec) = (0.0, 0.0);
        if self.count <= 0 || self.last_seen_unix_nanos == 0 {
            return;
        }
        let from = self.first_seen_unix_nanos.max(window.since_unix_nanos);
        let to = self.last_seen_unix_nanos.min(window.until_unix_nanos);
        let seen = to.saturating_sub(from) as f64 / 1e9;
        let floor = 60f64.min(secs);
        self.active_secs = seen.max(floor);
        self.active_rate_per_sec = self.count as f64 / self.active_secs;
    }

    /// Whether [`Edge::set_window`] changes anything for some window.
    pub fn depends_on_window(&self) -> bool {
        self.count > 0 || !self.rate_terms.is_empty()
    }

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

/// The `entity` of a node not reported by a broker: what its system implies, for
/// destinations (see [`Entity::implied_by`]).
pub fn destination_entity(kind: NodeKind, system: Option<&str>) -> Option<Option<Entity>> {
    (kind == NodeKind::Destination).then(|| system.and_then(Entity::implied_by))
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
            entity: destination_entity(n.key.kind, n.key.system.as_deref()),
            broker: None,
            broker_then: None,
            errors: None,
            failures: BTreeMap::new(),
        })
        .collect();
    let mut edges = Vec::new();
    let mut dependencies = Vec::new();
    let mut failures: Vec<&EdgeRow> = Vec::new();
    for row in &rows.edges {
        if matches!(row.kind, EdgeKind::Failure | EdgeKind::Replay) {
            failures.push(row);
        } else if row.kind == EdgeKind::Dependency {
            dependencies.push(Dependency {
                from: row.from.clone(),
                to: row.to.clone(),
                via: row.via.clone(),
                count: Some(row.count),
                latency: latency(row),
            });
        } else if row.count > 0 {
            edges.push(Edge {
                count: row.count,
                errors: row.errors,
                rate_terms: vec![row.count],
                latency: latency(row),
                first_seen_unix_nanos: row.first_seen_unix_nanos,
                last_seen_unix_nanos: row.last_seen_unix_nanos,
                instances: (row.kind == EdgeKind::Consume).then_some(row.instances),
                seen_in: vec![SeenIn::Traces],
                ..Edge::new(row.from.clone(), row.to.clone(), row.kind)
            });
        }
    }
    fold_failures(&mut edges, &failures);
    let mut nodes = nodes;
    let mut renamed = HashMap::new();
    // Edges come out sorted by (from, to, kind).
    match &part {
        Some(part) => {
            super::brokers::merge_part(&mut nodes, &mut edges, part);
            super::brokers::resolve_consumes(&mut edges, &mut dependencies, &mut nodes, part);
            super::brokers::unread_queue_failures(&mut edges, part);
            renamed = super::groups::match_groups(&mut nodes, &mut edges);
        }
        None => edges.sort_by(|a, b| super::brokers::edge_key(a).cmp(&super::brokers::edge_key(b))),
    }
    for e in &mut edges {
        e.set_window(&window);
    }
    destination_failures(&mut nodes, &edges);
    let inferred = infer_dependencies(&edges, &dependencies);
    dependencies.extend(inferred);
    dependencies.sort_by(|a, b| (&a.from, &a.to, &a.via).cmp(&(&b.from, &b.to, &b.via)));

    let mut graph = DiGraph::with_capacity(nodes.len(), edges.len());
    let mut index = foldhash::HashMap::with_capacity_and_hasher(nodes.len(), Default::default());
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
        let at = topo.findings.len();
        topo.findings.extend(part.findings.iter().cloned());
        // A group matched to a traced service is found under that service's id.
        for f in &mut topo.findings[at..] {
            for n in &mut f.nodes {
                if let Some(to) = renamed.get(n) {
                    n.clone_from(to);
                }
            }
        }
    }
    topo.part = part;
    topo
}

/// Folds failure and replay rows into their consume edges (destination -> service), adding
/// a consume edge with no count where the window holds failures only.
fn fold_failures(edges: &mut Vec<Edge>, rows: &[&EdgeRow]) {
    if rows.is_empty() {
        return;
    }
    let mut at: HashMap<(String, String), usize> = edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EdgeKind::Consume)
        .map(|(i, e)| ((e.from.clone(), e.to.clone()), i))
        .collect();
    for row in rows {
        let i = *at
            .entry((row.from.clone(), row.to.clone()))
            .or_insert_with(|| {
                edges.push(Edge {
                    first_seen_unix_nanos: row.first_seen_unix_nanos,
                    last_seen_unix_nanos: row.last_seen_unix_nanos,
                    instances: Some(row.instances),
                    seen_in: vec![SeenIn::Traces],
                    ..Edge::new(row.from.clone(), row.to.clone(), EdgeKind::Consume)
                });
                edges.len() - 1
            });
        let e = &mut edges[i];
        e.errors += row.errors;
        match row.kind {
            EdgeKind::Failure if row.count != 0 => {
                *e.failures.entry(row.via.clone()).or_default() += row.count;
            }
            EdgeKind::Replay => {
                let r = e.replays.get_or_insert_with(Replays::default);
                r.count += row.count;
                r.latency = latency(row);
            }
            _ => {}
        }
    }
}

/// Each destination's consume errors and failures by reason, from its consume edges.
pub(super) fn destination_failures(nodes: &mut [Node], edges: &[Edge]) {
    let at: foldhash::HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind == NodeKind::Destination)
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut sums: Vec<(i64, BTreeMap<String, i64>)> = vec![Default::default(); nodes.len()];
    for e in edges.iter().filter(|e| e.kind == EdgeKind::Consume) {
        if let Some(&i) = at.get(e.from.as_str()) {
            sums[i].0 += e.errors;
            for (reason, n) in &e.failures {
                *sums[i].1.entry(reason.clone()).or_default() += n;
            }
        }
    }
    for (n, (errors, failures)) in nodes.iter_mut().zip(sums) {
        if n.kind == NodeKind::Destination {
            n.errors = Some(errors);
            n.failures = failures;
        }
    }
}

/// Publisher x consumer pairs of each destination (following route edges, exchange -> queue)
/// that tracing did not already connect.
fn infer_dependencies(edges: &[Edge], traced: &[Dependency]) -> Vec<Dependency> {
    let (mut publishers, mut consumers, mut routes) = (Vec::new(), Vec::new(), Vec::new());
    for e in edges {
        let (from, to) = (e.from.as_str(), e.to.as_str());
        match e.kind {
            EdgeKind::Publish => publishers.push((to, from)),
            EdgeKind::Consume => consumers.push((from, to)),
            EdgeKind::Route => routes.push((from, to)),
            _ => {}
        }
    }
    // By hash, not in order: the caller sorts the dependencies, and pairs of one key that
    // differ from each other are never equal dependencies.
    let (publishers, consumers, routes) = (by_key(publishers), by_key(consumers), by_key(routes));
    let known: foldhash::HashSet<(&str, &str, &str)> = traced
        .iter()
        .map(|d| (d.from.as_str(), d.to.as_str(), d.via.as_str()))
        .collect();
    let mut out = Vec::new();
    for (&dest, pubs) in &publishers {
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

/// `(key, value)` pairs as lists by key, each list sorted without repeats.
fn by_key<'a>(pairs: Vec<(&'a str, &'a str)>) -> foldhash::HashMap<&'a str, Vec<&'a str>> {
    let mut by: foldhash::HashMap<&str, Vec<&str>> = Default::default();
    for (k, v) in pairs {
        by.entry(k).or_default().push(v);
    }
    for v in by.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    by
}

impl Topology {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.index.get(id).map(|&i| &self.nodes[self.graph[i]])
    }

    pub fn edges_of_kind(&self, kind: EdgeKind) -> impl Iterator<Item = &Edge> {
        self.edges.iter().filter(move |e| e.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::rows;

    const MINUTE: u64 = 60_000_000_000;

    fn failure(rows: &mut TopologyRows, reason: &str, count: i64, errors: i64) {
        let mut r = rows.edges[1].clone();
        r.kind = Failure;
        r.via = reason.to_string();
        r.count = count;
        r.errors = errors;
        rows.edges.push(r);
    }

    /// Spans alone tell what a destination is only where its system has one kind: a Kafka
    /// topic, a NATS subject; a RabbitMQ name may be an exchange or a queue (null).
    #[test]
    fn a_traced_destination_is_what_its_system_implies() {
        let r = rows(&[
            ("s:a", "destination:kafka:orders", Publish, 1),
            ("s:a", "destination:nats:orders.created", Publish, 1),
            ("s:a", "destination:rabbitmq:orders", Publish, 1),
            ("s:a", "destination:switchyard:orders", Publish, 1),
        ]);
        let t = build(r, TimeWindow::new(0, MINUTE).unwrap());
        let entity = |id: &str| t.node(id).map(|n| n.entity);
        assert_eq!(
            entity("destination:kafka:orders"),
            Some(Some(Some(Entity::Topic)))
        );
        assert_eq!(
            entity("destination:nats:orders.created"),
            Some(Some(Some(Entity::Subject)))
        );
        assert_eq!(entity("destination:rabbitmq:orders"), Some(Some(None)));
        assert_eq!(entity("destination:switchyard:orders"), Some(Some(None)));
        assert_eq!(entity("s:a"), Some(None), "services have no entity");
        let json = serde_json::to_value(&t).unwrap();
        let node = |id: &str| {
            json["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|n| n["id"] == id)
                .cloned()
                .unwrap()
        };
        assert_eq!(node("destination:kafka:orders")["entity"], "topic");
        assert!(node("destination:rabbitmq:orders")["entity"].is_null());
        assert!(node("s:a").get("entity").is_none());
    }

    #[test]
    fn failures_and_replays_fold_into_their_consume_edge() {
        let mut r = rows(&[("s:a", "d:q", Publish, 10), ("d:q", "s:b", Consume, 10)]);
        r.edges[1].errors = 1;
        failure(&mut r, "nack", 4, 4);
        failure(&mut r, "dead_letter", 1, 1);
        failure(&mut r, "redelivered", 3, 0);
        failure(&mut r, "ValueError", 1, 0);
        let mut replay = r.edges[1].clone();
        (replay.kind, replay.count, replay.errors) = (Replay, 7, 0);
        replay.latency.add(5_000_000, 1);
        r.edges.push(replay);
        let t = build(r, TimeWindow::new(0, 10 * MINUTE).unwrap());
        assert_eq!(
            t.edges.len(),
            2,
            "statistics rows are no edges: {:?}",
            t.edges
        );
        let e = t.edges.iter().find(|e| e.kind == Consume).unwrap();
        // Redeliveries and replays are not messages; every failure but a redelivery and the
        // failed consume already counted is an error.
        assert_eq!((e.count, e.errors), (10, 6));
        let reasons: Vec<(&str, i64)> = e.failures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(
            reasons,
            [
                ("ValueError", 1),
                ("dead_letter", 1),
                ("nack", 4),
                ("redelivered", 3)
            ]
        );
        let replays = e.replays.as_ref().unwrap();
        assert_eq!((replays.count, replays.latency.samples), (7, 1));
        assert_eq!(
            e.latency.samples, 0,
            "the consume edge's delay holds no replay"
        );
        let q = t.node("d:q").unwrap();
        assert_eq!(q.errors, Some(6));
        assert_eq!(q.failures.get("nack"), Some(&4));
        assert_eq!(t.node("s:a").unwrap().errors, None);
    }

    #[test]
    fn failures_alone_make_a_consume_edge_without_messages() {
        let mut r = rows(&[("s:a", "d:q", Publish, 2), ("d:q", "s:b", Consume, 0)]);
        failure(&mut r, "lease_expired", 2, 2);
        let t = build(r, TimeWindow::new(0, MINUTE).unwrap());
        let e = t.edges.iter().find(|e| e.kind == Consume).unwrap();
        assert_eq!((e.count, e.errors), (0, 2));
        assert_eq!(e.failures.get("lease_expired"), Some(&2));
    }

    #[test]
    fn rates_are_per_second_over_the_time_an_edge_was_active() {
        let mut r = rows(&[("s:a", "d:q", Publish, 600), ("s:a", "d:r", Publish, 6)]);
        // Ten minutes of traffic in a one-hour window, and a burst within one second.
        (
            r.edges[0].first_seen_unix_nanos,
            r.edges[0].last_seen_unix_nanos,
        ) = (20 * MINUTE, 30 * MINUTE);
        (
            r.edges[1].first_seen_unix_nanos,
            r.edges[1].last_seen_unix_nanos,
        ) = (5 * MINUTE, 5 * MINUTE + 1_000_000_000);
        let t = build(r, TimeWindow::new(0, 60 * MINUTE).unwrap());
        let q = t.edges.iter().find(|e| e.to == "d:q").unwrap();
        assert_eq!(q.active_secs, 600.0);
        assert_eq!(q.active_rate_per_sec, 1.0);
        assert_eq!(
            q.rate_per_sec,
            600.0 / 3600.0,
            "the window's rate stays as it was"
        );
        // At least a minute: the statistics' resolution.
        let burst = t.edges.iter().find(|e| e.to == "d:r").unwrap();
        assert_eq!((burst.active_secs, burst.active_rate_per_sec), (60.0, 0.1));
    }
}
