//! Declared versus observed: what services say of themselves in AsyncAPI documents
//! (`serve --declared FILE`, read by [`parse`]) compared with the window's topology.
//!
//! [`Declared::apply`] adds to a built topology:
//! - findings `declared_unused` (a declared channel that no traced message used in the
//!   window), `undeclared_flow` (a traced publish or consume of a service that has a
//!   declaration, which none of its operations declares) and `declared_silent_publisher` (a
//!   declared send that no traced publish matches);
//! - `declared` in `seen_in` of the nodes and edges a declaration names, and the declared
//!   operations and channels nothing observed matches as nodes and edges seen only there
//!   (`seen_in: ["declared"]`, no traffic), which the map and DOT draw apart.
//!
//! Matching: a service by name; a channel's address against a destination's name (each
//! `{parameter}` matches any text), on the channel's system when it has one. A declared
//! receive is also met by a consume from a destination the channel routes to (an exchange's
//! queue, a topic's subscription), up to [`MAX_ROUTE_HOPS`] routes away.

pub mod parse;

pub use parse::{Action, Channel, Declaration};

use super::{Edge, Finding, Node, SeenIn, Topology};
use crate::model::{EdgeKind, NodeKey, NodeKind};
use std::collections::{BTreeSet, HashMap};

/// How many route edges (destination -> destination) a declared receive looks through.
pub const MAX_ROUTE_HOPS: usize = 4;

/// Every `--declared` document, read at start.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    pub documents: Vec<Declaration>,
}

/// One declared operation, with its channel, as compared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Op {
    service: String,
    action: Action,
    address: String,
    system: Option<String>,
    source: String,
}

/// A traced publish (send) or consume (receive): service node, destination node, edge.
struct Flow {
    service: usize,
    dest: usize,
    action: Action,
    edge: usize,
}

/// Whether `address` (with `{parameters}`) names `name`: its literal pieces in order, each
/// parameter taking at least one character.
pub fn address_matches(address: &str, name: &str) -> bool {
    if !address.contains('{') {
        return address == name;
    }
    let mut pieces = Vec::new();
    let mut rest = address;
    while let Some(open) = rest.find('{') {
        pieces.push(&rest[..open]);
        rest = rest[open..]
            .find('}')
            .map_or("", |close| &rest[open + close + 1..]);
    }
    pieces.push(rest);
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !name.starts_with(first) {
        return false;
    }
    let mut at = first.len();
    for piece in &pieces[1..pieces.len() - 1] {
        let Some(c) = name[at..].chars().next() else {
            return false;
        };
        let from = at + c.len_utf8();
        match name[from..].find(piece) {
            Some(i) => at = from + i + piece.len(),
            None => return false,
        }
    }
    name.ends_with(last) && name.len() >= last.len() && name.len() - last.len() > at
}

impl Declared {
    pub fn is_empty(&self) -> bool {
        self.documents.is_empty()
    }

    /// Every declared operation once, and every declared channel once.
    fn ops_and_channels(&self) -> (BTreeSet<Op>, Vec<(Channel, String)>) {
        let mut ops = BTreeSet::new();
        let mut channels: Vec<(Channel, String)> = Vec::new();
        for d in &self.documents {
            for c in &d.channels {
                if !channels.iter().any(|(seen, _)| seen == c) {
                    channels.push((c.clone(), d.source.clone()));
                }
            }
            for o in &d.operations {
                let c = &d.channels[o.channel];
                ops.insert(Op {
                    service: o.service.clone(),
                    action: o.action,
                    address: c.address.clone(),
                    system: c.system.clone(),
                    source: d.source.clone(),
                });
            }
        }
        (ops, channels)
    }

