//! The reconciliation pass (docs/SCALE.md): pairs what the inline pass missed when two
//! collectors sharing the database race (a publish stored through one and its consume through
//! another, each analysed before the other's insert landed: both stored, the consume waiting
//! for a publish that is stored). Runs in each collector's writer thread between groups; safe
//! on every collector at once, with no coordination:
//!
//! - a candidate is a wait (`pending_refs`, not in `pending_done`) whose referred span is in
//!   `spans`; it is settled only when a pass sees it still unsettled at least the settle delay
//!   after a pass first saw it, so a group that stored the referred span and settles the wait
//!   itself has had time to insert its `pending_done` row;
//! - what settling writes is keyed by the wait: the pairing's share goes to `pair_minutes`
//!   (a `ReplacingMergeTree` keyed by the wait and the edge, read with `FINAL`), so two
//!   collectors settling one wait count it once; flags go to `span_flags`, the delivery to
//!   `deliveries`, and the wait to `pending_done` last (a pass that stops half-way is redone
//!   by the next one and writes the same rows).
//!
//! Deliveries (`deliveries`) are also what makes a second delivery of one message count once
//! across collectors and restarts: each group's first deliveries are inserted with it, and the
//! publishes a group's consumes refer to are read back into the writer's memory first. Two
//! deliveries of one message to one service paired at the same moment by two collectors both
//! count as the first; each pass takes back all but the one of least consume id
//! (`pair_minutes` rows with `reason = 1`, keyed by the publish and the consume taken back, so
//! collectors doing it at once or again count it once).

use super::Writer;
use crate::accounting::memory::{Delivered, Delivery};
use crate::accounting::minutes::Accumulator;
use crate::accounting::pairing::take_back_delivery;
use crate::accounting::Pairing;
use crate::model::window::now_unix_nanos;
use crate::model::{SpanId, TraceId};
use crate::store::clickhouse::backlog::{self, ChBacklog, GroupBacklog};
use crate::store::clickhouse::client::{Client, ClientError, External};
use crate::store::clickhouse::rowbinary::Rows;
use crate::store::clickhouse::sql::{render, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Waits examined per pass at most.
const CANDIDATES_PER_PASS: u64 = 10_000;
/// Groups of duplicate first deliveries (publish, service, destination) taken back per pass at most.
const DUPLICATES_PER_PASS: u64 = 1_000;
/// Publishes whose deliveries are read back in one query at most.
const RECALL_CHUNK: usize = 16_384;

/// A wait: (referred trace, referred span, waiting trace, waiting span).
pub type WaitKey = (TraceId, SpanId, TraceId, SpanId);

/// Waits a pass found unsettled, and when a pass first saw each.
#[derive(Default)]
pub struct Suspects(HashMap<WaitKey, Instant>);

const CANDIDATES: &str = "SELECT hex(ref_trace) AS rt, hex(ref_span) AS rs, hex(trace_id) AS t,
    hex(span_id) AS s FROM pending_refs
    WHERE (ref_trace, ref_span) IN (SELECT trace_id, span_id FROM spans
        WHERE (trace_id, span_id) IN (SELECT ref_trace, ref_span FROM pending_refs))
    AND (ref_trace, ref_span, trace_id, span_id) NOT IN
        (SELECT ref_trace, ref_span, trace_id, span_id FROM pending_done)
    ORDER BY ref_trace, ref_span, trace_id, span_id LIMIT 1 BY ref_trace, ref_span, trace_id, span_id LIMIT ?";

/// The trace id of the consume that delivered a message, read from `deliveries`: a row keeps
/// it as all zeros when it is the message's own (a consume that carries on the publish's
/// trace, the common case: 16 random bytes a row less on disk, since version 8), and whole
/// otherwise; rows written before (always whole) read the same. A row of no consume (all
/// zeros, span id too) reads all zeros.
pub const BY_TRACE: &str =
    "if(by_trace = toFixedString('', 16) AND by_span != toFixedString('', 8),
    trace_id, by_trace)";

