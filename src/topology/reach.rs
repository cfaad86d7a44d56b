//! Reach and blast radius: everything a node depends on and everything that depends on it,
//! through destinations and to any depth; and what stops or piles up when a node goes down.
//! Pure: answers are computed from a built [`Topology`].
//!
//! Dependence follows the messages: a destination depends on the services publishing to it
//! (and on the destinations routing or dead-lettering into it), a consuming service on the
//! destination it consumes. A call is the other way round: the caller depends on the service
//! it calls.

use super::{Edge, Node, Topology};
use crate::model::{EdgeKind, NodeKind};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// A node reached from another one, `depth` edges away (1: a direct neighbour).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Reached {
    pub id: String,
    pub name: String,
    pub kind: NodeKind,
    pub depth: usize,
}

/// `GET /api/reach`: both directions of one node's dependencies.
#[derive(Clone, Debug, Serialize)]
pub struct Reach {
    pub node: String,
    /// What the node needs, nearest first: its suppliers, theirs, and so on.
    pub depends_on: Vec<Reached>,
    /// What needs the node, nearest first.
    pub dependents: Vec<Reached>,
}

/// A service that stops receiving events when the node goes down.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Starved {
    pub id: String,
    pub name: String,
    pub depth: usize,
    /// The inputs it loses (destinations, or services it calls), sorted.
    pub via: Vec<String>,
    /// Whether it loses every input it had (an event-driven service then falls silent too).
    pub all_inputs: bool,
    /// Events (or calls) per second it received over the lost inputs.
    pub rate_per_sec: f64,
}

/// A destination that keeps receiving messages with no one left to consume them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PilingUp {
    pub id: String,
    pub name: String,
    pub depth: usize,
    /// Messages per second that still arrive.
    pub rate_per_sec: f64,
    /// Messages ready on the broker now, when a broker reports the destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_depth: Option<u64>,
}

/// `GET /api/impact`: what breaks if the node goes down.
#[derive(Clone, Debug, Serialize)]
pub struct Impact {
    pub node: String,
    /// Services that stop receiving events (all or some of them), nearest first.
    pub services: Vec<Starved>,
    /// Destinations that start piling up, nearest first.
    pub destinations: Vec<PilingUp>,
    /// Destinations that stop receiving messages, nearest first.
    pub silent_destinations: Vec<Reached>,
}

/// `(supplier, dependent)` of an edge.
fn supply(e: &Edge) -> (&str, &str) {
    match e.kind {
        EdgeKind::Call => (&e.to, &e.from),
        _ => (&e.from, &e.to),
    }
}

/// Each node's edges, by id: in the direction of dependence ([`supply`]) and in the direction
/// the traffic is driven (messages and requests, always `from` -> `to`).
struct Links<'a> {
    inputs: HashMap<&'a str, Vec<&'a Edge>>,
    outputs: HashMap<&'a str, Vec<&'a Edge>>,
    driven_in: HashMap<&'a str, Vec<&'a Edge>>,
    drives: HashMap<&'a str, Vec<&'a Edge>>,
}

