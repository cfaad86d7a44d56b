//! Per-minute series of one node over a window, from the statistics tables (for sparklines).

use super::StoreError;
use crate::model::{EdgeKind, MinuteRow, TimeWindow};
use rusqlite::{params, Connection};
use std::collections::BTreeMap;

/// Minutes with activity, keyed by unix minute.
pub fn node_minutes(
    conn: &Connection,
    node_id: &str,
    window: TimeWindow,
) -> Result<BTreeMap<i64, MinuteRow>, StoreError> {
    let (first, last) = window.minutes();
    let consume = EdgeKind::Consume.as_i64();
    let mut out: BTreeMap<i64, MinuteRow> = BTreeMap::new();
    let service = node_id.starts_with("service:");
    let counts = if service {
        "SELECT minute, spans, errors FROM service_minutes WHERE service = ?1 AND minute BETWEEN ?2 AND ?3 AND ?4 >= 0 AND ?5 >= 0"
    } else {
        // Messages in: published to it, or routed into it (a subscription, a bound queue);
        // errors: the failures of its consumes that their consume rows do not hold.
        "SELECT minute, SUM(CASE WHEN kind = ?5 THEN 0 ELSE count END), SUM(CASE WHEN kind = ?5 THEN errors ELSE 0 END) FROM edge_minutes
         WHERE ((to_node = ?1 AND kind IN (?4, ?6)) OR (from_node = ?1 AND kind = ?5)) AND minute BETWEEN ?2 AND ?3 GROUP BY minute"
    };
    let mut stmt = conn.prepare_cached(counts)?;
    let mut rows = if service {
        stmt.query(params![node_id, first, last, 0, 0])?
    } else {
        stmt.query(params![
            node_id,
            first,
            last,
            EdgeKind::Publish.as_i64(),
            EdgeKind::Failure.as_i64(),
            EdgeKind::Route.as_i64()
        ])?
    };
    while let Some(r) = rows.next()? {
        let m = out.entry(r.get(0)?).or_default();
        m.count += r.get::<_, i64>(1)?;
        m.errors += r.get::<_, i64>(2)?;
    }
    // Consume edges into a service; consume and route edges out of a destination (an
    // exchange's messages are consumed from the queues it routes to).
    let delays = if service {
        "SELECT minute, SUM(count), SUM(errors), SUM(latency_sum_micros) FROM edge_minutes WHERE to_node = ?1 AND minute BETWEEN ?2 AND ?3 AND kind IN (?4, ?5) GROUP BY minute"
    } else {
        "SELECT minute, SUM(count), SUM(errors), SUM(latency_sum_micros) FROM edge_minutes WHERE from_node = ?1 AND minute BETWEEN ?2 AND ?3 AND kind IN (?4, ?5) GROUP BY minute"
    };
    let mut stmt = conn.prepare_cached(delays)?;
    let second = if service {
        consume
    } else {
        EdgeKind::Route.as_i64()
    };
    let mut rows = stmt.query(params![node_id, first, last, consume, second])?;
    while let Some(r) = rows.next()? {
        let m = out.entry(r.get(0)?).or_default();
        m.delay_count += r.get::<_, i64>(1)?;
        if !service {
            m.errors += r.get::<_, i64>(2)?;
        }
        m.delay_sum_micros += r.get::<_, i64>(3)?;
    }
    Ok(out)
}

/// A destination's traced partitions over a window: per partition and service, the messages
/// published and consumed (`TopologyReads::partition_traffic`).
pub fn partition_traffic(
    conn: &Connection,
    destination_id: &str,
    window: TimeWindow,
) -> Result<Vec<crate::model::PartitionTraffic>, StoreError> {
    let (first, last) = window.minutes();
    let mut stmt = conn.prepare_cached(
        "SELECT partition_id, service, SUM(published), SUM(consumed) FROM partition_minutes
         WHERE destination = ?1 AND minute BETWEEN ?2 AND ?3
         GROUP BY partition_id, service ORDER BY partition_id, service LIMIT ?4",
    )?;
    let limit = crate::store::interface::MAX_PARTITION_ROWS as i64;
    let rows = stmt.query_map(params![destination_id, first, last, limit], |r| {
        Ok(crate::model::PartitionTraffic {
            partition: r.get(0)?,
            service: r.get(1)?,
            published: r.get::<_, i64>(2)?.max(0) as u64,
            consumed: r.get::<_, i64>(3)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
