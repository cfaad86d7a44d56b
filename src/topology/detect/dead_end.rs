use super::{name, Detector, Finding, Flows, Topology};

/// A destination that receives messages that nobody consumes: published to or routed into in
/// the traces, or a Kafka topic its broker reports written to (its end offsets grew, or a
/// publish rate) that no consumer group reads.
pub struct DeadEnd;

impl Detector for DeadEnd {
    fn pattern(&self) -> &'static str {
        "dead_end"
    }

    fn summary(&self) -> &'static str {
        "a destination that is published to but never consumed from"
    }

    fn find(&self, topo: &Topology, flows: &Flows) -> Vec<Finding> {
        let fed = flows
            .publishers
            .keys()
            .chain(flows.routes_in.keys())
            .chain(&flows.written_topics);
        let mut out: Vec<Finding> = fed
            .filter(|d| flows.is_fed(d))
            .filter(|d| !flows.is_drained(d))
            .map(|d| {
                // One look-up of the node for its name and entity.
                let node = topo.node(d);
                let this = node.map_or(*d, |n| n.name.as_str());
                let topic =
                    node.is_some_and(|n| n.entity == Some(Some(crate::model::Entity::Topic)));
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
                    description: if pubs.is_empty() && topic {
                        format!(
                            "{this} is written to (its broker reports it) but no consumer group reads it"
                        )
                    } else if pubs.is_empty() {
                        format!("{this} receives routed messages but has no consumer")
                    } else {
                        format!(
                            "{this} is published to by {} but has no consumer",
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

    /// A Kafka topic no span shows, whose broker reports writes and no group: a dead end; one
    /// a group reads, or one its broker reports no writes to, is not.
    #[test]
    fn a_topic_written_to_that_no_group_reads() {
        use crate::model::broker::{Entity, Figures, PartitionLag};
        use crate::topology::detect::testing::rows;
        let mut r = rows(&[("d:read", "s:b", Consume, 1)]);
        for n in ["d:unread", "d:idle", "d:__consumer_offsets"] {
            let mut extra = rows(&[(n, "s:b", Consume, 1)]);
            r.nodes
                .extend(extra.nodes.drain(..).filter(|n| n.key.id.starts_with("d:")));
        }
        let mut t =
            crate::topology::build(r, crate::model::TimeWindow::new(0, 60_000_000_000).unwrap());
        let ends = |end: u64| Figures {
            lag: vec![PartitionLag {
                partition: 0,
                end_offset: end,
                ..PartitionLag::default()
            }],
            ..Figures::default()
        };
        for n in &mut t.nodes {
            let (now, then) = match n.id.as_str() {
                "d:read" | "d:unread" | "d:__consumer_offsets" => (9, 4),
                "d:idle" => (4, 4),
                _ => continue,
            };
            n.entity = Some(Some(Entity::Topic));
            n.broker = Some(ends(now));
            n.broker_then = Some(Box::new(ends(then)));
        }
        let f = DeadEnd.check(&t);
        let found: Vec<&Vec<String>> = f.iter().map(|f| &f.nodes).collect();
        assert_eq!(found, vec![&vec!["d:unread".to_string()]], "{f:?}");
        assert_eq!(
            f[0].description,
            "unread is written to (its broker reports it) but no consumer group reads it"
        );
    }
}
