//! The SQLite side of pairing (`accounting::pairing::Backlog`): spans that wait for one not
//! stored yet (`pending_refs`), flag changes of stored spans (`span_flags`), and spans older
//! than the writer's memory, read back from their trace's blocks.

use super::block;
use super::trace_index::Unwritten;
use crate::accounting::memory::Nodes;
use crate::accounting::pairing::{Backlog, Facts};
use crate::model::{Operation, SpanId, SpanKind, TraceId};
use rusqlite::{params, OptionalExtension, Transaction};
use std::sync::Arc;

/// Pairing's backlog in the writer's transaction.
pub struct SqlBacklog<'a, 't> {
    pub tx: &'a Transaction<'t>,
    pub unwritten: &'a Unwritten,
    /// Stored spans found failed later ([`Backlog::failed_later`]), marked: the writer stores
    /// each again in the request's block, and a trace's newest copy of a span is the one
    /// read (`reader::trace_records`), so the trace and its search index show the failure.
    pub corrections: &'a mut Vec<Correction>,
}

/// A stored span again, marked failed, with its resource and flags.
pub struct Correction {
    pub span: crate::store::Prepared,
    pub resource_id: Option<i64>,
    pub flags: u8,
}

impl Backlog for SqlBacklog<'_, '_> {
    type Error = rusqlite::Error;

    fn stored(
        &mut self,
        nodes: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> rusqlite::Result<Option<Facts>> {
        lookup_stored(self.tx, nodes, self.unwritten, trace, span)
    }

    fn wait(
        &mut self,
        trace: TraceId,
        span: SpanId,
        waiting: &Facts,
        expires_unix_nanos: u64,
    ) -> rusqlite::Result<()> {
        insert_pending(self.tx, trace, span, waiting, expires_unix_nanos)
    }

    fn take_waiting(
        &mut self,
        nodes: &mut Nodes,
        trace: TraceId,
        span: SpanId,
    ) -> rusqlite::Result<Vec<Facts>> {
        take_waiting(self.tx, nodes, trace, span)
    }

    fn flags_changed(&mut self, f: &Facts) -> rusqlite::Result<()> {
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO span_flags (trace_key, span_key, flags, start_unix_nanos) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![f.trace.key(), f.span_id.key(), f.flags, f.start as i64])?;
        Ok(())
    }

    fn failed_later(&mut self, f: &Facts) -> rusqlite::Result<()> {
        let Some(r) = find_stored(self.tx, self.unwritten, f.trace, f.span_id)? else {
            return Ok(());
        };
        let resource_id = r.resource_id;
        if let Some(span) = crate::store::insert::marked_failed(&r.into_prepared(), f.flags) {
            self.corrections.push(Correction {
                span,
                resource_id,
                flags: f.flags,
            });
        }
        Ok(())
    }
}

/// The pairing facts of a stored record.
pub fn facts_of_record(r: &block::Record, nodes: &mut Nodes) -> Facts {
    Facts {
        trace: r.trace_id,
        span_id: r.span_id,
        parent: r.parent,
        service: nodes.service(&r.service, r.namespace.as_deref()),
        instance: r
            .messaging
            .as_ref()
            .filter(|m| m.operation == Operation::Consume)
            .map(|_| Arc::from(r.instance.as_deref().unwrap_or(""))),
        kind: r.kind,
        operation: r.messaging.as_ref().map(|m| m.operation),
        destination: r
            .messaging
            .as_ref()
            .map(|m| nodes.destination(&m.system, &m.destination)),
        start: r.start,
        end: r.end,
        error: r.status == crate::model::StatusCode::Error,
        peer: r.peer.as_deref().map(Arc::from),
        flags: r.flags,
        // A consume's only (pairing takes a second delivery's partition back).
        partition: r
            .messaging
            .as_ref()
            .filter(|m| m.operation == Operation::Consume)
            .and(r.attributes.as_deref())
            .and_then(crate::accounting::facts::partition_in_attributes),
    }
}

fn insert_pending(
    tx: &Transaction<'_>,
    trace: TraceId,
    target: SpanId,
    w: &Facts,
    expires: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO pending_refs (ref_trace, ref_span, trace_id, span_key, parent_key, service, namespace, kind, operation,
         system, destination, start_unix_nanos, end_unix_nanos, error, peer, flags, expires_unix_nanos)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        trace.as_bytes(),
        target.key(),
        w.trace.as_bytes(),
        w.span_id.key(),
        w.parent.map(|p| p.key()),
        w.service.name,
        w.service.namespace,
        w.kind.as_i32(),
        w.operation.map(|o| o.as_str()),
        w.destination.as_ref().and_then(|d| d.system.clone()),
        w.destination.as_ref().map(|d| d.name.clone()),
        w.start as i64,
        w.end as i64,
        w.error,
        w.peer.as_deref(),
        w.flags,
        expires.min(i64::MAX as u64) as i64,
    ])?;
    Ok(())
}

