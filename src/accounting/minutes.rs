//! Per-minute statistics of one batch (edges with counts, errors and latency sketches;
//! service span counts; consumer instances; messages per partition), gathered in memory. The store merges them into
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
    partitions: HashMap<PartitionKey, (i64, i64)>,
    pairs: HashMap<PairKey, PairDelta>,
}

/// One minute of one partition of a destination, as one service used it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub minute: i64,
    pub destination: NodeRef,
    pub partition: i32,
    pub service: NodeRef,
}

/// A client/server pair of services, as Tempo's service graph counts them: a CLIENT span and
/// the SERVER span of another service under it, or a producer and a consumer of one message
/// (`messaging`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PairKey {
    pub client: NodeRef,
    pub server: NodeRef,
    pub messaging: bool,
}

/// What one batch adds to a pair: requests (messages), failed ones (either side in error),
/// the client's (producer's) and the server's (consumer's) span durations. Counts only grow.
#[derive(Clone, Debug, Default)]
pub struct PairDelta {
    pub count: u64,
    pub failed: u64,
    pub client: Sketch,
    pub client_sum_micros: u64,
    pub server: Sketch,
    pub server_sum_micros: u64,
}

/// One paired request or message, for [`Accumulator::pair`].
pub struct PairSample<'a> {
    pub client: &'a Arc<NodeKey>,
    pub server: &'a Arc<NodeKey>,
    pub messaging: bool,
    pub failed: bool,
    pub client_micros: u64,
    pub server_micros: u64,
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

    /// Counts one paired request or message (only ever added: never taken back).
    pub fn pair(&mut self, p: PairSample<'_>) {
        let key = PairKey {
            client: NodeRef(p.client.clone()),
            server: NodeRef(p.server.clone()),
            messaging: p.messaging,
        };
        let d = self.pairs.entry(key).or_default();
        d.count += 1;
        d.failed += p.failed as u64;
        d.client.add(p.client_micros, 1);
        d.client_sum_micros += p.client_micros;
        d.server.add(p.server_micros, 1);
        d.server_sum_micros += p.server_micros;
    }

    /// Forgets everything not committed: call after a rollback.
    pub fn reset(&mut self) {
        self.pairs.clear();
        self.edges.clear();
        self.services.clear();
        self.nodes.clear();
        self.instances.clear();
        self.partitions.clear();
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

    /// Counts messages a service published to (`published`) or consumed from (`consumed`)
    /// one partition of a destination, as the spans that name the partition say.
    pub fn partition(
        &mut self,
        destination: &Arc<NodeKey>,
        partition: i32,
        service: &Arc<NodeKey>,
        at_unix_nanos: u64,
        published: i64,
        consumed: i64,
    ) {
        let key = PartitionKey {
            minute: unix_minute(at_unix_nanos),
            destination: NodeRef(destination.clone()),
            partition,
            service: NodeRef(service.clone()),
        };
        let e = self.partitions.entry(key).or_default();
        e.0 += published;
        e.1 += consumed;
    }

    /// Takes everything gathered, leaving the accumulator empty.
    pub fn drain(&mut self) -> Drained {
        Drained {
            pairs: self.pairs.drain().collect(),
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
            partitions: self
                .partitions
                .drain()
                .map(|(k, (published, consumed))| PartitionMinute {
                    minute: k.minute,
                    destination: k.destination.0,
                    partition: k.partition,
                    service: k.service.0,
                    published,
                    consumed,
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
    pub partitions: Vec<PartitionMinute>,
    /// Paired requests and messages, per client/server pair.
    pub pairs: Vec<(PairKey, PairDelta)>,
}

impl Drained {
    /// What the collector's own metrics take of the batch once it is committed: the pairs,
    /// and per destination the messages published and consumed and the delays of the
    /// consumes (samples taken back, which only calls to external peers have, are left out).
    pub fn observed(&mut self) -> Observed {
        let mut destinations: HashMap<NodeRef, DestinationDelta> = HashMap::default();
        for (k, d) in &self.edges {
            let (dest, published) = match k.kind {
                EdgeKind::Publish => (&k.to, true),
                EdgeKind::Consume => (&k.from, false),
                _ => continue,
            };
            let e = destinations.entry(dest.clone()).or_default();
            let count = d.count.max(0) as u64;
            if published {
                e.published += count;
            } else {
                e.consumed += count;
                if d.latency_sum_micros > 0 || !d.latency.is_empty() {
                    e.delay.merge(&d.latency);
                    e.delay_sum_micros += d.latency_sum_micros.max(0) as u64;
                }
            }
        }
        Observed {
            pairs: std::mem::take(&mut self.pairs),
            destinations: destinations.into_iter().map(|(k, v)| (k.0, v)).collect(),
        }
    }
}

/// Messages published to and consumed from one destination in a batch, and the
/// publish-to-consume delays of the consumes.
#[derive(Clone, Debug, Default)]
pub struct DestinationDelta {
    pub published: u64,
    pub consumed: u64,
    pub delay: Sketch,
    pub delay_sum_micros: u64,
}

/// A committed batch's contribution to the collector's own metrics (the telemetry module).
#[derive(Debug, Default)]
pub struct Observed {
    pub pairs: Vec<(PairKey, PairDelta)>,
    pub destinations: Vec<(Arc<NodeKey>, DestinationDelta)>,
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

/// Messages one service published to and consumed from one partition of a destination in
/// one minute (spans that name the partition).
#[derive(Debug)]
pub struct PartitionMinute {
    pub minute: i64,
    pub destination: Arc<NodeKey>,
    pub partition: i32,
    pub service: Arc<NodeKey>,
    pub published: i64,
    pub consumed: i64,
}
