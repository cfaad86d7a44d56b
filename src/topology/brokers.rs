//! Merges what brokers report (their newest snapshot in the window) with what traces show:
//! one node per real thing. A destination or flow seen in both keeps its traced statistics
//! and gains the broker's figures; one seen only by a broker is added with no traced
//! traffic. Every node and edge says where it was seen.

use super::build::{Dependency, Edge, Node, SeenIn};
use crate::model::broker::{BrokerSnapshot, FlowKind, NamedBy};
use crate::model::{EdgeKind, Figures, NodeKey, NodeKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Adds the snapshots' destinations, services and flows to the traced nodes and edges.
fn merge(nodes: &mut Vec<Node>, edges: &mut Vec<Edge>, snapshots: &[Arc<BrokerSnapshot>]) {
    let mut node_at: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.clone(), i))
        .collect();
    let mut edge_at: HashMap<(String, String, EdgeKind), usize> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| ((e.from.clone(), e.to.clone(), e.kind), i))
        .collect();
    for snap in snapshots {
        for d in &snap.destinations {
            let key = NodeKey::destination(&snap.system, &d.name);
            let i = node(nodes, &mut node_at, key);
            let n = &mut nodes[i];
            n.entity = Some(Some(d.entity));
            n.broker = Some(merged(n.broker.take(), &d.figures));
            seen(&mut n.seen_in, SeenIn::Broker);
        }
        let service_key = |name: &str| service_key(snap, name);
        for s in &snap.services {
            let i = node(nodes, &mut node_at, service_key(&s.name));
            seen(&mut nodes[i].seen_in, SeenIn::Broker);
        }
        for f in &snap.flows {
            let dest = |name: &str| NodeKey::destination(&snap.system, name);
            let (from, to, kind) = match f.kind {
                FlowKind::Publish => (service_key(&f.from), dest(&f.to), EdgeKind::Publish),
                FlowKind::Consume => (dest(&f.from), service_key(&f.to), EdgeKind::Consume),
                FlowKind::Route => (dest(&f.from), dest(&f.to), EdgeKind::Route),
                FlowKind::DeadLetter => (dest(&f.from), dest(&f.to), EdgeKind::DeadLetter),
            };
            let (from_i, to_i) = (
                node(nodes, &mut node_at, from),
                node(nodes, &mut node_at, to),
            );
            for i in [from_i, to_i] {
                // A flow's ends are known to the broker even when it listed them nowhere else.
                seen(&mut nodes[i].seen_in, SeenIn::Broker);
            }
            let k = (nodes[from_i].id.clone(), nodes[to_i].id.clone(), kind);
            let i = *edge_at.entry(k.clone()).or_insert_with(|| {
                edges.push(Edge::new(k.0, k.1, kind));
                edges.len() - 1
            });
            let e = &mut edges[i];
            seen(&mut e.seen_in, SeenIn::Broker);
            e.broker = Some(merged(e.broker.take(), &f.figures));
            e.inferred |= f.inferred;
            if e.key.is_none() {
                e.key.clone_from(&f.key);
            }
        }
    }
}

/// Instrumentations that read a message from a RabbitMQ queue often name the exchange it was
/// published to as the consume's destination (pika does). With the broker's state the queue
/// is known: a traced consume `exchange -> service` whose service consumes from exactly one
/// queue bound to that exchange becomes `queue -> service`, with a traced route
/// `exchange -> queue` for the same messages, and its dependencies go through the queue.
/// When each of the service's instances reads a queue of its own bound to the exchange, and
/// that service alone reads them (Celery's `Broadcast`: every worker its own `bcast.<uuid>`),
/// every one of those queues carried every message: each gets the consume and the route with
/// the traced count, one instance, and a dependency; a failure there cannot be told to one
/// queue, so a consume with errors stays on the exchange. Counts stay logical messages: the
/// route counts each consumed message once. `edges` are sorted by (from, to, kind) and stay
/// so.
pub fn resolve_consumes(
    edges: &mut Vec<Edge>,
    dependencies: &mut Vec<Dependency>,
    nodes: &mut [Node],
    part: &BrokerPart,
) {
    if part.exchanges.is_empty() {
        return;
    }
    // Traced routes out of a reported exchange bind too (the broker's are in the part).
    let mut traced_bound: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in edges.iter() {
        if e.kind == EdgeKind::Route && !e.broker_only() && part.exchanges.contains(&e.from) {
            traced_bound.entry(&e.from).or_default().push(&e.to);
        }
    }
    let mut moves: Vec<(usize, Vec<String>)> = Vec::new();
    for (i, e) in edges.iter().enumerate() {
        if e.kind != EdgeKind::Consume || e.broker_only() || e.to.starts_with("destination:") {
            continue;
        }
        let from_part = part.bound.get(e.from.as_str()).into_iter().flatten();
        let traced = traced_bound.get(e.from.as_str()).into_iter().flatten();
        // Queues bound to the exchange that this service consumes from (in the broker).
        let mut read: Vec<&str> = from_part
            .map(String::as_str)
            .chain(traced.copied())
            .filter(|q| part.reported.contains(&(q.to_string(), e.to.clone())))
            .collect();
        read.sort_unstable();
        read.dedup();
        let one_each = || {
            e.errors == 0
                && e.failures.is_empty()
                && e.instances == i64::try_from(read.len()).ok()
                && read.iter().all(|q| part.readers.get(*q) == Some(&1))
        };
        if read.len() == 1 || (read.len() > 1 && one_each()) {
            moves.push((i, read.iter().map(|q| q.to_string()).collect()));
        }
    }
    if moves.is_empty() {
        return;
    }
    let mut gone = std::collections::HashSet::new();
    let mut via: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (i, queues) in moves {
        let mut traced = edges[i].clone();
        if queues.len() > 1 {
            traced.instances = Some(1);
        }
        let (exchange, service) = (traced.from.clone(), traced.to.clone());
        for queue in &queues {
            for (from, to, kind) in [
                (queue.as_str(), service.as_str(), EdgeKind::Consume),
                (exchange.as_str(), queue.as_str(), EdgeKind::Route),
            ] {
                if let Ok(j) = edges.binary_search_by(|e| edge_key(e).cmp(&(from, to, kind))) {
                    add_traced(&mut edges[j], &traced, kind);
                }
            }
        }
        via.insert((exchange, service), queues);
        gone.insert(i);
    }
    // The queues carried traced messages, under the exchange's name: traces saw them too.
    let moved: std::collections::HashSet<&String> = via.values().flatten().collect();
    for n in nodes.iter_mut() {
        if moved.contains(&n.id) {
            seen(&mut n.seen_in, SeenIn::Traces);
        }
    }
    let mut i = 0;
    edges.retain(|_| {
        i += 1;
        !gone.contains(&(i - 1))
    });
    let mut more = Vec::new();
    for d in dependencies.iter_mut() {
        if let Some((first, rest)) = via
            .get(&(d.via.clone(), d.to.clone()))
            .and_then(|q| q.split_first())
        {
            more.extend(rest.iter().map(|q| Dependency {
                via: q.clone(),
                ..d.clone()
            }));
            d.via.clone_from(first);
        }
    }
    dependencies.extend(more);
}