/// Every delivery to the (publish, destination)s where one service has two first deliveries
/// not all taken back (a consume taken back has `reason = 1` rows keyed by it). Only the
/// deliveries noted since yesterday: a race lasts seconds. (`{by_trace}`: [`BY_TRACE`].)
const DUPLICATES: &str = "SELECT hex(trace_id) AS t, hex(span_id) AS s, service, destination,
    hex({by_trace}) AS bt, hex(by_span) AS bs FROM deliveries
    WHERE day >= yesterday() AND (trace_id, span_id, destination) IN (
        SELECT trace_id, span_id, destination FROM deliveries
        WHERE day >= yesterday() AND (trace_id, span_id, {by_trace}, by_span) NOT IN
            (SELECT ref_trace, ref_span, trace_id, span_id FROM pair_minutes WHERE reason = 1)
        GROUP BY trace_id, span_id, service, destination
        HAVING uniqExact({by_trace}, by_span) > 1
        ORDER BY trace_id, span_id, service, destination LIMIT ?)
    GROUP BY trace_id, span_id, service, destination, {by_trace}, by_span";

/// A publish's first deliveries to one destination, by consuming service: the consumes that
/// made them.
type DeliveriesTo = BTreeMap<String, BTreeSet<(TraceId, SpanId)>>;

/// The duplicate first deliveries: (publish, destination) -> its deliveries by service.
pub fn duplicates(
    client: &Client,
) -> Result<BTreeMap<(TraceId, SpanId, String), DeliveriesTo>, ClientError> {
    #[derive(serde::Deserialize)]
    struct D {
        t: String,
        s: String,
        service: String,
        destination: String,
        bt: String,
        bs: String,
    }
    let q = render(
        &DUPLICATES.replace("{by_trace}", BY_TRACE),
        &[Value::U64(DUPLICATES_PER_PASS)],
    )?;
    let mut out: BTreeMap<_, DeliveriesTo> = BTreeMap::new();
    for d in client.rows::<D>(&q)? {
        let (Ok(t), Ok(s), Ok(bt), Ok(bs)) = (
            TraceId::from_hex(&d.t),
            SpanId::from_hex(&d.s),
            TraceId::from_hex(&d.bt),
            SpanId::from_hex(&d.bs),
        ) else {
            continue;
        };
        out.entry((t, s, d.destination))
            .or_default()
            .entry(d.service)
            .or_default()
            .insert((bt, bs));
    }
    Ok(out)
}

/// The waits whose referred span is stored and that nobody settled, in the order of their
/// keys (every collector settles them in the same order, so they count them alike).
pub fn candidates(client: &Client) -> Result<Vec<WaitKey>, ClientError> {
    #[derive(serde::Deserialize)]
    struct C {
        rt: String,
        rs: String,
        t: String,
        s: String,
    }
    let q = render(CANDIDATES, &[Value::U64(CANDIDATES_PER_PASS)])?;
    Ok(client
        .rows::<C>(&q)?
        .into_iter()
        .filter_map(|c| {
            Some((
                TraceId::from_hex(&c.rt).ok()?,
                SpanId::from_hex(&c.rs).ok()?,
                TraceId::from_hex(&c.t).ok()?,
                SpanId::from_hex(&c.s).ok()?,
            ))
        })
        .collect())
}

impl Suspects {
    /// Of the candidates found now, those first seen at least `settle` ago (forgetting the
    /// ones that are no longer candidates: settled meanwhile).
    pub fn due(&mut self, found: Vec<WaitKey>, settle: Duration, now: Instant) -> Vec<WaitKey> {
        let mut next = HashMap::with_capacity(found.len());
        let mut due = Vec::new();
        for key in found {
            let first = self.0.get(&key).copied().unwrap_or(now);
            if now.saturating_duration_since(first) >= settle {
                due.push(key);
            } else {
                next.insert(key, first);
            }
        }
        self.0 = next;
        due
    }
}

