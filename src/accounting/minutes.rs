//! Per-minute statistics of one batch (edges with counts, errors and latency sketches;
//! service span counts; consumer instances), gathered in memory. The store merges them into
//! its tables before the batch commits (`Accumulator::drain`).

use crate::model::sketch::Sketch;
use crate::model::window::unix_minute;
use crate::model::{EdgeKind, NodeKey};
use foldhash::{HashMap, HashSet};
use std::sync::Arc;

/// A shared node key compared and hashed by its id only.
#[derive(Clone, Debug)]
pub struct NodeRef(pub Arc<NodeKey>);

impl PartialEq for NodeRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.id == other.0.id
    }
}

impl Eq for NodeRef {}

impl std::hash::Hash for NodeRef {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id.hash(state);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EdgeMinuteKey {
    pub minute: i64,
    pub from: NodeRef,
    pub to: NodeRef,
    pub kind: EdgeKind,
    pub via: Option<NodeRef>,
}

impl EdgeMinuteKey {
    /// The id of the destination a dependency goes through ("" for other edges).
    pub fn via_id(&self) -> &str {
        self.via.as_ref().map(|v| v.0.id.as_str()).unwrap_or("")
    }
}

#[derive(Clone, Debug, Default)]
pub struct EdgeDelta {
    pub count: i64,
    pub errors: i64,
    pub latency_sum_micros: i64,
    pub latency: Sketch,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl EdgeDelta {
    /// Adds another delta of the same edge and minute (as a sketch merge: exact).
    pub fn merge(&mut self, other: &EdgeDelta) {
        self.count += other.count;
        self.errors += other.errors;
        self.latency_sum_micros += other.latency_sum_micros;
        self.latency.merge(&other.latency);
        self.first_seen = match (self.first_seen, other.first_seen) {
            (0, b) => b,
            (a, 0) => a,
            (a, b) => a.min(b),
        };
        self.last_seen = self.last_seen.max(other.last_seen);
    }
}

/// What one batch adds to the statistics tables. Owned by the writer thread.
#[derive(Default)]
pub struct Accumulator {
    edges: HashMap<EdgeMinuteKey, EdgeDelta>,
    services: HashMap<(i64, NodeRef), (i64, i64)>,
    nodes: HashMap<String, Arc<NodeKey>>,
    instances: HashSet<(i64, String, String, String)>,
}

/// One change to an edge's statistics: `weight` is +1 to add a sample or -1 to take it back.
pub struct EdgeChange<'a> {
    pub from: &'a Arc<NodeKey>,
    pub to: &'a Arc<NodeKey>,
    pub kind: EdgeKind,
    pub via: Option<&'a Arc<NodeKey>>,
    pub at_unix_nanos: u64,
    pub count: i64,
    pub errors: i64,
    pub latency_micros: Option<u64>,
    pub weight: i64,
}

impl Accumulator {
    pub fn edge(&mut self, c: EdgeChange<'_>) {
        for node in [c.from, c.to] {
            self.note_node(node);
        }
        let key = EdgeMinuteKey {
            minute: unix_minute(c.at_unix_nanos),
            from: NodeRef(c.from.clone()),
            to: NodeRef(c.to.clone()),
            kind: c.kind,
            via: c.via.map(|v| NodeRef(v.clone())),
        };
        let d = self.edges.entry(key).or_default();
        d.count += c.count;
        d.errors += c.errors;
        if let Some(micros) = c.latency_micros {
            d.latency.add(micros, c.weight);
            d.latency_sum_micros += micros as i64 * c.weight;
        }
        d.first_seen = if d.first_seen == 0 {
            c.at_unix_nanos
        } else {
            d.first_seen.min(c.at_unix_nanos)
        };
        d.last_seen = d.last_seen.max(c.at_unix_nanos);
    }

    /// Forgets everything not committed: call after a rollback.
    pub fn reset(&mut self) {
        self.edges.clear();
        self.services.clear();
        self.nodes.clear();
        self.instances.clear();
    }

    fn note_node(&mut self, node: &Arc<NodeKey>) {
        if !self.nodes.contains_key(&node.id) {
            self.nodes.insert(node.id.clone(), node.clone());
        }
    }

    pub fn service_span(&mut self, service: &Arc<NodeKey>, at_unix_nanos: u64, error: bool) {
        self.note_node(service);
        let e = self
            .services
            .entry((unix_minute(at_unix_nanos), NodeRef(service.clone())))
            .or_default();
        e.0 += 1;
        e.1 += error as i64;
    }

    pub fn consumer_instance(
        &mut self,
        destination: &NodeKey,
        service: &NodeKey,
        instance: &str,
        at_unix_nanos: u64,
    ) {
        self.instances.insert((
            unix_minute(at_unix_nanos),
            destination.id.clone(),
            service.id.clone(),
            instance.to_string(),
        ));
    }

    /// Takes everything gathered, leaving the accumulator empty.
    pub fn drain(&mut self) -> Drained {
        Drained {
            nodes: self.nodes.drain().map(|(_, n)| n).collect(),
            edges: self.edges.drain().collect(),
            services: self
                .services
                .drain()
                .map(|((minute, s), (spans, errors))| ServiceMinute {
                    minute,
                    service: s.0,
                    spans,
                    errors,
                })
                .collect(),
            instances: self
                .instances
                .drain()
                .map(|(minute, destination, service, instance)| InstanceMinute {
                    minute,
                    destination,
                    service,
                    instance,
                })
                .collect(),
        }
    }
}

/// One batch's statistics, for the store to merge into its tables.
#[derive(Debug, Default)]
pub struct Drained {
    /// Every node an edge or a service count names.
    pub nodes: Vec<Arc<NodeKey>>,
    pub edges: Vec<(EdgeMinuteKey, EdgeDelta)>,
    pub services: Vec<ServiceMinute>,
    pub instances: Vec<InstanceMinute>,
}

/// Spans (and error spans) a service emitted in one minute.
#[derive(Debug)]
pub struct ServiceMinute {
    pub minute: i64,
    pub service: Arc<NodeKey>,
    pub spans: i64,
    pub errors: i64,
}

/// An instance of a service seen consuming from a destination in one minute.
#[derive(Debug)]
pub struct InstanceMinute {
    pub minute: i64,
    pub destination: String,
    pub service: String,
    pub instance: String,
}
