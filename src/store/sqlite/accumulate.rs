//! Merges a batch's per-minute statistics (`accounting::minutes`) into the statistics tables,
//! inside the batch's transaction.

use crate::accounting::minutes::{Accumulator, EdgeDelta, EdgeMinuteKey, Observed};
use crate::model::sketch::Sketch;
use foldhash::{HashMap, HashSet};
use rusqlite::{params, OptionalExtension, Transaction};

/// Minutes of edge totals kept in memory behind the newest one seen, so that a busy edge is
/// rewritten without being read back first.
const CACHED_MINUTES: i64 = 3;

/// Committed totals of recent minutes (plus the batch being flushed). Cleared whenever a
/// transaction rolls back, since it may then hold uncommitted values. Owned by the writer.
#[derive(Default)]
pub struct Totals(HashMap<EdgeMinuteKey, EdgeDelta>);

impl Totals {
    pub fn reset(&mut self) {
        self.0.clear();
    }
}

/// Merges everything into the tables inside the batch's transaction, then empties itself.
/// `known` remembers node ids already written, so nodes are inserted once. Returns what the
/// collector's own metrics take of the batch, to be recorded once it is committed.
pub fn flush(
    acc: &mut Accumulator,
    totals: &mut Totals,
    tx: &Transaction<'_>,
    known: &mut HashSet<String>,
    now: u64,
) -> rusqlite::Result<Observed> {
    let mut drained = acc.drain();
    let observed = drained.observed();
    let mut insert_node = tx.prepare_cached(
        "INSERT OR IGNORE INTO nodes (id, kind, name, system, namespace, first_seen_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for node in drained.nodes {
        if known.contains(&node.id) {
            continue;
        }
        insert_node.execute(params![
            node.id,
            node.kind.as_str(),
            node.name,
            node.system,
            node.namespace,
            now as i64
        ])?;
        known.insert(node.id.clone());
    }
    let mut select = tx.prepare_cached(
        "SELECT count, errors, latency_sum_micros, latency, first_seen_unix_nanos, last_seen_unix_nanos FROM edge_minutes
         WHERE minute = ?1 AND from_node = ?2 AND to_node = ?3 AND kind = ?4 AND via = ?5",
    )?;
    let mut upsert = tx.prepare_cached(
        "INSERT OR REPLACE INTO edge_minutes (minute, from_node, to_node, kind, via, count, errors, latency_sum_micros, latency,
         first_seen_unix_nanos, last_seen_unix_nanos) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    let mut newest = i64::MIN;
    for (k, d) in drained.edges {
        newest = newest.max(k.minute);
        let total = match totals.0.entry(k.clone()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                let stored = select
                    .query_row(
                        params![
                            k.minute,
                            k.from.0.id,
                            k.to.0.id,
                            k.kind.as_i64(),
                            k.via_id()
                        ],
                        |r| {
                            let blob: Option<Vec<u8>> = r.get(3)?;
                            Ok(EdgeDelta {
                                count: r.get(0)?,
                                errors: r.get(1)?,
                                latency_sum_micros: r.get(2)?,
                                latency: Sketch::decode(blob.as_deref().unwrap_or_default()),
                                first_seen: r.get::<_, i64>(4)? as u64,
                                last_seen: r.get::<_, i64>(5)? as u64,
                            })
                        },
                    )
                    .optional()?;
                v.insert(stored.unwrap_or_default())
            }
        };
        total.merge(&d);
        let blob = (!total.latency.is_empty()).then(|| total.latency.encode());
        upsert.execute(params![
            k.minute,
            k.from.0.id,
            k.to.0.id,
            k.kind.as_i64(),
            k.via_id(),
            total.count,
            total.errors,
            total.latency_sum_micros,
            blob,
            total.first_seen as i64,
            total.last_seen as i64
        ])?;
    }
    if newest != i64::MIN {
        totals.0.retain(|k, _| k.minute >= newest - CACHED_MINUTES);
    }
    let mut svc = tx.prepare_cached(
        "INSERT INTO service_minutes (minute, service, spans, errors) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (minute, service) DO UPDATE SET spans = spans + excluded.spans, errors = errors + excluded.errors",
    )?;
    for s in drained.services {
        svc.execute(params![s.minute, s.service.id, s.spans, s.errors])?;
    }
    let mut inst = tx.prepare_cached(
        "INSERT OR IGNORE INTO consumer_instances (minute, destination, service, instance) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for i in drained.instances {
        inst.execute(params![i.minute, i.destination, i.service, i.instance])?;
    }
    let mut part = tx.prepare_cached(
        "INSERT INTO partition_minutes (destination, minute, partition_id, service, published, consumed) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (destination, minute, partition_id, service) DO UPDATE SET published = published + excluded.published, consumed = consumed + excluded.consumed",
    )?;
    for p in drained.partitions {
        part.execute(params![
            p.destination.id,
            p.minute,
            p.partition,
            p.service.id,
            p.published,
            p.consumed
        ])?;
    }
    Ok(observed)
}
