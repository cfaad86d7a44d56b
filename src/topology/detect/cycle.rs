use super::{name, Detector, Finding, Flows, Topology};
use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

/// Services that depend on each other in a loop, through calls or through destinations.
/// A two-service action/response loop is reported by its own detector, not as a cycle.
pub struct Cycle;

impl Detector for Cycle {
    fn pattern(&self) -> &'static str {
        "cycle"
    }

    fn summary(&self) -> &'static str {
        "services that depend on each other in a loop"
    }

    fn find(&self, topo: &Topology, _: &Flows) -> Vec<Finding> {
        let mut g: DiGraphMap<&str, ()> = DiGraphMap::new();
        for d in &topo.dependencies {
            g.add_edge(d.from.as_str(), d.to.as_str(), ());
        }
        for e in topo.edges_of_kind(crate::model::EdgeKind::Call) {
            if topo
                .node(&e.to)
                .is_some_and(|n| n.kind == crate::model::NodeKind::Service)
            {
                g.add_edge(e.from.as_str(), e.to.as_str(), ());
            }
        }
        let mut out = Vec::new();
        for mut scc in tarjan_scc(&g) {
            let self_loop = scc.len() == 1 && g.contains_edge(scc[0], scc[0]);
            if scc.len() < 3 && !self_loop {
                continue;
            }
            scc.sort();
            let names: Vec<&str> = scc.iter().map(|id| name(topo, id)).collect();
            out.push(Finding {
                pattern: self.pattern(),
                nodes: scc.iter().map(|s| s.to_string()).collect(),
                description: format!("{} depend on each other in a loop", names.join(" -> ")),
            });
        }
        out.sort_by(|a, b| a.nodes.cmp(&b.nodes));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    #[test]
    fn three_services_in_a_loop() {
        let t = topo(&[
            ("s:a", "d:x", Publish, 1),
            ("d:x", "s:b", Consume, 1),
            ("s:b", "d:y", Publish, 1),
            ("d:y", "s:c", Consume, 1),
            ("s:c", "d:z", Publish, 1),
            ("d:z", "s:a", Consume, 1),
        ]);
        let f = Cycle.check(&t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].nodes, vec!["s:a", "s:b", "s:c"]);
        let line = topo(&[("s:a", "d:x", Publish, 1), ("d:x", "s:b", Consume, 1)]);
        assert!(Cycle.check(&line).is_empty());
    }
}
