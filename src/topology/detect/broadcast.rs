use super::{name, Detector, Finding, Flows, Topology};

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
        for dest in flows.publishers.keys() {
            let receivers = flows.receivers(dest);
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
}