    /// Compares the declarations with `topo` and adds the findings, marks and declared-only
    /// nodes and edges (see the module's documentation).
    pub fn apply(&self, topo: &mut Topology) {
        if self.is_empty() {
            return;
        }
        let (ops, channels) = self.ops_and_channels();
        let declared_services: BTreeSet<&str> = ops
            .iter()
            .map(|o| o.service.as_str())
            .chain(self.documents.iter().map(|d| d.service.as_str()))
            .collect();
        let view = View::of(topo);
        let mut findings = Vec::new();
        let mut marked_edges = BTreeSet::new();
        let mut marked_nodes = BTreeSet::new();
        let mut missing: Vec<&Op> = Vec::new();
        // Each operation is compared with its service's flows only.
        let mut by_service: HashMap<(&str, Action), Vec<&Flow>> = HashMap::new();
        for f in &view.flows {
            by_service
                .entry((topo.nodes[f.service].name.as_str(), f.action))
                .or_default()
                .push(f);
        }
        for op in &ops {
            let channel = Channel {
                address: op.address.clone(),
                system: op.system.clone(),
            };
            let met: Vec<&Flow> = by_service
                .get(&(op.service.as_str(), op.action))
                .into_iter()
                .flatten()
                .copied()
                .filter(|f| view.meets(topo, f, op, &channel))
                .collect();
            for f in &met {
                marked_edges.insert(f.edge);
                marked_nodes.extend([f.service, f.dest]);
            }
            if met.is_empty() {
                missing.push(op);
            }
        }
        for f in &view.flows {
            let service = &topo.nodes[f.service];
            if !declared_services.contains(service.name.as_str()) || marked_edges.contains(&f.edge)
            {
                continue;
            }
            let dest = &topo.nodes[f.dest];
            let verb = match f.action {
                Action::Send => "publishes to",
                Action::Receive => "consumes from",
            };
            findings.push(Finding {
                pattern: "undeclared_flow",
                nodes: vec![service.id.clone(), dest.id.clone()],
                description: format!(
                    "{} {verb} {}, which none of its AsyncAPI operations declares",
                    service.name, dest.name
                ),
            });
        }
        let mut unused = Vec::new();
        for (c, source) in &channels {
            let matching = view.matching(topo, c);
            marked_nodes.extend(matching.iter().copied());
            if !matching.iter().any(|d| view.used.contains(d)) {
                unused.push((c, source, matching.first().copied()));
            }
        }
        let system = view.only_system.clone();
        for i in marked_nodes {
            mark(&mut topo.nodes[i].seen_in);
        }
        for i in marked_edges {
            mark(&mut topo.edges[i].seen_in);
        }
        let mut out = Additions::new(topo, system);
        for (c, source, existing) in unused {
            let dest = match existing {
                Some(i) => out.topo.nodes[i].id.clone(),
                None => out.destination(c),
            };
            findings.push(Finding {
                pattern: "declared_unused",
                nodes: vec![dest],
                description: format!(
                    "{} is declared in {source} but no traced message used it in this window",
                    c.address
                ),
            });
        }
        for op in missing {
            let channel = Channel {
                address: op.address.clone(),
                system: op.system.clone(),
            };
            let dest = out.destination(&channel);
            let service = out.service(&op.service);
            if op.action == Action::Send {
                findings.push(Finding {
                    pattern: "declared_silent_publisher",
                    nodes: vec![service.clone(), dest.clone()],
                    description: format!(
                        "{} declares sending to {} ({}) but published nothing there in this window",
                        op.service, op.address, op.source
                    ),
                });
            }
            match op.action {
                Action::Send => out.edge(service, dest, EdgeKind::Publish),
                Action::Receive => out.edge(dest, service, EdgeKind::Consume),
            }
        }
        out.finish();
        // Before the broker part's findings, which stay last (see `json::to_vec`).
        let mut all = findings;
        all.append(&mut topo.findings);
        topo.findings = all;
    }
}

/// Seen nowhere but in a declaration: drawn apart on the map and in DOT.
pub fn declared_only(seen_in: &[SeenIn]) -> bool {
    seen_in == [SeenIn::Declared]
}

fn mark(seen_in: &mut Vec<SeenIn>) {
    if !seen_in.contains(&SeenIn::Declared) {
        seen_in.push(SeenIn::Declared);
        seen_in.sort();
    }
}

fn channel_matches(c: &Channel, node: &Node) -> bool {
    node.kind == NodeKind::Destination
        && c.system
            .as_deref()
            .is_none_or(|s| node.system.as_deref() == Some(s))
        && address_matches(&c.address, &node.name)
}

