//! The single writer thread: group commit, reply after COMMIT, periodic retention.
//! Each request becomes one span block; its analysis (pairing, statistics) commits with it.

use super::accumulate::Accumulator;
use super::block::{self, BlockBuilder};
use super::insert::{attributes_json, Prepared};
use super::pairing::{Facts, Pairing};
use super::recent::{span_hash, Nodes, PendingKeys, RecentFacts, Seen};
use super::{retention, RetentionConfig, StoreError};
use crate::model::window::now_unix_nanos;
use crate::model::Attributes;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The result of one write: how many spans were new and how many were already stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub stored: u64,
    pub duplicates: u64,
}

pub type Reply = tokio::sync::oneshot::Sender<Result<WriteOutcome, StoreError>>;

pub enum Command {
    Write {
        spans: Vec<Prepared>,
        reply: Reply,
    },
    /// Commit everything queued, then stop.
    Shutdown,
}

/// Spans committed together at most; a larger backlog is split over several transactions.
const GROUP_LIMIT: usize = 16_384;
const MAINTENANCE_EVERY: Duration = Duration::from_secs(10);
/// Recent spans remembered to drop re-sent ones.
const SEEN_CAP: usize = 1 << 19;
/// Recent produce, consume and client spans whose pairing facts stay in memory.
const FACTS_CAP: usize = 1 << 17;

/// What the writer remembers between transactions (rebuilt from the database at start and
/// after a failed transaction).
struct Memory {
    seen: Seen,
    recent: RecentFacts,
    pending: PendingKeys,
    nodes: Nodes,
    known_nodes: HashSet<String>,
    resources: HashMap<String, i64>,
}

pub struct Writer {
    conn: Connection,
    rx: Receiver<Command>,
    retention: RetentionConfig,
    acc: Accumulator,
    mem: Memory,
    sweep_slice: u32,
}

impl Writer {
    pub fn new(
        conn: Connection,
        rx: Receiver<Command>,
        retention: RetentionConfig,
    ) -> Result<Writer, StoreError> {
        let mem = Memory::load(&conn)?;
        Ok(Writer {
            conn,
            rx,
            retention,
            acc: Accumulator::default(),
            mem,
            sweep_slice: 0,
        })
    }

    pub fn run(mut self) {
        let mut last_maintenance = Instant::now();
        loop {
            let first = match self.rx.recv_timeout(MAINTENANCE_EVERY) {
                Ok(cmd) => cmd,
                Err(RecvTimeoutError::Timeout) => {
                    self.maintain();
                    last_maintenance = Instant::now();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            let (batch, stop) = self.gather(first);
            self.commit(batch);
            if stop {
                tracing::info!("store writer stopped after final commit");
                return;
            }
            if last_maintenance.elapsed() >= MAINTENANCE_EVERY {
                self.maintain();
                last_maintenance = Instant::now();
            }
        }
    }

    /// Takes the first command and whatever else is already queued, up to the group limit
    /// (everything, once a shutdown was asked).
    fn gather(&self, first: Command) -> (Vec<(Vec<Prepared>, Reply)>, bool) {
        let mut batch = Vec::new();
        let mut total = 0;
        let mut stop = false;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                Command::Write { spans, reply } => {
                    total += spans.len();
                    batch.push((spans, reply));
                }
                Command::Shutdown => stop = true,
            }
            if stop || total < GROUP_LIMIT {
                next = self.rx.try_recv().ok();
            }
        }
        (batch, stop)
    }

    fn commit(&mut self, batch: Vec<(Vec<Prepared>, Reply)>) {
        if batch.is_empty() {
            return;
        }
        match self.write_all(&batch) {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write failed; batch rolled back");
                self.acc.reset();
                match Memory::load(&self.conn) {
                    Ok(mem) => self.mem = mem,
                    Err(e) => tracing::error!(error = %e, "could not reload the writer's memory"),
                }
                for (_, reply) in batch {
                    let _ = reply.send(Err(StoreError::Write(e.to_string())));
                }
            }
        }
    }

    fn write_all(
        &mut self,
        batch: &[(Vec<Prepared>, Reply)],
    ) -> rusqlite::Result<Vec<WriteOutcome>> {
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (spans, _) in batch {
            outcomes.push(write_request(&tx, &mut self.acc, &mut self.mem, spans)?);
        }
        self.acc
            .flush(&tx, &mut self.mem.known_nodes, now_unix_nanos())?;
        tx.commit()?;
        Ok(outcomes)
    }

    fn maintain(&mut self) {
        self.sweep_slice = self.sweep_slice.wrapping_add(1);
        if let Err(e) = retention::run(&mut self.conn, &self.retention, self.sweep_slice) {
            tracing::warn!(error = %e, "retention pass failed");
        }
    }
}

