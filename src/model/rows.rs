//! What the store answers for the topology and the node pages: statistics rows merged over a
//! window's minutes. Plain values: the store fills them, `topology` reads them.

use super::sketch::Sketch;
use super::{EdgeKind, NodeKey};

#[derive(Clone, Debug)]
pub struct EdgeRow {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    pub via: String,
    pub count: i64,
    pub errors: i64,
    pub latency_sum_micros: i64,
    pub latency: Sketch,
    pub first_seen_unix_nanos: u64,
    pub last_seen_unix_nanos: u64,
    /// Distinct instances of the consuming service (consume edges only).
    pub instances: i64,
}

#[derive(Clone, Debug)]
pub struct NodeRow {
    pub key: NodeKey,
    /// Spans the service emitted in the window (0 for other kinds).
    pub spans: i64,
    pub errors: i64,
}

/// Everything the topology needs for one window, merged over its minutes.
#[derive(Clone, Debug, Default)]
pub struct TopologyRows {
    pub nodes: Vec<NodeRow>,
    pub edges: Vec<EdgeRow>,
    /// Each discovered broker's newest snapshot in the window.
    pub brokers: Vec<std::sync::Arc<super::BrokerSnapshot>>,
    /// Each discovered broker's oldest snapshot in the window, for trends (depth or lag
    /// growing).
    pub brokers_then: Vec<std::sync::Arc<super::BrokerSnapshot>>,
}

/// One minute of a node's activity. `count` is spans (services) or messages published
/// (destinations); `errors` are error spans (services) or failed consumes (destinations);
/// the delay is the publish-to-consume delay of what the node consumed (services) or of
/// what was consumed from it (destinations).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MinuteRow {
    pub count: i64,
    pub errors: i64,
    pub delay_sum_micros: i64,
    pub delay_count: i64,
}

/// Messages one service published to and consumed from one partition of a destination over
/// a window, from the spans that name the partition (`messaging.destination.partition.id`,
/// legacy `messaging.kafka.partition`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartitionTraffic {
    pub partition: i32,
    /// The service's node id.
    pub service: String,
    pub published: u64,
    pub consumed: u64,
}
