//! Per-batch statistics, merged into the per-minute tables before the batch commits.

use crate::model::window::unix_minute;
use crate::model::{EdgeKind, NodeKey};
use crate::topology::sketch::Sketch;
use foldhash::{HashMap, HashSet};
use rusqlite::{params, OptionalExtension, Transaction};
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
    fn via_id(&self) -> &str {
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
    fn merge(&mut self, other: &EdgeDelta) {
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

/// Minutes of edge totals kept in memory behind the newest one seen, so that a busy edge is
/// rewritten without being read back first.
const CACHED_MINUTES: i64 = 3;

/// What one batch adds to the statistics tables. Owned by the writer thread.
#[derive(Default)]
pub struct Accumulator {
    edges: HashMap<EdgeMinuteKey, EdgeDelta>,
    /// Committed totals of recent minutes (plus the batch being flushed). Cleared whenever a
    /// transaction rolls back, since it may then hold uncommitted values.
    totals: HashMap<EdgeMinuteKey, EdgeDelta>,
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
        self.totals.clear();
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

    /// Merges everything into the tables inside the batch's transaction, then empties itself.
    /// `known` remembers node ids already written, so nodes are inserted once.
    pub fn flush(
        &mut self,
        tx: &Transaction<'_>,
        known: &mut HashSet<String>,
        now: u64,
    ) -> rusqlite::Result<()> {
        let mut insert_node = tx.prepare_cached(
            "INSERT OR IGNORE INTO nodes (id, kind, name, system, namespace, first_seen_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (id, node) in self.nodes.drain() {
            if known.contains(&id) {
                continue;
            }
            insert_node.execute(params![
                id,
                node.kind.as_str(),
                node.name,
                node.system,
                node.namespace,
                now as i64
            ])?;
            known.insert(id);
        }
        let mut select = tx.prepare_cached(
            "SELECT count, errors, latency_sum_micros, latency, first_seen_unix_nanos, last_seen_unix_nanos FROM edge_minutes
             WHERE minute = ?1 AND from_node = ?2 AND to_node = ?3 AND kind = ?4 AND via = ?5",
        )?;
        let mut upsert = tx.prepare_cached(
            "INSERT OR REPLACE INTO edge_minutes (minute, from_node, to_node, kind, via, count, errors, latency_sum_micros, latency,
             first_seen_unix_nanos, last_seen_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut newest = i64::MIN;
        for (k, d) in self.edges.drain() {
            newest = newest.max(k.minute);
            let total = match self.totals.entry(k.clone()) {
                std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => {
                    let stored = select
                        .query_row(
                            params![
                                k.minute,
                                k.from.0.id,
                                k.to.0.id,
                                k.kind.as_i64(),
                                k.via_id()
                            ],
                            |r| {
                                let blob: Option<Vec<u8>> = r.get(3)?;
                                Ok(EdgeDelta {
                                    count: r.get(0)?,
                                    errors: r.get(1)?,
                                    latency_sum_micros: r.get(2)?,
                                    latency: Sketch::decode(blob.as_deref().unwrap_or_default()),
                                    first_seen: r.get::<_, i64>(4)? as u64,
                                    last_seen: r.get::<_, i64>(5)? as u64,
                                })
                            },
                        )
                        .optional()?;
                    v.insert(stored.unwrap_or_default())
                }
            };
            total.merge(&d);
            let blob = (!total.latency.is_empty()).then(|| total.latency.encode());
            upsert.execute(params![
                k.minute,
                k.from.0.id,
                k.to.0.id,
                k.kind.as_i64(),
                k.via_id(),
                total.count,
                total.errors,
                total.latency_sum_micros,
                blob,
                total.first_seen as i64,
                total.last_seen as i64
            ])?;
        }
        if newest != i64::MIN {
            self.totals
                .retain(|k, _| k.minute >= newest - CACHED_MINUTES);
        }
        let mut svc = tx.prepare_cached(
            "INSERT INTO service_minutes (minute, service, spans, errors) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (minute, service) DO UPDATE SET spans = spans + excluded.spans, errors = errors + excluded.errors",
        )?;
        for ((minute, service), (spans, errors)) in self.services.drain() {
            svc.execute(params![minute, service.0.id, spans, errors])?;
        }
        let mut inst = tx.prepare_cached(
            "INSERT OR IGNORE INTO consumer_instances (minute, destination, service, instance) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (minute, destination, service, instance) in self.instances.drain() {
            inst.execute(params![minute, destination, service, instance])?;
        }
        Ok(())
    }
}
