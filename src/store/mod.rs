//! The only module that speaks SQL. One writer thread owns the write connection (group
//! commit, reply after COMMIT); reads use a small pool of read-only WAL connections.

mod accumulate;
mod block;
mod checkpoint;
pub use checkpoint::{start as start_checkpointer, Checkpointer};
mod insert;
mod pairing;
mod postings;
pub mod reader;
mod recent;
mod retention;
mod schema;
pub use schema::stable_plans;
pub mod search;
pub mod series;
mod trace_index;
mod writer;

pub use insert::{prepare, Prepared};
pub use reader::{EdgeRow, NodeRow, TopologyRows, TraceSummary};
pub use retention::RetentionConfig;
pub use search::{TraceQuery, TraceSearch};
pub use writer::WriteOutcome;

use crate::error::ErrorCode;
use crate::mailbox::{bounded, SendTimeoutError, Sender, TrySendError};
use crate::priority::Priority;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade switchyard")]
    NewerSchema { found: i64, supported: i64 },
    #[error("the write queue is full")]
    Busy,
    #[error("the store is shutting down")]
    Closed,
    #[error("write failed: {0}")]
    Write(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            // A rolled-back write is transient: the client should retry it.
            StoreError::Busy | StoreError::Closed | StoreError::Write(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub retention: RetentionConfig,
    /// Write requests queued for the writer at most; past that, writes answer `Busy`.
    pub queue_depth: usize,
    /// `NORMAL` (durable across process crashes, the default) or `FULL` (also power loss).
    pub synchronous: String,
}

/// A handle on the store: cheap to clone, shared by every transport and page.
#[derive(Clone)]
pub struct Store {
    tx: Sender<writer::Command>,
    urgent: writer::Urgent,
    unwritten: trace_index::Unwritten,
    readers: Arc<ReadPool>,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Store {
    pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        if let Some(dir) = cfg.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut conn = Connection::open(&cfg.path)?;
        schema::configure(&conn, &cfg.synchronous)?;
        schema::migrate(&mut conn)?;
        let reindexed = trace_index::recover(&mut conn)?;
        if reindexed > 0 {
            tracing::info!(
                keys = reindexed,
                "trace index caught up after an unclean stop"
            );
        }
        let unwritten = trace_index::Unwritten::default();
        let (tx, rx) = bounded(cfg.queue_depth.max(1));
        let urgent = writer::Urgent::default();
        let w = writer::Writer::new(
            conn,
            rx,
            cfg.retention.clone(),
            unwritten.clone(),
            urgent.clone(),
        )?;
        let checkpointer = checkpoint::start("store-checkpoint", &cfg.path, &cfg.synchronous)?;
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                w.run();
                checkpointer.stop();
            })?;
        Ok(Store {
            tx,
            urgent,
            unwritten,
            readers: Arc::new(ReadPool {
                path: cfg.path.clone(),
                idle: Mutex::new(Vec::new()),
            }),
            writer: Arc::new(Mutex::new(Some(handle))),
        })
    }

    /// Queues spans for the writer; the returned receiver answers after COMMIT.
    pub fn write(
        &self,
        spans: Vec<Prepared>,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<WriteOutcome, StoreError>>, StoreError> {
        self.write_waiting(spans, Duration::ZERO, Priority::Normal)
    }

    /// As [`Store::write`], but waits up to `wait` for room in the writer's queue before it
    /// answers `Busy` (a zero wait never blocks). A wait blocks the calling thread: only for a
    /// caller on a thread of its own (the broker's span exporter), never on the runtime. A
    /// write of `Background` priority is committed in the background when nothing else is
    /// queued with it (see `crate::priority`).
    pub fn write_waiting(
        &self,
        spans: Vec<Prepared>,
        wait: Duration,
        priority: Priority,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<WriteOutcome, StoreError>>, StoreError> {
        self.queue(spans, Some(wait), priority)
    }

    /// Writes and waits for the commit (blocking; for the CLI and tests, not the runtime).
    pub fn write_blocking(&self, spans: Vec<Prepared>) -> Result<WriteOutcome, StoreError> {
        let rx = self.queue(spans, None, Priority::Normal)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Queues a write, waiting for room at most `wait` (`None`: as long as it takes). A client
    /// (normal) write counts as urgent while queued, and raises a writer that is committing
    /// background work (`writer::Urgent`).
    fn queue(
        &self,
        spans: Vec<Prepared>,
        wait: Option<Duration>,
        priority: Priority,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<WriteOutcome, StoreError>>, StoreError> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let background = priority == Priority::Background;
        let write = writer::Command::Write {
            spans,
            reply,
            background,
        };
        if !background {
            self.urgent.queue();
        }
        let sent = match wait {
            // A zero wait refuses at once (send_timeout would spin and yield before it gives
            // up).
            Some(w) if w.is_zero() => self.tx.try_send(write).map_err(|e| match e {
                TrySendError::Full(_) => StoreError::Busy,
                TrySendError::Disconnected(_) => StoreError::Closed,
            }),
            Some(w) => self.tx.send_timeout(write, w).map_err(|e| match e {
                SendTimeoutError::Timeout(_) => StoreError::Busy,
                SendTimeoutError::Disconnected(_) => StoreError::Closed,
            }),
            None => self.tx.send(write).map_err(|_| StoreError::Closed),
        };
        if !background {
            match sent {
                Ok(()) => self.urgent.raise(),
                Err(_) => self.urgent.unqueue(),
            }
        }
        sent.map(|()| rx)
    }

    /// Commits everything queued, stops the writer and waits for it (blocking).
    pub fn shutdown(&self) {
        let _ = self.tx.send(writer::Command::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    /// Every span of one trace, oldest first (blocking).
    pub fn trace(&self, id: crate::model::TraceId) -> Result<Vec<reader::StoredSpan>, StoreError> {
        self.read(|c| reader::trace(c, &self.unwritten, id))
    }

    /// Spans of other traces that link into this one (blocking; bounded, see the reader).
    pub fn linking_spans(
        &self,
        id: crate::model::TraceId,
        start_unix_nanos: u64,
        limit: usize,
    ) -> Result<Vec<reader::LinkingSpan>, StoreError> {
        self.read(|c| reader::linking_spans(c, id, start_unix_nanos, limit))
    }

    /// The most recent traces matching the query (blocking).
    pub fn search_traces(&self, q: &TraceQuery) -> Result<TraceSearch, StoreError> {
        self.read(|c| search::search_traces(c, &self.unwritten, q))
    }

    /// Runs `f` with a read-only connection (blocking: call from a blocking thread).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take()?;
        let out = f(&conn);
        self.readers.give_back(conn);
        out
    }

    /// Runs `f` on tokio's blocking pool with this store.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Write(format!("read task failed: {e}")))?
    }

    /// Runs a read on tokio's blocking pool, so the async runtime never waits on SQLite.
    pub async fn read_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|e| StoreError::Write(format!("read task failed: {e}")))?
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
pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
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
    Ok(Store {
        tx,
        urgent: Default::default(),
        unwritten: Default::default(),
        readers: Arc::new(ReadPool {
            path: path.to_path_buf(),
            idle: Mutex::new(vec![conn]),
        }),
        writer: Arc::new(Mutex::new(None)),
    })
}

#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
