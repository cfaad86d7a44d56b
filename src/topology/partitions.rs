//! A partitioned destination (a Kafka topic) partition by partition, from its broker's
//! figures in the window: what each partition holds and how far its end offset moved between
//! the oldest and the newest poll, the group members it is assigned to, and each consumer
//! group's committed offset and lag on it (from the group's consume edge). What
//! `GET /api/partitions` answers and the destination page's table shows.

use super::{Edge, Topology};
use crate::model::broker::PartitionLag;
use crate::model::EdgeKind;
use serde::Serialize;
use std::collections::BTreeMap;

/// One partition of a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Partition {
    pub partition: i32,
    /// The offset the next message written gets, at the newest poll.
    pub end_offset: u64,
    /// Messages the partition holds (end offset less the first offset kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Messages written in the window: the end offset's growth from the oldest poll in the
    /// window to the newest (absent with a single poll).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written: Option<u64>,
    /// Group members the partition is assigned to, over all groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    /// Lag summed over the groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Each consumer group on the partition, by group id.
    pub groups: Vec<GroupOnPartition>,
}

/// One consumer group's position on one partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupOnPartition {
    /// The group's id (the consume edge's `key`).
    pub group: String,
    /// The consuming node the group is (`service:NAME`) and its name.
    pub node: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    /// Members of the group the partition is assigned to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

/// `GET /api/partitions`' answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Partitions {
    pub node: String,
    pub partitions: Vec<Partition>,
}

/// The partitions of destination `id` (`None`: no such node in the window). A destination
/// whose broker reports no partitions has an empty list.
pub fn partitions(topo: &Topology, id: &str) -> Option<Partitions> {
    let node = topo.node(id)?;
    let then: BTreeMap<i32, u64> = node
        .broker_then
        .iter()
        .flat_map(|f| f.lag.iter())
        .map(|p| (p.partition, p.end_offset))
        .collect();
    let mut out: BTreeMap<i32, Partition> = node
        .broker
        .iter()
        .flat_map(|f| f.lag.iter())
        .map(|p| {
            let row = Partition {
                partition: p.partition,
                end_offset: p.end_offset,
                messages: p.messages,
                written: then
                    .get(&p.partition)
                    .map(|&t| p.end_offset.saturating_sub(t)),
                consumers: p.consumers,
                lag: p.lag,
                groups: Vec::new(),
            };
            (p.partition, row)
        })
        .collect();
    let consumes = topo
        .edges_of_kind(EdgeKind::Consume)
        .filter(|e| e.from == id && e.broker.is_some());
    for e in consumes {
        for p in e.broker.iter().flat_map(|f| f.lag.iter()) {
            let row = out.entry(p.partition).or_insert_with(|| Partition {
                partition: p.partition,
                end_offset: p.end_offset,
                ..Partition::default()
            });
            row.groups.push(group(topo, e, p));
        }
    }
    let mut partitions: Vec<Partition> = out.into_values().collect();
    for p in &mut partitions {
        p.groups
            .sort_by(|a, b| (&a.group, &a.node).cmp(&(&b.group, &b.node)));
    }
    Some(Partitions {
        node: id.to_string(),
        partitions,
    })
}

fn group(topo: &Topology, e: &Edge, p: &PartitionLag) -> GroupOnPartition {
    GroupOnPartition {
        group: e.key.clone().unwrap_or_default(),
        node: e.to.clone(),
        name: topo
            .node(&e.to)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| e.to.clone()),
        committed: p.committed,
        consumers: p.consumers,
        lag: p.lag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::broker::{
        BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot, Entity, Figures, FlowKind,
        NamedBy,
    };
    use crate::model::{TimeWindow, TopologyRows};
    use std::sync::Arc;

    fn lag(partition: i32, end: u64, committed: Option<u64>, consumers: u64) -> PartitionLag {
        PartitionLag {
            partition,
            end_offset: end,
            messages: committed.is_none().then_some(end),
            committed,
            consumers: Some(consumers),
            lag: committed.map(|c| end - c),
        }
    }

    /// `orders` (2 partitions) at a poll: `ends` written, group `billing` (service
    /// `billing-svc`) committed `billing`, group `audit` nothing on partition 1.
    fn snapshot(at: u64, ends: [u64; 2], billing: [u64; 2]) -> Arc<BrokerSnapshot> {
        let topic = Figures {
            lag: vec![lag(0, ends[0], None, 1), lag(1, ends[1], None, 1)],
            ..Figures::default()
        };
        let flow = |to: &str, key: &str, lag: Vec<PartitionLag>| BrokerFlow {
            kind: FlowKind::Consume,
            from: "orders".into(),
            to: to.into(),
            key: Some(key.into()),
            inferred: false,
            figures: Figures {
                lag,
                ..Figures::default()
            },
        };
        Arc::new(BrokerSnapshot {
            broker: "kafka h:9092".into(),
            system: "kafka".into(),
            taken_unix_nanos: at,
            destinations: vec![BrokerDestination {
                name: "orders".into(),
                namespace: None,
                entity: Entity::Topic,
                detail: None,
                subjects: Vec::new(),
                figures: topic,
            }],
            services: vec![BrokerService {
                name: "billing-svc".into(),
                named_by: NamedBy::ClientId,
            }],
            flows: vec![
                flow(
                    "billing-svc",
                    "billing",
                    vec![
                        lag(0, ends[0], Some(billing[0]), 1),
                        lag(1, ends[1], Some(billing[1]), 1),
                    ],
                ),
                flow("audit", "audit", vec![lag(0, ends[0], Some(0), 0)]),
            ],
        })
    }

    #[test]
    fn each_partition_with_growth_over_the_window_and_each_group_on_it() {
        let window = TimeWindow::new(0, 600_000_000_000).expect("window");
        let rows = TopologyRows {
            brokers: vec![snapshot(200_000_000_000, [9, 4], [9, 1])],
            brokers_then: vec![snapshot(100_000_000_000, [5, 4], [5, 4])],
            ..TopologyRows::default()
        };
        let topo = super::super::build(rows, window);
        let p = partitions(&topo, "destination:kafka:orders").expect("node");
        assert_eq!(p.partitions.len(), 2);
        let first = &p.partitions[0];
        assert_eq!((first.end_offset, first.written), (9, Some(4)));
        let groups: Vec<(&str, &str, Option<u64>)> = first
            .groups
            .iter()
            .map(|g| (g.group.as_str(), g.name.as_str(), g.lag))
            .collect();
        assert_eq!(
            groups,
            vec![
                ("audit", "audit", Some(9)),
                ("billing", "billing-svc", Some(0))
            ]
        );
        let second = &p.partitions[1];
        assert_eq!(second.written, Some(0));
        assert_eq!(second.groups.len(), 1, "audit is not on partition 1");
        assert_eq!(second.groups[0].lag, Some(3));
        assert_eq!(second.groups[0].node, "service:billing-svc");
        assert!(partitions(&topo, "destination:kafka:nothing").is_none());
        // A destination with no partitions: an empty list.
        let mut rows = TopologyRows::default();
        let mut snap = (*snapshot(1, [1, 1], [1, 1])).clone();
        snap.destinations[0].figures = Figures::default();
        snap.flows.clear();
        rows.brokers = vec![Arc::new(snap)];
        let topo = super::super::build(rows, window);
        let p = partitions(&topo, "destination:kafka:orders").expect("node");
        assert!(p.partitions.is_empty());
    }
}
