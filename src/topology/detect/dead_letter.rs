use super::{name, Detector, Finding, Flows, Topology};
use crate::model::EdgeKind;

/// A destination whose broker sends what it rejects or lets expire to another destination.
pub struct DeadLetter;

impl Detector for DeadLetter {
    fn pattern(&self) -> &'static str {
        "dead_letter"
    }

    fn summary(&self) -> &'static str {
        "a destination whose rejected or expired messages go to a dead-letter destination"
    }

    fn find(&self, topo: &Topology, _: &Flows) -> Vec<Finding> {
        topo.edges_of_kind(EdgeKind::DeadLetter)
            .map(|e| {
                let held = topo
                    .node(&e.to)
                    .and_then(|n| n.broker.as_ref())
                    .and_then(|b| b.depth)
                    .filter(|&d| d > 0)
                    .map(|d| format!(", which holds {d} messages"))
                    .unwrap_or_default();
                Finding {
                    pattern: self.pattern(),
                    nodes: vec![e.from.clone(), e.to.clone()],
                    description: format!(
                        "{} dead-letters to {}{held}",
                        name(topo, &e.from),
                        name(topo, &e.to)
                    ),
                }
            })
            .collect()
    }
}
