use super::{copies_per_instance, name, Detector, Finding, Flows, Topology};
use crate::model::EdgeKind;
use crate::topology::Edge;

/// One destination whose messages reach two or more services (fan-out).
pub struct Broadcast;

impl Detector for Broadcast {
    fn pattern(&self) -> &'static str {
        "broadcast"
    }

    fn summary(&self) -> &'static str {
        "a destination whose messages reach two or more subscribing services"
    }

    fn find(&self, topo: &Topology, flows: &Flows) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut consumes: foldhash::HashMap<&str, Vec<&Edge>> = Default::default();
        for e in topo.edges_of_kind(EdgeKind::Consume) {
            consumes.entry(e.from.as_str()).or_default().push(e);
        }
        for dest in flows.publishers.keys() {
            let receivers = flows.receivers(dest);
            if receivers.len() == 1 {
                // One service whose every instance gets its own copy: a broadcast to instances.
                let reached = std::iter::once(*dest)
                    .chain(flows.routes_out.get(dest).into_iter().flatten().copied());
                let copied = reached
                    .flat_map(|d| consumes.get(d).into_iter().flatten())
                    .find(|e| copies_per_instance(topo, e));
                if let Some(e) = copied {
                    out.push(Finding {
                        pattern: self.pattern(),
                        nodes: vec![dest.to_string(), e.to.clone()],
                        description: format!(
                            "{} is broadcast to each of {} instances of {}",
                            name(topo, dest),
                            e.instances.unwrap_or(0),
                            name(topo, &e.to)
                        ),
                    });
                }
            }
            if receivers.len() >= 2 {
                let names: Vec<&str> = receivers.iter().map(|r| name(topo, r)).collect();
                out.push(Finding {
                    pattern: self.pattern(),
                    nodes: std::iter::once(dest.to_string())
                        .chain(receivers.iter().map(|r| r.to_string()))
                        .collect(),
                    description: format!(
                        "{} is broadcast to {} services: {}",
                        name(topo, dest),
                        names.len(),
                        names.join(", ")
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
    fn fan_out_directly_or_through_routes() {
        let t = topo(&[
            ("s:a", "d:x", Publish, 5),
            ("d:x", "s:b", Consume, 5),
            ("d:x", "s:c", Consume, 5),
        ]);
        let f = Broadcast.check(&t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].nodes, vec!["d:x", "s:b", "s:c"]);
        let t = topo(&[
            ("s:a", "d:ex", Publish, 5),
            ("d:ex", "d:q1", Route, 5),
            ("d:ex", "d:q2", Route, 5),
            ("d:q1", "s:b", Consume, 5),
            ("d:q2", "s:c", Consume, 5),
        ]);
        assert_eq!(Broadcast.check(&t).len(), 1);
        let t = topo(&[("s:a", "d:x", Publish, 5), ("d:x", "s:b", Consume, 5)]);
        assert!(Broadcast.check(&t).is_empty());
    }

    #[test]
    fn every_instance_of_one_service_getting_a_copy() {
        // Two messages, each delivered to both instances: two logical messages consumed, four
        // deliveries paired with their publish (delay samples).
        let mut t = topo(&[
            ("s:a", "d:flush", Publish, 2),
            ("d:flush", "s:w", Consume, 2),
        ]);
        t.edges.iter_mut().for_each(|e| e.instances = Some(2));
        assert!(
            Broadcast.check(&t).is_empty(),
            "two deliveries of two: shares"
        );
        t.edges
            .iter_mut()
            .filter(|e| e.kind == Consume)
            .for_each(|e| e.latency.samples = 4);
        let f = Broadcast.check(&t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].nodes, vec!["d:flush", "s:w"]);
        assert!(
            f[0].description.contains("each of 2 instances of w"),
            "{}",
            f[0].description
        );
        // Shares of a work queue are not copies.
        t.edges.iter_mut().for_each(|e| e.latency.samples = 3);
        assert!(Broadcast.check(&t).is_empty());
    }
}