impl<'a> Links<'a> {
    fn of(topo: &'a Topology) -> Links<'a> {
        let mut links = Links {
            inputs: HashMap::new(),
            outputs: HashMap::new(),
            driven_in: HashMap::new(),
            drives: HashMap::new(),
        };
        for e in topo.edges.iter().filter(|e| e.from != e.to) {
            let (from, to) = supply(e);
            links.inputs.entry(to).or_default().push(e);
            links.outputs.entry(from).or_default().push(e);
            links.driven_in.entry(&e.to).or_default().push(e);
            links.drives.entry(&e.from).or_default().push(e);
        }
        links
    }

    /// Nodes reached from `start` along dependence (`upstream`: towards what it depends on),
    /// breadth-first, with their depth (`start` left out).
    fn walk(&self, start: &'a str, upstream: bool) -> BTreeMap<&'a str, usize> {
        if upstream {
            breadth_first(start, &self.inputs, |e| supply(e).0)
        } else {
            breadth_first(start, &self.outputs, |e| supply(e).1)
        }
    }

    /// Nodes the traffic from `start` reaches, with their depth.
    fn walk_driven(&self, start: &'a str) -> BTreeMap<&'a str, usize> {
        breadth_first(start, &self.drives, |e| e.to.as_str())
    }

    /// Nodes that receive something: those nothing drives (they drive themselves: a service
    /// serving requests from outside, a timer) and everything they drive, never through
    /// `down`.
    fn alive(&self, topo: &'a Topology, down: Option<&str>) -> BTreeSet<&'a str> {
        let mut alive = BTreeSet::new();
        let mut queue = VecDeque::new();
        for n in &topo.nodes {
            if Some(n.id.as_str()) != down && !self.driven_in.contains_key(n.id.as_str()) {
                alive.insert(n.id.as_str());
                queue.push_back(n.id.as_str());
            }
        }
        while let Some(id) = queue.pop_front() {
            for e in self.drives.get(id).into_iter().flatten() {
                if Some(e.to.as_str()) != down && alive.insert(&e.to) {
                    queue.push_back(&e.to);
                }
            }
        }
        alive
    }
}

fn breadth_first<'a>(
    start: &'a str,
    next: &HashMap<&'a str, Vec<&'a Edge>>,
    other: impl Fn(&'a Edge) -> &'a str,
) -> BTreeMap<&'a str, usize> {
    let mut depth = BTreeMap::new();
    let mut queue = VecDeque::from([(start, 0usize)]);
    let mut seen = BTreeSet::from([start]);
    while let Some((id, d)) = queue.pop_front() {
        for e in next.get(id).into_iter().flatten() {
            let o = other(e);
            if seen.insert(o) {
                depth.insert(o, d + 1);
                queue.push_back((o, d + 1));
            }
        }
    }
    depth
}

fn reached(topo: &Topology, depths: BTreeMap<&str, usize>) -> Vec<Reached> {
    let mut out: Vec<Reached> = depths
        .into_iter()
        .filter_map(|(id, depth)| {
            topo.node(id).map(|n| Reached {
                id: n.id.clone(),
                name: n.name.clone(),
                kind: n.kind,
                depth,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.depth, &a.name, &a.id).cmp(&(b.depth, &b.name, &b.id)));
    out
}

impl<'a> Links<'a> {
    /// `down` and every node whose every input comes from one of these (so a loop that only
    /// feeds itself, a request and its reply, goes quiet with what fed it).
    fn cut_off(&self, down: &'a str) -> BTreeSet<&'a str> {
        let mut dead = BTreeSet::from([down]);
        let mut queue = VecDeque::from([down]);
        while let Some(id) = queue.pop_front() {
            for e in self.drives.get(id).into_iter().flatten() {
                let to = e.to.as_str();
                let starved = !dead.contains(to)
                    && self.driven_in.get(to).is_some_and(|inputs| {
                        inputs.iter().all(|i| dead.contains(i.from.as_str()))
                    });
                if starved {
                    dead.insert(to);
                    queue.push_back(to);
                }
            }
        }
        dead
    }
}

/// Everything `id` depends on and everything that depends on it; `None` for an unknown node.
pub fn reach(topo: &Topology, id: &str) -> Option<Reach> {
    let node = topo.node(id)?;
    let links = Links::of(topo);
    Some(Reach {
        node: node.id.clone(),
        depends_on: reached(topo, links.walk(&node.id, true)),
        dependents: reached(topo, links.walk(&node.id, false)),
    })
}

/// What breaks if `id` goes down; `None` for an unknown node.
///
/// A node receives something when it has no input in the topology (it drives itself: a
/// service serving requests, a timer) or when one of its inputs does. A node loses its input
/// when that no longer holds, or when every input it has is down or lost (a request and its
/// reply feed each other and nothing else). A service that loses an input stops receiving
/// those events; one that loses all of them falls silent and so stops publishing too, and so
/// on downstream. A destination piles up when messages still arrive and every service
/// consuming it is down.
pub fn impact(topo: &Topology, id: &str) -> Option<Impact> {
    let node = topo.node(id)?;
    let down = node.id.as_str();
    let links = Links::of(topo);
    let before = links.alive(topo, None);
    let after = links.alive(topo, Some(down));
    // Hops from the node: along dependence, else along the traffic it drives.
    let (depth, driven) = (links.walk(down, false), links.walk_driven(down));
    let depth_of = |id: &str| {
        depth
            .get(id)
            .or_else(|| driven.get(id))
            .copied()
            .unwrap_or(1)
    };
    let cut = links.cut_off(down);
    let lost = |from: &str| cut.contains(from) || (before.contains(from) && !after.contains(from));

    let mut services = Vec::new();
    let mut silent = BTreeMap::new();
    let mut destinations = Vec::new();
    for n in topo.nodes.iter().filter(|n| n.id != down) {
        let id = n.id.as_str();
        // What stops arriving (messages, requests), and the calls that fail.
        let mut gone: Vec<(&str, f64)> = links
            .driven_in
            .get(id)
            .into_iter()
            .flatten()
            .filter(|e| lost(&e.from))
            .map(|e| (e.from.as_str(), e.rate_per_sec))
            .collect();
        gone.extend(
            links
                .drives
                .get(id)
                .into_iter()
                .flatten()
                .filter(|e| e.kind == EdgeKind::Call && e.to == down)
                .map(|e| (e.to.as_str(), e.rate_per_sec)),
        );
        if n.kind == NodeKind::Destination {
            if lost(id) {
                silent.insert(id, depth_of(id));
            }
            if let Some(p) = piling_up(topo, &links, n, down, &after) {
                destinations.push(PilingUp {
                    depth: depth_of(id),
                    ..p
                });
            }
        } else if !gone.is_empty() {
            let mut via: Vec<String> = gone.iter().map(|g| g.0.to_string()).collect();
            via.sort();
            via.dedup();
            services.push(Starved {
                id: n.id.clone(),
                name: n.name.clone(),
                depth: depth_of(id),
                via,
                all_inputs: lost(id),
                rate_per_sec: gone.iter().map(|g| g.1).sum(),
            });
        }
    }
    services.sort_by(|a, b| (a.depth, &a.name, &a.id).cmp(&(b.depth, &b.name, &b.id)));
    destinations.sort_by(|a, b| (a.depth, &a.name, &a.id).cmp(&(b.depth, &b.name, &b.id)));
    Some(Impact {
        node: node.id.clone(),
        services,
        destinations,
        silent_destinations: reached(topo, silent),
    })
}

/// `dest` piles up when something alive still sends to it and each of its consumers is `down`.
fn piling_up(
    topo: &Topology,
    links: &Links,
    dest: &Node,
    down: &str,
    alive: &BTreeSet<&str>,
) -> Option<PilingUp> {
    let consumers: Vec<&Edge> = topo
        .edges
        .iter()
        .filter(|e| e.kind == EdgeKind::Consume && e.from == dest.id)
        .collect();
    if consumers.is_empty() || consumers.iter().any(|e| e.to != down) {
        return None;
    }
    let arriving: Vec<f64> = links
        .driven_in
        .get(dest.id.as_str())
        .into_iter()
        .flatten()
        .filter(|e| e.kind != EdgeKind::DeadLetter && alive.contains(e.from.as_str()))
        .map(|e| e.rate_per_sec)
        .collect();
    (!arriving.is_empty()).then(|| PilingUp {
        id: dest.id.clone(),
        name: dest.name.clone(),
        depth: 1,
        rate_per_sec: arriving.iter().sum(),
        broker_depth: dest.broker.as_ref().and_then(|f| f.depth),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    /// checkout -> orders -> {shipping, billing}; billing -> invoices -> mailer;
    /// shipping -> labels (nobody consumes it); cart calls pricing.
    fn shop() -> Topology {
        topo(&[
            ("s:checkout", "d:orders", Publish, 10),
            ("d:orders", "s:shipping", Consume, 10),
            ("d:orders", "s:billing", Consume, 10),
            ("s:billing", "d:invoices", Publish, 10),
            ("d:invoices", "s:mailer", Consume, 10),
            ("s:shipping", "d:labels", Publish, 5),
            ("s:cart", "s:pricing", Call, 4),
            ("s:reporter", "d:invoices", Publish, 2),
        ])
    }

    fn ids(r: &[Reached]) -> Vec<(&str, usize)> {
        r.iter().map(|r| (r.id.as_str(), r.depth)).collect()
    }

    #[test]
    fn reach_follows_destinations_to_any_depth_both_ways() {
        let t = shop();
        let r = reach(&t, "s:checkout").unwrap();
        assert!(r.depends_on.is_empty());
        assert_eq!(
            ids(&r.dependents),
            [
                ("d:orders", 1),
                ("s:billing", 2),
                ("s:shipping", 2),
                ("d:invoices", 3),
                ("d:labels", 3),
                ("s:mailer", 4)
            ]
        );
        let r = reach(&t, "s:mailer").unwrap();
        assert_eq!(
            ids(&r.depends_on),
            [
                ("d:invoices", 1),
                ("s:billing", 2),
                ("s:reporter", 2),
                ("d:orders", 3),
                ("s:checkout", 4)
            ]
        );
        assert!(r.dependents.is_empty());
        assert!(reach(&t, "s:nobody").is_none());
    }

    #[test]
    fn a_caller_depends_on_the_service_it_calls() {
        let t = shop();
        assert_eq!(
            ids(&reach(&t, "s:cart").unwrap().depends_on),
            [("s:pricing", 1)]
        );
        assert_eq!(
            ids(&reach(&t, "s:pricing").unwrap().dependents),
            [("s:cart", 1)]
        );
    }

    #[test]
    fn reach_ends_in_a_cycle() {
        let t = topo(&[
            ("s:a", "d:x", Publish, 1),
            ("d:x", "s:b", Consume, 1),
            ("s:b", "d:y", Publish, 1),
            ("d:y", "s:a", Consume, 1),
        ]);
        let r = reach(&t, "s:a").unwrap();
        assert_eq!(ids(&r.dependents), [("d:x", 1), ("s:b", 2), ("d:y", 3)]);
        assert_eq!(ids(&r.depends_on), [("d:y", 1), ("s:b", 2), ("d:x", 3)]);
    }

    #[test]
    fn a_publisher_down_silences_everything_it_alone_feeds() {
        let t = shop();
        let i = impact(&t, "s:checkout").unwrap();
        let names: Vec<(&str, usize, bool)> = i
            .services
            .iter()
            .map(|s| (s.id.as_str(), s.depth, s.all_inputs))
            .collect();
        // mailer still gets the reporter's invoices.
        assert_eq!(names, [("s:billing", 2, true), ("s:shipping", 2, true)]);
        assert_eq!(i.services[0].via, ["d:orders"]);
        assert_eq!(
            ids(&i.silent_destinations),
            [("d:orders", 1), ("d:labels", 3)]
        );
        assert!(i.destinations.is_empty());
    }

    #[test]
    fn a_service_that_loses_one_of_its_inputs_loses_some_events() {
        let t = topo(&[
            ("s:a", "d:x", Publish, 6),
            ("s:b", "d:y", Publish, 6),
            ("d:x", "s:c", Consume, 6),
            ("d:y", "s:c", Consume, 6),
        ]);
        let i = impact(&t, "s:a").unwrap();
        assert_eq!(i.services.len(), 1);
        let c = &i.services[0];
        assert_eq!((c.id.as_str(), c.all_inputs, c.depth), ("s:c", false, 2));
        assert_eq!(c.via, ["d:x"]);
        assert!((c.rate_per_sec - 0.1).abs() < 1e-9);
    }

    #[test]
    fn a_consumer_down_piles_up_what_only_it_consumes() {
        let t = shop();
        let i = impact(&t, "s:billing").unwrap();
        // orders is also consumed by shipping: it does not pile up.
        assert!(i.destinations.is_empty(), "{:?}", i.destinations);
        let i = impact(&t, "s:mailer").unwrap();
        assert_eq!(i.destinations.len(), 1);
        let d = &i.destinations[0];
        assert_eq!((d.id.as_str(), d.depth), ("d:invoices", 1));
        // Billing's 10 and the reporter's 2 messages a minute still arrive.
        assert!((d.rate_per_sec - 12.0 / 60.0).abs() < 1e-9, "{d:?}");
        assert!(i.services.is_empty());
    }

    #[test]
    fn a_destination_or_a_called_service_down() {
        let t = shop();
        let i = impact(&t, "d:orders").unwrap();
        let got: Vec<&str> = i.services.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(got, ["s:billing", "s:shipping"]);
        assert!((i.services[0].rate_per_sec - 10.0 / 60.0).abs() < 1e-9);
        // cart's calls fail; cart itself still serves whatever drives it.
        let i = impact(&t, "s:pricing").unwrap();
        assert_eq!(i.services.len(), 1);
        assert_eq!(
            (i.services[0].id.as_str(), i.services[0].all_inputs),
            ("s:cart", false)
        );
        assert_eq!(i.services[0].via, ["s:pricing"]);
        // Without cart, pricing gets no more requests.
        let i = impact(&t, "s:cart").unwrap();
        assert_eq!(
            (i.services[0].id.as_str(), i.services[0].all_inputs),
            ("s:pricing", true)
        );
        assert!(impact(&t, "d:nowhere").is_none());
    }

    #[test]
    fn a_request_queue_down_silences_the_reply_too() {
        // wallet asks identity on req and reads the reply on rep; nothing else drives either.
        let t = topo(&[
            ("s:wallet", "d:req", Publish, 3),
            ("d:req", "s:identity", Consume, 3),
            ("s:identity", "d:rep", Publish, 3),
            ("d:rep", "s:wallet", Consume, 3),
        ]);
        let i = impact(&t, "d:req").unwrap();
        let got: Vec<(&str, usize, bool)> = i
            .services
            .iter()
            .map(|s| (s.id.as_str(), s.depth, s.all_inputs))
            .collect();
        assert_eq!(got, [("s:identity", 1, true), ("s:wallet", 3, true)]);
        assert_eq!(ids(&i.silent_destinations), [("d:rep", 2)]);
    }

    #[test]
    fn a_cycle_fed_from_outside_falls_silent_with_its_feed() {
        // feeder -> x -> a -> y -> b -> x: without feeder nothing drives the loop.
        let t = topo(&[
            ("s:feeder", "d:x", Publish, 1),
            ("d:x", "s:a", Consume, 1),
            ("s:a", "d:y", Publish, 1),
            ("d:y", "s:b", Consume, 1),
            ("s:b", "d:x", Publish, 1),
        ]);
        let i = impact(&t, "s:feeder").unwrap();
        let got: Vec<(&str, bool)> = i
            .services
            .iter()
            .map(|s| (s.id.as_str(), s.all_inputs))
            .collect();
        assert_eq!(got, [("s:a", true), ("s:b", true)]);
    }
}
