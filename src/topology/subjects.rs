//! NATS spans name the subject a message was sent to (`orders.created`); JetStream discovery
//! names the stream that stores it (`ORDERS`, subjects `orders.>`). One real thing, one node:
//! when a broker's snapshot in the window has streams, a traced destination of the same system
//! whose subject exactly one stream stores becomes that stream, before the graph is built, so
//! its publishes, consumes and dependencies count on the stream (the same logical messages,
//! summed). A subject that no stream stores (core NATS) or that two streams' filters both match
//! stays as it is, and so does a name that a broker reports itself.

use crate::model::{EdgeRow, NodeKey, NodeKind, TopologyRows};
use std::collections::{HashMap, HashSet};

/// Renames traced subjects to the stream that stores them, merging the rows that then share
/// a key.
pub fn resolve(rows: &mut TopologyRows) {
    let streams: Vec<(&str, &str, &[String])> = rows
        .brokers
        .iter()
        .flat_map(|snap| {
            snap.destinations
                .iter()
                .filter(|d| !d.subjects.is_empty())
                .map(|d| (snap.system.as_str(), d.name.as_str(), d.subjects.as_slice()))
        })
        .collect();
    if streams.is_empty() {
        return;
    }
    let reported: HashSet<String> = rows
        .brokers
        .iter()
        .filter(|snap| streams.iter().any(|(system, _, _)| *system == snap.system))
        .flat_map(|snap| {
            snap.destinations
                .iter()
                .map(|d| NodeKey::destination(&snap.system, &d.name).id)
        })
        .collect();
    let mut renamed: HashMap<String, NodeKey> = HashMap::new();
    for n in &rows.nodes {
        let key = &n.key;
        let Some(system) = key.system.as_deref() else {
            continue;
        };
        if key.kind != NodeKind::Destination || reported.contains(&key.id) {
            continue;
        }
        let mut holders = streams.iter().filter(|(s, _, subjects)| {
            *s == system && subjects.iter().any(|f| matches(f, &key.name))
        });
        if let (Some((s, stream, _)), None) = (holders.next(), holders.next()) {
            renamed.insert(key.id.clone(), NodeKey::destination(s, stream));
        }
    }
    if renamed.is_empty() {
        return;
    }
    rename_nodes(rows, &renamed);
    rename_edges(&mut rows.edges, &renamed);
}

/// Gives the nodes in `renamed` their new key, merging nodes that then share one.
pub(super) fn rename_nodes(rows: &mut TopologyRows, renamed: &HashMap<String, NodeKey>) {
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut nodes = Vec::with_capacity(rows.nodes.len());
    for mut n in std::mem::take(&mut rows.nodes) {
        if let Some(key) = renamed.get(&n.key.id) {
            n.key = key.clone();
        }
        match at.get(&n.key.id) {
            Some(&i) => {
                let kept: &mut crate::model::NodeRow = &mut nodes[i];
                kept.spans += n.spans;
                kept.errors += n.errors;
            }
            None => {
                at.insert(n.key.id.clone(), nodes.len());
                nodes.push(n);
            }
        }
    }
    rows.nodes = nodes;
}

/// Renames the ends and `via` of every row, adding up the rows that then share a key.
pub(super) fn rename_edges(edges: &mut Vec<EdgeRow>, renamed: &HashMap<String, NodeKey>) {
    let new_id = |id: &mut String| {
        if let Some(key) = renamed.get(id.as_str()) {
            id.clone_from(&key.id);
        }
    };
    let mut at: HashMap<(String, String, crate::model::EdgeKind, String), usize> = HashMap::new();
    let mut out: Vec<EdgeRow> = Vec::with_capacity(edges.len());
    for mut e in std::mem::take(edges) {
        new_id(&mut e.from);
        new_id(&mut e.to);
        new_id(&mut e.via);
        let key = (e.from.clone(), e.to.clone(), e.kind, e.via.clone());
        match at.get(&key) {
            Some(&i) => add(&mut out[i], &e),
            None => {
                at.insert(key, out.len());
                out.push(e);
            }
        }
    }
    *edges = out;
}