/// What edges are sorted and found by.
pub(super) fn edge_key(e: &Edge) -> (&str, &str, EdgeKind) {
    (&e.from, &e.to, e.kind)
}

/// The broker side of the merge for one set of snapshots (each broker's newest and oldest in
/// the window): every node and flow the brokers report, as they appear with no traced
/// traffic, and the findings that read broker state alone. Built once per poll and shared by
/// every read until the next one ([`part`]); [`merge_part`] joins it with the traced graph.
pub struct BrokerPart {
    newest: Vec<Arc<BrokerSnapshot>>,
    oldest: Vec<Arc<BrokerSnapshot>>,
    nodes: Vec<Node>,
    node_at: foldhash::HashMap<String, usize>,
    /// Sorted by (from, to, kind).
    edges: Vec<Edge>,
    /// Reported exchanges (node ids).
    exchanges: HashSet<String>,
    /// The broker's bindings by exchange (node ids).
    bound: HashMap<String, Vec<String>>,
    /// (queue, service) of every consume a broker reports.
    reported: HashSet<(String, String)>,
    /// How many services a broker reports reading each queue.
    readers: HashMap<String, usize>,
    /// RabbitMQ queues no consumer is reported of, by node id (sorted), with the failures
    /// their broker counted ([`queue_failures`]).
    unread: Vec<(String, BTreeMap<String, i64>)>,
    /// Findings of the detectors that read broker state alone.
    pub(super) findings: Vec<super::Finding>,
    /// Traced names resolved through these snapshots' bindings.
    pub(super) routing: super::routing::Memo,
    /// Each node, edge and the findings as JSON, for the answers that include them unchanged.
    pub(super) json: super::json::Fragments,
}

impl std::fmt::Debug for BrokerPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPart")
            .field("nodes", &self.nodes.len())
            .field("edges", &self.edges.len())
            .field("findings", &self.findings.len())
            .finish()
    }
}

impl BrokerPart {
    /// The newest poll of each broker the part was built from (what the AsyncAPI export
    /// reads for exchange types, vhosts and broker addresses).
    pub fn snapshots(&self) -> &[Arc<BrokerSnapshot>] {
        &self.newest
    }

    fn build(newest: &[Arc<BrokerSnapshot>], oldest: &[Arc<BrokerSnapshot>]) -> BrokerPart {
        let (mut nodes, mut edges) = (Vec::new(), Vec::new());
        merge(&mut nodes, &mut edges, newest);
        then(&mut nodes, &mut edges, oldest);
        // One poll in the window (snapshots are kept one a minute): its counters are all there
        // is to go by.
        let one_poll = newest
            .iter()
            .zip(oldest)
            .all(|(a, b)| a.taken_unix_nanos == b.taken_unix_nanos);
        let unread = queue_failures(&nodes, &mut edges, one_poll);
        edges.sort_by(|a, b| edge_key(a).cmp(&edge_key(b)));
        // What every answer's build sets on them (no errors on what only a broker reports),
        // so that the part's nodes are copied into answers unchanged.
        super::build::destination_failures(&mut nodes, &edges);
        let exchanges: HashSet<String> = newest
            .iter()
            .flat_map(|s| {
                s.destinations
                    .iter()
                    .filter(|d| d.entity == crate::model::Entity::Exchange)
                    .map(|d| NodeKey::destination(&s.system, &d.name).id)
            })
            .collect();
        let mut bound: HashMap<String, Vec<String>> = HashMap::new();
        let mut reported = HashSet::new();
        let mut readers: HashMap<String, usize> = HashMap::new();
        for e in &edges {
            match e.kind {
                EdgeKind::Route if exchanges.contains(&e.from) => {
                    bound.entry(e.from.clone()).or_default().push(e.to.clone())
                }
                EdgeKind::Consume => {
                    reported.insert((e.from.clone(), e.to.clone()));
                    *readers.entry(e.from.clone()).or_default() += 1;
                }
                _ => {}
            }
        }
        let node_at = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let mut part = BrokerPart {
            newest: newest.to_vec(),
            oldest: oldest.to_vec(),
            nodes,
            node_at,
            edges,
            exchanges,
            bound,
            reported,
            readers,
            unread,
            findings: Vec::new(),
            routing: Default::default(),
            json: Default::default(),
        };
        part.findings = super::detect::run_on_broker_state(&part.nodes, &part.edges);
        part.json = super::json::Fragments::of(&part.nodes, &part.edges, &part.findings);
        part
    }

    /// The part's node with this id.
    pub(super) fn node(&self, id: &str) -> Option<(usize, &Node)> {
        let &i = self.node_at.get(id)?;
        Some((i, &self.nodes[i]))
    }

    /// [`BrokerPart::node`], trying the node at `hint` first: a topology holds the part's
    /// nodes that traces did not show in the part's order, after the traced ones.
    pub(super) fn node_from(&self, hint: usize, id: &str) -> Option<(usize, &Node)> {
        match self.nodes.get(hint) {
            Some(n) if n.id == id => Some((hint, n)),
            _ => self.node(id),
        }
    }

