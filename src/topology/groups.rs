//! Consumer groups the broker could only name by their id, matched to the services traces
//! show consuming: Kafka spans do not carry the group (neither kafkajs' nor confluent-kafka's
//! instrumentation sets it), and a group whose members keep their library's default client id
//! is a service named by its group id. When each topic such a group reads has exactly one
//! traced consumer that no broker flow accounts for, and the group is the only one on those
//! topics that no trace accounts for, the group is that service: one node per real thing.

use super::build::{Edge, Node, SeenIn};
use crate::model::{EdgeKind, NodeKind};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The node id prefix of Kafka topics.
const KAFKA_TOPIC: &str = "destination:kafka:";

/// Merges unmatched group nodes into the traced services they are; `edges` stay sorted by
/// (from, to, kind). Returns the node ids replaced, old -> new.
pub fn match_groups(nodes: &mut Vec<Node>, edges: &mut Vec<Edge>) -> HashMap<String, String> {
    let broker_only_services: HashSet<&str> = nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Service && n.broker_only())
        .map(|n| n.id.as_str())
        .collect();
    // Broker-only consume flows keyed by a group, to a service no trace shows: by topic.
    let mut groups_on: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // Traced consumes no broker flow accounts for: by topic.
    let mut traced_on: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // Kafka's only: other brokers name their consumers from what the client says.
    let kafka = |e: &&Edge| e.kind == EdgeKind::Consume && e.from.starts_with(KAFKA_TOPIC);
    for e in edges.iter().filter(kafka) {
        if e.broker_only() && e.key.is_some() && broker_only_services.contains(e.to.as_str()) {
            groups_on.entry(&e.from).or_default().insert(&e.to);
        } else if !e.broker_only() && e.broker.is_none() && e.to.starts_with("service:") {
            traced_on.entry(&e.from).or_default().insert(&e.to);
        }
    }
    // Each group node: the one traced service every topic it reads points to.
    let mut service_of: BTreeMap<&str, Option<&str>> = BTreeMap::new();
    for (topic, groups) in &groups_on {
        let only = match (groups.len(), traced_on.get(topic)) {
            (1, Some(t)) if t.len() == 1 => t.iter().next().copied(),
            _ => None,
        };
        for g in groups {
            let slot = service_of.entry(g).or_insert(only);
            if *slot != only {
                *slot = None;
            }
        }
    }
    // A service two groups would become stays apart from both.
    let mut claims: HashMap<&str, usize> = HashMap::new();
    for s in service_of.values().flatten() {
        *claims.entry(s).or_default() += 1;
    }
    let renamed: HashMap<String, String> = service_of
        .into_iter()
        .filter_map(|(g, s)| Some((g, s?)))
        .filter(|(_, s)| claims.get(s) == Some(&1))
        .map(|(g, s)| (g.to_string(), s.to_string()))
        .collect();
    if renamed.is_empty() {
        return renamed;
    }
    // The group's flows join the traced consumes they are.
    let at: HashMap<(String, String), usize> = edges
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == EdgeKind::Consume)
        .map(|(i, e)| ((e.from.clone(), e.to.clone()), i))
        .collect();
    let mut gone = vec![false; edges.len()];
    for i in 0..edges.len() {
        let e = &edges[i];
        let Some(to) = renamed.get(&e.to) else {
            continue;
        };
        if e.kind != EdgeKind::Consume {
            continue;
        }
        let Some(&j) = at.get(&(e.from.clone(), to.clone())) else {
            continue;
        };
        let (broker, then, key) = (e.broker.clone(), e.broker_then.clone(), e.key.clone());
        let traced = &mut edges[j];
        traced.broker = broker;
        traced.broker_then = then;
        if traced.key.is_none() {
            traced.key = key;
        }
        if !traced.seen_in.contains(&SeenIn::Broker) {
            traced.seen_in.push(SeenIn::Broker);
            traced.seen_in.sort();
        }
        gone[i] = true;
    }
    let mut i = 0;
    edges.retain(|_| {
        i += 1;
        !gone[i - 1]
    });
    nodes.retain(|n| !renamed.contains_key(&n.id));
    let services: HashSet<&String> = renamed.values().collect();
    for n in nodes.iter_mut().filter(|n| services.contains(&n.id)) {
        if !n.seen_in.contains(&SeenIn::Broker) {
            n.seen_in.push(SeenIn::Broker);
            n.seen_in.sort();
        }
    }
    renamed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::broker::Figures;

    fn node(id: &str, seen: &[SeenIn]) -> Node {
        let kind = if id.starts_with("service:") {
            NodeKind::Service
        } else {
            NodeKind::Destination
        };
        Node {
            id: id.into(),
            kind,
            name: id.split(':').next_back().unwrap_or_default().into(),
            system: None,
            namespace: None,
            spans: None,
            span_errors: None,
            seen_in: seen.to_vec(),
            entity: None,
            broker: None,
            broker_then: None,
            errors: None,
            failures: Default::default(),
        }
    }

    fn traced(from: &str, to: &str) -> Edge {
        Edge {
            count: 12,
            seen_in: vec![SeenIn::Traces],
            ..Edge::new(from.into(), to.into(), EdgeKind::Consume)
        }
    }

    fn group(from: &str, to: &str, pending: u64) -> Edge {
        Edge {
            seen_in: vec![SeenIn::Broker],
            key: Some(to.trim_start_matches("service:").into()),
            broker: Some(Figures {
                pending: Some(pending),
                ..Figures::default()
            }),
            ..Edge::new(from.into(), to.into(), EdgeKind::Consume)
        }
    }

    fn sorted(mut edges: Vec<Edge>) -> Vec<Edge> {
        edges.sort_by(|a, b| {
            super::super::brokers::edge_key(a).cmp(&super::super::brokers::edge_key(b))
        });
        edges
    }

    const T: &[SeenIn] = &[SeenIn::Traces];
    const B: &[SeenIn] = &[SeenIn::Broker];

    #[test]
    fn a_lone_group_becomes_the_lone_traced_consumer() {
        let (orders, payments) = ("destination:kafka:orders", "destination:kafka:payments");
        let mut nodes = vec![
            node(orders, &[SeenIn::Traces, SeenIn::Broker]),
            node(payments, &[SeenIn::Traces, SeenIn::Broker]),
            node("service:billing", T),
            node("service:g-7f3a", B),
        ];
        let mut edges = sorted(vec![
            traced(orders, "service:billing"),
            traced(payments, "service:billing"),
            group(orders, "service:g-7f3a", 3),
            group(payments, "service:g-7f3a", 1),
        ]);
        let renamed = match_groups(&mut nodes, &mut edges);
        assert_eq!(
            renamed.get("service:g-7f3a").map(String::as_str),
            Some("service:billing")
        );
        assert_eq!(edges.len(), 2);
        let e = &edges[0];
        assert_eq!(
            (e.from.as_str(), e.to.as_str()),
            (orders, "service:billing")
        );
        assert_eq!(e.key.as_deref(), Some("g-7f3a"));
        assert_eq!(e.count, 12, "the traced statistics stay");
        assert_eq!(e.broker.as_ref().and_then(|f| f.pending), Some(3));
        assert_eq!(e.seen_in, vec![SeenIn::Traces, SeenIn::Broker]);
        assert!(!nodes.iter().any(|n| n.id == "service:g-7f3a"));
        let billing = nodes
            .iter()
            .find(|n| n.id == "service:billing")
            .expect("billing");
        assert_eq!(billing.seen_in, vec![SeenIn::Traces, SeenIn::Broker]);
    }

    #[test]
    fn ambiguous_groups_stay_apart() {
        let orders = "destination:kafka:orders";
        // Two unmatched groups, two traced consumers: which is which is unknown.
        let mut nodes = vec![
            node(orders, T),
            node("service:billing", T),
            node("service:audit", T),
            node("service:g1", B),
            node("service:g2", B),
        ];
        let mut edges = sorted(vec![
            traced(orders, "service:billing"),
            traced(orders, "service:audit"),
            group(orders, "service:g1", 0),
            group(orders, "service:g2", 0),
        ]);
        assert!(match_groups(&mut nodes, &mut edges).is_empty());
        assert_eq!(edges.len(), 4);
        // One group matched by client id already: the other's is the one left.
        let mut matched = group(orders, "service:billing", 0);
        matched.seen_in = vec![SeenIn::Traces, SeenIn::Broker];
        matched.count = 12;
        let mut nodes = vec![
            node(orders, T),
            node("service:billing", &[SeenIn::Traces, SeenIn::Broker]),
            node("service:audit", T),
            node("service:g2", B),
        ];
        let mut edges = sorted(vec![
            matched,
            traced(orders, "service:audit"),
            group(orders, "service:g2", 5),
        ]);
        let renamed = match_groups(&mut nodes, &mut edges);
        assert_eq!(
            renamed.get("service:g2").map(String::as_str),
            Some("service:audit")
        );
        // A group on two topics whose lone consumers differ is no one service.
        let payments = "destination:kafka:payments";
        let mut nodes = vec![
            node(orders, T),
            node(payments, T),
            node("service:billing", T),
            node("service:audit", T),
            node("service:g", B),
        ];
        let mut edges = sorted(vec![
            traced(orders, "service:billing"),
            traced(payments, "service:audit"),
            group(orders, "service:g", 0),
            group(payments, "service:g", 0),
        ]);
        assert!(match_groups(&mut nodes, &mut edges).is_empty());
        // Another broker's consumer (a JetStream durable) is named by what its client says.
        let stream = "destination:nats:ORDERS";
        let mut nodes = vec![
            node(stream, T),
            node("service:worker", T),
            node("service:orders-durable", B),
        ];
        let mut edges = sorted(vec![
            traced(stream, "service:worker"),
            group(stream, "service:orders-durable", 0),
        ]);
        assert!(match_groups(&mut nodes, &mut edges).is_empty());
    }
}
