//! The embedded default store: one SQLite file (WAL). One writer thread owns the write
//! connection (group commit, reply after COMMIT); reads use a small pool of read-only
//! connections. docs/ARCHITECTURE.md has the tables, the blocks and their indexes.

mod accumulate;
mod backlog;
mod block;
pub(in crate::store) mod brokers;
mod checkpoint;
mod memory;
pub use checkpoint::{start as start_checkpointer, Checkpointer};
pub(in crate::store) mod postings;
pub(in crate::store) mod reader;
pub mod retention;
mod schema;
pub use schema::stable_plans;
pub(in crate::store) mod search;
pub(in crate::store) mod series;
mod size;
mod trace_index;
mod writer;

use super::interface::{Pending, Room, StoreStats, TopologyReads, TraceReads, WriteBatch, Writes};
use super::{StoreConfig, StoreError};
use crate::mailbox::{bounded, SendTimeoutError, Sender, TrySendError};
use crate::model::{
    Figures, LinkingSpan, MinuteRow, NodeKey, SpanId, StoredSpan, TimeWindow, TopologyRows,
    TraceId, TraceQuery, TraceSearch, TraceSet,
};
use crate::priority::Priority;
use rusqlite::{Connection, OpenFlags};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Backend(format!("sqlite: {e}"))
    }
}

/// The SQLite store (behind [`super::Store`]).
pub struct SqliteStore {
    tx: Sender<writer::Command>,
    urgent: writer::Urgent,
    unwritten: trace_index::Unwritten,
    readers: Arc<ReadPool>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
    decoded: brokers::Decoded,
    /// The write generation, set by the writer after each commit ([`TopologyReads::generation`]);
    /// none for a file opened read-only, which another process may be writing.
    generation: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl SqliteStore {
    pub fn open(cfg: &StoreConfig) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(&cfg.path)?;
        schema::configure(&conn, &cfg.synchronous, cfg.retention.max_bytes.is_some())?;
        schema::migrate(&mut conn)?;
        let reindexed = trace_index::recover(&mut conn)?;
        if reindexed > 0 {
            tracing::info!(
                keys = reindexed,
                "trace index caught up after an unclean stop"
            );
        }
        // The checkpointer copies WAL pages in the background; the writer raises it when it
        // needs the checkpoint lock that a starved background pass holds.
        let checkpointer_lift = crate::priority::Lift::default();
        let size = match cfg.retention.max_bytes {
            Some(bound) => {
                let guard =
                    size::SizeGuard::new(&conn, &cfg.path, bound, checkpointer_lift.clone())?;
                guard.at_open(&mut conn)?;
                Some(guard)
            }
            None => None,
        };
        let unwritten = trace_index::Unwritten::default();
        let (tx, rx) = bounded(cfg.queue_depth.max(1));
        let urgent = writer::Urgent::default();
        let generation = Arc::new(std::sync::atomic::AtomicU64::new(
            super::interface::next_generation(),
        ));
        let w = writer::Writer::new(
            conn,
            rx,
            cfg.retention.clone(),
            unwritten.clone(),
            urgent.clone(),
            size,
            generation.clone(),
        )?;
        let checkpointer = checkpoint::start(
            "store-checkpoint",
            &cfg.path,
            &cfg.synchronous,
            checkpointer_lift,
        )?;
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                w.run();
                checkpointer.stop();
            })?;
        Ok(SqliteStore {
            tx,
            urgent,
            unwritten,
            readers: Arc::new(ReadPool {
                path: cfg.path.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            writer: Arc::new(Mutex::new(Some(handle))),
            decoded: Default::default(),
            generation: Some(generation),
        })
    }

    /// Queues a write, waiting for room at most `wait` (`None`: as long as it takes). A client
    /// (normal) write counts as urgent while queued, and raises a writer that is committing
    /// background work (`writer::Urgent`).
    fn queue(
        &self,
        batch: WriteBatch,
        room: Room,
        priority: Priority,
    ) -> Result<Pending, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let background = priority == Priority::Background;
        let write = writer::Command::Write {
            batch,
            reply,
            background,
        };
        if !background {
            self.urgent.queue();
        }
        let sent = match room {
            // Refusing at once does not go through send_timeout, which would spin and yield
            // before it gives up.
            Room::Now => self.tx.try_send(write).map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Busy,
                TrySendError::Disconnected(_) => StoreError::Closed,
            }),
            Room::Within(w) if w.is_zero() => self.tx.try_send(write).map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Busy,
                TrySendError::Disconnected(_) => StoreError::Closed,
            }),
            Room::Within(w) => self.tx.send_timeout(write, w).map_err(|e| match e {
                SendTimeoutError::Timeout(_) => StoreError::Busy,
                SendTimeoutError::Disconnected(_) => StoreError::Closed,
            }),
            Room::Always => self.tx.send(write).map_err(|_| StoreError::Closed),
        };
        if !background {
            match sent {
                Ok(()) => self.urgent.raise(),
                Err(_) => self.urgent.unqueue(),
            }
        }
        sent.map(|()| rx)
    }

    /// Runs `f` with a read-only connection (blocking: call from a blocking thread).
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take()?;
        let out = f(&conn);
        self.readers.give_back(conn);
        out
    }
}

