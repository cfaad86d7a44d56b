//! Named patterns in a topology, one detector per file. Each detector has `check` (its
//! findings), and each finding a one-sentence `description` of this instance.

mod action_response;
mod backlog;
mod broadcast;
mod cycle;
mod dead_end;
mod dead_letter;
mod idle_subscriber;
mod lag_growing;
mod work_queue;

use super::Topology;
use crate::model::EdgeKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `broadcast`, `work_queue`, `action_response`, `dead_end`, `idle_subscriber`, `cycle`,
    /// and from broker state `backlog`, `lag_growing` and `dead_letter`.
    pub pattern: &'static str,
    /// Node ids involved, the main one first.
    pub nodes: Vec<String>,
    pub description: String,
}

pub trait Detector {
    fn pattern(&self) -> &'static str;
    /// What the pattern means, for every instance.
    fn summary(&self) -> &'static str;
    /// The findings, given the topology's flows per destination (built once for every
    /// detector of a run).
    fn find(&self, topo: &Topology, flows: &Flows) -> Vec<Finding>;

    /// The findings of this detector alone.
    fn check(&self, topo: &Topology) -> Vec<Finding> {
        self.find(topo, &Flows::of(topo))
    }
}

pub fn detectors() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(broadcast::Broadcast),
        Box::new(work_queue::WorkQueue),
        Box::new(action_response::ActionResponse),
        Box::new(dead_end::DeadEnd),
        Box::new(idle_subscriber::IdleSubscriber),
        Box::new(cycle::Cycle),
        Box::new(backlog::Backlog),
        Box::new(lag_growing::LagGrowing),
        Box::new(dead_letter::DeadLetter),
    ]
}

/// The detectors that read only broker state (a node's or flow's broker figures, dead-letter
/// flows): the same findings whatever traces show.
fn reads_broker_state_only(pattern: &str) -> bool {
    matches!(pattern, "backlog" | "lag_growing" | "dead_letter")
}

/// The findings of every detector that reads traffic (all but the broker-state ones); in
/// [`detectors`] order, which puts the broker-state ones last.
pub fn run_on_traffic(topo: &Topology) -> Vec<Finding> {
    let flows = Flows::of(topo);
    detectors()
        .iter()
        .filter(|d| !reads_broker_state_only(d.pattern()))
        .flat_map(|d| d.find(topo, &flows))
        .collect()
}

/// The findings of the detectors that read only broker state, over the nodes and edges that
/// brokers report (built once per poll).
pub fn run_on_broker_state(nodes: &[super::Node], edges: &[super::Edge]) -> Vec<Finding> {
    let mut graph = petgraph::graph::DiGraph::new();
    let mut index = foldhash::HashMap::default();
    for (i, n) in nodes.iter().enumerate() {
        index.insert(n.id.clone(), graph.add_node(i));
    }
    let topo = Topology {
        since_unix_nanos: 0,
        until_unix_nanos: 0,
        nodes: nodes.to_vec(),
        edges: edges.to_vec(),
        dependencies: Vec::new(),
        findings: Vec::new(),
        graph,
        index,
        part: None,
    };
    let flows = Flows::default();
    detectors()
        .iter()
        .filter(|d| reads_broker_state_only(d.pattern()))
        .flat_map(|d| d.find(&topo, &flows))
        .collect()
}

/// Messages that reach `dest` in the window: traced publishes to it and traced routes into it.
fn messages_in(topo: &Topology, dest: &str) -> i64 {
    topo.edges
        .iter()
        .filter(|e| matches!(e.kind, EdgeKind::Publish | EdgeKind::Route) && e.to == dest)
        .map(|e| e.count)
        .sum()
}

/// Whether each instance of the one service consuming `edge` got its own copy of every message
/// (a fanout to a queue per instance, as Celery's `Broadcast` declares) rather than a share:
/// its instances received the messages that reached the destination that many times over. The
/// edge counts logical messages (a message delivered to two instances is one); its deliveries
/// are what pairing measured, one delay sample per delivery paired with its publish. A
/// redelivery or two in a work queue stays far below that.
fn copies_per_instance(topo: &Topology, edge: &super::Edge) -> bool {
    let instances = edge.instances.unwrap_or(0);
    if instances < 2 {
        // Most consumes: no need to add up what reached the destination (a walk over every
        // edge).
        return false;
    }
    let arrived = messages_in(topo, &edge.from);
    let deliveries = edge.count.max(edge.latency.samples);
    arrived > 0 && deliveries >= instances * arrived
}

/// Node name for descriptions.
fn name<'a>(topo: &'a Topology, id: &'a str) -> &'a str {
    topo.node(id).map(|n| n.name.as_str()).unwrap_or(id)
}

/// Per destination: its publishing services, consuming services (traced, or subscribed in a
/// broker's state), and routes in and out (traced, or a broker's bindings).
#[derive(Default)]
pub struct Flows<'a> {
    publishers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    consumers: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Looked up only, never walked in order: by hash, each list sorted.
    routes_out: foldhash::HashMap<&'a str, Vec<&'a str>>,
    routes_in: BTreeMap<&'a str, BTreeSet<&'a str>>,
    /// Kafka topics (not the cluster's own, `__`-named) whose broker reports messages coming
    /// in (end offsets grown, or a publish rate), in node order.
    written_topics: Vec<&'a str>,
    /// Destinations with a publisher, a traced route in or broker traffic: fed without
    /// following routes (what [`Flows::is_fed`] looks up first, by hash).
    fed_directly: foldhash::HashSet<&'a str>,
    /// Destinations with a consumer or a route out.
    drained: foldhash::HashSet<&'a str>,
}

