//! RabbitMQ destinations that spans name by a routing key, resolved against the broker's
//! bindings when discovery runs. Celery, for one, names both its producer and its consumer
//! spans by the routing key (`messaging.destination: task.render`); with a named exchange that
//! key is neither the exchange nor the queue. When the broker's snapshot has bindings whose key
//! matches the name (AMQP topic matching: `*` one word, `#` zero or more) and they all leave one
//! exchange, the name is that exchange: publishes go to it; a consume goes to the one queue,
//! among those bindings, that the consuming service reads (in the broker), with a route
//! exchange -> queue for the same messages, else to the exchange (where
//! [`super::brokers::resolve_consumes`] may still find the queue). A name the broker reports
//! itself (an exchange, a queue) is never renamed. Runs over the store's rows, before the graph
//! is built, like [`super::subjects`].

use super::brokers::service_key;
use super::subjects::{rename_edges, rename_nodes};
use crate::model::broker::{BrokerSnapshot, Entity, FlowKind};
use crate::model::{EdgeKind, EdgeRow, NodeKey, NodeKind, TopologyRows};
use std::collections::{HashMap, HashSet};

/// The resolution of one traced name.
#[derive(Clone)]
pub(super) struct Resolved {
    exchange: NodeKey,
    /// Per consuming service id: the queue its consume moves to.
    queues: HashMap<String, String>,
}

/// Traced names kept resolved per broker part (a name's resolution depends only on the
/// snapshot): the resolutions of names read again and again are computed once per poll.
#[derive(Default)]
pub(super) struct Memo(std::sync::Mutex<HashMap<(usize, String), Option<Resolved>>>);

/// Names a memo keeps at most (traced names can be many: server-named reply queues).
const MEMO_KEPT: usize = 10_000;

impl Memo {
    fn get(&self, snap: usize, name: &str) -> Option<Option<Resolved>> {
        // The lock is held for one look-up or insert, never while resolving.
        self.0.lock().ok()?.get(&(snap, name.to_string())).cloned()
    }

    fn put(&self, snap: usize, name: &str, r: &Option<Resolved>) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() < MEMO_KEPT {
                m.insert((snap, name.to_string()), r.clone());
            }
        }
    }
}

/// Resolves traced names that only binding keys explain; `memo` (the broker part's) keeps
/// each name's resolution for the snapshots it was built from.
pub(super) fn resolve(rows: &mut TopologyRows, memo: Option<&Memo>) {
    let mut found: HashMap<String, Resolved> = HashMap::new();
    for (si, snap) in rows.brokers.iter().enumerate() {
        if snap.system != "rabbitmq" {
            continue;
        }
        let candidates: Vec<&NodeKey> = rows
            .nodes
            .iter()
            .map(|n| &n.key)
            .filter(|key| {
                // A server-named reply queue is no routing key (a `#` binding matches it).
                key.kind == NodeKind::Destination
                    && key.system.as_deref() == Some(snap.system.as_str())
                    && key.name != crate::model::messaging::TEMPORARY_DESTINATION
                    && !found.contains_key(&key.id)
            })
            .collect();
        // Built only when a name is not in the memo.
        let mut index: Option<(HashSet<&str>, Bindings)> = None;
        for key in candidates {
            let r = match memo.and_then(|m| m.get(si, &key.name)) {
                Some(r) => r,
                None => {
                    let (reported, bindings) = index.get_or_insert_with(|| {
                        let reported = snap.destinations.iter().map(|d| d.name.as_str());
                        (reported.collect(), Bindings::of(snap))
                    });
                    let r = match reported.contains(key.name.as_str()) {
                        true => None,
                        false => bindings.resolve(snap, &key.name),
                    };
                    if let Some(m) = memo {
                        m.put(si, &key.name, &r);
                    }
                    r
                }
            };
            if let Some(r) = r {
                found.insert(key.id.clone(), r);
            }
        }
    }
    if found.is_empty() {
        return;
    }
    // Consumes (and the dependencies through them) go to the queue where one is known.
    let mut routes: Vec<EdgeRow> = Vec::new();
    for e in rows.edges.iter_mut() {
        let (traced, service) = match e.kind {
            EdgeKind::Consume => (e.from.clone(), e.to.clone()),
            EdgeKind::Dependency => (e.via.clone(), e.to.clone()),
            _ => continue,
        };
        let Some(r) = found.get(&traced) else {
            continue;
        };
        let Some(queue) = r.queues.get(&service) else {
            continue;
        };
        if e.kind == EdgeKind::Consume {
            routes.push(EdgeRow {
                from: r.exchange.id.clone(),
                to: queue.clone(),
                kind: EdgeKind::Route,
                via: String::new(),
                errors: 0,
                instances: 0,
                ..e.clone()
            });
            e.from.clone_from(queue);
        } else {
            e.via.clone_from(queue);
        }
    }
    rows.edges.extend(routes);
    let renamed: HashMap<String, NodeKey> =
        found.into_iter().map(|(id, r)| (id, r.exchange)).collect();
    rename_nodes(rows, &renamed);
    rename_edges(&mut rows.edges, &renamed);
}

