//! The single writer thread: group commit, reply after COMMIT, periodic retention.
//! Each request becomes one span block; its analysis (pairing, statistics) commits with it.

use super::super::insert::{attributes_json, Prepared};
use super::super::interface::WriteBatch;
use super::accumulate::{self, Totals};
use super::backlog::{Correction, SqlBacklog};
use super::block::BlockBuilder;
use super::memory::{load_pending, Memory};
use super::retention::{self, RetentionConfig};
use super::size::{self, SizeGuard};
use super::trace_index::{TraceIndex, Unwritten};
use crate::accounting::memory::span_hash;
use crate::accounting::minutes::Accumulator;
use crate::accounting::{pairable, Pairing};
use crate::lograte::ERRORS;
use crate::mailbox::{Receiver, RecvTimeoutError};
use crate::model::window::now_unix_nanos;
use crate::model::Attributes;
use crate::priority::Priority;
use crate::store::{StoreError, WriteOutcome};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub type Reply = tokio::sync::oneshot::Sender<Result<WriteOutcome, StoreError>>;

pub enum Command {
    Write {
        batch: WriteBatch,
        reply: Reply,
        /// Work that can wait (the broker's own spans while their exporter keeps up): a group
        /// of only such writes is committed in the background (`crate::priority`).
        background: bool,
    },
    /// Commit everything queued, then stop.
    Shutdown,
}

/// Spans committed together at most; a larger backlog is split over several transactions.
const GROUP_LIMIT: usize = 16_384;
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
/// Retention runs even under constant load once this late.
const MAINTENANCE_OVERDUE: Duration = Duration::from_secs(60);
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
const IDLE_TICK: Duration = Duration::from_millis(500);

/// Client writes (normal priority) queued and not yet taken by the writer, and the lift that
/// brings the writer back from the background when one arrives while it commits a background
/// group: such a write would otherwise wait at the background's pace, which on a saturated
/// machine is very slow.
#[derive(Clone, Debug, Default)]
pub struct Urgent {
    queued: Arc<AtomicUsize>,
    lift: crate::priority::Lift,
}

impl Urgent {
    /// Client: a normal write is about to be queued.
    pub fn queue(&self) {
        self.queued.fetch_add(1, Ordering::SeqCst);
    }

    /// Client: the write was not queued after all; writer: it took the write.
    pub fn unqueue(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
    }

    /// Client: the write is queued; a writer in the background comes back to normal.
    pub fn raise(&self) {
        self.lift.raise();
    }

    fn any(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }
}

pub struct Writer {
    conn: Connection,
    rx: Receiver<Command>,
    retention: RetentionConfig,
    acc: Accumulator,
    totals: Totals,
    mem: Memory,
    sweep_slice: u32,
    index: TraceIndex,
    last_block: i64,
    /// Set when the writer's memory could not be rebuilt after a rollback; the writer stops.
    failed: bool,
    /// Index rows below this block id have been swept.
    swept_below: i64,
    dropper: crate::mailbox::Sender<Vec<WriteBatch>>,
    urgent: Urgent,
    /// `--retention-size`: checked before each group.
    size: Option<SizeGuard>,
    /// Spans committed together at most (smaller under a size bound).
    group_limit: usize,
    /// The store's write generation: a new one after every transaction that can change what
    /// reads answer, before its writes are acknowledged.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub fn new(
        conn: Connection,
        rx: Receiver<Command>,
        retention: RetentionConfig,
        unwritten: Unwritten,
        urgent: Urgent,
        size: Option<SizeGuard>,
        generation: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Writer, StoreError> {
        let mem = Memory::load(&conn)?;
        let last_block: i64 =
            conn.query_row("SELECT COALESCE(MAX(id), 0) FROM blocks", [], |r| r.get(0))?;
        let (dropper, garbage) = crate::mailbox::bounded::<Vec<WriteBatch>>(16);
        std::thread::Builder::new()
            .name("store-dropper".into())
            .spawn(move || {
                // Freeing can wait: when this thread is starved the queue fills, and the
                // writer frees its batches itself.
                crate::priority::set(Priority::Background);
                while let Some(g) = garbage.recv() {
                    drop(g)
                }
            })?;
        let group_limit = size::group_limit(retention.max_bytes, GROUP_LIMIT);
        Ok(Writer {
            conn,
            rx,
            retention,
            acc: Accumulator::default(),
            totals: Totals::default(),
            mem,
            sweep_slice: 0,
            index: TraceIndex::new(unwritten),
            last_block,
            failed: false,
            swept_below: 0,
            dropper,
            urgent,
            size,
            group_limit,
            generation,
        })
    }

