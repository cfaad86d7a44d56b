//! Topology node and edge identities, shared by the store, the graph and the exports.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    Service,
    Destination,
    External,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Service => "service",
            NodeKind::Destination => "destination",
            NodeKind::External => "external",
        }
    }

    pub fn parse(text: &str) -> Option<NodeKind> {
        match text {
            "service" => Some(NodeKind::Service),
            "destination" => Some(NodeKind::Destination),
            "external" => Some(NodeKind::External),
            _ => None,
        }
    }
}

/// The longest failure reason kept (an `error.type` is free text).
pub const MAX_REASON: usize = 64;

/// A node of the topology. Its `id` is stable and readable:
/// `service:[namespace/]name`, `destination:system:name`, `external:name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct NodeKey {
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    /// The broker system of a destination (`rabbitmq`, `kafka`, ...), or the kind of an
    /// external peer (`postgresql` for a database); `None` for services.
    pub system: Option<String>,
    pub namespace: Option<String>,
}

impl NodeKey {
    pub fn service(name: &str, namespace: Option<&str>) -> NodeKey {
        let id = match namespace {
            Some(ns) if !ns.is_empty() => format!("service:{ns}/{name}"),
            _ => format!("service:{name}"),
        };
        NodeKey {
            id,
            kind: NodeKind::Service,
            name: name.to_string(),
            system: None,
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_string),
        }
    }

    pub fn destination(system: &str, name: &str) -> NodeKey {
        NodeKey {
            id: format!("destination:{system}:{name}"),
            kind: NodeKind::Destination,
            name: name.to_string(),
            system: Some(system.to_string()),
            namespace: None,
        }
    }

    /// The key of a failure reason, carried in the `via` of a [`EdgeKind::Failure`] row: never a
    /// node of the graph. At most [`MAX_REASON`] bytes of the reason are kept.
    pub fn reason(reason: &str) -> NodeKey {
        let mut end = reason.len().min(MAX_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let reason = reason[..end].to_string();
        NodeKey {
            id: reason.clone(),
            kind: NodeKind::External,
            name: reason,
            system: None,
            namespace: None,
        }
    }

    pub fn external(name: &str, system: Option<&str>) -> NodeKey {
        NodeKey {
            id: format!("external:{name}"),
            kind: NodeKind::External,
            name: name.to_string(),
            system: system.map(str::to_string),
            namespace: None,
        }
    }
}

/// Edge kinds. `publish`: service -> destination; `consume`: destination -> service;
/// `call`: service -> service or external; `route`: destination -> destination, learnt from a
/// message published to one destination (an exchange) and consumed from another (a queue),
/// or from a broker's binding; `dead_letter`: destination -> destination, where a broker
/// sends what a queue rejects or lets expire (from broker state only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Publish,
    Consume,
    Call,
    Route,
    /// Derived service -> service dependency through a destination (`via`), from paired
    /// produce/consume spans.
    Dependency,
    #[serde(rename = "dead_letter")]
    DeadLetter,
    /// A statistics row, never an edge of the graph: failures on a consume (destination ->
    /// service) by reason (in `via`: `nack`, `lease_expired`, `dead_letter`, `redelivered`, an
    /// `error.type`), which `topology::build` folds into the consume edge.
    Failure,
    /// A statistics row, never an edge of the graph: stream events read again (a replay), with
    /// their publish-to-consume delay kept apart from the consume edge's.
    Replay,
}

impl EdgeKind {
    pub fn as_i64(self) -> i64 {
        match self {
            EdgeKind::Publish => 0,
            EdgeKind::Consume => 1,
            EdgeKind::Call => 2,
            EdgeKind::Route => 3,
            EdgeKind::Dependency => 4,
            EdgeKind::DeadLetter => 5,
            EdgeKind::Failure => 6,
            EdgeKind::Replay => 7,
        }
    }

    pub fn from_i64(value: i64) -> Option<EdgeKind> {
        match value {
            0 => Some(EdgeKind::Publish),
            1 => Some(EdgeKind::Consume),
            2 => Some(EdgeKind::Call),
            3 => Some(EdgeKind::Route),
            4 => Some(EdgeKind::Dependency),
            5 => Some(EdgeKind::DeadLetter),
            6 => Some(EdgeKind::Failure),
            7 => Some(EdgeKind::Replay),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Publish => "publish",
            EdgeKind::Consume => "consume",
            EdgeKind::Call => "call",
            EdgeKind::Route => "route",
            EdgeKind::Dependency => "dependency",
            EdgeKind::DeadLetter => "dead_letter",
            EdgeKind::Failure => "failure",
            EdgeKind::Replay => "replay",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_readable_and_distinct() {
        assert_eq!(NodeKey::service("orders", None).id, "service:orders");
        assert_eq!(
            NodeKey::service("orders", Some("shop")).id,
            "service:shop/orders"
        );
        assert_eq!(
            NodeKey::destination("rabbitmq", "tasks").id,
            "destination:rabbitmq:tasks"
        );
        assert_eq!(
            NodeKey::external("postgresql", Some("postgresql")).id,
            "external:postgresql"
        );
        for kind in [
            EdgeKind::Publish,
            EdgeKind::Consume,
            EdgeKind::Call,
            EdgeKind::Route,
            EdgeKind::Dependency,
            EdgeKind::DeadLetter,
            EdgeKind::Failure,
            EdgeKind::Replay,
        ] {
            assert_eq!(EdgeKind::from_i64(kind.as_i64()), Some(kind));
        }
    }
}