/// `(key, value)` pairs as a map of sets, built in bulk from the sorted pairs.
pub(super) fn grouped<'a>(
    mut pairs: Vec<(&'a str, &'a str)>,
) -> BTreeMap<&'a str, BTreeSet<&'a str>> {
    pairs.sort_unstable();
    pairs.dedup();
    let mut groups: Vec<(&str, BTreeSet<&str>)> = Vec::new();
    let mut rest = &pairs[..];
    while let Some(&(key, _)) = rest.first() {
        let n = rest.iter().take_while(|(k, _)| *k == key).count();
        groups.push((key, rest[..n].iter().map(|&(_, v)| v).collect()));
        rest = &rest[n..];
    }
    groups.into_iter().collect()
}

/// Routes followed back at most when asking whether anything reaches a destination.
const ROUTE_DEPTH: usize = 8;

impl<'a> Flows<'a> {
    fn of(topo: &'a Topology) -> Flows<'a> {
        let mut f = Flows::default();
        // Pairs collected, then sorted and built in bulk: thousands of one-by-one inserts
        // into the maps cost more (a merged broker's bindings and consumers).
        let (mut publishers, mut consumers) = (Vec::new(), Vec::new());
        let mut routes_in = Vec::new();
        let mut fed_directly = Vec::new();
        for e in &topo.edges {
            let (from, to) = (e.from.as_str(), e.to.as_str());
            match e.kind {
                EdgeKind::Publish => publishers.push((to, from)),
                EdgeKind::Consume => consumers.push((from, to)),
                EdgeKind::Route => {
                    f.routes_out.entry(from).or_default().push(to);
                    routes_in.push((to, from));
                    if !e.broker_only() {
                        // A traced message was routed into it.
                        fed_directly.push(to);
                    }
                }
                EdgeKind::Call
                | EdgeKind::Dependency
                | EdgeKind::DeadLetter
                | EdgeKind::Failure
                | EdgeKind::Replay => {}
            }
        }
        for to in f.routes_out.values_mut() {
            to.sort_unstable();
            to.dedup();
        }
        f.publishers = grouped(publishers);
        f.consumers = grouped(consumers);
        f.routes_in = grouped(routes_in);
        for n in &topo.nodes {
            let moving = |rate: Option<f64>| rate.is_some_and(|r| r > 0.0);
            // Kafka: the partitions' end offsets moved over the window.
            let written =
                |f: &crate::model::Figures| f.lag.iter().map(|l| l.end_offset).sum::<u64>();
            let grew = match (&n.broker, &n.broker_then) {
                (Some(now), Some(then)) => written(now) > written(then),
                _ => false,
            };
            if grew
                || n.broker
                    .as_ref()
                    .is_some_and(|b| moving(b.publish_rate) || moving(b.deliver_rate))
            {
                fed_directly.push(&n.id);
                // Kafka's own topics (`__consumer_offsets`, `__transaction_state`) are written
                // by the cluster and read by no group.
                if n.entity == Some(Some(crate::model::Entity::Topic)) && !n.name.starts_with("__")
                {
                    f.written_topics.push(&n.id);
                }
            }
        }
        f.fed_directly = (f.publishers.keys().copied()).chain(fed_directly).collect();
        f.drained = (f.consumers.keys().copied())
            .chain(f.routes_out.keys().copied())
            .collect();
        f
    }

    /// Whether `dest` has a consumer or a route out.
    fn is_drained(&self, dest: &str) -> bool {
        self.drained.contains(dest)
    }

    /// Services that receive what is published to `dest`, directly or through its routes.
    fn receivers(&self, dest: &'a str) -> BTreeSet<&'a str> {
        let mut out: BTreeSet<&str> = self.consumers.get(dest).cloned().unwrap_or_default();
        for q in self.routes_out.get(dest).into_iter().flatten() {
            out.extend(self.consumers.get(q).into_iter().flatten());
        }
        out
    }

    /// Whether anything reaches `dest` in the window: a publisher, a traced route, traffic its
    /// broker reports, or a binding from a destination that something reaches. A binding alone
    /// carries nothing.
    fn is_fed(&self, dest: &str) -> bool {
        self.fed_within(dest, ROUTE_DEPTH)
    }

    fn fed_within(&self, dest: &str, depth: usize) -> bool {
        self.fed_directly.contains(dest)
            || (depth > 0
                && self
                    .routes_in
                    .get(dest)
                    .is_some_and(|from| from.iter().any(|s| self.fed_within(s, depth - 1))))
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
    /// `d:` destination, or full ids: `service:x`, `destination:system:x`).
    pub fn topo(edges: &[(&str, &str, EdgeKind, i64)]) -> Topology {
        build(rows(edges), TimeWindow::new(0, 60_000_000_000).unwrap())
    }

    /// The store rows of [`topo`], for a test to add to.
    pub fn rows(edges: &[(&str, &str, EdgeKind, i64)]) -> TopologyRows {
        let mut ids: Vec<&str> = edges.iter().flat_map(|e| [e.0, e.1]).collect();
        ids.sort();
        ids.dedup();
        let nodes = ids
            .iter()
            .map(|id| {
                let key = match id.split_once(':') {
                    Some(("destination", rest)) => {
                        let (system, n) = rest.split_once(':').unwrap_or(("test", rest));
                        NodeKey::destination(system, n)
                    }
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
        TopologyRows {
            nodes,
            edges,
            brokers: Vec::new(),
            brokers_then: Vec::new(),
        }
    }
}