    pub fn run(mut self) {
        let mut last_maintenance = Instant::now();
        let mut last_checkpoint = Instant::now();
        loop {
            let first = match self.rx.recv_timeout(IDLE_TICK) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    self.idle(&mut last_maintenance, &mut last_checkpoint, true);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let (batch, stop, background) = self.gather(first);
            // A client's write in a group makes the whole group normal; one queued, or
            // arriving, while a background group commits brings the writer back to normal
            // (`Urgent`). The writer is normal between groups, for housekeeping and for the
            // next wake-up.
            let urgent = &self.urgent;
            let lowered = background && urgent.lift.lower(|| urgent.any());
            self.commit(batch);
            if lowered {
                self.urgent.lift.restore();
            }
            if self.failed {
                return;
            }
            if stop {
                self.finish();
                tracing::info!("store writer stopped after final commit");
                return;
            }
            let idle = self.rx.is_empty();
            self.idle(&mut last_maintenance, &mut last_checkpoint, idle);
        }
    }

    /// Housekeeping between transactions: finishing checkpoints, and retention when no request
    /// waits (or when overdue, even busy).
    fn idle(&mut self, last_maintenance: &mut Instant, last_checkpoint: &mut Instant, idle: bool) {
        if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            // The checkpointer thread copies most of the WAL beside the writer; only the
            // writer, between its transactions, can finish a checkpoint so that the next
            // transaction starts the WAL over instead of growing it. What is left to copy is
            // what was committed since the checkpointer's last pass: a few milliseconds.
            let started = Instant::now();
            let result = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                });
            match result {
                Ok((busy, frames, copied)) => tracing::trace!(
                    busy,
                    frames,
                    copied,
                    us = started.elapsed().as_micros() as u64,
                    "writer checkpoint"
                ),
                Err(e) => {
                    if let Some(suppressed) = ERRORS.allow("store.writer_checkpoint") {
                        tracing::warn!(error = %e, suppressed, "checkpoint failed");
                    }
                }
            }
            *last_checkpoint = Instant::now();
        }
        let due = last_maintenance.elapsed();
        if (idle && due >= MAINTENANCE_EVERY) || due >= MAINTENANCE_OVERDUE {
            self.maintain();
            *last_maintenance = Instant::now();
        }
    }

    /// At shutdown: write the whole trace index, so the next start has nothing to redo.
    fn finish(&mut self) {
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            let written = self.index.flush_all(&tx, self.last_block)?;
            tx.commit()?;
            self.index.forget(written);
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not write the trace index at shutdown; it is rebuilt at start");
        }
    }

    /// Takes the first command and whatever else is already queued, up to the group limit
    /// (everything, once a shutdown was asked); says whether the group stops the writer and
    /// whether every write of it is background work.
    fn gather(&self, first: Command) -> (Vec<(WriteBatch, Reply)>, bool, bool) {
        let mut batch = Vec::new();
        let mut total = 0;
        let mut stop = false;
        let mut all_background = true;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write {
                    batch: write,
                    reply,
                    background,
                } => {
                    total += write.len();
                    all_background &= background;
                    if !background {
                        self.urgent.unqueue();
                    }
                    batch.push((write, reply));
                }
                Command::Shutdown => stop = true,
            }
            if stop || total < self.group_limit {
                next = self.rx.try_recv().ok();
            }
        }
        let background = all_background && !stop && !batch.is_empty();
        (batch, stop, background)
    }

    fn commit(&mut self, batch: Vec<(WriteBatch, Reply)>) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.hold_size() {
            // The bound may have trimmed old data before it refused.
            self.new_generation();
            for (_, reply) in batch {
                let refusal = match &e {
                    StoreError::Full { bytes, bound } => StoreError::Full {
                        bytes: *bytes,
                        bound: *bound,
                    },
                    e => StoreError::Write(e.to_string()),
                };
                let _ = reply.send(Err(refusal));
            }
            return;
        }
        let written = self.write_all(&batch);
        // Committed (or rolled back, or trimmed by the size bound): reads from now on may
        // answer differently, and the writes are not acknowledged yet.
        self.new_generation();
        match written {
            Ok(outcomes) => {
                let mut done = Vec::with_capacity(batch.len());
                for ((write, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                    done.push(write);
                }
                // Freeing thousands of strings is work the writer need not do itself.
                if let Err(
                    crate::mailbox::TrySendError::Full(d)
                    | crate::mailbox::TrySendError::Disconnected(d),
                ) = self.dropper.try_send(done)
                {
                    drop(d);
                }
            }
            Err(e) => {
                // Recovery is not background work.
                crate::priority::set(Priority::Normal);
                if let Some(suppressed) = ERRORS.allow("store.write") {
                    tracing::error!(error = %e, suppressed, "store write failed; batch rolled back");
                }
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Write(e.to_string())));
                }
                if let Err(e) = self.resync() {
                    // Memory that disagrees with the database would answer 200 for spans it
                    // never stored: stop instead, so every request is refused with 503.
                    if let Some(suppressed) = ERRORS.allow("store.resync") {
                        tracing::error!(error = %e, suppressed, "could not reload the writer's state; the store stops accepting writes");
                    }
                    self.failed = true;
                }
            }
        }
    }

    /// After a rollback: rebuild everything the writer remembers from what was committed.
    fn resync(&mut self) -> Result<(), StoreError> {
        self.acc.reset();
        self.totals.reset();
        self.index.reset();
        super::trace_index::recover(&mut self.conn)?;
        self.mem = Memory::load(&self.conn)?;
        self.last_block =
            self.conn
                .query_row("SELECT COALESCE(MAX(id), 0) FROM blocks", [], |r| r.get(0))?;
        Ok(())
    }

    fn write_all(&mut self, batch: &[(WriteBatch, Reply)]) -> rusqlite::Result<Vec<WriteOutcome>> {
        let started = Instant::now();
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let expire_before = self.retention.cutoff(now_unix_nanos());
        for (write, _) in batch {
            let outcome = match write {
                WriteBatch::Spans(spans) => write_request(
                    &tx,
                    &mut self.acc,
                    &mut self.mem,
                    &mut self.index,
                    &mut self.last_block,
                    spans,
                    expire_before,
                )?,
                WriteBatch::BrokerState(snapshot) => {
                    super::brokers::write(&tx, snapshot)?;
                    self.mem.nodes.broker_state(snapshot);
                    WriteOutcome::default()
                }
            };
            outcomes.push(outcome);
        }
        let analysed = started.elapsed();
        let written = self.index.flush_due(&tx, self.last_block)?;
        let indexed = started.elapsed();
        let observed = accumulate::flush(
            &mut self.acc,
            &mut self.totals,
            &tx,
            &mut self.mem.known_nodes,
            now_unix_nanos(),
        )?;
        let flushed = started.elapsed();
        tx.commit()?;
        crate::telemetry::METRICS.graph.record(&observed);
        let total = started.elapsed();
        if total > Duration::from_millis(25) {
            tracing::debug!(
                requests = batch.len(),
                analyse_ms = analysed.as_millis() as u64,
                index_ms = (indexed - analysed).as_millis() as u64,
                stats_ms = (flushed - indexed).as_millis() as u64,
                commit_ms = (total - flushed).as_millis() as u64,
                "slow commit"
            );
        }
        if let Some(w) = written {
            self.index.forget(w);
        }
        Ok(outcomes)
    }

    /// Under `--retention-size`: makes room before a group, or says why it cannot.
    fn hold_size(&mut self) -> Result<(), StoreError> {
        let Some(guard) = self.size.as_mut() else {
            return Ok(());
        };
        let held = match guard.hold(&mut self.conn) {
            Ok(held) => held,
            Err(e) => {
                if let Some(suppressed) = ERRORS.allow("store.size") {
                    tracing::warn!(error = %e, suppressed, "writes refused: the size bound cannot hold now");
                }
                return Err(e);
            }
        };
        if held.pending_deleted > 0 {
            match load_pending(&self.conn) {
                Ok(keys) => self.mem.pending = keys,
                Err(e) => return Err(e.into()),
            }
        }
        if held.deleted > 0 {
            crate::telemetry::METRICS
                .store
                .retention_deleted_by_size
                .fetch_add(held.deleted as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(blocks = held.deleted, "size retention");
        }
        Ok(())
    }

    /// Reads from now on may answer differently (see `SqliteStore::generation`).
    fn new_generation(&self) {
        self.generation
            .store(crate::store::interface::next_generation(), Ordering::SeqCst);
        crate::store::interface::generation_replaced();
    }

    fn maintain(&mut self) {
        let started = Instant::now();
        let before = self.conn.total_changes();
        self.maintain_once();
        // Retention deleted what windows in the past showed: reads may answer differently.
        // A pass that changed nothing keeps the generation (and the answers kept for it).
        if self.conn.total_changes() != before {
            self.new_generation();
        }
        tracing::debug!(ms = started.elapsed().as_millis() as u64, "maintenance");
    }

    fn maintain_once(&mut self) {
        self.sweep_slice = self.sweep_slice.wrapping_add(1);
        match retention::run(
            &mut self.conn,
            &self.retention,
            self.sweep_slice,
            &mut self.swept_below,
        ) {
            Ok(pass) if pass.pending_deleted > 0 => match load_pending(&self.conn) {
                Ok(keys) => self.mem.pending = keys,
                Err(e) => {
                    if let Some(suppressed) = ERRORS.allow("store.pending_reload") {
                        tracing::warn!(error = %e, suppressed, "could not reload the pending list");
                    }
                }
            },
            Ok(_) => {}
            Err(e) => {
                if let Some(suppressed) = ERRORS.allow("store.retention") {
                    tracing::warn!(error = %e, suppressed, "retention pass failed");
                }
            }
        }
    }
}