/// The spans waiting for (trace, span), removed from the waiting list.
fn take_waiting(
    tx: &Transaction<'_>,
    nodes: &mut Nodes,
    trace: TraceId,
    span: SpanId,
) -> rusqlite::Result<Vec<Facts>> {
    let mut stmt = tx.prepare_cached(
        "SELECT trace_id, span_key, parent_key, service, namespace, kind, operation, system, destination, start_unix_nanos,
         end_unix_nanos, error, peer, flags FROM pending_refs WHERE ref_trace = ?1 AND ref_span = ?2",
    )?;
    let mut rows = stmt.query(params![trace.as_bytes(), span.key()])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let Ok(wtrace) = TraceId::from_bytes(&r.get::<_, Vec<u8>>(0)?) else {
            continue;
        };
        let Some(wspan) = SpanId::from_key(r.get(1)?) else {
            continue;
        };
        let service: String = r.get(3)?;
        let namespace: Option<String> = r.get(4)?;
        let system: Option<String> = r.get(7)?;
        let destination: Option<String> = r.get(8)?;
        out.push(Facts {
            trace: wtrace,
            span_id: wspan,
            parent: r.get::<_, Option<i64>>(2)?.and_then(SpanId::from_key),
            service: nodes.service(&service, namespace.as_deref()),
            // Not kept while waiting.
            instance: None,
            kind: SpanKind::from_i32(r.get(5)?),
            operation: r
                .get::<_, Option<String>>(6)?
                .and_then(|o| Operation::parse(&o)),
            destination: system
                .zip(destination)
                .map(|(s, d)| nodes.destination(&s, &d)),
            start: r.get::<_, i64>(9)? as u64,
            end: r.get::<_, i64>(10)? as u64,
            error: r.get(11)?,
            peer: r.get::<_, Option<String>>(12)?.map(Arc::from),
            flags: r.get(13)?,
            // Not kept while waiting either (pairing reads the stored span when it needs it).
            partition: None,
        });
    }
    drop(rows);
    if !out.is_empty() {
        tx.prepare_cached("DELETE FROM pending_refs WHERE ref_trace = ?1 AND ref_span = ?2")?
            .execute(params![trace.as_bytes(), span.key()])?;
    }
    Ok(out)
}

/// Flags of a stored span that changed after its block was written.
pub fn stored_flags(
    conn: &rusqlite::Connection,
    trace: TraceId,
    span: SpanId,
) -> rusqlite::Result<Option<u8>> {
    conn.prepare_cached("SELECT flags FROM span_flags WHERE trace_key = ?1 AND span_key = ?2")?
        .query_row(params![trace.key(), span.key()], |r| r.get(0))
        .optional()
}

/// Blocks searched for an older span before giving up (and waiting for it instead).
const LOOKUP_BLOCKS: usize = 8;

/// Finds a span stored before the recent window, in the blocks of its trace.
fn lookup_stored(
    tx: &Transaction<'_>,
    nodes: &mut Nodes,
    unwritten: &Unwritten,
    trace: TraceId,
    span: SpanId,
) -> rusqlite::Result<Option<Facts>> {
    let Some(r) = find_stored(tx, unwritten, trace, span)? else {
        return Ok(None);
    };
    let mut facts = facts_of_record(&r, nodes);
    if let Some(flags) = stored_flags(tx, trace, span)? {
        facts.flags = flags;
    }
    Ok(Some(facts))
}

/// A stored span's newest record, in the newest blocks of its trace.
fn find_stored(
    tx: &Transaction<'_>,
    unwritten: &Unwritten,
    trace: TraceId,
    span: SpanId,
) -> rusqlite::Result<Option<block::Record>> {
    let mut ids = super::trace_index::blocks_of(tx, unwritten, trace.key())?;
    ids.truncate(LOOKUP_BLOCKS);
    for id in ids {
        if let Some(r) = block::trace_records(tx, id, trace)?
            .into_iter()
            .rev()
            .find(|r| r.span_id == span)
        {
            return Ok(Some(r));
        }
    }
    Ok(None)
}