/// Two subjects' rows on one stream: the same kind of traffic, added up. Distinct consumer
/// instances cannot be added (one instance may read both subjects): the larger count stays.
fn add(into: &mut EdgeRow, more: &EdgeRow) {
    into.count += more.count;
    into.errors += more.errors;
    into.latency_sum_micros += more.latency_sum_micros;
    into.latency.merge(&more.latency);
    into.first_seen_unix_nanos = match (into.first_seen_unix_nanos, more.first_seen_unix_nanos) {
        (0, t) | (t, 0) => t,
        (a, b) => a.min(b),
    };
    into.last_seen_unix_nanos = into.last_seen_unix_nanos.max(more.last_seen_unix_nanos);
    into.instances = into.instances.max(more.instances);
}

/// Whether NATS subject `filter` (tokens split by `.`; `*` one token, `>` one or more trailing
/// tokens) matches the subject `subject`.
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut want = filter.split('.');
    let mut have = subject.split('.');
    loop {
        match (want.next(), have.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(w), Some(h)) if w == h => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matches;
    use crate::model::broker::{BrokerDestination, BrokerFlow, BrokerSnapshot, Entity};
    use crate::model::broker::{BrokerService, FlowKind, NamedBy};
    use crate::model::{EdgeKind, Figures, TimeWindow};
    use crate::topology::{build, SeenIn};
    use std::sync::Arc;

    #[test]
    fn nats_wildcards_match_as_the_server_does() {
        assert!(matches("orders.>", "orders.created"));
        assert!(matches("orders.>", "orders.created.eu"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches("orders.*", "orders.created"));
        assert!(!matches("orders.*", "orders.created.eu"));
        assert!(matches("*.created", "orders.created"));
        assert!(matches("orders.created", "orders.created"));
        assert!(!matches("orders.created", "orders.cancelled"));
        assert!(matches(">", "anything.at.all"));
        assert!(!matches("orders.created.eu", "orders.created"));
    }

    fn stream(name: &str, subjects: &[&str]) -> BrokerDestination {
        BrokerDestination {
            name: name.into(),
            namespace: None,
            entity: Entity::Stream,
            detail: None,
            subjects: subjects.iter().map(|s| s.to_string()).collect(),
            figures: Figures {
                messages: Some(6),
                ..Figures::default()
            },
        }
    }

    /// JetStream discovery of the `orders_nats.py` scenario: stream ORDERS and two durables.
    fn snapshot(streams: Vec<BrokerDestination>) -> BrokerSnapshot {
        let consume = |to: &str| BrokerFlow {
            kind: FlowKind::Consume,
            from: "ORDERS".into(),
            to: to.into(),
            key: None,
            inferred: false,
            figures: Figures::default(),
        };
        let durable = |name: &str| BrokerService {
            name: name.into(),
            named_by: NamedBy::Durable,
        };
        BrokerSnapshot {
            broker: "nats 127.0.0.1:4222".into(),
            system: "nats".into(),
            taken_unix_nanos: 1,
            destinations: streams,
            services: vec![durable("invoicer"), durable("auditor")],
            flows: vec![consume("invoicer"), consume("auditor")],
        }
    }

    fn traced() -> crate::model::TopologyRows {
        let mut rows = crate::topology::detect::testing::rows(&[
            (
                "service:checkout",
                "destination:nats:orders.created",
                EdgeKind::Publish,
                4,
            ),
            (
                "service:checkout",
                "destination:nats:orders.cancelled",
                EdgeKind::Publish,
                2,
            ),
            (
                "destination:nats:orders.created",
                "service:invoicer",
                EdgeKind::Consume,
                4,
            ),
            (
                "destination:nats:orders.created",
                "service:auditor",
                EdgeKind::Consume,
                4,
            ),
            (
                "destination:nats:orders.cancelled",
                "service:auditor",
                EdgeKind::Consume,
                2,
            ),
            (
                "service:checkout",
                "service:auditor",
                EdgeKind::Dependency,
                4,
            ),
            (
                "service:checkout",
                "service:auditor",
                EdgeKind::Dependency,
                2,
            ),
            (
                "destination:nats:core.ping",
                "service:auditor",
                EdgeKind::Consume,
                1,
            ),
        ]);
        for e in rows
            .edges
            .iter_mut()
            .filter(|e| e.kind == EdgeKind::Dependency)
        {
            e.via = match e.count {
                4 => "destination:nats:orders.created".into(),
                _ => "destination:nats:orders.cancelled".into(),
            };
        }
        rows.edges[2].errors = 1;
        rows
    }

    #[test]
    fn traced_subjects_become_the_stream_that_stores_them() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let mut rows = traced();
        rows.brokers = vec![Arc::new(snapshot(vec![stream("ORDERS", &["orders.>"])]))];
        let t = build(rows, window);
        let ids: Vec<&str> = t.nodes.iter().map(|n| n.id.as_str()).collect();
        assert!(!ids.contains(&"destination:nats:orders.created"), "{ids:?}");
        assert!(
            !ids.contains(&"destination:nats:orders.cancelled"),
            "{ids:?}"
        );
        assert!(
            ids.contains(&"destination:nats:core.ping"),
            "no stream stores it"
        );
        let orders = t.node("destination:nats:ORDERS").expect("the stream");
        assert_eq!(orders.seen_in, vec![SeenIn::Traces, SeenIn::Broker]);
        assert_eq!(orders.entity, Some(Some(Entity::Stream)));
        let edge = |from: &str, to: &str, kind| {
            t.edges
                .iter()
                .find(|e| e.from == from && e.to == to && e.kind == kind)
                .unwrap_or_else(|| panic!("no {kind:?} edge {from} -> {to}: {:?}", t.edges))
        };
        let publish = edge(
            "service:checkout",
            "destination:nats:ORDERS",
            EdgeKind::Publish,
        );
        assert_eq!(
            (publish.count, publish.seen_in.clone()),
            (6, vec![SeenIn::Traces])
        );
        let invoicer = edge(
            "destination:nats:ORDERS",
            "service:invoicer",
            EdgeKind::Consume,
        );
        assert_eq!((invoicer.count, invoicer.errors), (4, 1));
        assert_eq!(invoicer.seen_in, vec![SeenIn::Traces, SeenIn::Broker]);
        let auditor = edge(
            "destination:nats:ORDERS",
            "service:auditor",
            EdgeKind::Consume,
        );
        assert_eq!((auditor.count, auditor.instances), (6, Some(1)));
        let dep = t
            .dependencies
            .iter()
            .find(|d| d.to == "service:auditor" && d.count.is_some())
            .expect("the traced dependency");
        assert_eq!(
            (dep.via.as_str(), dep.count),
            ("destination:nats:ORDERS", Some(6))
        );
    }

    #[test]
    fn a_subject_two_streams_could_hold_or_a_reported_name_stays() {
        let window = TimeWindow::new(0, 60_000_000_000).unwrap();
        let mut rows = traced();
        rows.brokers = vec![Arc::new(snapshot(vec![
            stream("ORDERS", &["orders.>"]),
            stream("CREATED", &["*.created"]),
            // A broker that reports the subject itself (a core subscription seen by a monitor).
            BrokerDestination {
                entity: Entity::Subject,
                ..stream("orders.cancelled", &[])
            },
        ]))];
        let t = build(rows, window);
        for id in [
            "destination:nats:orders.created",
            "destination:nats:orders.cancelled",
        ] {
            assert!(
                t.node(id)
                    .is_some_and(|n| n.seen_in.contains(&SeenIn::Traces)),
                "{id}"
            );
        }
        // Without any stream, nothing moves.
        let t = build(traced(), window);
        assert!(t.node("destination:nats:ORDERS").is_none());
    }
}
