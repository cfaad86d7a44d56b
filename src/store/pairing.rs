//! Ingest-time analysis of each new span inside the writer's transaction: insert it, tie it
//! to the spans it refers to (parent, links) or that wait for it, and record its edge
//! statistics. Arrival order does not matter: a reference to a span not stored yet waits in
//! `pending_refs` until that span arrives.
//!
//! Counting rules (logical messages, not spans):
//! - a produce span nested in another produce span (parent/child) is one message: whichever of
//!   the two arrives second is not counted; likewise a consume span nested in a consume span;
//! - a consume span tied to a produce span (parent or link) adds the publish-to-consume delay
//!   (consume start minus produce start) to the consume edge, a service dependency through the
//!   destination, and a route edge when the two destinations differ (exchange -> queue);
//! - a CLIENT span counts as a call to its peer (external node) until a SERVER span of another
//!   service names it as parent; then the call moves to the service -> service edge.

use super::accumulate::{Accumulator, EdgeChange};
use super::insert::{insert_span, Prepared};
use crate::model::{EdgeKind, NodeKey, Operation, Span, SpanId, SpanKind, TraceId};
use rusqlite::{params, OptionalExtension, Transaction};

pub const FLAG_COUNTED: i64 = 1;
pub const FLAG_CALL_PAIRED: i64 = 2;

/// What pairing needs to know of a span, from the batch or from the database.
#[derive(Clone, Debug)]
pub struct Facts {
    pub id: i64,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub service: NodeKey,
    pub kind: SpanKind,
    pub operation: Option<Operation>,
    pub destination: Option<NodeKey>,
    pub start: u64,
    pub end: u64,
    pub error: bool,
    pub peer: Option<String>,
    pub flags: i64,
}

impl Facts {
    fn of(id: i64, span: &Span, flags: i64) -> Facts {
        Facts {
            id,
            span_id: span.span_id,
            parent: span.parent_span_id,
            service: NodeKey::service(&span.service.name, span.service.namespace.as_deref()),
            kind: span.kind,
            operation: span.messaging.as_ref().map(|m| m.operation),
            destination: span
                .messaging
                .as_ref()
                .map(|m| NodeKey::destination(&m.system, &m.destination)),
            start: span.start_unix_nanos,
            end: span.end_unix_nanos,
            error: span.is_error(),
            peer: span.peer.clone(),
            flags,
        }
    }

    fn duration_micros(&self) -> u64 {
        self.end.saturating_sub(self.start) / 1_000
    }

    fn is_client_call(&self) -> bool {
        self.kind == SpanKind::Client && self.operation.is_none()
    }

    /// Whether a later span may refer to this one in a way pairing cares about.
    fn can_be_referred(&self) -> bool {
        self.operation.is_some() || self.is_client_call()
    }

    /// Whether this span waits for its parent when the parent is not stored yet.
    fn waits_for_parent(&self) -> bool {
        self.operation.is_some() || self.kind == SpanKind::Server
    }
}

/// Stores one span and records what it adds. Returns false for a duplicate (already stored).
pub fn ingest_span(
    tx: &Transaction<'_>,
    acc: &mut Accumulator,
    prepared: &Prepared,
    resource_id: Option<i64>,
) -> rusqlite::Result<bool> {
    let span = &prepared.span;
    let provisional = match span.messaging.as_ref().map(|m| m.operation) {
        Some(Operation::Produce | Operation::Consume) => FLAG_COUNTED,
        _ => 0,
    };
    let Some(id) = insert_span(tx, prepared, resource_id, provisional)? else {
        return Ok(false);
    };
    let mut me = Facts::of(id, span, provisional);
    acc.service_span(&me.service, me.start, me.error);

    let mut refs: Vec<(TraceId, SpanId)> = Vec::new();
    if let Some(parent) = span.parent_span_id.filter(|_| me.waits_for_parent()) {
        refs.push((span.trace_id, parent));
    }
    if me.operation == Some(Operation::Consume) {
        refs.extend(span.links.iter().map(|l| (l.trace_id, l.span_id)));
    }
    refs.sort();
    refs.dedup();
    for (trace, target) in refs {
        relate_or_wait(tx, acc, &mut me, trace, target)?;
    }
    if me.can_be_referred() {
        for mut waiting in take_waiting(tx, span.trace_id, span.span_id)? {
            relate(tx, acc, &mut me, &mut waiting, false)?;
        }
    }
    if me.flags != provisional {
        tx.prepare_cached("UPDATE spans SET flags = ?1 WHERE id = ?2")?
            .execute(params![me.flags, me.id])?;
    }
    own_contribution(acc, span, &me);
    Ok(true)
}

