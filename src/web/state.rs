//! What every page and API handler of the `--http` server reads: the store (through its
//! interface), the ingest counters, the embedded broker's handle and the discovery threads'
//! statuses, read directly (never through an HTTP request to this server).

use crate::broker::Broker;
use crate::ingest::IngestCounters;
use crate::store::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub counters: Arc<IngestCounters>,
    /// Services and operations seen since start.
    pub operations: Arc<crate::ingest::operations::Operations>,
    pub broker: Broker,
    /// The `--discover` brokers' statuses.
    pub discovery: crate::discover::Discovery,
    /// The `--declared` AsyncAPI documents (empty: none), compared with each topology served.
    pub declared: Arc<crate::topology::declared::Declared>,
    /// Architecture change notices and the webhook's counters.
    pub changes: crate::changes::Changes,
}
