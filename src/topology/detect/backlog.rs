use super::{name, Detector, Finding, Flows, Topology};

/// A destination whose broker holds messages that are not being taken: no consumer while
/// messages wait, messages arriving faster than they are delivered, or a depth that grew over
/// the window (the broker's oldest poll in it against its newest); or a consumer group with no
/// members while messages arrive for it (its lag grew, or its topic is written to).
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
            let before = n.broker_then.as_ref().and_then(|t| t.depth.or(t.pending));
            let why = if b.consumers == Some(0) {
                format!("has no consumer while {waiting} messages wait")
            } else if incoming > delivered {
                format!(
                    "holds {waiting} messages and grows: {incoming:.1}/s arrive, {delivered:.1}/s are delivered"
                )
            } else if let Some(before) = before.filter(|&t| grew(t, waiting)) {
                format!("grew from {before} to {waiting} waiting messages over the window")
            } else {
                continue;
            };
            out.push(Finding {
                pattern: self.pattern(),
                nodes: vec![n.id.clone()],
                description: format!("{} {why}", name(topo, &n.id)),
            });
        }
        out.extend(empty_groups(topo, self.pattern()));
        out
    }
}

/// Consume flows a broker reports with no consumer (a Kafka group with no members) whose
/// waiting messages grew over the window or whose destination is being written to.
fn empty_groups(topo: &Topology, pattern: &'static str) -> Vec<Finding> {
    topo.edges_of_kind(crate::model::EdgeKind::Consume)
        .filter_map(|e| {
            let b = e.broker.as_ref()?;
            let waiting = b.pending.filter(|&p| p > 0)?;
            if b.consumers != Some(0) {
                return None;
            }
            let before = e.broker_then.as_ref().and_then(|t| t.pending);
            let source = topo.node(&e.from).and_then(|n| n.broker.as_ref());
            let written = source.is_some_and(|s| s.publish_rate.is_some_and(|r| r > 0.0));
            let grew = before.is_some_and(|t| waiting > t);
            if !(written || grew) {
                return None;
            }
            let group = e.key.as_deref().unwrap_or_else(|| name(topo, &e.to));
            Some(Finding {
                pattern,
                nodes: vec![e.from.clone(), e.to.clone()],
                description: format!(
                    "group {group} ({}) has no members while messages arrive on {}: {waiting} wait",
                    name(topo, &e.to),
                    name(topo, &e.from)
                ),
            })
        })
        .collect()
}

/// Grown enough to matter: by at least ten messages and a tenth.
pub fn grew(then: u64, now: u64) -> bool {
    now >= then.saturating_add((then / 10).max(10))
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

    #[test]
    fn a_depth_that_grew_over_the_window() {
        let mut t = topo(&[("s:a", "d:x", Publish, 1)]);
        let figures = |depth| Figures {
            depth: Some(depth),
            consumers: Some(1),
            ..Figures::default()
        };
        for n in t.nodes.iter_mut().filter(|n| n.id == "d:x") {
            n.broker = Some(figures(60));
            n.broker_then = Some(Box::new(figures(55)));
        }
        assert!(Backlog.check(&t).is_empty(), "5 more is noise");
        for n in t.nodes.iter_mut().filter(|n| n.id == "d:x") {
            n.broker_then = Some(Box::new(figures(20)));
        }
        let f = Backlog.check(&t);
        assert_eq!(f.len(), 1);
        assert!(f[0].description.contains("from 20 to 60"), "{f:?}");
        assert!(grew(0, 10) && !grew(0, 9) && grew(1000, 1100) && !grew(1000, 1099));
    }

    #[test]
    fn a_group_with_no_members_while_messages_arrive() {
        let mut t = topo(&[("d:orders", "s:audit", Consume, 1)]);
        let group = |pending, consumers| Figures {
            pending: Some(pending),
            consumers: Some(consumers),
            ..Figures::default()
        };
        t.edges[0].key = Some("audit-group".into());
        t.edges[0].broker = Some(group(7, 0));
        t.edges[0].broker_then = Some(Box::new(group(7, 0)));
        assert!(Backlog.check(&t).is_empty(), "nothing arrives");
        t.edges[0].broker_then = Some(Box::new(group(3, 0)));
        let f = Backlog.check(&t);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].nodes, vec!["d:orders", "s:audit"]);
        assert!(f[0].description.contains("group audit-group"), "{f:?}");
        // With members it is the consumer's lag, not an empty group.
        t.edges[0].broker = Some(group(7, 2));
        assert!(Backlog.check(&t).is_empty());
    }
}