fn relate_or_wait(
    tx: &Transaction<'_>,
    acc: &mut Accumulator,
    me: &mut Facts,
    trace: TraceId,
    target: SpanId,
) -> rusqlite::Result<()> {
    match lookup(tx, trace, target)? {
        Some(mut earlier) => relate(tx, acc, &mut earlier, me, true),
        None => {
            tx.prepare_cached("INSERT OR IGNORE INTO pending_refs (ref_trace, ref_span, waiting_id, created_unix_nanos) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![trace.key(), target.key(), me.id, me.start as i64])?;
            Ok(())
        }
    }
}

/// Ties `referred` (a parent or linked span) to `referring` (its child or linker). Exactly one of
/// them is the span arriving now: `referring_arrives` says which.
fn relate(
    tx: &Transaction<'_>,
    acc: &mut Accumulator,
    referred: &mut Facts,
    referring: &mut Facts,
    referring_arrives: bool,
) -> rusqlite::Result<()> {
    let is_parent = referring.parent == Some(referred.span_id);
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
        (Some(Operation::Produce), Some(Operation::Consume)) => {
            pair_message(acc, referred, referring)
        }
        _ if referred.is_client_call()
            && referring.kind == SpanKind::Server
            && is_parent
            && referred.service != referring.service =>
        {
            pair_call(tx, acc, referred, referring, !referring_arrives)?;
        }
        _ => {}
    }
    Ok(())
}

fn pair_message(acc: &mut Accumulator, producer: &Facts, consumer: &Facts) {
    let (Some(pdest), Some(cdest)) = (&producer.destination, &consumer.destination) else {
        return;
    };
    let delay = consumer.start.saturating_sub(producer.start) / 1_000;
    let base = |from, to, kind, via| EdgeChange {
        from,
        to,
        kind,
        via,
        at_unix_nanos: consumer.start,
        count: 0,
        errors: 0,
        latency_micros: None,
        weight: 1,
    };
    acc.edge(EdgeChange {
        latency_micros: Some(delay),
        ..base(cdest, &consumer.service, EdgeKind::Consume, "")
    });
    acc.edge(EdgeChange {
        count: 1,
        latency_micros: Some(delay),
        ..base(
            &producer.service,
            &consumer.service,
            EdgeKind::Dependency,
            &cdest.id,
        )
    });
    if pdest != cdest {
        acc.edge(EdgeChange {
            count: 1,
            latency_micros: Some(delay),
            ..base(pdest, cdest, EdgeKind::Route, "")
        });
    }
}

/// Moves a client call onto the service -> service edge, once per client span.
fn pair_call(
    tx: &Transaction<'_>,
    acc: &mut Accumulator,
    client: &mut Facts,
    server: &Facts,
    client_arrives: bool,
) -> rusqlite::Result<()> {
    if client.flags & FLAG_CALL_PAIRED != 0 {
        return Ok(());
    }
    client.flags |= FLAG_CALL_PAIRED;
    let change = |from, to, weight: i64| EdgeChange {
        from,
        to,
        kind: EdgeKind::Call,
        via: "",
        at_unix_nanos: client.start,
        count: weight,
        errors: weight * client.error as i64,
        latency_micros: Some(client.duration_micros()),
        weight,
    };
    acc.edge(change(&client.service, &server.service, 1));
    if !client_arrives {
        // The client was stored before: take back its external call, and remember the pairing.
        if let Some(peer) = &client.peer {
            acc.edge(change(&client.service, &NodeKey::external(peer, None), -1));
        }
        tx.prepare_cached("UPDATE spans SET flags = ?1 WHERE id = ?2")?
            .execute(params![client.flags, client.id])?;
    }
    Ok(())
}

