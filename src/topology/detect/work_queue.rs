use super::{copies_per_instance, name, Detector, Finding, Flows, Topology};
use crate::model::EdgeKind;

/// One destination drained by a single service running two or more competing instances.
pub struct WorkQueue;

impl Detector for WorkQueue {
    fn pattern(&self) -> &'static str {
        "work_queue"
    }

    fn summary(&self) -> &'static str {
        "a destination drained by competing instances of one service"
    }

    fn find(&self, topo: &Topology, flows: &Flows) -> Vec<Finding> {
        let mut out = Vec::new();
        // Each destination's first consume edge, found in one pass (a scan per destination
        // was quadratic: thousands of queues from a broker's state).
        let mut first: foldhash::HashMap<&str, &crate::topology::Edge> =
            foldhash::HashMap::default();
        for e in topo.edges_of_kind(EdgeKind::Consume) {
            first.entry(e.from.as_str()).or_insert(e);
        }
        // A Kafka topic read by several consumer groups is a work queue inside each group
        // whose service runs two or more instances (and a broadcast across the groups).
        let topic = |id: &str| {
            topo.node(id)
                .is_some_and(|n| n.entity == Some(Some(crate::model::Entity::Topic)))
        };
        for e in topo.edges_of_kind(EdgeKind::Consume) {
            let instances = e.instances.unwrap_or(0);
            // The instances first: most consumes have one, and the look-ups cost more.
            if instances < 2 {
                continue;
            }
            let shared = flows.consumers.get(e.from.as_str()).map_or(0, |c| c.len());
            if shared > 1 && topic(&e.from) && !copies_per_instance(topo, e) {
                let service = name(topo, &e.to);
                // The group is named only where the broker named it (the edge's key): edges
                // from spans keep no consumer group, so from traces alone it is unnamed.
                let group = match e.key.as_deref() {
                    Some(group) => format!("group {group}"),
                    None => format!("a group (group unknown, by service {service})"),
                };
                out.push(Finding {
                    pattern: self.pattern(),
                    nodes: vec![e.from.clone(), e.to.clone()],
                    description: format!(
                        "{} is a work queue inside {group}: {instances} instances of {service} share it",
                        name(topo, &e.from),
                    ),
                });
            }
        }
        for (dest, consumers) in &flows.consumers {
            if consumers.len() != 1 {
                continue;
            }
            let Some(edge) = first.get(dest) else {
                continue;
            };
            let instances = edge.instances.unwrap_or(0);
            if instances >= 2 && !copies_per_instance(topo, edge) {
                out.push(Finding {
                    pattern: self.pattern(),
                    nodes: vec![dest.to_string(), edge.to.clone()],
                    description: format!(
                        "{} is a work queue drained by {} instances of {}",
                        name(topo, dest),
                        instances,
                        name(topo, &edge.to)
                    ),
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    #[test]
    fn a_work_queue_inside_each_group_of_a_topic() {
        let mut t = topo(&[
            ("s:a", "d:orders", Publish, 6),
            ("d:orders", "s:billing", Consume, 6),
            ("d:orders", "s:audit", Consume, 6),
        ]);
        for e in t.edges.iter_mut().filter(|e| e.to == "s:billing") {
            e.instances = Some(2);
            e.key = Some("billing-group".into());
        }
        assert!(WorkQueue.check(&t).is_empty(), "not a topic");
        for n in t.nodes.iter_mut().filter(|n| n.id == "d:orders") {
            n.entity = Some(Some(crate::model::Entity::Topic));
        }
        let f = WorkQueue.check(&t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].nodes, vec!["d:orders", "s:billing"]);
        assert!(
            f[0].description.contains("inside group billing-group"),
            "{f:?}"
        );
        // From traces alone the group is not known: the finding says so instead of naming
        // one after the service.
        for e in t.edges.iter_mut().filter(|e| e.to == "s:billing") {
            e.key = None;
        }
        let f = WorkQueue.check(&t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].description,
            "orders is a work queue inside a group (group unknown, by service billing): 2 instances of billing share it"
        );
    }

    #[test]
    fn needs_two_instances_of_one_service() {
        let mut t = topo(&[("s:a", "d:q", Publish, 6), ("d:q", "s:w", Consume, 6)]);
        assert!(WorkQueue.check(&t).is_empty());
        t.edges.iter_mut().for_each(|e| e.instances = Some(2));
        let f = WorkQueue.check(&t);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].description.contains("2 instances of w"),
            "{}",
            f[0].description
        );
        // One redelivery is still a share of the work (one more delivery paired).
        t.edges
            .iter_mut()
            .for_each(|e| e.latency.samples = e.count + 1);
        assert_eq!(WorkQueue.check(&t).len(), 1);
    }

    #[test]
    fn every_instance_getting_every_message_is_no_work_queue() {
        // Celery's Broadcast: 2 messages, each run by both instances (4 deliveries paired).
        let mut t = topo(&[
            ("s:a", "d:flush", Publish, 2),
            ("d:flush", "s:w", Consume, 2),
        ]);
        t.edges.iter_mut().for_each(|e| {
            e.instances = Some(2);
            e.latency.samples = 4;
        });
        assert!(WorkQueue.check(&t).is_empty());
    }
}
