//! Broker snapshots (discovery) in the SQLite file: written by the writer, one per broker and
//! minute, with each destination's and flow's figures kept apart for their history.

use crate::model::broker::{BrokerFlow, FlowKind};
use crate::model::window::unix_minute;
use crate::model::{BrokerSnapshot, Figures, NodeKey, TimeWindow};
use crate::store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Snapshots already decoded, by broker and minute (with the poll's time, which a later poll
/// in the same minute changes): a broker with thousands of queues is a large JSON document,
/// and every topology read of a window needs it.
#[derive(Default)]
pub struct Decoded(Mutex<HashMap<SnapshotKey, (i64, Arc<BrokerSnapshot>)>>);

/// A broker and a unix minute.
type SnapshotKey = (String, i64);

/// Snapshots kept decoded at most: a topology read needs two per broker (its newest and
/// oldest in the window), and a large broker's snapshot takes megabytes decoded.
const DECODED_MAX: usize = 16;

/// The key of a flow's figures: `from>to>kind`, by node ids.
pub fn flow_key(snapshot: &BrokerSnapshot, flow: &BrokerFlow) -> String {
    let (from, to) = flow_nodes(snapshot, flow);
    format!("{from}>{to}>{}", flow_kind(flow.kind))
}

fn flow_kind(kind: FlowKind) -> &'static str {
    match kind {
        FlowKind::Publish => "publish",
        FlowKind::Consume => "consume",
        FlowKind::Route => "route",
        FlowKind::DeadLetter => "dead_letter",
    }
}

/// The node ids a flow joins.
pub fn flow_nodes(snapshot: &BrokerSnapshot, flow: &BrokerFlow) -> (String, String) {
    let dest = |name: &str| NodeKey::destination(&snapshot.system, name).id;
    let service = |name: &str| service_id(snapshot, name);
    match flow.kind {
        FlowKind::Publish => (service(&flow.from), dest(&flow.to)),
        FlowKind::Consume => (dest(&flow.from), service(&flow.to)),
        FlowKind::Route | FlowKind::DeadLetter => (dest(&flow.from), dest(&flow.to)),
    }
}

/// A service's node id: a service, or an external peer when the broker could not name it.
pub fn service_id(snapshot: &BrokerSnapshot, name: &str) -> String {
    let unnamed = snapshot
        .services
        .iter()
        .any(|s| s.name == name && s.named_by == crate::model::broker::NamedBy::UserAndProduct);
    if unnamed {
        NodeKey::external(name, None).id
    } else {
        NodeKey::service(name, None).id
    }
}

/// JSON for a column (serde_json fails only on maps with non-string keys, which these types
/// do not have; an error still rolls the transaction back instead of storing half).
fn json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Stores one snapshot (in the writer's transaction).
pub fn write(tx: &Transaction<'_>, snapshot: &BrokerSnapshot) -> rusqlite::Result<()> {
    let minute = unix_minute(snapshot.taken_unix_nanos);
    let data = json(snapshot)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO broker_snapshots (broker, minute, taken_unix_nanos, data) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        snapshot.broker,
        minute,
        i64::try_from(snapshot.taken_unix_nanos).unwrap_or(i64::MAX),
        data
    ])?;
    let mut figures = tx.prepare_cached(
        "INSERT OR REPLACE INTO broker_figures (node, minute, broker, figures) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut put = |node: String, f: &Figures| -> rusqlite::Result<()> {
        if !f.is_empty() {
            figures.execute(params![node, minute, snapshot.broker, json(f)?])?;
        }
        Ok(())
    };
    for d in &snapshot.destinations {
        put(
            NodeKey::destination(&snapshot.system, &d.name).id,
            &d.figures,
        )?;
    }
    for flow in &snapshot.flows {
        put(flow_key(snapshot, flow), &flow.figures)?;
    }
    Ok(())
}

/// Each broker's newest snapshot within the window.
pub fn latest(
    conn: &Connection,
    window: TimeWindow,
    decoded: &Decoded,
) -> Result<Vec<Arc<BrokerSnapshot>>, StoreError> {
    one_per_broker(conn, window, decoded, "MAX")
}

