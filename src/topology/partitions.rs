//! A partitioned destination (a Kafka topic) partition by partition, from its broker's
//! figures in the window: what each partition holds and how far its end offset moved between
//! the oldest and the newest poll, the group members it is assigned to, and each consumer
//! group's committed offset and lag on it (from the group's consume edge); and from the
//! spans that name partitions: the messages each service published to and consumed from
//! each partition in the window (with or without a broker). What `GET /api/partitions`
//! answers and the destination page's table shows.

use super::{Edge, Topology};
use crate::model::broker::PartitionLag;
use crate::model::{EdgeKind, PartitionTraffic};
use serde::Serialize;
use std::collections::BTreeMap;

/// One partition of a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Partition {
    pub partition: i32,
    /// The offset the next message written gets, at the newest poll (absent: no broker
    /// reports the partition, only spans name it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<u64>,
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
    /// Messages traced in the window as published to the partition, over all services
    /// (absent: no span named the partition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
    /// Messages traced in the window as consumed from the partition, over all services.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumed: Option<u64>,
    /// Each service whose spans named the partition, by node id.
    pub services: Vec<ServiceOnPartition>,
}

/// One service's traced messages on one partition.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServiceOnPartition {
    /// The service's node id and name.
    pub node: String,
    pub name: String,
    pub published: u64,
    pub consumed: u64,
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

/// The partitions of destination `id` (`None`: no such node in the window), from its
/// broker's figures and `traffic` (the store's `partition_traffic` of the node). A
/// destination no broker reports partitions of and no span names partitions of has an empty
/// list.
pub fn partitions(topo: &Topology, id: &str, traffic: &[PartitionTraffic]) -> Option<Partitions> {
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
                end_offset: Some(p.end_offset),
                messages: p.messages,
                written: then
                    .get(&p.partition)
                    .map(|&t| p.end_offset.saturating_sub(t)),
                consumers: p.consumers,
                lag: p.lag,
                ..Partition::default()
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
                end_offset: Some(p.end_offset),
                ..Partition::default()
            });
            row.groups.push(group(topo, e, p));
        }
    }
    for t in traffic {
        let row = out.entry(t.partition).or_insert_with(|| Partition {
            partition: t.partition,
            ..Partition::default()
        });
        row.published = Some(row.published.unwrap_or(0) + t.published);
        row.consumed = Some(row.consumed.unwrap_or(0) + t.consumed);
        row.services.push(ServiceOnPartition {
            node: t.service.clone(),
            name: topo
                .node(&t.service)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| t.service.trim_start_matches("service:").to_string()),
            published: t.published,
            consumed: t.consumed,
        });
    }
    let mut partitions: Vec<Partition> = out.into_values().collect();
    for p in &mut partitions {
        p.groups
            .sort_by(|a, b| (&a.group, &a.node).cmp(&(&b.group, &b.node)));
        p.services.sort_by(|a, b| a.node.cmp(&b.node));
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
        let p = partitions(&topo, "destination:kafka:orders", &[]).expect("node");
        assert_eq!(p.partitions.len(), 2);
        let first = &p.partitions[0];
        assert_eq!((first.end_offset, first.written), (Some(9), Some(4)));
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
        assert!(partitions(&topo, "destination:kafka:nothing", &[]).is_none());
        // A destination with no partitions: an empty list.
        let mut rows = TopologyRows::default();
        let mut snap = (*snapshot(1, [1, 1], [1, 1])).clone();
        snap.destinations[0].figures = Figures::default();
        snap.flows.clear();
        rows.brokers = vec![Arc::new(snap)];
        let topo = super::super::build(rows, window);
        let p = partitions(&topo, "destination:kafka:orders", &[]).expect("node");
        assert!(p.partitions.is_empty());
    }

    #[test]
    fn traced_partitions_show_with_the_broker_and_without_it() {
        let window = TimeWindow::new(0, 600_000_000_000).expect("window");
        let traffic =
            |partition: i32, service: &str, published: u64, consumed: u64| PartitionTraffic {
                partition,
                service: service.into(),
                published,
                consumed,
            };
        let traced = vec![
            traffic(0, "service:billing-svc", 0, 4),
            traffic(0, "service:checkout", 5, 0),
            traffic(7, "service:billing-svc", 0, 1),
        ];
        // With the broker: partition 0 gets the traced figures beside its lag; partition 7,
        // which the broker does not report, is listed from the spans alone.
        let rows = TopologyRows {
            brokers: vec![snapshot(200_000_000_000, [9, 4], [9, 1])],
            ..TopologyRows::default()
        };
        let topo = super::super::build(rows, window);
        let p = partitions(&topo, "destination:kafka:orders", &traced).expect("node");
        let ids: Vec<i32> = p.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(ids, vec![0, 1, 7]);
        let first = &p.partitions[0];
        assert_eq!((first.published, first.consumed), (Some(5), Some(4)));
        assert_eq!(
            (first.end_offset, first.groups.len()),
            (Some(9), 2),
            "the broker's figures and groups stay"
        );
        let services: Vec<(&str, &str, u64, u64)> = first
            .services
            .iter()
            .map(|s| (s.node.as_str(), s.name.as_str(), s.published, s.consumed))
            .collect();
        assert_eq!(
            services,
            vec![
                ("service:billing-svc", "billing-svc", 0, 4),
                ("service:checkout", "checkout", 5, 0)
            ]
        );
        assert_eq!(
            (p.partitions[1].published, p.partitions[1].consumed),
            (None, None)
        );
        let seventh = &p.partitions[2];
        assert_eq!((seventh.end_offset, seventh.consumed), (None, Some(1)));
        let json = serde_json::to_value(seventh).expect("json");
        assert!(json.get("end_offset").is_none(), "{json}");

        // Without discovery: a traced topic's partitions from its spans alone.
        let node = |id: &str, kind: crate::model::NodeKind, name: &str| crate::model::NodeRow {
            key: crate::model::NodeKey {
                id: id.into(),
                kind,
                name: name.into(),
                system: Some("kafka".into()),
                namespace: None,
            },
            spans: 0,
            errors: 0,
        };
        let rows = TopologyRows {
            nodes: vec![node(
                "destination:kafka:orders",
                crate::model::NodeKind::Destination,
                "orders",
            )],
            ..TopologyRows::default()
        };
        let topo = super::super::build(rows, window);
        let p = partitions(&topo, "destination:kafka:orders", &traced).expect("node");
        let figures: Vec<(i32, Option<u64>, Option<u64>, usize)> = p
            .partitions
            .iter()
            .map(|p| (p.partition, p.published, p.consumed, p.services.len()))
            .collect();
        assert_eq!(
            figures,
            vec![(0, Some(5), Some(4), 2), (7, Some(0), Some(1), 1)]
        );
    }
}
