//! Pure exports of a topology: Graphviz DOT and JSON, deterministic (sorted, escaped).

pub mod dot;

use crate::topology::Topology;

/// The topology as pretty JSON (the same document `/api/topology` serves).
pub fn to_json(topo: &Topology) -> String {
    serde_json::to_string_pretty(topo).unwrap_or_else(|_| "{}".to_string())
}
