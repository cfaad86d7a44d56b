use super::backlog::grew;
use super::{name, Detector, Finding, Flows, Topology};
use crate::model::EdgeKind;

/// A consumer falling behind: the messages its broker holds for it (a JetStream consumer's
/// pending, or its queue's depth) grew over the window.
pub struct LagGrowing;

impl Detector for LagGrowing {
    fn pattern(&self) -> &'static str {
        "lag_growing"
    }

    fn summary(&self) -> &'static str {
        "a consumer whose backlog grew over the window: it falls behind"
    }

    fn find(&self, topo: &Topology, _: &Flows) -> Vec<Finding> {
        topo.edges_of_kind(EdgeKind::Consume)
            .filter_map(|e| {
                let (now, then) = (e.broker.as_ref()?, e.broker_then.as_ref()?);
                let (now, then) = (now.pending?, then.pending?);
                grew(then, now).then(|| Finding {
                    pattern: self.pattern(),
                    nodes: vec![e.to.clone(), e.from.clone()],
                    description: format!(
                        "{} falls behind on {}: {then} pending messages became {now} over the window",
                        name(topo, &e.to),
                        name(topo, &e.from)
                    ),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EdgeKind::*, Figures};
    use crate::topology::detect::testing::topo;

    #[test]
    fn pending_that_grew() {
        let mut t = topo(&[("d:orders", "s:audit", Consume, 0)]);
        let pending = |n| Figures {
            pending: Some(n),
            ..Figures::default()
        };
        // A broker-only consume edge has count 0: the topology helper drops it, so add it.
        if t.edges.is_empty() {
            let mut e = topo(&[("d:orders", "s:audit", Consume, 1)]).edges.remove(0);
            e.count = 0;
            t.edges.push(e);
        }
        t.edges[0].broker = Some(pending(500));
        t.edges[0].broker_then = Some(Box::new(pending(100)));
        let f = LagGrowing.check(&t);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].nodes, vec!["s:audit", "d:orders"]);
        t.edges[0].broker_then = Some(Box::new(pending(495)));
        assert!(LagGrowing.check(&t).is_empty());
    }
}