/// What the comparison reads of a topology.
struct View {
    dests: Vec<usize>,
    /// Destinations by name (node indices), for addresses without parameters.
    dests_by_name: HashMap<String, Vec<usize>>,
    flows: Vec<Flow>,
    /// Destinations some traced message went through.
    used: BTreeSet<usize>,
    /// Route edges into each destination (node indices, from).
    routes_into: HashMap<usize, Vec<usize>>,
    /// The messaging system of the destinations, when they all share one.
    only_system: Option<String>,
}

impl View {
    fn of(topo: &Topology) -> View {
        let at: HashMap<&str, usize> = topo
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        let dests: Vec<usize> = (0..topo.nodes.len())
            .filter(|&i| topo.nodes[i].kind == NodeKind::Destination)
            .collect();
        let mut dests_by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for &d in &dests {
            dests_by_name
                .entry(topo.nodes[d].name.clone())
                .or_default()
                .push(d);
        }
        let mut view = View {
            dests_by_name,
            flows: Vec::new(),
            used: BTreeSet::new(),
            routes_into: HashMap::new(),
            only_system: None,
            dests,
        };
        let systems: BTreeSet<&str> = view
            .dests
            .iter()
            .filter_map(|&d| topo.nodes[d].system.as_deref())
            .collect();
        if systems.len() == 1 {
            view.only_system = systems.first().map(|s| s.to_string());
        }
        for (i, e) in topo.edges.iter().enumerate() {
            let (Some(&from), Some(&to)) = (at.get(e.from.as_str()), at.get(e.to.as_str())) else {
                continue;
            };
            if e.kind == EdgeKind::Route {
                view.routes_into.entry(to).or_default().push(from);
            }
            if !e.seen_in.contains(&SeenIn::Traces) || e.count <= 0 {
                continue;
            }
            let flow = match e.kind {
                EdgeKind::Publish => (from, to, Action::Send),
                EdgeKind::Consume => (to, from, Action::Receive),
                EdgeKind::Route => {
                    view.used.extend([from, to]);
                    continue;
                }
                _ => continue,
            };
            let (service, dest, action) = flow;
            if topo.nodes[service].kind != NodeKind::Service {
                continue;
            }
            view.used.insert(dest);
            view.flows.push(Flow {
                service,
                dest,
                action,
                edge: i,
            });
        }
        view
    }

    /// The destinations a declared channel names.
    fn matching(&self, topo: &Topology, c: &Channel) -> Vec<usize> {
        let candidates: &[usize] = if c.address.contains('{') {
            &self.dests
        } else {
            self.dests_by_name
                .get(&c.address)
                .map_or(&[], Vec::as_slice)
        };
        candidates
            .iter()
            .copied()
            .filter(|&d| channel_matches(c, &topo.nodes[d]))
            .collect()
    }

    /// Whether the traced flow `f` is the declared operation `op` (on `channel`, its channel).
    fn meets(&self, topo: &Topology, f: &Flow, op: &Op, channel: &Channel) -> bool {
        if f.action != op.action || topo.nodes[f.service].name != op.service {
            return false;
        }
        if channel_matches(channel, &topo.nodes[f.dest]) {
            return true;
        }
        if op.action == Action::Send {
            return false;
        }
        // A receive from what the declared channel routes to.
        let mut frontier = vec![f.dest];
        let mut seen = BTreeSet::from([f.dest]);
        for _ in 0..MAX_ROUTE_HOPS {
            let mut next = Vec::new();
            for d in frontier {
                for &up in self.routes_into.get(&d).into_iter().flatten() {
                    if !seen.insert(up) {
                        continue;
                    }
                    if channel_matches(channel, &topo.nodes[up]) {
                        return true;
                    }
                    next.push(up);
                }
            }
            frontier = next;
        }
        false
    }
}

/// Declared-only nodes and edges being added to a topology; `finish` sorts the edges again
/// and rebuilds the graph over them.
struct Additions<'a> {
    topo: &'a mut Topology,
    system: Option<String>,
    /// Node ids, edge keys and service names to their indices in `topo`.
    nodes_at: HashMap<String, usize>,
    edges_at: HashMap<(String, String, EdgeKind), usize>,
    services: HashMap<String, usize>,
    dests_by_name: HashMap<String, Vec<usize>>,
}

