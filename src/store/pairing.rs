//! Ingest-time analysis of each new span inside the writer's transaction: tie it to the spans
//! it refers to (parent, links) or that wait for it, and record its edge statistics. Arrival
//! order does not matter: a reference to a span not stored yet waits in `pending_refs` until
//! that span arrives.
//!
//! Counting rules (logical messages, not spans):
//! - a produce span nested in another produce span (parent/child, same destination) is one
//!   message: whichever of the two arrives second is not counted; likewise nested consumes;
//! - a consume span tied to a produce span (parent or link) adds the publish-to-consume delay
//!   (consume start minus produce start) to the consume edge, a service dependency through the
//!   destination, and a route edge when the two destinations differ (exchange -> queue);
//! - a CLIENT span counts as a call to its peer (external node) until a SERVER span of another
//!   service names it as parent; then the call moves to the service -> service edge.

use super::accumulate::{Accumulator, EdgeChange};
use super::block;
use super::insert::Prepared;
use super::recent::{span_hash, Nodes, PendingKeys, RecentFacts, Seen};
use crate::model::{EdgeKind, NodeKey, Operation, Span, SpanId, SpanKind, TraceId};
use rusqlite::{params, OptionalExtension, Transaction};
use std::sync::Arc;

pub const FLAG_COUNTED: u8 = 1;
pub const FLAG_CALL_PAIRED: u8 = 2;

/// What pairing needs to know of a span.
#[derive(Clone, Debug)]
pub struct Facts {
    pub trace: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: Arc<NodeKey>,
    pub kind: SpanKind,
    pub operation: Option<Operation>,
    pub destination: Option<Arc<NodeKey>>,
    pub start: u64,
    pub end: u64,
    pub error: bool,
    pub peer: Option<Arc<str>>,
    pub flags: u8,
}

impl Facts {
    pub fn of(span: &Span, nodes: &mut Nodes, flags: u8) -> Facts {
        Facts {
            trace: span.trace_id,
            span_id: span.span_id,
            parent: span.parent_span_id,
            service: nodes.service(&span.service.name, span.service.namespace.as_deref()),
            kind: span.kind,
            operation: span.messaging.as_ref().map(|m| m.operation),
            destination: span
                .messaging
                .as_ref()
                .map(|m| nodes.destination(&m.system, &m.destination)),
            start: span.start_unix_nanos,
            end: span.end_unix_nanos,
            error: span.is_error(),
            peer: span.peer.as_deref().map(Arc::from),
            flags,
        }
    }

    pub fn of_record(r: &block::Record, nodes: &mut Nodes) -> Facts {
        Facts {
            trace: r.trace_id,
            span_id: r.span_id,
            parent: r.parent,
            service: nodes.service(&r.service, r.namespace.as_deref()),
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
        }
    }

    fn duration_micros(&self) -> u64 {
        self.end.saturating_sub(self.start) / 1_000
    }

    fn is_client_call(&self) -> bool {
        self.kind == SpanKind::Client && self.operation.is_none()
    }

    /// Whether a later span may refer to this one in a way pairing cares about.
    pub fn referable(&self) -> bool {
        pairable(self.kind, self.operation)
    }

    /// Whether this span waits for its parent when the parent is not stored yet.
    fn waits_for_parent(&self) -> bool {
        self.operation.is_some() || self.kind == SpanKind::Server
    }
}

/// Whether later spans may refer to a span of this kind and operation in a way pairing cares
/// about: produce and consume spans, and CLIENT calls.
pub fn pairable(kind: SpanKind, operation: Option<Operation>) -> bool {
    matches!(operation, Some(Operation::Produce | Operation::Consume))
        || (kind == SpanKind::Client && operation.is_none())
}

/// How long a publish or server span waits for a parent that has not arrived.
const PARENT_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// Links of one consume span analysed at most (a batch receive can link to many producers).
const MAX_LINKS: usize = 1_000;

/// The writer's state that pairing reads and updates, for one transaction.
pub struct Pairing<'a, 't> {
    pub tx: &'a Transaction<'t>,
    pub acc: &'a mut Accumulator,
    pub recent: &'a mut RecentFacts,
    pub seen: &'a Seen,
    pub pending: &'a mut PendingKeys,
    pub nodes: &'a mut Nodes,
    pub unwritten: &'a super::trace_index::Unwritten,
}