/// One request -> one block, analysed span by span. Spans that start before `expire_before`
/// (the age retention's cutoff) are counted as expired and not stored.
fn write_request(
    tx: &Transaction<'_>,
    acc: &mut Accumulator,
    mem: &mut Memory,
    index: &mut TraceIndex,
    last_block: &mut i64,
    spans: &[Prepared],
    expire_before: u64,
) -> rusqlite::Result<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let mut block = BlockBuilder::default();
    let mut last_resource: Option<(*const Attributes, Option<i64>)> = None;
    let mut corrections: Vec<Correction> = Vec::new();
    for i in parents_first(spans) {
        let prepared = &spans[i];
        let span = &prepared.span;
        if span.start_unix_nanos < expire_before {
            outcome.expired += 1;
            continue;
        }
        let pairable = pairable(span.kind, span.messaging.as_ref().map(|m| m.operation));
        if !mem
            .seen
            .insert(span_hash(span.trace_id, span.span_id), pairable)
        {
            outcome.duplicates += 1;
            continue;
        }
        let ptr = Arc::as_ptr(&span.resource);
        let resource_id = match last_resource {
            Some((p, id)) if p == ptr => id,
            _ => {
                let id = resource_id(tx, &mut mem.resources, &span.resource)?;
                last_resource = Some((ptr, id));
                id
            }
        };
        let mut pairing = Pairing {
            backlog: &mut SqlBacklog {
                tx,
                unwritten: &index.unwritten,
                corrections: &mut corrections,
            },
            acc,
            recent: &mut mem.recent,
            seen: &mem.seen,
            pending: &mut mem.pending,
            nodes: &mut mem.nodes,
            delivered: &mut mem.delivered,
        };
        let flags = pairing.analyse(span, prepared.db_system.as_deref(), &prepared.marks)?;
        match crate::store::insert::marked_failed(prepared, flags) {
            Some(marked) => block.push(&marked, resource_id, flags),
            None => block.push(prepared, resource_id, flags),
        }
        outcome.stored += 1;
    }
    // Spans stored before and found failed now, again (read instead of their first copy);
    // not counted as spans of the block.
    let copies = corrections.len() as u32;
    for c in &corrections {
        block.push(&c.span, c.resource_id, c.flags);
    }
    if block.count > 0 {
        let data = block.finish();
        tx.prepare_cached("INSERT INTO blocks (min_start_unix_nanos, max_start_unix_nanos, span_count, data) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![block.min_start as i64, block.max_start as i64, block.count - copies, data])?;
        let id = tx.last_insert_rowid();
        index.add(&block.traces, id);
        *last_block = id;
        let (terms, bloom) = block.postings.finish(block.min_start);
        write_postings(tx, id, &terms)?;
        tx.prepare_cached("INSERT INTO block_blooms (block_id, bloom) VALUES (?1, ?2)")?
            .execute(params![id, bloom])?;
    }
    Ok(outcome)
}

