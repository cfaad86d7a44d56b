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

    /// A Kafka group falling behind, from two polls of discovery: its lag over the topic's
    /// partitions grew between the window's oldest and newest poll; the group keeping up is
    /// not reported.
    #[test]
    fn a_kafka_group_whose_lag_grew() {
        use crate::discover::kafka::map::{snapshot, GroupState, Memory, Polled, TopicState};
        use std::sync::Arc;
        let poll = |at: u64, end: i64, slow: i64| Polled {
            taken_unix_nanos: at,
            topics: vec![TopicState {
                name: "orders".into(),
                internal: false,
                partitions: [(0, (Some(0), Some(end)))].into_iter().collect(),
            }],
            groups: [("audit", slow), ("billing", end)]
                .into_iter()
                .map(|(id, committed)| GroupState {
                    id: id.into(),
                    state: "Empty".into(),
                    members: Vec::new(),
                    committed: [(("orders".to_string(), 0), committed)]
                        .into_iter()
                        .collect(),
                })
                .collect(),
        };
        let mut memory = Memory::default();
        let then = snapshot("kafka h:9092", &poll(60_000_000_000, 100, 90), &mut memory);
        let now = snapshot(
            "kafka h:9092",
            &poll(240_000_000_000, 300, 100),
            &mut memory,
        );
        let rows = crate::model::TopologyRows {
            brokers: vec![Arc::new(now)],
            brokers_then: vec![Arc::new(then)],
            ..Default::default()
        };
        let window = crate::model::TimeWindow::new(0, 300_000_000_000).unwrap();
        let t = crate::topology::build(rows, window);
        let f = LagGrowing.check(&t);
        let nodes: Vec<&Vec<String>> = f.iter().map(|f| &f.nodes).collect();
        assert_eq!(
            nodes,
            vec![&vec![
                "service:audit".to_string(),
                "destination:kafka:orders".to_string()
            ]],
            "{f:?}"
        );
        assert!(
            f[0].description.contains("10 pending messages became 200"),
            "{f:?}"
        );
    }
}
