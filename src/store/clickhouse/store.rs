//! The ClickHouse store behind [`crate::store::Store`]: a writer thread fed by a bounded queue
//! (full: `Busy`, a 503), reads on the caller's (blocking) thread through a shared client.

use super::client::{Client, ClientError, Timeouts};
use super::url::ClickHouseUrl;
use super::writer::{self, Command};
use super::{reader, schema, stats};
use crate::mailbox::{bounded, SendTimeoutError, Sender, TrySendError};
use crate::model::{
    Figures, LinkingSpan, MinuteRow, StoredSpan, TimeWindow, TopologyRows, TraceId, TraceQuery,
    TraceSearch,
};
use crate::priority::Priority;
use crate::store::interface::{
    Pending, Room, StoreStats, TopologyReads, TraceReads, WriteBatch, Writes,
};
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread::JoinHandle;

#[derive(Clone, Debug)]
pub struct ClickHouseConfig {
    pub url: ClickHouseUrl,
    /// Write requests queued for the writer at most; past that, writes answer `Busy`.
    pub queue_depth: usize,
    pub timeouts: Timeouts,
    /// Days wholly older than this are dropped (by the writer, about once a minute).
    pub retention: Option<std::time::Duration>,
    /// Past this many bytes on disk (`system.parts`), the oldest days are dropped (never the
    /// newest).
    pub retention_size: Option<u64>,
    /// How long a wait stays unsettled before the reconciliation pass settles it
    /// (`writer::DEFAULT_SETTLE` unless set).
    pub settle: std::time::Duration,
    /// `--clickhouse-cluster`: the cluster of the servers' `remote_servers` that holds the
    /// database (local tables on every server, distributed tables in front).
    pub cluster: Option<String>,
}

pub struct ClickHouseStore {
    tx: Sender<Command>,
    client: Client,
    // A std Mutex: taken once, at shutdown, to join the writer.
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl ClickHouseStore {
    /// Connects, creates the database if missing, migrates the schema (refusing a newer
    /// one) and starts the writer. With a cluster: refused when `system.clusters` lacks it;
    /// every server of it migrated.
    pub fn open(cfg: &ClickHouseConfig) -> Result<ClickHouseStore, StoreError> {
        let client = connect(&cfg.url, cfg.timeouts, cfg.cluster.as_deref())?;
        schema::migrate(&client)?;
        let upkeep = writer::Upkeep {
            retention: cfg.retention,
            retention_size: cfg.retention_size,
            settle: cfg.settle,
        };
        let store = ClickHouseStore::start(client, cfg.queue_depth, upkeep)?;
        tracing::info!(url = %cfg.url, cluster = cfg.cluster.as_deref().unwrap_or(""), "clickhouse store open");
        Ok(store)
    }

    /// Reads an existing database without changing it (`export`): refused when it is missing
    /// or of a newer schema (on any server of a cluster), or written with another layout
    /// (with or without a cluster); writes answer `Closed`.
    pub fn open_read_only(
        url: &ClickHouseUrl,
        cluster: Option<&str>,
    ) -> Result<crate::store::Store, StoreError> {
        let client = connect(url, Timeouts::default(), cluster)?;
        let found = schema::newest(&client).map_err(|e| match e {
            ClientError::Server { .. } => {
                StoreError::Backend(format!("no switchyard database at {url}"))
            }
            e => e.into(),
        })?;
        if found > schema::VERSION {
            return Err(StoreError::NewerSchema {
                found: i64::from(found),
                supported: i64::from(schema::VERSION),
            });
        }
        schema::check_layout(&client)?;
        // No writer: the receiver is dropped, so every write answers `Closed`.
        let (tx, _) = bounded(1);
        Ok(crate::store::Store::new(ClickHouseStore {
            tx,
            client,
            writer: Mutex::new(None),
        }))
    }

    /// Starts the writer on a migrated database.
    pub(super) fn start(
        client: Client,
        queue_depth: usize,
        upkeep: writer::Upkeep,
    ) -> Result<ClickHouseStore, StoreError> {
        let (tx, rx) = bounded(queue_depth.max(1));
        let w = writer::Writer::new(client.clone(), rx, upkeep)?;
        let handle = std::thread::Builder::new()
            .name("clickhouse-writer".into())
            .spawn(move || w.run())?;
        Ok(ClickHouseStore {
            tx,
            client,
            writer: Mutex::new(Some(handle)),
        })
    }
}

/// A client for the URL's server; with a cluster name, for that cluster (`cluster.rs`).
fn connect(
    url: &ClickHouseUrl,
    timeouts: Timeouts,
    cluster: Option<&str>,
) -> Result<Client, StoreError> {
    match cluster {
        Some(name) => super::cluster::connect(url, timeouts, name),
        None => Ok(Client::new(url, timeouts)),
    }
}

impl Writes for ClickHouseStore {
    fn write(
        &self,
        batch: WriteBatch,
        room: Room,
        _priority: Priority,
    ) -> Result<Pending, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let cmd = Command::Write { batch, reply };
        let full = |e: TrySendError<Command>| match e {
            TrySendError::Full(_) => StoreError::Busy,
            TrySendError::Disconnected(_) => StoreError::Closed,
        };
        match room {
            Room::Now => self.tx.try_send(cmd).map_err(full),
            Room::Within(w) if w.is_zero() => self.tx.try_send(cmd).map_err(full),
            Room::Within(w) => self.tx.send_timeout(cmd, w).map_err(|e| match e {
                SendTimeoutError::Timeout(_) => StoreError::Busy,
                SendTimeoutError::Disconnected(_) => StoreError::Closed,
            }),
            Room::Always => self.tx.send(cmd).map_err(|_| StoreError::Closed),
        }?;
        Ok(rx)
    }

    fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl TopologyReads for ClickHouseStore {
    fn topology(&self, window: TimeWindow) -> Result<TopologyRows, StoreError> {
        stats::topology(&self.client, window)
    }

    fn node_minutes(
        &self,
        node_id: &str,
        window: TimeWindow,
    ) -> Result<BTreeMap<i64, MinuteRow>, StoreError> {
        stats::node_minutes(&self.client, node_id, window)
    }

    fn broker_history(
        &self,
        node_id: &str,
        window: TimeWindow,
    ) -> Result<BTreeMap<i64, Figures>, StoreError> {
        stats::broker_history(&self.client, node_id, window)
    }

    fn partition_traffic(
        &self,
        destination_id: &str,
        window: TimeWindow,
    ) -> Result<Vec<crate::model::PartitionTraffic>, StoreError> {
        stats::partition_traffic(&self.client, destination_id, window)
    }
}

impl TraceReads for ClickHouseStore {
    fn search_traces(&self, q: &TraceQuery) -> Result<TraceSearch, StoreError> {
        reader::search_traces(&self.client, q)
    }

    fn trace(&self, id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
        reader::trace(&self.client, id)
    }

    fn recent_operations(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        reader::recent_operations(&self.client, limit)
    }

    /// The search's query, then the traces many per query.
    fn search_spans(
        &self,
        q: &TraceQuery,
        deadline: std::time::Instant,
    ) -> Result<crate::model::TraceSet, StoreError> {
        reader::search_spans(&self.client, q, deadline)
    }

    /// Many traces per query (pathways' seeds and the traces their links reach), not one
    /// query per trace.
    fn spans_of(
        &self,
        ids: &[TraceId],
        deadline: std::time::Instant,
    ) -> Result<crate::model::TraceSet, StoreError> {
        reader::traces(&self.client, ids, deadline)
    }

    fn linking_spans(
        &self,
        id: TraceId,
        start_unix_nanos: u64,
        limit: usize,
    ) -> Result<Vec<LinkingSpan>, StoreError> {
        reader::linking_spans(&self.client, id, start_unix_nanos, limit)
    }
}

impl StoreStats for ClickHouseStore {
    fn span_count(&self) -> Result<u64, StoreError> {
        reader::span_count(&self.client)
    }

    fn queue_len(&self) -> Option<usize> {
        Some(self.tx.len())
    }

    /// The database's active parts on disk (`system.parts`, summed over a cluster's servers);
    /// none when ClickHouse (any server of it) does not answer.
    fn size_bytes(&self) -> Option<u64> {
        reader::size_bytes(&self.client).ok()
    }
}
