//! Which connection a JetStream consumer delivers to, as the monitoring endpoint reveals it.
//!
//! The client protocol does not say who reads a consumer; the monitoring endpoint does, for a
//! push consumer: the connection subscribed to its deliver subject. When both
//! `--discover nats=...` and `--discover nats-monitor=...` name the same server, the monitor's
//! poll records, per server id, each push consumer's connection here, and the JetStream poll
//! names the consumer's service from it. Without a monitor (or for a pull consumer, whose
//! requests no endpoint ties to a connection) the consumer's durable name names the service.

use crate::model::broker::NamedBy;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// A service's name and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub named_by: NamedBy,
}

/// (stream, consumer) -> the service reading it.
pub type Revealed = HashMap<(String, String), Service>;

/// Per server id, what its monitor revealed at its last poll. A std Mutex: each section only
/// swaps or clones one small map, never across an await, and the sources poll every few
/// seconds.
fn registry() -> &'static Mutex<HashMap<String, Revealed>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Revealed>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Replaces what a monitor revealed of server `server_id` (one entry per monitored server).
pub fn record(server_id: &str, revealed: Revealed) {
    if server_id.is_empty() {
        return;
    }
    let mut map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.insert(server_id.to_string(), revealed);
}

/// What a monitor last revealed of server `server_id` (empty when none watches it).
pub fn revealed(server_id: &str) -> Revealed {
    let map = registry().lock().unwrap_or_else(|p| p.into_inner());
    map.get(server_id).cloned().unwrap_or_default()
}
