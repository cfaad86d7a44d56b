//! Pure exports of a topology: Graphviz DOT and JSON, deterministic (sorted, escaped), the
//! observed architecture as an AsyncAPI 3.0 document ([`asyncapi`]); and traces and dependency
//! links in the JSON of Jaeger's query API ([`jaeger`]).

pub mod asyncapi;
pub mod diff_dot;
pub mod dot;
pub mod jaeger;
#[cfg(test)]
mod pinned;

use crate::topology::Topology;

/// The topology as pretty JSON (the same document `/api/topology` serves).
pub fn to_json(topo: &Topology) -> String {
    serde_json::to_string_pretty(topo).unwrap_or_else(|_| "{}".to_string())
}
