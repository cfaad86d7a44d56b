use super::{name, Detector, Finding, Flows, Topology};

/// A service subscribed to a destination that no known service publishes to.
pub struct IdleSubscriber;

impl Detector for IdleSubscriber {
    fn pattern(&self) -> &'static str {
        "idle_subscriber"
    }

    fn summary(&self) -> &'static str {
        "a subscriber whose destination has no publisher in the window"
    }

    fn find(&self, topo: &Topology, flows: &Flows) -> Vec<Finding> {
        let mut out = Vec::new();
        for (dest, consumers) in &flows.consumers {
            if flows.is_fed(dest) {
                continue;
            }
            for c in consumers {
                out.push(Finding {
                    pattern: self.pattern(),
                    nodes: vec![c.to_string(), dest.to_string()],
                    description: format!(
                        "{} consumes {} but no service publishes to it",
                        name(topo, c),
                        name(topo, dest)
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
    fn consumer_without_publisher() {
        let t = topo(&[
            ("d:x", "s:b", Consume, 1),
            ("s:a", "d:y", Publish, 1),
            ("d:y", "s:c", Consume, 1),
        ]);
        let f = IdleSubscriber.check(&t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].nodes, vec!["s:b", "d:x"]);
    }
}
