//! The storage interface the rest of the crate talks to: writes (group-committed, answered
//! after they are durable), topology reads, trace search, one trace, statistics. Each backend
//! implements these traits (the embedded SQLite file today) and runs the same behaviour suite
//! (`store::suite`). Reads are blocking: call them from a blocking thread, or through
//! [`Store::blocking`] from async code.

use super::{Prepared, StoreError, WriteOutcome};
use crate::model::{
    BrokerSnapshot, Figures, LinkingSpan, MinuteRow, NodeKey, PartitionTraffic, SpanId, StoredSpan,
    TimeWindow, TopologyRows, TraceId, TraceQuery, TraceSearch, TraceSet,
};
use crate::priority::Priority;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Answers once the write is durable (after COMMIT), or with the error that rolled it back.
pub type Pending = tokio::sync::oneshot::Receiver<Result<WriteOutcome, StoreError>>;

/// Facts a store's writer persists. Each kind of fact is a variant that every writer handles
/// in one place (a new source, such as broker state snapshots, adds a variant, not a path).
pub enum WriteBatch {
    /// Spans of one request, converted and prepared (`store::prepare`).
    Spans(Vec<Prepared>),
    /// One poll of one broker (discovery).
    BrokerState(Box<BrokerSnapshot>),
}

impl WriteBatch {
    /// Facts in the batch (spans, snapshots), for group-commit limits.
    pub fn len(&self) -> usize {
        match self {
            WriteBatch::Spans(s) => s.len(),
            WriteBatch::BrokerState(_) => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How long a write may wait for room in the writer's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// Refuse at once with `Busy` when the queue is full (client requests: 503).
    Now,
    /// Wait up to this long, then `Busy` (blocks the calling thread: never on the runtime).
    Within(Duration),
    /// Wait as long as it takes (the CLI, tests).
    Always,
}

pub trait Writes {
    /// Queues a batch for the writer; the answer comes after COMMIT. A `Background` write is
    /// committed in the background when nothing else is queued with it (`crate::priority`).
    fn write(
        &self,
        batch: WriteBatch,
        room: Room,
        priority: Priority,
    ) -> Result<Pending, StoreError>;
    /// Commits everything queued, stops the writer and waits for it (blocking).
    fn shutdown(&self);

    /// Writes spans and waits for the commit, however long the queue (blocking; for the CLI
    /// and tests, never on the runtime).
    fn write_blocking(&self, spans: Vec<Prepared>) -> Result<WriteOutcome, StoreError> {
        let rx = self.write(WriteBatch::Spans(spans), Room::Always, Priority::Normal)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

pub trait TopologyReads {
    /// Nodes and edges with their statistics, merged over the window's minutes, and each
    /// broker's newest snapshot in the window.
    fn topology(&self, window: TimeWindow) -> Result<TopologyRows, StoreError>;
    /// The traced nodes of the window (those [`TopologyReads::topology`] lists), without their
    /// statistics or any broker's: the names the trace search offers. A backend may answer it
    /// from a cheaper read than the whole topology.
    fn node_keys(&self, window: TimeWindow) -> Result<Vec<NodeKey>, StoreError> {
        Ok(self
            .topology(window)?
            .nodes
            .into_iter()
            .map(|n| n.key)
            .collect())
    }

    /// The store's write generation: a value that changes with every commit that can change
    /// what reads answer (spans, broker polls, retention), before the commit is acknowledged,
    /// and never repeats within the process, across stores ([`next_generation`]). Read it
    /// before the data: an answer read after it is at least as new. `None` when the backend
    /// cannot tell (answers built from its reads are then never reused).
    fn generation(&self) -> Option<u64> {
        None
    }
    /// Per-minute activity of one node (sparklines), keyed by unix minute.
    fn node_minutes(
        &self,
        node_id: &str,
        window: TimeWindow,
    ) -> Result<BTreeMap<i64, MinuteRow>, StoreError>;
    /// A node's (or a broker flow's) figures as its broker reported them, per minute.
    fn broker_history(
        &self,
        node_id: &str,
        window: TimeWindow,
    ) -> Result<BTreeMap<i64, Figures>, StoreError>;
    /// The traced messages of a destination's partitions over the window: per partition and
    /// service, published and consumed (sorted by partition, then service; at most
    /// [`MAX_PARTITION_ROWS`] rows).
    fn partition_traffic(
        &self,
        destination_id: &str,
        window: TimeWindow,
    ) -> Result<Vec<PartitionTraffic>, StoreError>;
}

/// Most rows [`TopologyReads::partition_traffic`] answers (partitions times services).
pub const MAX_PARTITION_ROWS: usize = 100_000;

pub trait TraceReads {
    /// The newest traces matching the query, and whether the search was complete.
    fn search_traces(&self, q: &TraceQuery) -> Result<TraceSearch, StoreError>;
    /// As [`TraceReads::search_traces`] over the newest `q.limit` matches, keeping the newest
    /// `limit` traces whose duration in microseconds is within `micros`. This default
    /// summarises every match; a backend may read the durations first and summarise only the
    /// traces kept.
    fn search_traces_within(
        &self,
        q: &TraceQuery,
        micros: std::ops::RangeInclusive<f64>,
        limit: usize,
    ) -> Result<TraceSearch, StoreError> {
        let found = self.search_traces(q)?;
        Ok(TraceSearch {
            traces: found
                .traces
                .into_iter()
                .filter(|t| micros.contains(&(t.duration_micros as f64)))
                .take(limit)
                .collect(),
            complete: found.complete,
        })
    }
    /// Every span of one trace, oldest first (empty: no such trace).
    fn trace(&self, id: TraceId) -> Result<Vec<StoredSpan>, StoreError>;
    /// One span of a trace (`None`: no such span), for a large trace's row details. A backend
    /// that cannot read one span alone reads the trace.
    fn trace_span(&self, id: TraceId, span: SpanId) -> Result<Option<StoredSpan>, StoreError> {
        Ok(self.trace(id)?.into_iter().find(|s| s.span_id == span))
    }
    /// Distinct span names (operations) of the newest stored spans, for the search's picker:
    /// at most `limit`, sorted. A backend without an index of them answers none.
    fn recent_operations(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let _ = limit;
        Ok(Vec::new())
    }
    /// The spans of the newest traces matching the query (at most `q.limit`), newest first,
    /// reading none after `deadline`. This default searches, then reads each trace; a backend
    /// may read them together and leave out what analyses do not need (attributes).
    fn search_spans(&self, q: &TraceQuery, deadline: Instant) -> Result<TraceSet, StoreError> {
        let found = self.search_traces(q)?;
        let mut set = TraceSet {
            traces: Vec::with_capacity(found.traces.len()),
            search_complete: found.complete,
            out_of_time: false,
        };
        for t in &found.traces {
            if Instant::now() >= deadline {
                set.out_of_time = true;
                break;
            }
            let spans = self.trace(t.trace_id)?;
            if !spans.is_empty() {
                set.traces.push(spans);
            }
        }
        Ok(set)
    }
    /// The spans of these traces (those stored), in the given order, reading none after
    /// `deadline`; as [`TraceReads::search_spans`], a backend may leave out attributes.
    fn spans_of(&self, ids: &[TraceId], deadline: Instant) -> Result<TraceSet, StoreError> {
        let mut set = TraceSet {
            traces: Vec::with_capacity(ids.len()),
            search_complete: true,
            out_of_time: false,
        };
        for &id in ids {
            if Instant::now() >= deadline {
                set.out_of_time = true;
                break;
            }
            let spans = self.trace(id)?;
            if !spans.is_empty() {
                set.traces.push(spans);
            }
        }
        Ok(set)
    }
    /// Spans of other traces that link into this one (bounded by the backend).
    fn linking_spans(
        &self,
        id: TraceId,
        start_unix_nanos: u64,
        limit: usize,
    ) -> Result<Vec<LinkingSpan>, StoreError>;
}

pub trait StoreStats {
    /// Spans stored now (after retention).
    fn span_count(&self) -> Result<u64, StoreError>;
    /// Writes waiting in the writer's queue now (`None`: the backend does not say).
    fn queue_len(&self) -> Option<usize> {
        None
    }
    /// Bytes the store takes on disk now (`None`: the backend does not say).
    fn size_bytes(&self) -> Option<u64> {
        None
    }
}

/// Everything a backend provides.
pub trait Storage:
    Writes + TopologyReads + TraceReads + StoreStats + Send + Sync + 'static
{
}

impl<T: Writes + TopologyReads + TraceReads + StoreStats + Send + Sync + 'static> Storage for T {}

/// A handle on the store: cheap to clone, shared by every transport and page.
#[derive(Clone)]
pub struct Store(Arc<dyn Storage>);

impl Store {
    pub fn new(backend: impl Storage) -> Store {
        Store(Arc::new(backend))
    }

    /// Runs `f` on tokio's blocking pool, so the async runtime never waits on the store.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Write(format!("read task failed: {e}")))?
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Storage;

    fn deref(&self) -> &(dyn Storage + 'static) {
        self.0.as_ref()
    }
}

/// A new write generation, unique within the process: every store draws from one counter, so
/// equal generations always mean the same store in the same state.
pub fn next_generation() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// How many generations any store has put in place, with a condition variable to wait for the
/// next (work kept for the present generation, such as a topology built ahead, starts again).
// A std Mutex: held to bump or read one number, never across an await.
static REPLACED: (std::sync::Mutex<u64>, std::sync::Condvar) =
    (std::sync::Mutex::new(0), std::sync::Condvar::new());

/// Called by a store once a new generation is in place (readable through its `generation`).
pub fn generation_replaced() {
    if let Ok(mut n) = REPLACED.0.lock() {
        *n = n.wrapping_add(1);
        REPLACED.1.notify_all();
    }
}

/// The count of [`generation_replaced`] calls so far.
pub fn generations_replaced() -> u64 {
    REPLACED.0.lock().map_or(0, |n| *n)
}

/// Waits until some store replaces its generation after `seen` (a count from
/// [`generations_replaced`]) or `timeout` passes; returns the count then.
pub fn wait_generation_replaced(seen: u64, timeout: std::time::Duration) -> u64 {
    let Ok(n) = REPLACED.0.lock() else {
        return seen;
    };
    match REPLACED.1.wait_timeout_while(n, timeout, |n| *n == seen) {
        Ok((n, _)) => *n,
        Err(_) => seen,
    }
}