    /// The part's edges, sorted by (from, to, kind).
    pub(super) fn edges(&self) -> &[Edge] {
        &self.edges
    }

    fn is_for(&self, newest: &[Arc<BrokerSnapshot>], oldest: &[Arc<BrokerSnapshot>]) -> bool {
        let same = |a: &[Arc<BrokerSnapshot>], b: &[Arc<BrokerSnapshot>]| {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
        };
        same(&self.newest, newest) && same(&self.oldest, oldest)
    }
}

/// Broker parts kept built: a few windows read at once (the map's hour, a page's day).
const PARTS_KEPT: usize = 4;

/// The broker part of these snapshots, built once. Snapshots are compared by identity: the
/// store hands out one shared value per poll, so a new poll is a new part. The cache holds
/// the snapshots it was built from, so an identity is never reused while it is kept.
pub fn part(newest: &[Arc<BrokerSnapshot>], oldest: &[Arc<BrokerSnapshot>]) -> Arc<BrokerPart> {
    static PARTS: Mutex<Vec<Arc<BrokerPart>>> = Mutex::new(Vec::new());
    // The lock is held only to look up or insert; building happens outside it.
    let found = PARTS
        .lock()
        .ok()
        .and_then(|parts| parts.iter().find(|p| p.is_for(newest, oldest)).cloned());
    if let Some(p) = found {
        return p;
    }
    let built = Arc::new(BrokerPart::build(newest, oldest));
    if let Ok(mut parts) = PARTS.lock() {
        if !parts.iter().any(|p| p.is_for(newest, oldest)) {
            parts.insert(0, built.clone());
            parts.truncate(PARTS_KEPT);
        }
    }
    built
}

/// Joins the traced nodes and edges with a broker part: a node or edge seen in both keeps its
/// traced statistics and gains the broker's figures; what only the brokers report is added.
/// The same result as [`merge`] and [`then`] over the part's snapshots, with `edges` sorted
/// by (from, to, kind).
pub fn merge_part(nodes: &mut Vec<Node>, edges: &mut Vec<Edge>, part: &BrokerPart) {
    let mut matched = vec![false; part.nodes.len()];
    for n in nodes.iter_mut() {
        let Some(&j) = part.node_at.get(&n.id) else {
            continue;
        };
        matched[j] = true;
        let p = &part.nodes[j];
        if p.broker.is_some() {
            n.entity = p.entity;
            n.broker.clone_from(&p.broker);
            n.broker_then.clone_from(&p.broker_then);
        }
        seen(&mut n.seen_in, SeenIn::Broker);
    }
    nodes.reserve(part.nodes.len());
    nodes.extend(
        part.nodes
            .iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(n, _)| n.clone()),
    );
    let mut traced = std::mem::take(edges);
    traced.sort_by(|a, b| edge_key(a).cmp(&edge_key(b)));
    let mut out = Vec::with_capacity(traced.len() + part.edges.len());
    let mut broker = part.edges.iter().peekable();
    for mut e in traced {
        while let Some(b) = broker.next_if(|b| edge_key(b) < edge_key(&e)) {
            out.push(b.clone());
        }
        if let Some(b) = broker.next_if(|b| edge_key(b) == edge_key(&e)) {
            seen(&mut e.seen_in, SeenIn::Broker);
            e.broker.clone_from(&b.broker);
            e.broker_then.clone_from(&b.broker_then);
            e.inferred |= b.inferred;
            if e.key.is_none() {
                e.key.clone_from(&b.key);
            }
            e.errors += b.errors;
            merge_failures(&mut e, b);
        }
        out.push(e);
    }
    out.extend(broker.cloned());
    *edges = out;
}

/// Joins a broker's failures of a queue's consume (its counters' growth) with the ones
/// traces found on the same edge (a second delivery read as a redelivery, a broker's span).
/// Both count the same events, and each can miss some (traces what was not sampled or not
/// instrumented, the broker what happened after its newest poll), so per reason the larger
/// count wins, never their sum; `b.errors` (added already) loses what the traces had counted
/// as errors for a reason the broker reports too.
fn merge_failures(e: &mut Edge, b: &Edge) {
    for (reason, &n) in &b.failures {
        let traced = e.failures.get(reason).copied().unwrap_or(0);
        if reason != "redelivered" {
            // A redelivery is no error; every other reason counted as one on both sides.
            e.errors -= traced.min(n);
        }
        e.failures.insert(reason.clone(), traced.max(n));
    }
}

/// Adds a traced edge's figures to an edge the broker reported. A failed consume failed in
/// its consumer, not on the way: the route counts the message and no error.
fn add_traced(e: &mut Edge, traced: &Edge, kind: EdgeKind) {
    e.count += traced.count;
    if kind == EdgeKind::Consume {
        e.errors += traced.errors;
    }
    e.rate_terms.extend_from_slice(&traced.rate_terms);
    if e.latency.samples == 0 {
        e.latency = traced.latency.clone();
    }
    e.first_seen_unix_nanos = match e.first_seen_unix_nanos {
        0 => traced.first_seen_unix_nanos,
        t => t.min(traced.first_seen_unix_nanos),
    };
    e.last_seen_unix_nanos = e.last_seen_unix_nanos.max(traced.last_seen_unix_nanos);
    if kind == EdgeKind::Consume {
        e.instances = traced.instances;
        for (reason, n) in &traced.failures {
            *e.failures.entry(reason.clone()).or_default() += n;
        }
        if e.replays.is_none() {
            e.replays = traced.replays.clone();
        }
    }
    seen(&mut e.seen_in, SeenIn::Traces);
}