/// Each broker's oldest snapshot within the window (what trends compare the newest with).
pub fn earliest(
    conn: &Connection,
    window: TimeWindow,
    decoded: &Decoded,
) -> Result<Vec<Arc<BrokerSnapshot>>, StoreError> {
    one_per_broker(conn, window, decoded, "MIN")
}

/// Each broker's snapshot at the `pick` (`MIN` or `MAX`) minute of a window (`?1`, `?2`):
/// read from the index `broker_snapshots_taken` alone, never from the documents.
fn pick_sql(pick: &'static str) -> String {
    // `pick` is one of two constants, never input.
    format!(
        "SELECT broker, minute, taken_unix_nanos FROM broker_snapshots AS s WHERE minute = (
             SELECT {pick}(minute) FROM broker_snapshots WHERE broker = s.broker AND minute BETWEEN ?1 AND ?2)
         ORDER BY broker"
    )
}

fn one_per_broker(
    conn: &Connection,
    window: TimeWindow,
    decoded: &Decoded,
    pick: &'static str,
) -> Result<Vec<Arc<BrokerSnapshot>>, StoreError> {
    let (first, last) = window.minutes();
    let mut stmt = conn.prepare_cached(&pick_sql(pick))?;
    let newest: Vec<(String, i64, i64)> = stmt
        .query_map(params![first, last], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(newest.len());
    for (broker, minute, taken) in newest {
        let key = (broker, minute);
        let known = decoded.0.lock().ok().and_then(|m| {
            m.get(&key)
                .filter(|(t, _)| *t == taken)
                .map(|(_, s)| s.clone())
        });
        if let Some(s) = known {
            out.push(s);
            continue;
        }
        let data: Option<String> = conn
            .prepare_cached("SELECT data FROM broker_snapshots WHERE broker = ?1 AND minute = ?2")?
            .query_row(params![key.0, key.1], |r| r.get(0))
            .optional()?;
        // A row this build cannot read (written by another version) is skipped, not fatal.
        let Some(snapshot) = data.and_then(|d| serde_json::from_str::<BrokerSnapshot>(&d).ok())
        else {
            continue;
        };
        let snapshot = Arc::new(snapshot);
        // A std Mutex: held to look up or insert, never across IO.
        if let Ok(mut m) = decoded.0.lock() {
            if m.len() >= DECODED_MAX {
                m.clear();
            }
            m.insert(key, (taken, snapshot.clone()));
        }
        out.push(snapshot);
    }
    Ok(out)
}

/// One node's (or flow's) broker figures per minute of the window, newest poll of each minute
/// (several brokers reporting one node: the first by name).
pub fn history(
    conn: &Connection,
    node: &str,
    window: TimeWindow,
) -> Result<BTreeMap<i64, Figures>, StoreError> {
    let (first, last) = window.minutes();
    let mut stmt = conn.prepare_cached(
        "SELECT minute, figures FROM broker_figures WHERE node = ?1 AND minute BETWEEN ?2 AND ?3 ORDER BY minute, broker DESC",
    )?;
    let rows = stmt.query_map(params![node, first, last], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (minute, json) = row?;
        if let Ok(f) = serde_json::from_str::<Figures>(&json) {
            out.insert(minute, f);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::pick_sql;

    /// Finding the newest (or oldest) snapshot of a window reads the small index, not the
    /// snapshots: a seek through `broker_snapshots` itself reads every document it compares
    /// (each one b-tree key), which cost a topology read 82 ms of CPU with an hour of
    /// snapshots of a 2,000-queue broker.
    #[test]
    fn the_pick_of_a_window_reads_only_the_index() {
        let mut conn = rusqlite::Connection::open_in_memory().expect("memory");
        super::super::schema::migrate(&mut conn).expect("migrate");
        for pick in ["MIN", "MAX"] {
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", pick_sql(pick)))
                .expect("plan");
            let plan: Vec<String> = stmt
                .query_map([0, 1], |r| r.get::<_, String>(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            let scans: Vec<&String> = plan
                .iter()
                .filter(|l| l.contains("broker_snapshots") || l.starts_with("SCAN"))
                .collect();
            assert!(
                !scans.is_empty()
                    && scans
                        .iter()
                        .all(|l| l.contains("COVERING INDEX broker_snapshots_taken")),
                "{pick}: {plan:#?}"
            );
        }
    }
}
