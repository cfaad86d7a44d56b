//! What one poll read from a Kafka cluster, made into a [`BrokerSnapshot`]: topics become
//! `topic` destinations, each consumer group a service consuming the topics it is assigned or
//! has committed offsets for (the group's id is the flow's key), with the lag of each
//! partition (end offset less committed offset) and their sum as `pending`. Rates come from
//! the previous poll ([`Memory`]), and so does the name of a group that has no members now.

use crate::model::broker::{
    BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot, Entity, Figures, FlowKind,
    NamedBy, PartitionLag,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One topic's partitions: index -> (first offset kept, end offset), where known.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TopicState {
    pub name: String,
    pub internal: bool,
    pub partitions: BTreeMap<i32, (Option<i64>, Option<i64>)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberState {
    pub client_id: String,
    /// Partitions assigned, by topic.
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupState {
    pub id: String,
    pub state: String,
    pub members: Vec<MemberState>,
    /// Committed offsets by (topic, partition).
    pub committed: BTreeMap<(String, i32), i64>,
}

/// Everything one poll read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Polled {
    pub taken_unix_nanos: u64,
    pub topics: Vec<TopicState>,
    pub groups: Vec<GroupState>,
}

/// What the previous poll left for this one: offsets summed per topic and per (group, topic)
/// for rates, and each group's service name. Only what the last poll saw is kept.
#[derive(Default)]
pub struct Memory {
    taken_unix_nanos: u64,
    written: HashMap<String, u64>,
    committed: HashMap<(String, String), u64>,
    names: HashMap<String, (String, NamedBy)>,
}

/// Client ids that name a library, not a service (kafkajs', librdkafka's and the Java
/// client's defaults).
fn is_default_client_id(id: &str) -> bool {
    id.is_empty() || id == "kafkajs" || id == "rdkafka" || id.starts_with("consumer-")
}

/// The service a group is: its members' common client id, or the group's id.
fn group_name(g: &GroupState) -> Option<(String, NamedBy)> {
    let ids: BTreeSet<&str> = g.members.iter().map(|m| m.client_id.as_str()).collect();
    let mut ids = ids.into_iter();
    match (ids.next(), ids.next()) {
        (Some(id), None) if !is_default_client_id(id) => Some((id.to_string(), NamedBy::ClientId)),
        (None, _) => None,
        _ => Some((g.id.clone(), NamedBy::ConsumerGroup)),
    }
}

fn nonneg(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

fn rate(now: u64, then: Option<u64>, seconds: Option<f64>) -> Option<f64> {
    let (then, seconds) = (then?, seconds?);
    Some(now.saturating_sub(then) as f64 / seconds)
}

/// The snapshot of a poll, and the memory for the next.
pub fn snapshot(broker: &str, polled: &Polled, memory: &mut Memory) -> BrokerSnapshot {
    let seconds = (memory.taken_unix_nanos > 0
        && polled.taken_unix_nanos > memory.taken_unix_nanos)
        .then(|| (polled.taken_unix_nanos - memory.taken_unix_nanos) as f64 / 1e9);
    let topics: BTreeMap<&str, &TopicState> =
        polled.topics.iter().map(|t| (t.name.as_str(), t)).collect();

    let mut next = Memory {
        taken_unix_nanos: polled.taken_unix_nanos,
        ..Memory::default()
    };
    let mut services: BTreeMap<String, BrokerService> = BTreeMap::new();
    let mut flows = Vec::new();
    // Per topic and partition: members assigned and lag, over all groups.
    let mut assigned_total: HashMap<(&str, i32), u64> = HashMap::new();
    let mut lag_total: HashMap<(&str, i32), u64> = HashMap::new();
    // Per topic: the slowest group's commit rate.
    let mut slowest: HashMap<&str, f64> = HashMap::new();

    for g in &polled.groups {
        let named = group_name(g)
            .or_else(|| memory.names.get(&g.id).cloned())
            .unwrap_or_else(|| (g.id.clone(), NamedBy::ConsumerGroup));
        next.names.insert(g.id.clone(), named.clone());
        let (service, named_by) = named;
        let mut assigned: BTreeMap<(&str, i32), u64> = BTreeMap::new();
        for m in &g.members {
            for (topic, partitions) in &m.assignment {
                for p in partitions {
                    *assigned.entry((topic.as_str(), *p)).or_default() += 1;
                }
            }
        }
        let consumed: BTreeSet<&str> = g
            .committed
            .keys()
            .map(|(t, _)| t.as_str())
            .chain(assigned.keys().map(|(t, _)| *t))
            .filter(|t| topics.contains_key(t))
            .collect();
        if consumed.is_empty() {
            continue;
        }
        services.entry(service.clone()).or_insert(BrokerService {
            name: service.clone(),
            named_by,
        });
        for topic in consumed {
            let Some(t) = topics.get(topic) else { continue };
            let mut lags = Vec::new();
            let (mut pending, mut committed_sum, mut members) = (None::<u64>, 0u64, 0u64);
            for (&p, &(_, end_offset)) in &t.partitions {
                let committed = g
                    .committed
                    .get(&(topic.to_string(), p))
                    .and_then(|&o| nonneg(o));
                let consumers = assigned.get(&(topic, p)).copied();
                if committed.is_none() && consumers.is_none() {
                    continue;
                }
                let end_offset = end_offset.and_then(nonneg);
                let lag = match (end_offset, committed) {
                    (Some(e), Some(c)) => Some(e.saturating_sub(c)),
                    _ => None,
                };
                if let Some(l) = lag {
                    pending = Some(pending.unwrap_or(0) + l);
                    *lag_total.entry((topic, p)).or_default() += l;
                }
                committed_sum += committed.unwrap_or(0);
                members += consumers.unwrap_or(0);
                *assigned_total.entry((topic, p)).or_default() += consumers.unwrap_or(0);
                lags.push(PartitionLag {
                    partition: p,
                    end_offset: end_offset.unwrap_or(0),
                    messages: None,
                    committed,
                    consumers,
                    lag,
                });
            }
            let key = (g.id.clone(), topic.to_string());
            let deliver_rate = rate(committed_sum, memory.committed.get(&key).copied(), seconds);
            next.committed.insert(key, committed_sum);
            if let Some(r) = deliver_rate {
                let s = slowest.entry(topic).or_insert(r);
                *s = s.min(r);
            }
            flows.push(BrokerFlow {
                kind: FlowKind::Consume,
                from: topic.to_string(),
                to: service.clone(),
                key: Some(g.id.clone()),
                inferred: false,
                figures: Figures {
                    consumers: Some(members),
                    pending,
                    deliver_rate,
                    lag: lags,
                    ..Figures::default()
                },
            });
        }
    }

    let destinations = polled
        .topics
        .iter()
        .map(|t| {
            let mut lags = Vec::new();
            let (mut written, mut held, mut pending) = (0u64, None::<u64>, None::<u64>);
            for (&p, &(start, end_offset)) in &t.partitions {
                let Some(e) = end_offset.and_then(nonneg) else {
                    continue;
                };
                written += e;
                let messages = start.and_then(nonneg).map(|s| e.saturating_sub(s));
                if let Some(m) = messages {
                    held = Some(held.unwrap_or(0) + m);
                }
                let lag = lag_total.get(&(t.name.as_str(), p)).copied();
                if let Some(l) = lag {
                    pending = Some(pending.unwrap_or(0) + l);
                }
                lags.push(PartitionLag {
                    partition: p,
                    end_offset: e,
                    messages,
                    committed: None,
                    consumers: Some(
                        assigned_total
                            .get(&(t.name.as_str(), p))
                            .copied()
                            .unwrap_or(0),
                    ),
                    lag,
                });
            }
            let publish_rate = rate(written, memory.written.get(&t.name).copied(), seconds);
            next.written.insert(t.name.clone(), written);
            let consumers = lags.iter().filter_map(|l| l.consumers).sum();
            BrokerDestination {
                name: t.name.clone(),
                namespace: None,
                entity: Entity::Topic,
                detail: Some(format!(
                    "{} partition{}{}",
                    t.partitions.len(),
                    if t.partitions.len() == 1 { "" } else { "s" },
                    if t.internal { ", internal" } else { "" }
                )),
                subjects: Vec::new(),
                figures: Figures {
                    messages: held,
                    consumers: Some(consumers),
                    publish_rate,
                    deliver_rate: slowest.get(t.name.as_str()).copied(),
                    pending,
                    lag: lags,
                    ..Figures::default()
                },
            }
        })
        .collect();
    *memory = next;
    BrokerSnapshot {
        broker: broker.to_string(),
        system: "kafka".to_string(),
        taken_unix_nanos: polled.taken_unix_nanos,
        destinations,
        services: services.into_values().collect(),
        flows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, ends: &[i64]) -> TopicState {
        TopicState {
            name: name.into(),
            internal: false,
            partitions: ends
                .iter()
                .enumerate()
                .map(|(i, e)| (i as i32, (Some(0), Some(*e))))
                .collect(),
        }
    }

    fn member(client: &str, topic: &str, partitions: &[i32]) -> MemberState {
        MemberState {
            client_id: client.into(),
            assignment: vec![(topic.into(), partitions.to_vec())],
        }
    }

    fn group(id: &str, members: Vec<MemberState>, committed: &[(&str, i32, i64)]) -> GroupState {
        GroupState {
            id: id.into(),
            state: if members.is_empty() {
                "Empty"
            } else {
                "Stable"
            }
            .into(),
            members,
            committed: committed
                .iter()
                .map(|(t, p, o)| ((t.to_string(), *p), *o))
                .collect(),
        }
    }

    /// `orders` (3 partitions, 4/3/3 written) read by group `billing` (two members, all
    /// committed) and group `audit` (no members, committed 1/1/0); `unread` nobody reads.
    fn polled(at: u64, extra: i64) -> Polled {
        Polled {
            taken_unix_nanos: at,
            topics: vec![topic("orders", &[4 + extra, 3, 3]), topic("unread", &[2])],
            groups: vec![
                group(
                    "billing",
                    vec![
                        member("billing-svc", "orders", &[0, 1]),
                        member("billing-svc", "orders", &[2]),
                    ],
                    &[("orders", 0, 4), ("orders", 1, 3), ("orders", 2, 3)],
                ),
                group(
                    "audit",
                    vec![],
                    &[("orders", 0, 1), ("orders", 1, 1), ("orders", 2, 0)],
                ),
            ],
        }
    }

    #[test]
    fn lag_per_group_and_partition_and_pending_as_their_sum() {
        let mut memory = Memory::default();
        let snap = snapshot("kafka h:9092", &polled(1_000_000_000, 0), &mut memory);
        assert_eq!(snap.system, "kafka");
        let orders = &snap.destinations[0];
        assert_eq!(orders.entity, Entity::Topic);
        assert_eq!(orders.detail.as_deref(), Some("3 partitions"));
        assert_eq!(orders.figures.messages, Some(10));
        assert_eq!(orders.figures.consumers, Some(3));
        assert_eq!(orders.figures.pending, Some(8));
        let lags: Vec<Option<u64>> = orders.figures.lag.iter().map(|l| l.lag).collect();
        assert_eq!(lags, vec![Some(3), Some(2), Some(3)]);
        assert_eq!(orders.figures.publish_rate, None, "no earlier poll");
        let flow = |to: &str| snap.flows.iter().find(|f| f.to == to).expect(to);
        let billing = flow("billing-svc");
        assert_eq!(billing.key.as_deref(), Some("billing"));
        assert_eq!(
            (billing.figures.pending, billing.figures.consumers),
            (Some(0), Some(3))
        );
        let audit = flow("audit");
        assert_eq!(
            (audit.figures.pending, audit.figures.consumers),
            (Some(8), Some(0))
        );
        assert_eq!(audit.figures.lag[2].committed, Some(0));
        let named: Vec<(&str, NamedBy)> = snap
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.named_by))
            .collect();
        assert_eq!(
            named,
            vec![
                ("audit", NamedBy::ConsumerGroup),
                ("billing-svc", NamedBy::ClientId)
            ]
        );
        assert!(!snap.flows.iter().any(|f| f.from == "unread"));

        // Ten more messages a second later; billing's members left: its name stays.
        let mut next = polled(2_000_000_000, 10);
        next.groups[0].members.clear();
        let snap = snapshot("kafka h:9092", &next, &mut memory);
        assert_eq!(snap.destinations[0].figures.publish_rate, Some(10.0));
        assert_eq!(snap.destinations[0].figures.consumers, Some(0));
        let billing = snap
            .flows
            .iter()
            .find(|f| f.key.as_deref() == Some("billing"));
        assert_eq!(billing.map(|f| f.to.as_str()), Some("billing-svc"));
        assert_eq!(billing.and_then(|f| f.figures.pending), Some(10));
    }

    #[test]
    fn default_client_ids_do_not_name_a_group() {
        let g = group("g1", vec![member("rdkafka", "t", &[0])], &[]);
        assert_eq!(
            group_name(&g),
            Some(("g1".to_string(), NamedBy::ConsumerGroup))
        );
        let g = group(
            "g2",
            vec![member("a", "t", &[0]), member("b", "t", &[1])],
            &[],
        );
        assert_eq!(group_name(&g).map(|n| n.0), Some("g2".to_string()));
        assert_eq!(group_name(&group("g3", vec![], &[])), None);
    }
}