/// A snapshot's bindings from its exchanges: (exchange, destination, key).
struct Bindings<'a>(Vec<(&'a str, &'a str, &'a str)>);

impl<'a> Bindings<'a> {
    fn of(snap: &'a BrokerSnapshot) -> Bindings<'a> {
        let exchanges: HashSet<&str> = snap
            .destinations
            .iter()
            .filter(|d| d.entity == Entity::Exchange)
            .map(|d| d.name.as_str())
            .collect();
        Bindings(
            snap.flows
                .iter()
                .filter(|f| f.kind == FlowKind::Route && exchanges.contains(f.from.as_str()))
                .filter_map(|f| Some((f.from.as_str(), f.to.as_str(), f.key.as_deref()?)))
                .collect(),
        )
    }

    /// The exchange (and per service the queue) that the bindings matching `name` lead to.
    fn resolve(&self, snap: &BrokerSnapshot, name: &str) -> Option<Resolved> {
        let matching: Vec<(&str, &str)> = self
            .0
            .iter()
            .filter(|(_, _, key)| topic_matches(key, name))
            .map(|(x, q, _)| (*x, *q))
            .collect();
        let mut sources = matching.iter().map(|(x, _)| *x);
        let exchange = sources.next()?;
        if sources.any(|x| x != exchange) {
            return None;
        }
        let bound: HashSet<&str> = matching.iter().map(|(_, q)| *q).collect();
        let mut read: HashMap<String, Vec<&str>> = HashMap::new();
        for f in snap.flows.iter().filter(|f| f.kind == FlowKind::Consume) {
            if bound.contains(f.from.as_str()) {
                read.entry(service_key(snap, &f.to).id)
                    .or_default()
                    .push(&f.from);
            }
        }
        let queues = read
            .into_iter()
            .filter(|(_, q)| q.len() == 1)
            .map(|(service, q)| (service, NodeKey::destination(&snap.system, q[0]).id))
            .collect();
        Some(Resolved {
            exchange: NodeKey::destination(&snap.system, exchange),
            queues,
        })
    }
}

/// AMQP topic matching of a binding key against a routing key: words split by `.`, `*` one
/// word, `#` zero or more words; without wildcards, equality (a direct exchange's binding).
/// Allocates nothing: it runs for every binding against every unresolved traced name.
pub fn topic_matches(binding: &str, key: &str) -> bool {
    if !binding.contains(['*', '#']) {
        return binding == key;
    }
    words_match(binding.split('.'), key.split('.'), 0)
}

fn words_match(
    mut b: std::str::Split<'_, char>,
    mut k: std::str::Split<'_, char>,
    depth: u8,
) -> bool {
    loop {
        match b.next() {
            None => return k.next().is_none(),
            Some("#") => {
                // Bounded: a `#` per word would make the search exponential.
                if depth >= 8 {
                    return false;
                }
                loop {
                    if words_match(b.clone(), k.clone(), depth + 1) {
                        return true;
                    }
                    if k.next().is_none() {
                        return false;
                    }
                }
            }
            Some(w) => match k.next() {
                Some(h) if w == "*" || w == h => {}
                _ => return false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;
    use crate::model::broker::{BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot};
    use crate::model::broker::{Entity, FlowKind, NamedBy};
    use crate::model::{EdgeKind, Figures, TimeWindow};
    use crate::topology::{build, SeenIn, Topology};
    use std::sync::Arc;

    #[test]
    fn topic_keys_match_as_the_broker_does() {
        assert!(topic_matches("task.render", "task.render"));
        assert!(!topic_matches("task.render", "task.mail"));
        assert!(topic_matches("task.*", "task.render"));
        assert!(!topic_matches("task.*", "task.render.eu"));
        assert!(topic_matches("task.#", "task"));
        assert!(topic_matches("task.#", "task.render.eu"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("*.render.#", "task.render"));
        assert!(!topic_matches("*.render", "render"));
    }

    fn dest(name: &str, entity: Entity) -> BrokerDestination {
        BrokerDestination {
            name: name.into(),
            namespace: Some("/".into()),
            entity,
            detail: None,
            subjects: Vec::new(),
            figures: Figures::default(),
        }
    }

    fn flow(kind: FlowKind, from: &str, to: &str, key: Option<&str>) -> BrokerFlow {
        BrokerFlow {
            kind,
            from: from.into(),
            to: to.into(),
            key: key.map(str::to_string),
            inferred: false,
            figures: Figures::default(),
        }
    }

    /// Celery with a named direct exchange `tasks`: key `task.render` to queue `render` (read
    /// by `renderer`), key `task.mail` to queue `mail` (read by `backoffice`); a topic
    /// exchange `events` with `stock.*` to `catalog`.
    fn snapshot() -> BrokerSnapshot {
        let named = |name: &str| BrokerService {
            name: name.into(),
            named_by: NamedBy::ConnectionName,
        };
        BrokerSnapshot {
            broker: "rabbitmq 127.0.0.1:15672".into(),
            system: "rabbitmq".into(),
            taken_unix_nanos: 1,
            destinations: vec![
                dest("tasks", Entity::Exchange),
                dest("events", Entity::Exchange),
                dest("render", Entity::Queue),
                dest("mail", Entity::Queue),
                dest("catalog", Entity::Queue),
            ],
            services: vec![named("renderer"), named("backoffice"), named("catalog")],
            flows: vec![
                flow(FlowKind::Route, "tasks", "render", Some("task.render")),
                flow(FlowKind::Route, "tasks", "mail", Some("task.mail")),
                flow(FlowKind::Route, "events", "catalog", Some("stock.*")),
                flow(FlowKind::Consume, "render", "renderer", None),
                flow(FlowKind::Consume, "mail", "backoffice", None),
                flow(FlowKind::Consume, "catalog", "catalog", None),
            ],
        }
    }

    fn merged(edges: &[(&str, &str, EdgeKind, i64)]) -> Topology {
        let mut rows = crate::topology::detect::testing::rows(edges);
        for e in rows
            .edges
            .iter_mut()
            .filter(|e| e.kind == EdgeKind::Dependency)
        {
            e.via = "destination:rabbitmq:task.render".into();
        }
        rows.brokers = vec![Arc::new(snapshot())];
        build(rows, TimeWindow::new(0, 60_000_000_000).unwrap())
    }

    fn edge<'a>(
        t: &'a Topology,
        from: &str,
        to: &str,
        kind: EdgeKind,
    ) -> &'a crate::topology::Edge {
        t.edges
            .iter()
            .find(|e| e.from == from && e.to == to && e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} {from} -> {to}: {:#?}", t.edges))
    }

    #[test]
    fn celery_routing_keys_become_the_exchange_and_the_queue() {
        let t = merged(&[
            (
                "service:frontend",
                "destination:rabbitmq:task.render",
                EdgeKind::Publish,
                6,
            ),
            (
                "destination:rabbitmq:task.render",
                "service:renderer",
                EdgeKind::Consume,
                6,
            ),
            (
                "service:frontend",
                "service:renderer",
                EdgeKind::Dependency,
                6,
            ),
        ]);
        assert!(
            t.node("destination:rabbitmq:task.render").is_none(),
            "renamed"
        );
        let x = "destination:rabbitmq:tasks";
        let q = "destination:rabbitmq:render";
        assert_eq!(edge(&t, "service:frontend", x, EdgeKind::Publish).count, 6);
        let route = edge(&t, x, q, EdgeKind::Route);
        assert_eq!(
            (route.count, route.seen_in.clone()),
            (6, vec![SeenIn::Traces, SeenIn::Broker])
        );
        let consume = edge(&t, q, "service:renderer", EdgeKind::Consume);
        assert_eq!((consume.count, consume.seen_in.len()), (6, 2));
        let dep = t
            .dependencies
            .iter()
            .find(|d| d.count.is_some())
            .expect("the traced dependency");
        assert_eq!(dep.via, q);
        assert!(t
            .node(x)
            .is_some_and(|n| n.seen_in == vec![SeenIn::Traces, SeenIn::Broker]));
    }

    #[test]
    fn a_topic_binding_resolves_a_routing_key_and_reported_names_stay() {
        // amqplib names the exchange; aio-pika's composite name is normalised at ingest: both
        // arrive as the exchange, which the broker reports, so nothing here renames them.
        let t = merged(&[
            (
                "service:inventory",
                "destination:rabbitmq:events",
                EdgeKind::Publish,
                4,
            ),
            (
                "service:inventory",
                "destination:rabbitmq:stock.changed.eu",
                EdgeKind::Publish,
                2,
            ),
            (
                "destination:rabbitmq:render",
                "service:renderer",
                EdgeKind::Consume,
                3,
            ),
            (
                "service:x",
                "destination:rabbitmq:nobody.binds.this",
                EdgeKind::Publish,
                1,
            ),
        ]);
        // `stock.changed.eu` does not match `stock.*` (one word only): it stays.
        assert!(t.node("destination:rabbitmq:stock.changed.eu").is_some());
        assert_eq!(
            edge(
                &t,
                "service:inventory",
                "destination:rabbitmq:events",
                EdgeKind::Publish
            )
            .count,
            4
        );
        assert_eq!(
            edge(
                &t,
                "destination:rabbitmq:render",
                "service:renderer",
                EdgeKind::Consume
            )
            .count,
            3
        );
        assert!(t.node("destination:rabbitmq:nobody.binds.this").is_some());
        let t = merged(&[(
            "service:inventory",
            "destination:rabbitmq:stock.eu",
            EdgeKind::Publish,
            2,
        )]);
        assert_eq!(
            edge(
                &t,
                "service:inventory",
                "destination:rabbitmq:events",
                EdgeKind::Publish
            )
            .count,
            2
        );
    }
}