fn own_contribution(acc: &mut Accumulator, span: &Span, me: &Facts) {
    let counted = me.flags & FLAG_COUNTED != 0;
    let error = me.error as i64;
    let change = |from, to, kind, count, latency| EdgeChange {
        from,
        to,
        kind,
        via: "",
        at_unix_nanos: me.start,
        count,
        errors: error,
        latency_micros: latency,
        weight: 1,
    };
    match (&me.destination, me.operation) {
        (Some(dest), Some(Operation::Produce)) if counted => {
            acc.edge(change(
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
            acc.edge(change(dest, &me.service, EdgeKind::Consume, messages, None));
            if let Some(instance) = &span.service.instance {
                acc.consumer_instance(dest, &me.service, instance, me.start);
            }
        }
        _ if me.is_client_call() && me.flags & FLAG_CALL_PAIRED == 0 => {
            if let Some(peer) = &me.peer {
                let system = span
                    .attributes
                    .iter()
                    .find(|(k, _)| k == "db.system" || k == "db.system.name")
                    .and_then(|(_, v)| v.as_str());
                acc.edge(change(
                    &me.service,
                    &NodeKey::external(peer, system),
                    EdgeKind::Call,
                    1,
                    Some(me.duration_micros()),
                ));
            }
        }
        _ => {}
    }
}

const FACTS_COLUMNS: &str = "id, span_key, parent_key, service, service_namespace, kind, msg_operation, msg_system, msg_destination, start_unix_nanos, end_unix_nanos, status_code, peer, flags";

fn facts_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Facts> {
    let service: String = r.get(3)?;
    let namespace: Option<String> = r.get(4)?;
    let system: Option<String> = r.get(7)?;
    let destination: Option<String> = r.get(8)?;
    Ok(Facts {
        id: r.get(0)?,
        span_id: SpanId::from_key(r.get(1)?).unwrap_or(SpanId([0xff; 8])),
        parent: r.get::<_, Option<i64>>(2)?.and_then(SpanId::from_key),
        service: NodeKey::service(&service, namespace.as_deref()),
        kind: SpanKind::from_i32(r.get(5)?),
        operation: r
            .get::<_, Option<String>>(6)?
            .and_then(|o| Operation::parse(&o)),
        destination: system
            .zip(destination)
            .map(|(s, d)| NodeKey::destination(&s, &d)),
        start: r.get::<_, i64>(9)? as u64,
        end: r.get::<_, i64>(10)? as u64,
        error: r.get::<_, i64>(11)? == 2,
        peer: r.get(12)?,
        flags: r.get(13)?,
    })
}

fn lookup(tx: &Transaction<'_>, trace: TraceId, span: SpanId) -> rusqlite::Result<Option<Facts>> {
    const SQL: &str = const_format::concatcp!(
        "SELECT ",
        FACTS_COLUMNS,
        " FROM spans WHERE trace_key = ?1 AND span_key = ?2 AND trace_id = ?3"
    );
    tx.prepare_cached(SQL)?
        .query_row(
            params![trace.key(), span.key(), trace.as_bytes()],
            facts_from_row,
        )
        .optional()
}

/// The spans waiting for (trace, span), removed from the waiting list.
fn take_waiting(
    tx: &Transaction<'_>,
    trace: TraceId,
    span: SpanId,
) -> rusqlite::Result<Vec<Facts>> {
    const SQL: &str = const_format::concatcp!(
        "SELECT ", FACTS_COLUMNS, " FROM spans WHERE id IN (SELECT waiting_id FROM pending_refs WHERE ref_trace = ?1 AND ref_span = ?2)"
    );
    let waiting = tx
        .prepare_cached(SQL)?
        .query_map(params![trace.key(), span.key()], facts_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if !waiting.is_empty() {
        tx.prepare_cached("DELETE FROM pending_refs WHERE ref_trace = ?1 AND ref_span = ?2")?
            .execute(params![trace.key(), span.key()])?;
    }
    Ok(waiting)
}