/// One request -> one block, analysed span by span.
fn write_request(
    tx: &Transaction<'_>,
    acc: &mut Accumulator,
    mem: &mut Memory,
    spans: &[Prepared],
) -> rusqlite::Result<WriteOutcome> {
    let mut outcome = WriteOutcome::default();
    let mut block = BlockBuilder::default();
    let mut last_resource: Option<(*const Attributes, Option<i64>)> = None;
    for prepared in spans {
        let span = &prepared.span;
        if !mem.seen.insert(span_hash(span.trace_id, span.span_id)) {
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
            tx,
            acc,
            recent: &mut mem.recent,
            seen: &mem.seen,
            pending: &mut mem.pending,
            nodes: &mut mem.nodes,
        };
        let flags = pairing.analyse(span)?;
        block.push(prepared, resource_id, flags);
        outcome.stored += 1;
    }
    if block.count > 0 {
        let data = block.finish();
        tx.prepare_cached("INSERT INTO blocks (min_start_unix_nanos, max_start_unix_nanos, span_count, data) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![block.min_start as i64, block.max_start as i64, block.count, data])?;
        let id = tx.last_insert_rowid();
        let mut trace = tx.prepare_cached(
            "INSERT OR IGNORE INTO trace_blocks (trace_key, block_id) VALUES (?1, ?2)",
        )?;
        for key in &block.traces {
            trace.execute(params![key, id])?;
        }
        let mut term = tx
            .prepare_cached("INSERT OR IGNORE INTO block_terms (term, block_id) VALUES (?1, ?2)")?;
        for t in &block.terms {
            term.execute(params![t, id])?;
        }
    }
    Ok(outcome)
}

impl Memory {
    /// Rebuilds the writer's memory from the newest blocks and the pending list.
    fn load(conn: &Connection) -> Result<Memory, StoreError> {
        let mut mem = Memory {
            seen: Seen::new(SEEN_CAP),
            recent: RecentFacts::new(FACTS_CAP),
            pending: PendingKeys::new(),
            nodes: Nodes::default(),
            known_nodes: HashSet::new(),
            resources: HashMap::new(),
        };
        let mut stmt = conn.prepare("SELECT ref_trace, ref_span FROM pending_refs")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let trace = crate::model::TraceId::from_bytes(&r.get::<_, Vec<u8>>(0)?).ok();
            let span = crate::model::SpanId::from_key(r.get(1)?);
            if let (Some(t), Some(s)) = (trace, span) {
                mem.pending.insert(span_hash(t, s));
            }
        }
        // Newest blocks first, then replayed oldest first so the FIFO order holds.
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        let mut spans = 0usize;
        let mut stmt = conn.prepare("SELECT data, span_count FROM blocks ORDER BY id DESC")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            blocks.push(r.get(0)?);
            spans += r.get::<_, i64>(1)? as usize;
            if spans >= SEEN_CAP {
                break;
            }
        }
        let mut flags =
            conn.prepare("SELECT flags FROM span_flags WHERE trace_key = ?1 AND span_key = ?2")?;
        for data in blocks.iter().rev() {
            let Ok(inflated) = block::inflate(data) else {
                continue;
            };
            for rec in block::records(&inflated) {
                let Ok(r) = block::decode(rec) else { continue };
                mem.seen.insert(span_hash(r.trace_id, r.span_id));
                let mut facts = Facts::of_record(&r, &mut mem.nodes);
                if facts.referable() {
                    if let Some(f) = flags
                        .query_row(params![r.trace_id.key(), r.span_id.key()], |row| {
                            row.get::<_, u8>(0)
                        })
                        .optional()?
                    {
                        facts.flags = f;
                    }
                    mem.recent.insert(facts);
                }
            }
        }
        Ok(mem)
    }
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