/// Reads back into `delivered` which services the publishes reached, as stored by any
/// collector, leaving out the deliveries made by `except` (the consume being settled again).
pub fn recall(
    client: &Client,
    delivered: &mut Delivered,
    publishes: &[(TraceId, SpanId)],
    except: Option<(TraceId, SpanId)>,
) -> Result<(), ClientError> {
    #[derive(serde::Deserialize)]
    struct D {
        t: String,
        s: String,
        service: String,
        destination: String,
    }
    let (et, es) = except.unwrap_or((TraceId([0; 16]), SpanId([0; 8])));
    let q = render(
        &format!(
            "SELECT DISTINCT hex(trace_id) AS t, hex(span_id) AS s, service, destination
             FROM deliveries WHERE (trace_id, span_id) IN publishes
             AND NOT ({BY_TRACE} = ? AND by_span = ?)"
        ),
        &[Value::Trace(et), Value::Span(es)],
    )?;
    for chunk in publishes.chunks(RECALL_CHUNK) {
        let mut rows = Rows::default();
        for (t, s) in chunk {
            rows.fixed(&t.0).fixed(&s.0);
            rows.end_row();
        }
        let table = External {
            name: "publishes",
            structure: "t FixedString(16), s FixedString(8)",
            rows: &rows,
        };
        let asked: std::collections::HashSet<_> = chunk.iter().collect();
        for d in client.rows_with::<D>(&q, &[table])? {
            let (Ok(t), Ok(s)) = (TraceId::from_hex(&d.t), SpanId::from_hex(&d.s)) else {
                continue;
            };
            if asked.contains(&(t, s)) {
                delivered.remember(t, s, &d.service, &d.destination);
            }
        }
    }
    Ok(())
}

pub const DELIVERY_COLUMNS: &str =
    "day, trace_id, span_id, service, destination, by_trace, by_span";

/// The first deliveries as rows of `deliveries` (their day: today, when they were noted); the
/// consume's trace id left out when it is the message's own ([`BY_TRACE`]).
pub fn delivery_rows(journal: &[Delivery]) -> Rows {
    let mut rows = Rows::default();
    let now = now_unix_nanos();
    for d in journal {
        let (bt, bs) = d.by.unwrap_or((TraceId([0; 16]), SpanId([0; 8])));
        let bt = if bt == d.trace { TraceId([0; 16]) } else { bt };
        rows.date(now)
            .fixed(&d.trace.0)
            .fixed(&d.span.0)
            .str(&d.service)
            .str(&d.destination)
            .fixed(&bt.0)
            .fixed(&bs.0);
        rows.end_row();
    }
    rows
}

pub const PAIR_COLUMNS: &str = "day, ref_trace, ref_span, trace_id, span_id, reason, minute, from_node, to_node, kind, via, count, errors, latency_sum_micros, latency, first_seen_unix_nanos, last_seen_unix_nanos, latency_buckets, latency_counts";

impl Writer {
    /// One reconciliation pass, if one is due: settles the waits found unsettled for the
    /// settle delay. Answers how many it settled.
    pub(super) fn reconcile(&mut self, now: Instant) -> Result<usize, ClientError> {
        let taken_back = self.take_back_duplicates()?;
        let found = candidates(&self.client)?;
        let due = self.suspects.due(found, self.settle, now);
        if due.is_empty() {
            return Ok(taken_back);
        }
        let mut pairs = Rows::default();
        let mut done = Vec::new();
        let mut group = GroupBacklog::default();
        let mut journal = Vec::new();
        for key in &due {
            if self.settle_one(*key, &mut group, &mut pairs, &mut journal)? {
                done.push(*key);
            }
        }
        let [flags, _, _] = backlog::encode(&group);
        let deliveries = delivery_rows(&journal);
        let mut pending_done = Rows::default();
        let today = now_unix_nanos();
        for (rt, rs, t, s) in &done {
            pending_done
                .date(today)
                .fixed(&rt.0)
                .fixed(&rs.0)
                .fixed(&t.0)
                .fixed(&s.0);
            pending_done.end_row();
        }
        // The wait is marked settled last: a pass stopped before that is redone whole.
        let inserts: [(&str, &str, &Rows); 4] = [
            ("pair_minutes", PAIR_COLUMNS, &pairs),
            ("span_flags", backlog::FLAG_COLUMNS, &flags),
            ("deliveries", DELIVERY_COLUMNS, &deliveries),
            ("pending_done", backlog::DONE_COLUMNS, &pending_done),
        ];
        for (table, columns, rows) in inserts {
            if rows.count > 0 {
                self.client.insert(table, columns, &rows.buf)?;
            }
        }
        backlog::mark_failed(&self.client, &group)?;
        Ok(taken_back + done.len())
    }