impl Writes for SqliteStore {
    fn write(
        &self,
        batch: WriteBatch,
        room: Room,
        priority: Priority,
    ) -> Result<Pending, StoreError> {
        self.queue(batch, room, priority)
    }

    fn shutdown(&self) {
        let _ = self.tx.send(writer::Command::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl TopologyReads for SqliteStore {
    fn topology(&self, window: TimeWindow) -> Result<TopologyRows, StoreError> {
        self.read(|c| {
            let mut rows = reader::topology(c, window)?;
            rows.brokers = brokers::latest(c, window, &self.decoded)?;
            rows.brokers_then = brokers::earliest(c, window, &self.decoded)?;
            Ok(rows)
        })
    }

    fn node_keys(&self, window: TimeWindow) -> Result<Vec<NodeKey>, StoreError> {
        self.read(|c| reader::node_keys(c, window))
    }

    fn generation(&self) -> Option<u64> {
        let g = self.generation.as_ref()?;
        Some(g.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn broker_history(
        &self,
        node_id: &str,
        window: TimeWindow,
    ) -> Result<BTreeMap<i64, Figures>, StoreError> {
        self.read(|c| brokers::history(c, node_id, window))
    }

    fn node_minutes(
        &self,
        node_id: &str,
        window: TimeWindow,
    ) -> Result<BTreeMap<i64, MinuteRow>, StoreError> {
        self.read(|c| series::node_minutes(c, node_id, window))
    }

    fn partition_traffic(
        &self,
        destination_id: &str,
        window: TimeWindow,
    ) -> Result<Vec<crate::model::PartitionTraffic>, StoreError> {
        self.read(|c| series::partition_traffic(c, destination_id, window))
    }
}

impl TraceReads for SqliteStore {
    fn search_traces(&self, q: &TraceQuery) -> Result<TraceSearch, StoreError> {
        self.read(|c| search::search_traces(c, &self.unwritten, q))
    }

    fn search_traces_within(
        &self,
        q: &TraceQuery,
        micros: std::ops::RangeInclusive<f64>,
        limit: usize,
    ) -> Result<TraceSearch, StoreError> {
        self.read(|c| search::search_traces_within(c, &self.unwritten, q, micros, limit))
    }

    fn trace(&self, id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
        self.read(|c| reader::trace(c, &self.unwritten, id))
    }

    fn trace_span(&self, id: TraceId, span: SpanId) -> Result<Option<StoredSpan>, StoreError> {
        self.read(|c| reader::trace_span(c, &self.unwritten, id, span))
    }

    fn recent_operations(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read(|c| search::recent_operations(c, limit))
    }

    fn search_spans(
        &self,
        q: &TraceQuery,
        deadline: std::time::Instant,
    ) -> Result<TraceSet, StoreError> {
        self.read(|c| search::search_spans(c, &self.unwritten, q, deadline))
    }

    fn spans_of(
        &self,
        ids: &[TraceId],
        deadline: std::time::Instant,
    ) -> Result<TraceSet, StoreError> {
        self.read(|c| search::spans_of(c, &self.unwritten, ids, deadline))
    }

    fn linking_spans(
        &self,
        id: TraceId,
        start_unix_nanos: u64,
        limit: usize,
    ) -> Result<Vec<LinkingSpan>, StoreError> {
        self.read(|c| reader::linking_spans(c, id, start_unix_nanos, limit))
    }
}

impl StoreStats for SqliteStore {
    fn span_count(&self) -> Result<u64, StoreError> {
        self.read(reader::span_count)
    }

    fn queue_len(&self) -> Option<usize> {
        Some(self.tx.len())
    }

    /// The database file and its WAL (two `stat` calls).
    fn size_bytes(&self) -> Option<u64> {
        let path = &self.readers.path;
        let mut wal = path.clone().into_os_string();
        wal.push("-wal");
        let len = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Some(len(path) + len(std::path::Path::new(&wal)))
    }
}

struct ReadPool {
    path: PathBuf,
    // A std Mutex: held only to push or pop a connection, never across an await.
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(conn) = self.idle.lock().ok().and_then(|mut v| v.pop()) {
            return Ok(conn);
        }
        open_reader(&self.path)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 4 {
                idle.push(conn);
            }
        }
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "cache_size", -8_192)?;
    schema::stable_plans(&conn)?;
    Ok(conn)
}

/// Opens a database for reading only, checking its schema (used by `switchyard export`).
pub fn open_read_only(path: &Path) -> Result<super::Store, StoreError> {
    if !path.exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no database at {}", path.display()),
        )));
    }
    let conn = open_reader(path)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > schema::CURRENT_VERSION {
        return Err(StoreError::NewerSchema {
            found: version,
            supported: schema::CURRENT_VERSION,
        });
    }
    let (tx, _rx) = bounded(1);
    Ok(super::Store::new(SqliteStore {
        tx,
        urgent: Default::default(),
        unwritten: Default::default(),
        readers: Arc::new(ReadPool {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
        }),
        writer: Arc::new(Mutex::new(None)),
        decoded: Default::default(),
        generation: None,
    }))
}

#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
