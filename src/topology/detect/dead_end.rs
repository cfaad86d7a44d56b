use super::{name, Detector, Finding, Flows, Topology};

/// A destination that receives messages that nobody consumes.
pub struct DeadEnd;

impl Detector for DeadEnd {
    fn pattern(&self) -> &'static str {
        "dead_end"
    }

    fn summary(&self) -> &'static str {
        "a destination that is published to but never consumed from"
    }

    fn find(&self, topo: &Topology, flows: &Flows) -> Vec<Finding> {
        let fed = flows.publishers.keys().chain(flows.routes_in.keys());
        let mut out: Vec<Finding> = fed
            .filter(|d| flows.is_fed(d))
            .filter(|d| !flows.is_drained(d))
            .map(|d| {
                let pubs: Vec<&str> = flows
                    .publishers
                    .get(d)
                    .into_iter()
                    .flatten()
                    .map(|p| name(topo, p))
                    .collect();
                Finding {
                    pattern: self.pattern(),
                    nodes: vec![d.to_string()],
                    description: if pubs.is_empty() {
                        format!(
                            "{} receives routed messages but has no consumer",
                            name(topo, d)
                        )
                    } else {
                        format!(
                            "{} is published to by {} but has no consumer",
                            name(topo, d),
                            pubs.join(", ")
                        )
                    },
                }
            })
            .collect();
        out.sort_by(|a, b| a.nodes.cmp(&b.nodes));
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    #[test]
    fn published_never_consumed() {
        let t = topo(&[
            ("s:audit", "d:events", Publish, 2),
            ("s:a", "d:x", Publish, 1),
            ("d:x", "s:b", Consume, 1),
        ]);
        let f = DeadEnd.check(&t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].nodes, vec!["d:events"]);
        assert_eq!(
            f[0].description,
            "events is published to by audit but has no consumer"
        );
    }
}