/// Index rows written per statement (a block has one per distinct service, destination and
/// operation: statements of many rows save most of the per-statement work).
const POSTINGS_PER_INSERT: usize = 32;

static INSERT_POSTINGS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let rows = vec!["(?, ?, ?)"; POSTINGS_PER_INSERT].join(", ");
    format!("INSERT INTO block_postings (block_id, term, entries) VALUES {rows}")
});

/// Writes a block's index rows (sorted by term, so they append to the index in order).
fn write_postings(
    tx: &Transaction<'_>,
    id: i64,
    terms: &[(String, Vec<u8>)],
) -> rusqlite::Result<()> {
    let mut chunks = terms.chunks_exact(POSTINGS_PER_INSERT);
    let mut many = tx.prepare_cached(&INSERT_POSTINGS)?;
    for chunk in &mut chunks {
        let mut values: Vec<&dyn rusqlite::ToSql> = Vec::with_capacity(3 * chunk.len());
        for (term, entries) in chunk {
            values.extend([&id as &dyn rusqlite::ToSql, term, entries]);
        }
        many.execute(values.as_slice())?;
    }
    let mut one = tx.prepare_cached(
        "INSERT INTO block_postings (block_id, term, entries) VALUES (?1, ?2, ?3)",
    )?;
    for (term, entries) in chunks.remainder() {
        one.execute(params![id, term, entries])?;
    }
    Ok(())
}