impl<'a> Additions<'a> {
    fn new(topo: &'a mut Topology, system: Option<String>) -> Additions<'a> {
        let mut out = Additions {
            nodes_at: HashMap::new(),
            edges_at: HashMap::new(),
            services: HashMap::new(),
            dests_by_name: HashMap::new(),
            topo,
            system,
        };
        for i in 0..out.topo.nodes.len() {
            out.index_node(i);
        }
        for (i, e) in out.topo.edges.iter().enumerate() {
            out.edges_at
                .insert((e.from.clone(), e.to.clone(), e.kind), i);
        }
        out
    }

    fn index_node(&mut self, i: usize) {
        let n = &self.topo.nodes[i];
        self.nodes_at.insert(n.id.clone(), i);
        match n.kind {
            NodeKind::Service => {
                self.services.entry(n.name.clone()).or_insert(i);
            }
            NodeKind::Destination => self
                .dests_by_name
                .entry(n.name.clone())
                .or_default()
                .push(i),
            NodeKind::External => {}
        }
    }

    fn add_node(&mut self, key: NodeKey) -> String {
        if let Some(&i) = self.nodes_at.get(&key.id) {
            mark(&mut self.topo.nodes[i].seen_in);
            return key.id;
        }
        let id = key.id.clone();
        let entity = crate::topology::build::destination_entity(key.kind, key.system.as_deref());
        self.topo.nodes.push(Node {
            id: key.id,
            kind: key.kind,
            name: key.name,
            system: key.system,
            namespace: key.namespace,
            spans: None,
            span_errors: None,
            seen_in: vec![SeenIn::Declared],
            entity,
            broker: None,
            broker_then: None,
            errors: None,
            failures: Default::default(),
        });
        self.index_node(self.topo.nodes.len() - 1);
        id
    }

    /// The service node of `name` (the observed one, whatever its namespace, else a new one).
    fn service(&mut self, name: &str) -> String {
        let found = self
            .services
            .get(name)
            .map(|&i| self.topo.nodes[i].id.clone());
        match found {
            Some(id) => id,
            None => self.add_node(NodeKey::service(name, None)),
        }
    }

    /// The destination node of a declared channel: an observed one it names, else a new one
    /// on its system (or the topology's only one; `unknown` when neither says).
    fn destination(&mut self, c: &Channel) -> String {
        let nodes = &self.topo.nodes;
        let found = if c.address.contains('{') {
            nodes.iter().find(|n| channel_matches(c, n))
        } else {
            self.dests_by_name
                .get(&c.address)
                .into_iter()
                .flatten()
                .map(|&i| &nodes[i])
                .find(|n| channel_matches(c, n))
        }
        .map(|n| n.id.clone());
        if let Some(id) = found {
            return id;
        }
        let system = c
            .system
            .clone()
            .or_else(|| self.system.clone())
            .unwrap_or_else(|| "unknown".to_string());
        self.add_node(NodeKey::destination(&system, &c.address))
    }

    fn edge(&mut self, from: String, to: String, kind: EdgeKind) {
        let key = (from, to, kind);
        match self.edges_at.get(&key) {
            Some(&i) => mark(&mut self.topo.edges[i].seen_in),
            None => {
                self.edges_at.insert(key.clone(), self.topo.edges.len());
                self.topo.edges.push(Edge {
                    seen_in: vec![SeenIn::Declared],
                    ..Edge::new(key.0, key.1, kind)
                });
            }
        }
    }

    fn finish(self) {
        let topo = self.topo;
        topo.edges
            .sort_by(|a, b| super::brokers::edge_key(a).cmp(&super::brokers::edge_key(b)));
        let mut graph = petgraph::graph::DiGraph::new();
        let mut index = foldhash::HashMap::default();
        for (i, n) in topo.nodes.iter().enumerate() {
            index.insert(n.id.clone(), graph.add_node(i));
        }
        for (i, e) in topo.edges.iter().enumerate() {
            if let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) {
                graph.add_edge(a, b, i);
            }
        }
        topo.graph = graph;
        topo.index = index;
    }
}

#[cfg(test)]
mod tests;
