//! The writer's memory of recent spans: which spans were stored (to drop re-sent ones), the
//! pairing facts of recent produce, consume and client spans, the keys that pending spans
//! wait for, and interned node keys. Owned by the writer thread; bounded; rebuilt from the
//! newest blocks and `pending_refs` at start.

use super::facts::Facts;
use crate::model::{NodeKey, SpanId, TraceId};
use foldhash::{HashMap, HashSet};
use std::collections::VecDeque;
use std::sync::Arc;

/// A span's identity as one well-mixed 64-bit value (collisions among a million recent
/// spans have a probability around 10^-8).
pub fn span_hash(trace: TraceId, span: SpanId) -> u64 {
    let t = u64::from_le_bytes(trace.0[..8].try_into().unwrap_or_default())
        ^ u64::from_le_bytes(trace.0[8..].try_into().unwrap_or_default()).rotate_left(17);
    let s = u64::from_le_bytes(span.0);
    (t ^ s.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// A FIFO-bounded set of span hashes, each with whether the span matters to pairing.
pub struct Seen {
    map: HashMap<u64, bool>,
    order: VecDeque<u64>,
    cap: usize,
}

impl Seen {
    pub fn new(cap: usize) -> Seen {
        Seen {
            map: HashMap::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// Records a span; false if it was already there.
    pub fn insert(&mut self, h: u64, pairable: bool) -> bool {
        if self.map.contains_key(&h) {
            return false;
        }
        self.map.insert(h, pairable);
        self.order.push_back(h);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        true
    }

    /// `Some(pairable)` for a span stored recently.
    pub fn get(&self, h: u64) -> Option<bool> {
        self.map.get(&h).copied()
    }
}

/// Pairing facts of recent spans, FIFO-bounded.
pub struct RecentFacts {
    /// span hash -> sequence number of its slot in `ring`.
    map: HashMap<u64, u64>,
    /// The last `cap` facts; slot `seq % cap`.
    ring: Vec<Facts>,
    next: u64,
    cap: usize,
}

impl RecentFacts {
    pub fn new(cap: usize) -> RecentFacts {
        RecentFacts {
            map: HashMap::default(),
            ring: Vec::new(),
            next: 0,
            cap: cap.max(1),
        }
    }

    pub fn insert(&mut self, facts: Facts) {
        let h = span_hash(facts.trace, facts.span_id);
        if let Some(&seq) = self.map.get(&h) {
            self.ring[(seq % self.cap as u64) as usize] = facts;
            return;
        }
        let slot = (self.next % self.cap as u64) as usize;
        if self.ring.len() < self.cap {
            self.ring.push(facts);
        } else {
            let old = &self.ring[slot];
            let old_hash = span_hash(old.trace, old.span_id);
            if self.map.get(&old_hash) == Some(&(self.next - self.cap as u64)) {
                self.map.remove(&old_hash);
            }
            self.ring[slot] = facts;
        }
        self.map.insert(h, self.next);
        self.next += 1;
    }

    fn slot(&self, trace: TraceId, span: SpanId) -> Option<usize> {
        let seq = *self.map.get(&span_hash(trace, span))?;
        let slot = (seq % self.cap as u64) as usize;
        let f = self.ring.get(slot)?;
        (f.trace == trace && f.span_id == span).then_some(slot)
    }

    pub fn get(&self, trace: TraceId, span: SpanId) -> Option<&Facts> {
        self.slot(trace, span).map(|s| &self.ring[s])
    }

    pub fn get_mut(&mut self, trace: TraceId, span: SpanId) -> Option<&mut Facts> {
        self.slot(trace, span).map(|s| &mut self.ring[s])
    }
}

/// Which consuming services (and through which destination) each recent publish reached, so
/// that a message delivered twice to one service (a redelivery, or Celery's `Broadcast`
/// giving every instance its own copy) counts once on the consume, dependency and route
/// edges: counts stay logical messages. FIFO-bounded by publishes; a publish forgotten (or
/// remembered by another collector) may count a second delivery again.
/// (service, destination) and (destination) entries remembered per publish.
const MAX_REACHED: usize = 256;

pub struct Delivered {
    /// publish span hash -> hashes of the (service, destination) and (destination) it reached.
    map: HashMap<u64, Vec<u64>>,
    order: VecDeque<u64>,
    cap: usize,
    /// First deliveries noted since the last [`Delivered::take_journal`], kept only when
    /// journaled (a store shared by several writers records them for the others).
    journal: Option<Vec<Delivery>>,
}

/// A first delivery of a publish to a (service, destination), as [`Delivered::take_journal`]
/// gives it: the publish's ids, the two node ids, and the consume that made it (if known).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub trace: TraceId,
    pub span: SpanId,
    pub service: String,
    pub destination: String,
    pub by: Option<(TraceId, SpanId)>,
}

/// What one delivery of a message reached, as [`Delivered`] remembers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reached {
    /// This service had already consumed the message from this destination.
    pub service: bool,
    /// The message had already been routed to this destination.
    pub destination: bool,
    /// This very instance of the service (an unnamed one counts as one) had already
    /// consumed the message from this destination.
    pub instance: bool,
}

impl Delivered {
    pub fn new(cap: usize) -> Delivered {
        Delivered {
            map: HashMap::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
            journal: None,
        }
    }

    /// A memory that also journals each first delivery it notes (see [`Delivered::take_journal`]).
    pub fn journaled(cap: usize) -> Delivered {
        Delivered {
            journal: Some(Vec::new()),
            ..Delivered::new(cap)
        }
    }

    /// The first deliveries noted since the last call (empty unless journaled).
    pub fn take_journal(&mut self) -> Vec<Delivery> {
        self.journal
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Remembers a delivery another writer noted (read back from the store): the next
    /// [`Delivered::note`] of it says it was reached before. Not journaled.
    pub fn remember(
        &mut self,
        trace: TraceId,
        span: SpanId,
        service_id: &str,
        destination_id: &str,
    ) {
        let journal = self.journal.take();
        self.note_ids(trace, span, (service_id, None), destination_id, None);
        self.journal = journal;
    }

    /// Records that the publish (trace, span) reached `service` through `destination`, and
    /// says what of that it had reached before.
    pub fn note(
        &mut self,
        trace: TraceId,
        span: SpanId,
        service: &NodeKey,
        destination: &NodeKey,
    ) -> Reached {
        self.note_ids(trace, span, (&service.id, None), &destination.id, None)
    }

    /// [`Delivered::note`] by the service's `instance` too (`""`: unnamed, one instance;
    /// `None`: not known, not noted by instance).
    pub fn note_instance(
        &mut self,
        (trace, span): (TraceId, SpanId),
        (service, instance): (&NodeKey, Option<&str>),
        destination: &NodeKey,
    ) -> Reached {
        self.note_ids(trace, span, (&service.id, instance), &destination.id, None)
    }

    /// [`Delivered::note`] of the delivery that the consume `by` made (journaled with it), by
    /// the service's `instance` as [`Delivered::note_instance`] takes it.
    pub fn note_by(
        &mut self,
        (trace, span): (TraceId, SpanId),
        (service, instance): (&NodeKey, Option<&str>),
        destination: &NodeKey,
        by: (TraceId, SpanId),
    ) -> Reached {
        self.note_ids(
            trace,
            span,
            (&service.id, instance),
            &destination.id,
            Some(by),
        )
    }

    fn note_ids(
        &mut self,
        trace: TraceId,
        span: SpanId,
        (service, instance): (&str, Option<&str>),
        destination: &str,
        by: Option<(TraceId, SpanId)>,
    ) -> Reached {
        let h = span_hash(trace, span);
        let by_service = key_hash(&[service, destination]);
        let by_destination = key_hash(&[destination]);
        let by_instance = instance.map(|i| key_hash(&[service, destination, "instance", i]));
        let list = match self.map.get_mut(&h) {
            Some(list) => list,
            None => {
                self.order.push_back(h);
                if self.order.len() > self.cap {
                    if let Some(old) = self.order.pop_front() {
                        self.map.remove(&old);
                    }
                }
                self.map.entry(h).or_default()
            }
        };
        let reached = Reached {
            service: list.contains(&by_service),
            destination: list.contains(&by_destination),
            instance: by_instance.is_some_and(|k| list.contains(&k)),
        };
        if !reached.service {
            if let Some(j) = self.journal.as_mut() {
                j.push(Delivery {
                    trace,
                    span,
                    service: service.to_string(),
                    destination: destination.to_string(),
                    by,
                });
            }
        }
        for k in [Some(by_service), Some(by_destination), by_instance]
            .into_iter()
            .flatten()
        {
            // Bounded per publish: a message fanned out wider than this (or spans that claim
            // so) is counted per delivery past it, never an unbounded list scanned per consume.
            if !list.contains(&k) && list.len() < MAX_REACHED {
                list.push(k);
            }
        }
        reached
    }
}

/// One 64-bit hash of a few strings (each one's length first, so `["ab", "c"]` and
/// `["a", "bc"]` differ).
fn key_hash(parts: &[&str]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5157_4954_4348_5944).build_hasher();
    for p in parts {
        h.write_usize(p.len());
        h.write(p.as_bytes());
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SpanKind;

    fn facts(nodes: &mut Nodes, n: u8) -> Facts {
        Facts {
            trace: TraceId([n; 16]),
            span_id: SpanId([n; 8]),
            parent: None,
            service: nodes.service("s", None),
            instance: None,
            kind: SpanKind::Producer,
            operation: None,
            destination: None,
            start: n as u64,
            end: n as u64,
            error: false,
            peer: None,
            flags: 0,
            partition: None,
        }
    }

    #[test]
    fn ring_keeps_the_newest_and_forgets_the_oldest() {
        let mut nodes = Nodes::default();
        let mut r = RecentFacts::new(3);
        for n in 1..=5 {
            r.insert(facts(&mut nodes, n));
        }
        assert!(r.get(TraceId([1; 16]), SpanId([1; 8])).is_none());
        assert!(r.get(TraceId([2; 16]), SpanId([2; 8])).is_none());
        for n in 3..=5 {
            assert_eq!(
                r.get(TraceId([n; 16]), SpanId([n; 8])).map(|f| f.start),
                Some(n as u64)
            );
        }
        r.get_mut(TraceId([4; 16]), SpanId([4; 8])).unwrap().flags = 7;
        r.insert(facts(&mut nodes, 4));
        assert_eq!(
            r.get(TraceId([4; 16]), SpanId([4; 8])).unwrap().flags,
            0,
            "re-insert replaces"
        );
        assert_eq!(r.map.len(), 3);
    }

    #[test]
    fn delivered_tells_a_second_delivery_to_one_service_from_a_copy_for_another() {
        let (t, s) = (TraceId([1; 16]), SpanId([1; 8]));
        let (a, b) = (NodeKey::service("a", None), NodeKey::service("b", None));
        let (q1, q2) = (
            NodeKey::destination("rabbitmq", "q1"),
            NodeKey::destination("rabbitmq", "q2"),
        );
        let mut d = Delivered::new(2);
        let first = Reached {
            service: false,
            destination: false,
            instance: false,
        };
        assert_eq!(d.note(t, s, &a, &q1), first);
        assert_eq!(
            d.note(t, s, &a, &q1),
            Reached {
                service: true,
                destination: true,
                instance: false,
            }
        );
        assert_eq!(
            d.note(t, s, &b, &q1),
            Reached {
                service: false,
                destination: true,
                instance: false,
            }
        );
        assert_eq!(d.note(t, s, &b, &q2), first);
        // Bounded: two newer publishes push the first out of memory.
        d.note(TraceId([2; 16]), s, &a, &q1);
        d.note(TraceId([3; 16]), s, &a, &q1);
        assert_eq!(d.note(t, s, &a, &q1), first);
        assert!(d.map.len() <= 2);
    }

    #[test]
    fn what_one_publish_reached_is_bounded() {
        let (t, s) = (TraceId([1; 16]), SpanId([1; 8]));
        let a = NodeKey::service("a", None);
        let mut d = Delivered::new(4);
        for i in 0..MAX_REACHED * 4 {
            d.note(
                t,
                s,
                &a,
                &NodeKey::destination("rabbitmq", &format!("q{i}")),
            );
        }
        assert_eq!(d.map.values().map(Vec::len).max(), Some(MAX_REACHED));
        // What was remembered still answers.
        let q0 = NodeKey::destination("rabbitmq", "q0");
        assert!(d.note(t, s, &a, &q0).service);
    }

    #[test]
    fn seen_is_bounded() {
        let mut s = Seen::new(2);
        assert!(s.insert(1, true) && s.insert(2, false) && !s.insert(2, true));
        assert!(s.insert(3, true));
        assert_eq!(
            (s.get(1), s.get(2), s.get(3)),
            (None, Some(false), Some(true))
        );
    }
}

/// A service's interned keys, one per namespace it was seen with.
type ServiceKeys = Vec<(Option<String>, Arc<NodeKey>)>;

/// Interned node keys, so facts and statistics share one allocation per node.
#[derive(Default)]
pub struct Nodes {
    services: HashMap<String, ServiceKeys>,
    destinations: HashMap<String, HashMap<String, Arc<NodeKey>>>,
    externals: HashMap<String, Arc<NodeKey>>,
    /// Per broker (its newest snapshot the writer stored), the ids of the destinations its
    /// dead letters go to: the dead-letter exchanges and what they route to.
    dead_letters: HashMap<String, HashSet<String>>,
}

impl Nodes {
    /// Learns from a broker's snapshot where its dead letters go (replacing what its earlier
    /// snapshot said).
    pub fn broker_state(&mut self, snap: &crate::model::broker::BrokerSnapshot) {
        use crate::model::broker::FlowKind;
        let mut names: HashSet<&str> = snap
            .flows
            .iter()
            .filter(|f| f.kind == FlowKind::DeadLetter)
            .map(|f| f.to.as_str())
            .collect();
        let routed: Vec<&str> = snap
            .flows
            .iter()
            .filter(|f| f.kind == FlowKind::Route && names.contains(f.from.as_str()))
            .map(|f| f.to.as_str())
            .collect();
        names.extend(routed);
        let ids: HashSet<String> = names
            .into_iter()
            .map(|n| NodeKey::destination(&snap.system, n).id)
            .collect();
        if ids.is_empty() {
            self.dead_letters.remove(&snap.broker);
        } else {
            self.dead_letters.insert(snap.broker.clone(), ids);
        }
    }

    /// Whether a broker said its dead letters go to `destination` ([`Nodes::broker_state`]).
    pub fn dead_letter_target(&self, destination: &NodeKey) -> bool {
        self.dead_letters
            .values()
            .any(|ids| ids.contains(&destination.id))
    }

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