/// Sets each reported node's and consume flow's figures at the broker's oldest poll in the
/// window, where that poll knew it: what `backlog` compares the newest figures with.
fn then(nodes: &mut [Node], edges: &mut [Edge], snapshots: &[Arc<BrokerSnapshot>]) {
    let mut figures: HashMap<String, &Figures> = HashMap::new();
    let mut flows: HashMap<(String, String), &Figures> = HashMap::new();
    for snap in snapshots {
        for d in &snap.destinations {
            figures.insert(NodeKey::destination(&snap.system, &d.name).id, &d.figures);
        }
        for f in snap.flows.iter().filter(|f| f.kind == FlowKind::Consume) {
            let service = service_key(snap, &f.to).id;
            flows.insert(
                (NodeKey::destination(&snap.system, &f.from).id, service),
                &f.figures,
            );
        }
    }
    for n in nodes.iter_mut().filter(|n| n.broker.is_some()) {
        n.broker_then = figures.get(&n.id).map(|f| Box::new((*f).clone()));
    }
    for e in edges
        .iter_mut()
        .filter(|e| e.kind == EdgeKind::Consume && e.broker.is_some())
    {
        e.broker_then = flows
            .get(&(e.from.clone(), e.to.clone()))
            .map(|f| Box::new((*f).clone()));
    }
}

/// RabbitMQ's instrumentations do not mark a redelivery or a dead-lettering, but the broker
/// counts a queue's redeliveries and holds its dead letters in queues of their own: what each
/// grew by between the broker's oldest and newest poll in the window (all of it when the
/// oldest poll did not know the queue yet) are failures of the queue's consume edge when one
/// service consumes from it (`redelivered`, not an error; `dead_letter`, an error). With one
/// poll in the window (`one_poll`), what that poll counted since the queue was declared.
///
/// A queue the broker reports no consumer of (its reader had left by the poll, or read it
/// between two polls) keeps its failures in the answer, for [`unread_queue_failures`] to give
/// to the one service traces show reading it.
fn queue_failures(
    nodes: &[Node],
    edges: &mut [Edge],
    one_poll: bool,
) -> Vec<(String, BTreeMap<String, i64>)> {
    let mut consumers: HashMap<&str, usize> = HashMap::new();
    for e in edges.iter().filter(|e| e.kind == EdgeKind::Consume) {
        *consumers.entry(e.from.as_str()).or_default() += 1;
    }
    let failures_of = |n: &Node| -> Option<BTreeMap<String, i64>> {
        let now = n.broker.as_ref()?;
        let then = n.broker_then.as_deref().filter(|_| !one_poll);
        let grew = |figure: fn(&Figures) -> Option<u64>| {
            let before = then.and_then(figure).unwrap_or(0);
            figure(now).map_or(0, |n| n.saturating_sub(before))
        };
        let as_count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let found = [
            ("redelivered", grew(|f| f.redelivered)),
            ("dead_letter", grew(|f| f.dead_letters)),
        ];
        Some(
            found
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(reason, n)| (reason.to_string(), as_count(n)))
                .collect(),
        )
    };
    let rabbit = nodes
        .iter()
        .filter(|n| n.system.as_deref() == Some("rabbitmq"));
    let mut read: HashMap<&str, BTreeMap<String, i64>> = HashMap::new();
    let mut unread = Vec::new();
    for n in rabbit {
        let Some(failures) = failures_of(n).filter(|f| !f.is_empty()) else {
            continue;
        };
        match consumers.get(n.id.as_str()) {
            None => unread.push((n.id.clone(), failures)),
            Some(1) => {
                read.insert(n.id.as_str(), failures);
            }
            Some(_) => {}
        }
    }
    for e in edges.iter_mut().filter(|e| e.kind == EdgeKind::Consume) {
        if let Some(failures) = read.get(e.from.as_str()) {
            add_failures(e, failures);
        }
    }
    unread.sort();
    unread
}

/// A queue's failures as its broker counted them, on its consume edge: the failures and, for
/// each dead letter, an error.
fn add_failures(e: &mut Edge, failures: &BTreeMap<String, i64>) {
    for (reason, &n) in failures {
        e.failures.insert(reason.clone(), n);
        if reason != "redelivered" {
            e.errors = e.errors.saturating_add(n);
        }
    }
}

/// The failures a broker counted on queues it reports no consumer of ([`queue_failures`]),
/// on the consume edge of the one service traces show reading each (after
/// [`resolve_consumes`]), joined with the traced ones as a reported consumer's are.
pub fn unread_queue_failures(edges: &mut [Edge], part: &BrokerPart) {
    if part.unread.is_empty() {
        return;
    }
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, e) in edges.iter().enumerate() {
        if e.kind == EdgeKind::Consume {
            readers.entry(e.from.as_str()).or_default().push(i);
        }
    }
    let mut found: Vec<(usize, &BTreeMap<String, i64>)> = Vec::new();
    for (queue, failures) in &part.unread {
        if let Some([i]) = readers.get(queue.as_str()).map(Vec::as_slice) {
            found.push((*i, failures));
        }
    }
    for (i, failures) in found {
        let mut broker = Edge::new(String::new(), String::new(), EdgeKind::Consume);
        add_failures(&mut broker, failures);
        let e = &mut edges[i];
        e.errors = e.errors.saturating_add(broker.errors);
        merge_failures(e, &broker);
    }
}

/// A service a broker names: a service, or an external peer when it could not name it.
pub(super) fn service_key(snap: &BrokerSnapshot, name: &str) -> NodeKey {
    let unnamed = snap
        .services
        .iter()
        .any(|s| s.name == name && s.named_by == NamedBy::UserAndProduct);
    if unnamed {
        NodeKey::external(name, None)
    } else {
        NodeKey::service(name, None)
    }
}

fn seen(list: &mut Vec<SeenIn>, source: SeenIn) {
    if !list.contains(&source) {
        list.push(source);
        list.sort();
    }
}

/// The node with this key, added (seen by no trace) if missing.
fn node(nodes: &mut Vec<Node>, at: &mut HashMap<String, usize>, key: NodeKey) -> usize {
    if let Some(&i) = at.get(&key.id) {
        return i;
    }
    let entity = super::build::destination_entity(key.kind, key.system.as_deref());
    nodes.push(Node {
        id: key.id.clone(),
        kind: key.kind,
        name: key.name,
        system: key.system,
        namespace: key.namespace,
        spans: (key.kind == NodeKind::Service).then_some(0),
        span_errors: (key.kind == NodeKind::Service).then_some(0),
        seen_in: Vec::new(),
        entity,
        broker: None,
        broker_then: None,
        errors: None,
        failures: Default::default(),
    });
    at.insert(key.id, nodes.len() - 1);
    nodes.len() - 1
}