    /// Takes back the duplicate first deliveries of a message to one service (all but the one
    /// of least consume id; the route's message too when the destination's only consuming
    /// service is this one, so that every one of them counted it). Answers how many.
    fn take_back_duplicates(&mut self) -> Result<usize, ClientError> {
        let found = duplicates(&self.client)?;
        let mut pairs = Rows::default();
        let mut taken = 0;
        for ((pt, ps, _), by_service) in &found {
            let route = by_service.len() == 1;
            for consumes in by_service.values() {
                for &(ct, cs) in consumes.iter().skip(1) {
                    let mut group = GroupBacklog::default();
                    let mut backlog = ChBacklog {
                        client: &self.client,
                        group: &mut group,
                        flag_version: &mut self.flag_version,
                    };
                    use crate::accounting::pairing::Backlog as _;
                    let (Some(producer), Some(consumer)) = (
                        backlog.stored(&mut self.nodes, *pt, *ps)?,
                        backlog.stored(&mut self.nodes, ct, cs)?,
                    ) else {
                        continue;
                    };
                    let mut acc = Accumulator::default();
                    take_back_delivery(&mut acc, &producer, &consumer, route);
                    pair_rows(&mut pairs, (*pt, *ps, ct, cs), 1, &acc.drain().edges);
                    taken += 1;
                }
            }
        }
        if pairs.count > 0 {
            self.client
                .insert("pair_minutes", PAIR_COLUMNS, &pairs.buf)?;
        }
        Ok(taken)
    }

    /// Pairs one wait from what is stored of its two spans; false when either is gone.
    fn settle_one(
        &mut self,
        (rt, rs, t, s): WaitKey,
        group: &mut GroupBacklog,
        pairs: &mut Rows,
        journal: &mut Vec<Delivery>,
    ) -> Result<bool, ClientError> {
        let mut backlog = ChBacklog {
            client: &self.client,
            group,
            flag_version: &mut self.flag_version,
        };
        use crate::accounting::pairing::Backlog as _;
        let (Some(mut referred), Some(mut waiting)) = (
            backlog.stored(&mut self.nodes, rt, rs)?,
            backlog.stored(&mut self.nodes, t, s)?,
        ) else {
            return Ok(false);
        };
        // What this publish reached through other consumes, read afresh with this one's own
        // delivery left out (another pass may have settled it already): every pass of this
        // wait counts it alike, whatever this collector remembers.
        let mut delivered = Delivered::journaled(1);
        recall(&self.client, &mut delivered, &[(rt, rs)], Some((t, s)))?;
        // And those this pass settled before (in the same order on every collector).
        for d in journal.iter() {
            if (d.trace, d.span) == (rt, rs) && d.by != Some((t, s)) {
                delivered.remember(rt, rs, &d.service, &d.destination);
            }
        }
        let mut acc = Accumulator::default();
        let mut pairing = Pairing {
            backlog: &mut backlog,
            acc: &mut acc,
            recent: &mut self.recent,
            seen: &self.seen,
            pending: &mut self.pending,
            nodes: &mut self.nodes,
            delivered: &mut delivered,
        };
        pairing.reconcile(&mut referred, &mut waiting)?;
        journal.extend(delivered.take_journal());
        pair_rows(pairs, (rt, rs, t, s), 0, &acc.drain().edges);
        Ok(true)
    }
}

/// The `pair_minutes` rows of one wait (referred span, waiting span) for `reason` (0: the
/// pairing's share, 1: a duplicate first delivery taken back), one per edge delta.
fn pair_rows(
    pairs: &mut Rows,
    (rt, rs, t, s): WaitKey,
    reason: u8,
    edges: &[(
        crate::accounting::minutes::EdgeMinuteKey,
        crate::accounting::minutes::EdgeDelta,
    )],
) {
    for (k, d) in edges {
        pairs
            .date(super::minute_nanos(k.minute))
            .fixed(&rt.0)
            .fixed(&rs.0)
            .fixed(&t.0)
            .fixed(&s.0)
            .u8(reason);
        super::edge_fields(pairs, k, d);
        pairs.end_row();
    }
}