impl Pairing<'_, '_> {
    /// Analyses one new span (not a duplicate) and returns the flags to store with it.
    pub fn analyse(&mut self, prepared: &Prepared) -> rusqlite::Result<u8> {
        let span = &prepared.span;
        let provisional = match span.messaging.as_ref().map(|m| m.operation) {
            Some(Operation::Produce | Operation::Consume) => FLAG_COUNTED,
            _ => 0,
        };
        let mut me = Facts::of(span, self.nodes, provisional);
        self.acc.service_span(&me.service, me.start, me.error);

        let mut refs: Vec<(TraceId, SpanId)> = Vec::new();
        if let Some(parent) = span.parent_span_id.filter(|_| me.waits_for_parent()) {
            refs.push((span.trace_id, parent));
        }
        if me.operation == Some(Operation::Consume) {
            refs.extend(
                span.links
                    .iter()
                    .take(MAX_LINKS)
                    .map(|l| (l.trace_id, l.span_id)),
            );
        }
        refs.sort();
        refs.dedup();
        for (trace, target) in refs {
            self.relate_or_wait(&mut me, trace, target)?;
        }
        // Every arrival settles what waits for it, pairable or not, so waiting rows do not pile up.
        if self.pending.remove(&span_hash(me.trace, me.span_id)) {
            for mut waiting in take_waiting(self.tx, self.nodes, me.trace, me.span_id)? {
                self.relate(&mut me, &mut waiting, false)?;
            }
        }
        self.own_contribution(prepared, &mut me);
        let flags = me.flags;
        if me.referable() {
            self.recent.insert(me);
        }
        Ok(flags)
    }

    fn relate_or_wait(
        &mut self,
        me: &mut Facts,
        trace: TraceId,
        target: SpanId,
    ) -> rusqlite::Result<()> {
        let earlier = match self.recent.get(trace, target) {
            Some(f) => Some(f.clone()),
            // Stored recently but not a span pairing cares about.
            None if self.seen.get(span_hash(trace, target)) == Some(false) => return Ok(()),
            None => lookup_stored(self.tx, self.nodes, self.unwritten, trace, target)?,
        };
        match earlier {
            Some(mut earlier) => {
                let before = earlier.flags;
                self.relate(&mut earlier, me, true)?;
                if earlier.flags != before {
                    self.store_flags(&earlier)?;
                }
                Ok(())
            }
            None => {
                self.pending.insert(span_hash(trace, target));
                insert_pending(self.tx, trace, target, me)
            }
        }
    }

    /// Ties `referred` (a parent or linked span) to `referring` (its child or linker). Exactly
    /// one of them is the span arriving now: `referring_arrives` says which.
    fn relate(
        &mut self,
        referred: &mut Facts,
        referring: &mut Facts,
        referring_arrives: bool,
    ) -> rusqlite::Result<()> {
        let is_parent =
            referring.parent == Some(referred.span_id) && referring.trace == referred.trace;
        match (referred.operation, referring.operation) {
            (Some(a), Some(b))
                if a == b
                    && a != Operation::Settle
                    && is_parent
                    && referred.destination == referring.destination =>
            {
                // Nested spans of one message: the second to arrive is not counted.
                let arriving = if referring_arrives {
                    referring
                } else {
                    referred
                };
                arriving.flags &= !FLAG_COUNTED;
            }
            // A consume nested in another consume of the same message was not counted; the outer
            // one carries the pairing.
            (Some(Operation::Produce), Some(Operation::Consume))
                if referring.flags & FLAG_COUNTED != 0 =>
            {
                self.pair_message(referred, referring)
            }
            _ if referred.is_client_call()
                && referring.kind == SpanKind::Server
                && is_parent
                && referred.service != referring.service =>
            {
                self.pair_call(referred, referring);
            }
            _ => {}
        }
        Ok(())
    }

    fn pair_message(&mut self, producer: &Facts, consumer: &Facts) {
        let (Some(pdest), Some(cdest)) = (&producer.destination, &consumer.destination) else {
            return;
        };
        let delay = consumer.start.saturating_sub(producer.start) / 1_000;
        let at = consumer.start;
        let base = |from, to, kind, via| EdgeChange {
            from,
            to,
            kind,
            via,
            at_unix_nanos: at,
            count: 0,
            errors: 0,
            latency_micros: Some(delay),
            weight: 1,
        };
        self.acc
            .edge(base(cdest, &consumer.service, EdgeKind::Consume, None));
        self.acc.edge(EdgeChange {
            count: 1,
            ..base(
                &producer.service,
                &consumer.service,
                EdgeKind::Dependency,
                Some(cdest),
            )
        });
        if pdest != cdest {
            self.acc.edge(EdgeChange {
                count: 1,
                ..base(pdest, cdest, EdgeKind::Route, None)
            });
        }
    }