/// Two brokers reporting one thing (a queue mirrored in two polls of one window): the figures
/// of the later one, each missing figure filled from the earlier.
fn merged(earlier: Option<Figures>, later: &Figures) -> Figures {
    let Some(e) = earlier else {
        return later.clone();
    };
    Figures {
        depth: later.depth.or(e.depth),
        unacked: later.unacked.or(e.unacked),
        consumers: later.consumers.or(e.consumers),
        publish_rate: later.publish_rate.or(e.publish_rate),
        deliver_rate: later.deliver_rate.or(e.deliver_rate),
        redeliver_rate: later.redeliver_rate.or(e.redeliver_rate),
        pending: later.pending.or(e.pending),
        ack_pending: later.ack_pending.or(e.ack_pending),
        redelivered: later.redelivered.or(e.redelivered),
        messages: later.messages.or(e.messages),
        bytes: later.bytes.or(e.bytes),
        dead_letters: later.dead_letters.or(e.dead_letters),
        lag: if later.lag.is_empty() {
            e.lag
        } else {
            later.lag.clone()
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::model::broker::{BrokerDestination, BrokerFlow, BrokerService};
    use crate::model::broker::{BrokerSnapshot, Entity, FlowKind, NamedBy};
    use crate::model::{EdgeKind, Figures, TimeWindow};
    use crate::topology::{build, SeenIn};
    use std::sync::Arc;

    fn dest(name: &str, entity: Entity, depth: Option<u64>) -> BrokerDestination {
        BrokerDestination {
            name: name.into(),
            namespace: Some("/".into()),
            entity,
            detail: None,
            subjects: Vec::new(),
            figures: Figures {
                depth,
                ..Figures::default()
            },
        }
    }

    fn flow(kind: FlowKind, from: &str, to: &str) -> BrokerFlow {
        BrokerFlow {
            kind,
            from: from.into(),
            to: to.into(),
            key: Some("order.*".into()),
            inferred: false,
            figures: Figures::default(),
        }
    }

    /// Traces saw `orders` publish to exchange `shop`; the broker knows the bindings, the
    /// queues, a consumer nobody traced and where rejected messages go.
    fn snapshot() -> BrokerSnapshot {
        BrokerSnapshot {
            broker: "rabbitmq 127.0.0.1:15672".into(),
            system: "rabbitmq".into(),
            taken_unix_nanos: 1,
            destinations: vec![
                dest("shop", Entity::Exchange, None),
                dest("billing", Entity::Queue, Some(3)),
                dest("billing.dlq", Entity::Queue, Some(0)),
            ],
            services: vec![
                BrokerService {
                    name: "billing".into(),
                    named_by: NamedBy::ConnectionName,
                },
                BrokerService {
                    name: "guest (pika)".into(),
                    named_by: NamedBy::UserAndProduct,
                },
            ],
            flows: vec![
                flow(FlowKind::Route, "shop", "billing"),
                flow(FlowKind::Consume, "billing", "billing"),
                flow(FlowKind::Consume, "billing", "guest (pika)"),
                flow(FlowKind::DeadLetter, "billing", "billing.dlq"),
            ],
        }
    }

    /// The answer's JSON, copied from the part where it can be, is what serde makes of it.
    fn assert_same_json(t: &crate::topology::Topology) {
        let fast = crate::topology::json::to_vec(t).unwrap();
        let slow = serde_json::to_vec(t).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&fast),
            String::from_utf8_lossy(&slow)
        );
    }

    #[test]
    fn the_brokers_part_is_one_per_poll_and_its_json_copied_unchanged() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let snap = Arc::new(snapshot());
        let read = |edges: &[(&str, &str, EdgeKind, i64)]| {
            let mut rows = crate::topology::detect::testing::rows(edges);
            rows.brokers = vec![snap.clone()];
            build(rows, window)
        };
        let quiet = read(&[]);
        let traced = read(&[
            (
                "service:orders",
                "destination:rabbitmq:shop",
                EdgeKind::Publish,
                4,
            ),
            (
                "destination:rabbitmq:shop",
                "service:billing",
                EdgeKind::Consume,
                4,
            ),
        ]);
        assert_same_json(&quiet);
        assert_same_json(&traced);
        // A new poll is a new part (whether one snapshot's part is still kept when read again
        // depends on what other reads ran meanwhile: not asserted here).
        let a = traced.part.as_ref().unwrap();
        let mut rows = crate::topology::detect::testing::rows(&[]);
        rows.brokers = vec![Arc::new(snapshot())];
        let next = build(rows, window);
        assert!(!Arc::ptr_eq(a, next.part.as_ref().unwrap()));
        // Changed after its build, a topology's JSON still says what it holds.
        let mut changed = traced.clone();
        for e in &mut changed.edges {
            e.count += 1;
        }
        for n in &mut changed.nodes {
            n.name.push('!');
        }
        changed.findings.pop();
        assert_same_json(&changed);
    }

    /// Every window over the same minutes of the same rows is answered from one template:
    /// byte for byte what building the topology for that window gives, with and without a
    /// broker, whatever part of their first and last minute the windows cover.
    #[test]
    fn one_template_answers_every_window_over_the_same_minutes() {
        const S: u64 = 1_000_000_000;
        let snap = Arc::new(snapshot());
        let read = |brokers: bool, window: TimeWindow| {
            let mut rows = crate::topology::detect::testing::rows(&[
                (
                    "service:orders",
                    "destination:rabbitmq:shop",
                    EdgeKind::Publish,
                    40,
                ),
                (
                    "destination:rabbitmq:shop",
                    "service:billing",
                    EdgeKind::Consume,
                    7,
                ),
                ("service:orders", "service:stock", EdgeKind::Call, 3),
            ]);
            // Traffic from within the first minute to within the last.
            for (e, (first, last)) in
                rows.edges
                    .iter_mut()
                    .zip([(130, 470), (125, 200), (300, 301)])
            {
                (e.first_seen_unix_nanos, e.last_seen_unix_nanos) = (first * S, last * S);
            }
            if brokers {
                rows.brokers = vec![snap.clone()];
            }
            build(rows, window)
        };
        // Minutes 2 to 7: since in [120 s, 180 s), until in (420 s, 480 s].
        let windows = [(150, 450), (120, 480), (179, 421), (121, 479), (135, 460)];
        for brokers in [true, false] {
            let first = TimeWindow::new(140 * S, 430 * S).unwrap();
            let template = crate::topology::json::Template::of(&read(brokers, first)).unwrap();
            assert_eq!(
                template.body(),
                &crate::topology::json::to_vec(&read(brokers, first)).unwrap()[..]
            );
            for (since, until) in windows {
                let window = TimeWindow::new(since * S, until * S).unwrap();
                assert_eq!(window.minutes(), first.minutes());
                let fresh = read(brokers, window);
                assert_same_json(&fresh);
                let fresh = crate::topology::json::to_vec(&fresh).unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&template.answer(&window).unwrap()),
                    String::from_utf8_lossy(&fresh),
                    "{since} s to {until} s, brokers: {brokers}"
                );
            }
        }
        // The traced consume moved to the queue: its count and rate are on the route too.
        let t = read(true, TimeWindow::new(120 * S, 480 * S).unwrap());
        let route = (t.edges.iter())
            .find(|e| e.kind == EdgeKind::Route)
            .unwrap();
        assert_eq!((route.count, route.rate_per_sec), (7, 7.0 / 360.0));
    }

    #[test]
    fn one_node_per_real_thing_each_saying_where_it_was_seen() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let mut rows = crate::topology::detect::testing::rows(&[(
            "service:orders",
            "destination:rabbitmq:shop",
            EdgeKind::Publish,
            4,
        )]);
        rows.brokers = vec![Arc::new(snapshot())];
        let t = build(rows, window);
        let node = |id: &str| t.node(id).unwrap_or_else(|| panic!("no node {id}"));
        let shop = node("destination:rabbitmq:shop");
        assert_eq!(shop.seen_in, vec![SeenIn::Traces, SeenIn::Broker]);
        assert_eq!(shop.entity, Some(Some(Entity::Exchange)));
        let queue = node("destination:rabbitmq:billing");
        assert_eq!(queue.seen_in, vec![SeenIn::Broker]);
        assert_eq!(queue.broker.as_ref().and_then(|b| b.depth), Some(3));
        assert_eq!(node("service:orders").seen_in, vec![SeenIn::Traces]);
        assert_eq!(node("service:billing").seen_in, vec![SeenIn::Broker]);
        assert_eq!(node("external:guest (pika)").seen_in, vec![SeenIn::Broker]);
        let edge = |from: &str, to: &str, kind| {
            t.edges
                .iter()
                .find(|e| e.from == from && e.to == to && e.kind == kind)
                .unwrap_or_else(|| panic!("no edge {from} -> {to}"))
        };
        let route = edge(
            "destination:rabbitmq:shop",
            "destination:rabbitmq:billing",
            EdgeKind::Route,
        );
        assert!(route.broker_only());
        assert_eq!((route.count, route.key.as_deref()), (0, Some("order.*")));
        assert!(!edge(
            "service:orders",
            "destination:rabbitmq:shop",
            EdgeKind::Publish
        )
        .broker_only());
        edge(
            "destination:rabbitmq:billing",
            "destination:rabbitmq:billing.dlq",
            EdgeKind::DeadLetter,
        );
        // The traced publish reaches the queue through the binding: a dependency is inferred.
        assert!(t
            .dependencies
            .iter()
            .any(|d| d.from == "service:orders" && d.to == "service:billing" && d.count.is_none()));
        let patterns: Vec<&str> = t.findings.iter().map(|f| f.pattern).collect();
        assert!(patterns.contains(&"dead_letter"), "{patterns:?}");
        assert!(
            !patterns.contains(&"idle_subscriber"),
            "the queue is fed: {patterns:?}"
        );
        let json = serde_json::to_value(&t).unwrap();
        let nodes = json["nodes"].as_array().unwrap();
        let exported = |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap().clone();
        assert_eq!(exported("destination:rabbitmq:billing")["entity"], "queue");
        assert_eq!(
            exported("destination:rabbitmq:billing")["broker"]["depth"],
            3
        );
        assert_eq!(
            exported("service:orders")["seen_in"],
            serde_json::json!(["traces"])
        );
        assert!(exported("service:orders").get("entity").is_none());
    }

    #[test]
    fn a_subscriber_whose_binding_carries_nothing_is_idle() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let mut rows = crate::topology::detect::testing::rows(&[]);
        rows.brokers = vec![Arc::new(snapshot())];
        let t = build(rows, window);
        let idle: Vec<&Vec<String>> = t
            .findings
            .iter()
            .filter(|f| f.pattern == "idle_subscriber")
            .map(|f| &f.nodes)
            .collect();
        assert!(
            idle.iter()
                .any(|n| n[0] == "service:billing" && n[1] == "destination:rabbitmq:billing"),
            "{:?}",
            t.findings
        );
        // Once the broker reports messages coming in, it is not idle.
        let mut rows = crate::topology::detect::testing::rows(&[]);
        let mut snap = snapshot();
        snap.destinations[1].figures.publish_rate = Some(2.0);
        rows.brokers = vec![Arc::new(snap)];
        let t = build(rows, window);
        assert!(!t.findings.iter().any(|f| f.pattern == "idle_subscriber"));
    }

    #[test]
    fn a_consume_named_by_its_exchange_moves_to_the_bound_queue() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let mut rows = crate::topology::detect::testing::rows(&[
            (
                "service:orders",
                "destination:rabbitmq:shop",
                EdgeKind::Publish,
                4,
            ),
            (
                "destination:rabbitmq:shop",
                "service:billing",
                EdgeKind::Consume,
                4,
            ),
            ("service:orders", "service:billing", EdgeKind::Dependency, 4),
        ]);
        for e in &mut rows.edges {
            if e.kind == EdgeKind::Dependency {
                e.via = "destination:rabbitmq:shop".into();
            }
        }
        rows.brokers = vec![Arc::new(snapshot())];
        let t = build(rows, window);
        let find = |from: &str, to: &str, kind| {
            t.edges
                .iter()
                .find(|e| e.from == from && e.to == to && e.kind == kind)
        };
        assert!(find(
            "destination:rabbitmq:shop",
            "service:billing",
            EdgeKind::Consume
        )
        .is_none());
        let consume = find(
            "destination:rabbitmq:billing",
            "service:billing",
            EdgeKind::Consume,
        )
        .expect("the queue's consume");
        assert_eq!(consume.count, 4);
        assert_eq!(consume.seen_in, vec![SeenIn::Traces, SeenIn::Broker]);
        // The queue carried the traced messages (under the exchange's name).
        assert_eq!(
            t.node("destination:rabbitmq:billing")
                .map(|n| n.seen_in.clone()),
            Some(vec![SeenIn::Traces, SeenIn::Broker])
        );
        let route = find(
            "destination:rabbitmq:shop",
            "destination:rabbitmq:billing",
            EdgeKind::Route,
        )
        .expect("the binding");
        assert_eq!((route.count, route.seen_in.len()), (4, 2));
        let dep = t
            .dependencies
            .iter()
            .find(|d| d.from == "service:orders" && d.to == "service:billing" && d.count.is_some())
            .expect("the traced dependency");
        assert_eq!(dep.via, "destination:rabbitmq:billing");
        // The unnamed pika consumer of the same queue is another service: not moved to it.
        assert!(find(
            "destination:rabbitmq:billing",
            "external:guest (pika)",
            EdgeKind::Consume
        )
        .is_some_and(|e| e.count == 0));
    }

    /// A queue's redeliveries and dead letters, counted by the broker between its oldest and
    /// newest poll in the window, are failures of its one consumer's edge and of the queue.
    #[test]
    fn a_queues_redeliveries_and_dead_letters_are_failures_of_its_consume() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let one_consumer = |redelivered, dead| {
            let mut snap = snapshot();
            snap.flows.retain(|f| f.to != "guest (pika)");
            let billing = &mut snap.destinations[1].figures;
            (billing.redelivered, billing.dead_letters) = (Some(redelivered), Some(dead));
            Arc::new(snap)
        };
        let consume = ("destination:rabbitmq:billing", "service:billing");
        let read = |then: Arc<BrokerSnapshot>, now: Arc<BrokerSnapshot>| {
            let mut rows = crate::topology::detect::testing::rows(&[(
                consume.0,
                consume.1,
                EdgeKind::Consume,
                4,
            )]);
            (rows.brokers, rows.brokers_then) = (vec![now], vec![then]);
            build(rows, window)
        };
        let later = |redelivered, dead| {
            let mut snap = (*one_consumer(redelivered, dead)).clone();
            snap.taken_unix_nanos += 60_000_000_000;
            Arc::new(snap)
        };
        let t = read(one_consumer(1, 0), later(4, 2));
        let e = t
            .edges
            .iter()
            .find(|e| (e.from.as_str(), e.to.as_str()) == consume && e.kind == EdgeKind::Consume)
            .expect("the consume");
        let reasons: Vec<(&str, i64)> = e.failures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(reasons, [("dead_letter", 2), ("redelivered", 3)]);
        assert_eq!((e.count, e.errors), (4, 2), "a dead letter is an error");
        let queue = t.node(consume.0).unwrap();
        assert_eq!((queue.errors, queue.failures.len()), (Some(2), 2));
        // Two polls, nothing grew.
        let t = read(one_consumer(4, 2), later(4, 2));
        assert!(t
            .edges
            .iter()
            .all(|e| e.failures.is_empty() && e.errors == 0));
        // One poll in the window: what it counted since the queue was declared.
        let t = read(one_consumer(4, 2), one_consumer(4, 2));
        let e = t
            .edges
            .iter()
            .find(|e| e.kind == EdgeKind::Consume)
            .unwrap();
        assert_eq!((e.failures.len(), e.errors), (2, 2));
        // Two services read the queue: whose failures they were is unknown.
        let t = read(Arc::new(snapshot()), {
            let mut snap = snapshot();
            snap.destinations[1].figures.redelivered = Some(3);
            snap.taken_unix_nanos += 60_000_000_000;
            Arc::new(snap)
        });
        assert!(t.edges.iter().all(|e| e.failures.is_empty()));
    }

    /// A queue the broker reports no consumer of (its reader had gone by the poll): what it
    /// counted goes to the one service traces show reading the queue, merged with the traced
    /// failures by the larger count; with two traced readers, to neither.
    #[test]
    fn an_unread_queues_failures_go_to_its_one_traced_consumer() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let snap = |redelivered, dead, taken| {
            let mut snap = snapshot();
            snap.flows.retain(|f| f.kind != FlowKind::Consume);
            snap.taken_unix_nanos = taken;
            let billing = &mut snap.destinations[1].figures;
            (billing.redelivered, billing.dead_letters) = (Some(redelivered), Some(dead));
            Arc::new(snap)
        };
        let queue = "destination:rabbitmq:billing";
        let read = |consumers: &[&str], traced_redelivered: i64| {
            let edges: Vec<(&str, &str, EdgeKind, i64)> = consumers
                .iter()
                .map(|c| (queue, *c, EdgeKind::Consume, 4))
                .collect();
            let mut rows = crate::topology::detect::testing::rows(&edges);
            if traced_redelivered > 0 {
                let mut r = rows.edges[0].clone();
                (r.kind, r.via, r.count, r.errors) = (
                    EdgeKind::Failure,
                    "redelivered".to_string(),
                    traced_redelivered,
                    0,
                );
                rows.edges.push(r);
            }
            (rows.brokers, rows.brokers_then) =
                (vec![snap(1, 2, 60_000_000_000)], vec![snap(0, 0, 1)]);
            build(rows, window)
        };
        let t = read(&["service:billing"], 3);
        let e = t
            .edges
            .iter()
            .find(|e| e.from == queue && e.kind == EdgeKind::Consume)
            .expect("the consume");
        let reasons: Vec<(&str, i64)> = e.failures.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(reasons, [("dead_letter", 2), ("redelivered", 3)]);
        assert_eq!((e.count, e.errors), (4, 2), "a dead letter is an error");
        let node = t.node(queue).unwrap();
        assert_eq!(
            (node.errors, node.failures.get("dead_letter")),
            (Some(2), Some(&2))
        );
        assert_same_json(&t);
        // Nothing traced reads it: no edge to put them on.
        let t = read(&[], 0);
        assert!(t.edges.iter().all(|e| e.failures.is_empty()));
        // Two traced readers: whose failures they were is unknown.
        let t = read(&["service:billing", "service:audit"], 0);
        assert!(t
            .edges
            .iter()
            .all(|e| e.failures.is_empty() && e.errors == 0));
    }

    /// Traces and the broker count the same redeliveries and dead letters of a queue's
    /// consume: merged, the larger count per reason holds, never the sum.
    #[test]
    fn traced_and_broker_failures_of_one_consume_count_once() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let consume = ("destination:rabbitmq:billing", "service:billing");
        let snap = |redelivered, dead| {
            let mut snap = snapshot();
            snap.flows.retain(|f| f.to != "guest (pika)");
            let billing = &mut snap.destinations[1].figures;
            (billing.redelivered, billing.dead_letters) = (Some(redelivered), Some(dead));
            Arc::new(snap)
        };
        for (traced, broker, want) in [
            // (redelivered, dead_letter) traced, by the broker, merged
            ((4, 1), (4, 1), (4, 1)),
            ((2, 0), (5, 1), (5, 1)),
            ((6, 2), (1, 1), (6, 2)),
        ] {
            let mut rows = crate::topology::detect::testing::rows(&[(
                consume.0,
                consume.1,
                EdgeKind::Consume,
                8,
            )]);
            let traced_rows = [
                ("redelivered", traced.0, 0),
                ("dead_letter", traced.1, traced.1),
            ];
            for (reason, n, errors) in traced_rows {
                if n > 0 {
                    let mut r = rows.edges[0].clone();
                    (r.kind, r.via, r.count, r.errors) =
                        (EdgeKind::Failure, reason.to_string(), n, errors);
                    rows.edges.push(r);
                }
            }
            let (then, now) = (snap(0, 0), {
                let mut s = (*snap(broker.0, broker.1)).clone();
                s.taken_unix_nanos += 60_000_000_000;
                Arc::new(s)
            });
            (rows.brokers, rows.brokers_then) = (vec![now], vec![then]);
            let t = build(rows, window);
            let e = t
                .edges
                .iter()
                .find(|e| {
                    (e.from.as_str(), e.to.as_str()) == consume && e.kind == EdgeKind::Consume
                })
                .expect("the consume");
            let case = format!("traced {traced:?}, broker {broker:?}: {:?}", e.failures);
            assert_eq!(
                e.failures.get("redelivered").copied().unwrap_or(0),
                want.0,
                "{case}"
            );
            assert_eq!(
                e.failures.get("dead_letter").copied().unwrap_or(0),
                want.1,
                "{case}"
            );
            assert_eq!(e.errors, want.1, "{case}: each dead letter one error");
        }
    }

    /// Celery's `Broadcast`: each renderer instance reads a queue of its own bound to the
    /// fanout exchange the traced consume names. Each queue carried every message.
    #[test]
    fn a_consume_through_a_queue_per_instance_moves_to_every_one() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let snap = BrokerSnapshot {
            destinations: vec![
                dest("flush", Entity::Exchange, None),
                dest("bcast.a", Entity::Queue, Some(0)),
                dest("bcast.b", Entity::Queue, Some(0)),
            ],
            services: vec![BrokerService {
                name: "renderer".into(),
                named_by: NamedBy::ConnectionName,
            }],
            flows: vec![
                flow(FlowKind::Route, "flush", "bcast.a"),
                flow(FlowKind::Route, "flush", "bcast.b"),
                flow(FlowKind::Consume, "bcast.a", "renderer"),
                flow(FlowKind::Consume, "bcast.b", "renderer"),
            ],
            ..snapshot()
        };
        let (flush, a, b) = (
            "destination:rabbitmq:flush",
            "destination:rabbitmq:bcast.a",
            "destination:rabbitmq:bcast.b",
        );
        let read = |instances: i64, errors: i64| {
            let mut rows = crate::topology::detect::testing::rows(&[
                ("service:frontend", flush, EdgeKind::Publish, 2),
                (flush, "service:renderer", EdgeKind::Consume, 2),
                (
                    "service:frontend",
                    "service:renderer",
                    EdgeKind::Dependency,
                    2,
                ),
            ]);
            for e in &mut rows.edges {
                match e.kind {
                    EdgeKind::Dependency => e.via = flush.into(),
                    EdgeKind::Consume => (e.instances, e.errors) = (instances, errors),
                    _ => {}
                }
            }
            rows.brokers = vec![Arc::new(snap.clone())];
            build(rows, window)
        };
        let t = read(2, 0);
        let find = |t: &crate::topology::Topology, from: &str, to: &str, kind| {
            t.edges
                .iter()
                .find(|e| e.from == from && e.to == to && e.kind == kind)
                .map(|e| (e.count, e.errors, e.instances, e.seen_in.clone()))
        };
        let both = vec![SeenIn::Traces, SeenIn::Broker];
        for q in [a, b] {
            assert_eq!(
                find(&t, q, "service:renderer", EdgeKind::Consume),
                Some((2, 0, Some(1), both.clone()))
            );
            assert_eq!(
                find(&t, flush, q, EdgeKind::Route),
                Some((2, 0, None, both.clone()))
            );
        }
        assert_eq!(find(&t, flush, "service:renderer", EdgeKind::Consume), None);
        let vias: Vec<(&str, Option<i64>)> = t
            .dependencies
            .iter()
            .map(|d| (d.via.as_str(), d.count))
            .collect();
        assert_eq!(vias, [(a, Some(2)), (b, Some(2))]);
        // One instance read both queues, or a delivery failed: it stays on the exchange.
        for (instances, errors) in [(1, 0), (2, 1)] {
            let t = read(instances, errors);
            assert!(find(&t, flush, "service:renderer", EdgeKind::Consume).is_some());
            assert_eq!(
                find(&t, a, "service:renderer", EdgeKind::Consume).map(|e| e.0),
                Some(0)
            );
        }
    }
}
