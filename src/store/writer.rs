//! The single writer thread: group commit, reply after COMMIT, periodic retention.

use super::accumulate::Accumulator;
use super::insert::attributes_json;
use super::insert::Prepared;
use super::pairing::ingest_span;
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

pub struct Writer {
    conn: Connection,
    rx: Receiver<Command>,
    retention: RetentionConfig,
    acc: Accumulator,
    known_nodes: HashSet<String>,
    resources: HashMap<String, i64>,
}

impl Writer {
    pub fn new(conn: Connection, rx: Receiver<Command>, retention: RetentionConfig) -> Writer {
        Writer {
            conn,
            rx,
            retention,
            acc: Accumulator::default(),
            known_nodes: HashSet::new(),
            resources: HashMap::new(),
        }
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

    /// Takes the first command and whatever else is already queued, up to the group limit.
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
            if stop {
                // Drain everything that was accepted before the shutdown.
                next = self.rx.try_recv().ok();
            } else if total < GROUP_LIMIT {
                next = self.rx.try_recv().ok();
            }
        }
        (batch, stop)
    }

    fn commit(&mut self, batch: Vec<(Vec<Prepared>, Reply)>) {
        if batch.is_empty() {
            return;
        }
        let result = self.write_all(&batch);
        match result {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write failed; batch rolled back");
                self.resources.clear();
                self.known_nodes.clear();
                self.acc.reset();
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
        let started = Instant::now();
        let tx = self.conn.transaction()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut last_resource: Option<(*const Attributes, Option<i64>)> = None;
        for (spans, _) in batch {
            let mut outcome = WriteOutcome::default();
            for prepared in spans {
                let span = &prepared.span;
                let ptr = Arc::as_ptr(&span.resource);
                let resource_id = match last_resource {
                    Some((p, id)) if p == ptr => id,
                    _ => {
                        let id = resource_id(&tx, &mut self.resources, &span.resource)?;
                        last_resource = Some((ptr, id));
                        id
                    }
                };
                if ingest_span(&tx, &mut self.acc, prepared, resource_id)? {
                    outcome.stored += 1;
                } else {
                    outcome.duplicates += 1;
                }
            }
            outcomes.push(outcome);
        }
        let t_spans = started.elapsed();
        self.acc
            .flush(&tx, &mut self.known_nodes, now_unix_nanos())?;
        let t_flush = started.elapsed();
        tx.commit()?;
        tracing::debug!(
            spans = outcomes
                .iter()
                .map(|o| o.stored + o.duplicates)
                .sum::<u64>(),
            spans_us = t_spans.as_micros() as u64,
            flush_us = (t_flush - t_spans).as_micros() as u64,
            commit_us = (started.elapsed() - t_flush).as_micros() as u64,
            "batch committed"
        );
        Ok(outcomes)
    }

    fn maintain(&mut self) {
        if let Err(e) = retention::run(&mut self.conn, &self.retention) {
            tracing::warn!(error = %e, "retention pass failed");
        }
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