/// The order to analyse one request in: a span comes after the spans of the same request it
/// refers to (parent, links), so pairing finds them in memory instead of waiting for them.
pub(super) fn parents_first(spans: &[Prepared]) -> Vec<usize> {
    let index: foldhash::HashMap<u64, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, p)| (span_hash(p.span.trace_id, p.span.span_id), i))
        .collect();
    let refs = |i: usize| {
        let s = &spans[i].span;
        s.parent_span_id
            .map(|p| (s.trace_id, p))
            .into_iter()
            .chain(s.links.iter().map(|l| (l.trace_id, l.span_id)))
            .filter_map(|(t, sp)| index.get(&span_hash(t, sp)).copied())
    };
    let mut state = vec![0u8; spans.len()]; // 0 new, 1 on the stack, 2 placed
    let mut order = Vec::with_capacity(spans.len());
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for root in 0..spans.len() {
        stack.push((root, false));
        while let Some((i, expanded)) = stack.pop() {
            if expanded {
                if state[i] != 2 {
                    state[i] = 2;
                    order.push(i);
                }
                continue;
            }
            if state[i] != 0 {
                continue;
            }
            state[i] = 1;
            stack.push((i, true));
            stack.extend(refs(i).filter(|&j| state[j] == 0).map(|j| (j, false)));
        }
    }
    order
}

fn resource_id(
    tx: &Transaction<'_>,
    cache: &mut HashMap<String, i64>,
    attrs: &Attributes,
) -> rusqlite::Result<Option<i64>> {
    let Some(json) = attributes_json(attrs) else {
        return Ok(None);
    };
    if let Some(id) = cache.get(&json) {
        return Ok(Some(*id));
    }
    let existing = tx
        .prepare_cached("SELECT id FROM resources WHERE attributes = ?1")?
        .query_row(params![json], |r| r.get::<_, i64>(0))
        .optional()?;
    let id = match existing {
        Some(id) => id,
        None => {
            tx.prepare_cached("INSERT INTO resources (attributes) VALUES (?1)")?
                .execute(params![json])?;
            tx.last_insert_rowid()
        }
    };
    if cache.len() > 10_000 {
        cache.clear();
    }
    cache.insert(json, id);
    Ok(Some(id))
}