    /// Moves a client call onto the service -> service edge, once per client span. A client
    /// stored before (not paired at arrival) had counted against its external peer: take it back.
    fn pair_call(&mut self, client: &mut Facts, server: &Facts) {
        if client.flags & FLAG_CALL_PAIRED != 0 {
            return;
        }
        let counted_external = client.flags & FLAG_COUNTED != 0;
        client.flags |= FLAG_CALL_PAIRED;
        let change = |from, to, weight: i64| EdgeChange {
            from,
            to,
            kind: EdgeKind::Call,
            via: None,
            at_unix_nanos: client.start,
            count: weight,
            errors: weight * client.error as i64,
            latency_micros: Some(client.duration_micros()),
            weight,
        };
        self.acc.edge(change(&client.service, &server.service, 1));
        if counted_external {
            if let Some(peer) = &client.peer {
                let ext = self.nodes.external(peer, None);
                self.acc.edge(change(&client.service, &ext, -1));
            }
            client.flags &= !FLAG_COUNTED;
        }
    }

    fn own_contribution(&mut self, prepared: &Prepared, me: &mut Facts) {
        let span = &prepared.span;
        let counted = me.flags & FLAG_COUNTED != 0;
        let change = |from, to, kind, count, latency| EdgeChange {
            from,
            to,
            kind,
            via: None,
            at_unix_nanos: me.start,
            count,
            errors: me.error as i64,
            latency_micros: latency,
            weight: 1,
        };
        match (&me.destination, me.operation) {
            (Some(dest), Some(Operation::Produce)) if counted => {
                self.acc.edge(change(
                    &me.service,
                    dest,
                    EdgeKind::Publish,
                    1,
                    Some(me.duration_micros()),
                ));
            }
            (Some(dest), Some(Operation::Consume)) if counted => {
                let messages = span
                    .messaging
                    .as_ref()
                    .and_then(|m| m.batch_count)
                    .map(|n| n as i64)
                    .unwrap_or_else(|| span.links.len().max(1) as i64);
                self.acc
                    .edge(change(dest, &me.service, EdgeKind::Consume, messages, None));
                if let Some(instance) = &span.service.instance {
                    self.acc
                        .consumer_instance(dest, &me.service, instance, me.start);
                }
            }
            _ if me.is_client_call() && me.flags & FLAG_CALL_PAIRED == 0 => {
                if let Some(peer) = &me.peer {
                    let system = prepared.db_system.as_deref();
                    let ext = self.nodes.external(peer, system);
                    self.acc.edge(change(
                        &me.service,
                        &ext,
                        EdgeKind::Call,
                        1,
                        Some(me.duration_micros()),
                    ));
                    me.flags |= FLAG_COUNTED;
                }
            }
            _ => {}
        }
    }

    /// Records a flag change of a span stored before this one.
    fn store_flags(&mut self, f: &Facts) -> rusqlite::Result<()> {
        if let Some(r) = self.recent.get_mut(f.trace, f.span_id) {
            r.flags = f.flags;
        }
        self.tx
            .prepare_cached("INSERT OR REPLACE INTO span_flags (trace_key, span_key, flags, start_unix_nanos) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![f.trace.key(), f.span_id.key(), f.flags, f.start as i64])?;
        Ok(())
    }
}

fn insert_pending(
    tx: &Transaction<'_>,
    trace: TraceId,
    target: SpanId,
    w: &Facts,
) -> rusqlite::Result<()> {
    let expires = match w.operation {
        Some(Operation::Consume) => u64::MAX,
        _ => w.start.saturating_add(PARENT_WAIT.as_nanos() as u64),
    };
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
    unwritten: &super::trace_index::Unwritten,
    trace: TraceId,
    span: SpanId,
) -> rusqlite::Result<Option<Facts>> {
    let mut ids = super::trace_index::blocks_of(tx, unwritten, trace.key())?;
    ids.truncate(LOOKUP_BLOCKS);
    for id in ids {
        if let Some(r) = block::trace_records(tx, id, trace)?
            .into_iter()
            .find(|r| r.span_id == span)
        {
            let mut facts = Facts::of_record(&r, nodes);
            if let Some(flags) = stored_flags(tx, trace, span)? {
                facts.flags = flags;
            }
            return Ok(Some(facts));
        }
    }
    Ok(None)
}
