use super::{name, Detector, Finding, Flows, Topology};

/// A destination whose broker holds messages that are not being taken: no consumer while
/// messages wait, or messages arriving faster than they are delivered.
pub struct Backlog;

impl Detector for Backlog {
    fn pattern(&self) -> &'static str {
        "backlog"
    }

    fn summary(&self) -> &'static str {
        "messages pile up in a destination: no consumer takes them, or they arrive faster than they are delivered"
    }

    fn find(&self, topo: &Topology, _: &Flows) -> Vec<Finding> {
        let mut out = Vec::new();
        for n in &topo.nodes {
            let Some(b) = &n.broker else { continue };
            let waiting = b.depth.or(b.pending).unwrap_or(0);
            if waiting == 0 {
                continue;
            }
            let (incoming, delivered) =
                (b.publish_rate.unwrap_or(0.0), b.deliver_rate.unwrap_or(0.0));
            let why = if b.consumers == Some(0) {
                format!("has no consumer while {waiting} messages wait")
            } else if incoming > delivered {
                format!(
                    "holds {waiting} messages and grows: {incoming:.1}/s arrive, {delivered:.1}/s are delivered"
                )
            } else {
                continue;
            };
            out.push(Finding {
                pattern: self.pattern(),
                nodes: vec![n.id.clone()],
                description: format!("{} {why}", name(topo, &n.id)),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EdgeKind::*, Figures};
    use crate::topology::detect::testing::topo;

    #[test]
    fn waiting_messages_without_consumers_or_outpaced_consumers() {
        let mut t = topo(&[("s:a", "d:x", Publish, 1), ("s:a", "d:y", Publish, 1)]);
        for n in &mut t.nodes {
            n.broker = match n.id.as_str() {
                "d:x" => Some(Figures {
                    depth: Some(40),
                    consumers: Some(0),
                    ..Figures::default()
                }),
                "d:y" => Some(Figures {
                    depth: Some(5),
                    consumers: Some(2),
                    publish_rate: Some(10.0),
                    deliver_rate: Some(10.0),
                    ..Figures::default()
                }),
                _ => None,
            };
        }
        let f = Backlog.check(&t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].nodes, vec!["d:x"]);
        assert!(f[0].description.contains("40 messages"));
        t.nodes
            .iter_mut()
            .filter(|n| n.id == "d:y")
            .for_each(|n| n.broker.as_mut().unwrap().publish_rate = Some(25.0));
        assert_eq!(Backlog.check(&t).len(), 2);
    }
}
