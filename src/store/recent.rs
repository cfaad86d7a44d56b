//! The writer's memory of recent spans: which spans were stored (to drop re-sent ones), the
//! pairing facts of recent produce, consume and client spans, the keys that pending spans
//! wait for, and interned node keys. Owned by the writer thread; bounded; rebuilt from the
//! newest blocks and `pending_refs` at start.

use super::pairing::Facts;
use crate::model::{NodeKey, SpanId, TraceId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// A span's identity as one well-mixed 64-bit value (collisions among a million recent
/// spans have a probability around 10^-8).
pub fn span_hash(trace: TraceId, span: SpanId) -> u64 {
    let t = u64::from_le_bytes(trace.0[..8].try_into().unwrap_or_default())
        ^ u64::from_le_bytes(trace.0[8..].try_into().unwrap_or_default()).rotate_left(17);
    let s = u64::from_le_bytes(span.0);
    (t ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// A FIFO-bounded set of span hashes.
pub struct Seen {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    cap: usize,
}

impl Seen {
    pub fn new(cap: usize) -> Seen {
        Seen {
            set: HashSet::with_capacity(cap.min(1 << 16)),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Records a hash; false if it was already there.
    pub fn insert(&mut self, h: u64) -> bool {
        if !self.set.insert(h) {
            return false;
        }
        self.order.push_back(h);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub fn contains(&self, h: u64) -> bool {
        self.set.contains(&h)
    }
}

/// Pairing facts of recent spans, FIFO-bounded.
pub struct RecentFacts {
    map: HashMap<u64, Facts>,
    order: VecDeque<u64>,
    cap: usize,
}

impl RecentFacts {
    pub fn new(cap: usize) -> RecentFacts {
        RecentFacts {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn insert(&mut self, facts: Facts) {
        let h = span_hash(facts.trace, facts.span_id);
        if self.map.insert(h, facts).is_none() {
            self.order.push_back(h);
            if self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    pub fn get(&self, trace: TraceId, span: SpanId) -> Option<&Facts> {
        self.map
            .get(&span_hash(trace, span))
            .filter(|f| f.trace == trace && f.span_id == span)
    }

    pub fn get_mut(&mut self, trace: TraceId, span: SpanId) -> Option<&mut Facts> {
        self.map
            .get_mut(&span_hash(trace, span))
            .filter(|f| f.trace == trace && f.span_id == span)
    }
}

/// Interned node keys, so facts and statistics share one allocation per node.
#[derive(Default)]
pub struct Nodes {
    services: HashMap<String, Vec<(Option<String>, Arc<NodeKey>)>>,
    destinations: HashMap<String, HashMap<String, Arc<NodeKey>>>,
    externals: HashMap<String, Arc<NodeKey>>,
}

impl Nodes {
    pub fn service(&mut self, name: &str, namespace: Option<&str>) -> Arc<NodeKey> {
        if let Some(list) = self.services.get(name) {
            if let Some((_, k)) = list.iter().find(|(ns, _)| ns.as_deref() == namespace) {
                return k.clone();
            }
        }
        let key = Arc::new(NodeKey::service(name, namespace));
        self.services
            .entry(name.to_string())
            .or_default()
            .push((namespace.map(str::to_string), key.clone()));
        key
    }

    pub fn destination(&mut self, system: &str, name: &str) -> Arc<NodeKey> {
        if let Some(k) = self.destinations.get(system).and_then(|m| m.get(name)) {
            return k.clone();
        }
        let key = Arc::new(NodeKey::destination(system, name));
        self.destinations
            .entry(system.to_string())
            .or_default()
            .insert(name.to_string(), key.clone());
        key
    }

    pub fn external(&mut self, name: &str, system: Option<&str>) -> Arc<NodeKey> {
        if let Some(k) = self.externals.get(name) {
            return k.clone();
        }
        let key = Arc::new(NodeKey::external(name, system));
        self.externals.insert(name.to_string(), key.clone());
        key
    }
}

/// Keys (as span hashes) that pending spans wait for: a span checks `pending_refs` only when
/// its hash is here.
pub type PendingKeys = HashSet<u64>;
