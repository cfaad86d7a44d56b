//! Topology reads from the minute tables: edges (deltas summed, latency sketches merged),
//! consumer instances, service activity, nodes; a node's minutes; broker snapshots and
//! figures.

use super::client::Client;
use super::reader::query;
use super::sql::Value;
use crate::model::sketch::Sketch;
use crate::model::{
    BrokerSnapshot, EdgeKind, EdgeRow, Figures, MinuteRow, NodeKey, NodeKind, NodeRow, TimeWindow,
    TopologyRows,
};
use crate::store::StoreError;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

#[derive(serde::Deserialize)]
struct Edge {
    from_node: String,
    to_node: String,
    kind: i64,
    via: String,
    count: i64,
    errors: i64,
    latency_sum: i64,
    /// The summed sketch of the rows written since schema version 6: (bucket indexes, counts).
    summed: (Vec<i32>, Vec<i64>),
    /// The sketches of older rows (hex), merged here.
    sketches: Vec<String>,
    first_seen: u64,
    last_seen: u64,
}

/// Every edge delta of a window's minutes, as rows of `edge_minutes`' columns: the writers'
/// since schema version 7 (`edge_sums`, merged per edge and minute: its rows of one edge and
/// minute that background merges have not folded yet are folded here), those of older
/// versions (`edge_minutes`, kept until retention drops them), and the reconciliation
/// pass's, one row per wait and edge however many collectors settled it (`pair_minutes
/// FINAL`). The window is in each branch (its days and minutes: 18.16 does not move an outer
/// `WHERE` into a `UNION ALL`, and `FINAL` reads every part it is not kept from);
/// [`edge_window`] gives its values.
const EDGES: &str = "(SELECT minute, from_node, to_node, kind, via, sumMerge(count) AS count,
    sumMerge(errors) AS errors, sumMerge(latency_sum_micros) AS latency_sum_micros,
    '' AS latency, tupleElement(sumMapMerge(latency_sketch), 1) AS latency_buckets,
    tupleElement(sumMapMerge(latency_sketch), 2) AS latency_counts,
    minMerge(first_seen) AS first_seen_unix_nanos, maxMerge(last_seen) AS last_seen_unix_nanos
    FROM edge_sums WHERE day >= ? AND day <= ? AND minute >= ? AND minute <= ?
    GROUP BY minute, from_node, to_node, kind, via
    UNION ALL SELECT minute, from_node, to_node, kind, via, count, errors,
    latency_sum_micros, latency, latency_buckets, latency_counts, first_seen_unix_nanos,
    last_seen_unix_nanos FROM edge_minutes
    WHERE day >= ? AND day <= ? AND minute >= ? AND minute <= ?
    UNION ALL SELECT minute, from_node, to_node, kind, via, count, errors, latency_sum_micros,
    latency, latency_buckets, latency_counts, first_seen_unix_nanos, last_seen_unix_nanos
    FROM pair_minutes FINAL WHERE day >= ? AND day <= ? AND minute >= ? AND minute <= ?)";

/// The values of [`EDGES`]'s placeholders for the minutes `first..=last`.
fn edge_window(first: i64, last: i64) -> Vec<Value<'static>> {
    let day = |m: i64| Value::Day(u64::try_from(m).unwrap_or(0).saturating_mul(60_000_000_000));
    (0..3)
        .flat_map(|_| [day(first), day(last), Value::I64(first), Value::I64(last)])
        .collect()
}

fn hex_bytes(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

pub fn topology(client: &Client, window: TimeWindow) -> Result<TopologyRows, StoreError> {
    let (first, last) = window.minutes();
    let range = [Value::I64(first), Value::I64(last)];
    let q = query(
        &format!(
            "SELECT from_node, to_node, toInt64(kind) AS kind, via, sum(count) AS count,
         sum(errors) AS errors, sum(latency_sum_micros) AS latency_sum,
         sumMap(latency_buckets, latency_counts) AS summed,
         groupArrayIf(hex(latency), latency != '') AS sketches,
         min(first_seen_unix_nanos) AS first_seen,
         max(last_seen_unix_nanos) AS last_seen
         FROM {EDGES} GROUP BY from_node, to_node, kind, via"
        ),
        &edge_window(first, last),
    )?;
    let mut merged: BTreeMap<(String, String, i64, String), EdgeRow> = BTreeMap::new();
    for e in client.rows::<Edge>(&q)? {
        let Some(kind) = EdgeKind::from_i64(e.kind) else {
            continue;
        };
        let (buckets, counts) = &e.summed;
        let mut latency = Sketch::from_buckets(buckets.iter().copied().zip(counts.iter().copied()));
        for s in &e.sketches {
            latency.merge(&Sketch::decode(&hex_bytes(s)));
        }
        merged.insert(
            (
                e.from_node.clone(),
                e.to_node.clone(),
                e.kind,
                e.via.clone(),
            ),
            EdgeRow {
                from: e.from_node,
                to: e.to_node,
                kind,
                via: e.via,
                count: e.count,
                errors: e.errors,
                latency_sum_micros: e.latency_sum,
                latency,
                first_seen_unix_nanos: e.first_seen,
                last_seen_unix_nanos: e.last_seen,
                instances: 0,
            },
        );
    }
    #[derive(serde::Deserialize)]
    struct Instances {
        destination: String,
        service: String,
        n: i64,
    }
    let q = query(
        "SELECT destination, service, toInt64(uniqExact(instance)) AS n FROM consumer_instances
         WHERE minute >= ? AND minute <= ? GROUP BY destination, service",
        &range,
    )?;
    for i in client.rows::<Instances>(&q)? {
        let key = (
            i.destination,
            i.service,
            EdgeKind::Consume.as_i64(),
            String::new(),
        );
        if let Some(e) = merged.get_mut(&key) {
            e.instances = i.n;
        }
    }
    let edges: Vec<EdgeRow> = merged
        .into_values()
        .filter(|e| e.count > 0 || !e.latency.is_empty())
        .collect();
    #[derive(serde::Deserialize)]
    struct Activity {
        service: String,
        spans: i64,
        errors: i64,
    }
    let q = query(
        "SELECT service, sum(spans) AS spans, sum(errors) AS errors FROM service_minutes
         WHERE minute >= ? AND minute <= ? GROUP BY service",
        &range,
    )?;
    let activity: HashMap<String, (i64, i64)> = client
        .rows::<Activity>(&q)?
        .into_iter()
        .map(|a| (a.service, (a.spans, a.errors)))
        .collect();
    let wanted: HashSet<&str> = edges
        .iter()
        .flat_map(|e| [e.from.as_str(), e.to.as_str()])
        .chain(activity.keys().map(String::as_str))
        .collect();
    let nodes = nodes(client, &wanted, &activity)?;
    Ok(TopologyRows {
        nodes,
        edges,
        brokers: snapshots(client, window, "DESC")?,
        brokers_then: snapshots(client, window, "ASC")?,
    })
}

fn nodes(
    client: &Client,
    wanted: &HashSet<&str>,
    activity: &HashMap<String, (i64, i64)>,
) -> Result<Vec<NodeRow>, StoreError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    #[derive(serde::Deserialize)]
    struct Node {
        id: String,
        kind: String,
        name: String,
        system: String,
        namespace: String,
    }
    let ids = wanted.iter().map(|id| Value::Str(id)).collect();
    let q = query(
        "SELECT id, any(kind) AS kind, any(name) AS name, any(system) AS system,
         any(namespace) AS namespace FROM nodes WHERE id IN ? GROUP BY id",
        &[Value::List(ids)],
    )?;
    let mut out = Vec::new();
    for n in client.rows::<Node>(&q)? {
        let Some(kind) = NodeKind::parse(&n.kind) else {
            continue;
        };
        let (spans, errors) = activity.get(&n.id).copied().unwrap_or_default();
        out.push(NodeRow {
            key: NodeKey {
                id: n.id,
                kind,
                name: n.name,
                system: Some(n.system).filter(|s| !s.is_empty()),
                namespace: Some(n.namespace).filter(|s| !s.is_empty()),
            },
            spans,
            errors,
        });
    }
    out.sort_by(|a, b| a.key.id.cmp(&b.key.id));
    Ok(out)
}

/// Each broker's newest (`DESC`) or oldest (`ASC`) minute's snapshot in the window; within a
/// minute the last poll.
fn snapshots(
    client: &Client,
    window: TimeWindow,
    order: &'static str,
) -> Result<Vec<Arc<BrokerSnapshot>>, StoreError> {
    let (first, last) = window.minutes();
    let q = query(
        &format!(
            "SELECT data FROM broker_snapshots WHERE minute >= ? AND minute <= ?
             ORDER BY broker, minute {order}, taken_unix_nanos DESC LIMIT 1 BY broker"
        ),
        &[Value::I64(first), Value::I64(last)],
    )?;
    #[derive(serde::Deserialize)]
    struct S {
        data: String,
    }
    Ok(client
        .rows::<S>(&q)?
        .into_iter()
        .filter_map(|s| serde_json::from_str::<BrokerSnapshot>(&s.data).ok())
        .map(Arc::new)
        .collect())
}

/// A node's (or a broker flow's) figures per minute, the last poll of each minute.
pub fn broker_history(
    client: &Client,
    node: &str,
    window: TimeWindow,
) -> Result<BTreeMap<i64, Figures>, StoreError> {
    let (first, last) = window.minutes();
    let q = query(
        "SELECT minute, figures FROM broker_figures WHERE node = ? AND minute >= ? AND minute <= ?
         ORDER BY minute, broker DESC, taken_unix_nanos DESC LIMIT 1 BY minute",
        &[Value::Str(node), Value::I64(first), Value::I64(last)],
    )?;
    #[derive(serde::Deserialize)]
    struct F {
        minute: i64,
        figures: String,
    }
    Ok(client
        .rows::<F>(&q)?
        .into_iter()
        .filter_map(|f| Some((f.minute, serde_json::from_str(&f.figures).ok()?)))
        .collect())
}

/// Per-minute activity of one node (as the SQLite store's `series.rs`).
pub fn node_minutes(
    client: &Client,
    node_id: &str,
    window: TimeWindow,
) -> Result<BTreeMap<i64, MinuteRow>, StoreError> {
    let (first, last) = window.minutes();
    let service = node_id.starts_with("service:");
    #[derive(serde::Deserialize)]
    struct M {
        minute: i64,
        count: i64,
        errors: i64,
        #[serde(default)]
        delay: i64,
    }
    let counts = if service {
        query(
            "SELECT minute, sum(spans) AS count, sum(errors) AS errors FROM service_minutes
             WHERE service = ? AND minute >= ? AND minute <= ? GROUP BY minute",
            &[Value::Str(node_id), Value::I64(first), Value::I64(last)],
        )?
    } else {
        // Messages in: published to it, or routed into it (a subscription, a bound queue);
        // errors: the failures of its consumes that their consume rows do not hold.
        let failure = EdgeKind::Failure.as_i64();
        query(
            &format!(
                "SELECT minute, sum(if(kind = ?, 0, count)) AS count, sum(if(kind = ?, errors, 0)) AS errors
             FROM {EDGES}
             WHERE ((to_node = ? AND kind IN ?) OR (from_node = ? AND kind = ?))
             GROUP BY minute"
            ),
            &[Value::I64(failure), Value::I64(failure)]
                .into_iter()
                .chain(edge_window(first, last))
                .chain([
                    Value::Str(node_id),
                    Value::List(vec![
                        Value::I64(EdgeKind::Publish.as_i64()),
                        Value::I64(EdgeKind::Route.as_i64()),
                    ]),
                    Value::Str(node_id),
                    Value::I64(failure),
                ])
                .collect::<Vec<_>>(),
        )?
    };
    let mut out: BTreeMap<i64, MinuteRow> = BTreeMap::new();
    for r in client.rows::<M>(&counts)? {
        let m = out.entry(r.minute).or_default();
        m.count += r.count;
        m.errors += r.errors;
    }
    // Consume edges into a service; consume and route edges out of a destination.
    let (side, second) = if service {
        ("to_node", EdgeKind::Consume)
    } else {
        ("from_node", EdgeKind::Route)
    };
    let delays = query(
        &format!(
            "SELECT minute, sum(count) AS count, sum(errors) AS errors,
             sum(latency_sum_micros) AS delay FROM {EDGES}
             WHERE {side} = ? AND kind IN ? GROUP BY minute"
        ),
        &edge_window(first, last)
            .into_iter()
            .chain([
                Value::Str(node_id),
                Value::List(vec![
                    Value::I64(EdgeKind::Consume.as_i64()),
                    Value::I64(second.as_i64()),
                ]),
            ])
            .collect::<Vec<_>>(),
    )?;
    for r in client.rows::<M>(&delays)? {
        let m = out.entry(r.minute).or_default();
        m.delay_count += r.count;
        if !service {
            m.errors += r.errors;
        }
        m.delay_sum_micros += r.delay;
    }
    Ok(out)
}

/// A destination's traced partitions over the window (as the SQLite store's `series.rs`).
pub fn partition_traffic(
    client: &Client,
    destination_id: &str,
    window: TimeWindow,
) -> Result<Vec<crate::model::PartitionTraffic>, StoreError> {
    let (first, last) = window.minutes();
    #[derive(serde::Deserialize)]
    struct P {
        partition: i64,
        service: String,
        published: i64,
        consumed: i64,
    }
    let limit = crate::store::interface::MAX_PARTITION_ROWS as u64;
    let q = query(
        "SELECT partition_id AS partition, service, sum(published) AS published,
         sum(consumed) AS consumed FROM partition_minutes
         WHERE destination = ? AND minute >= ? AND minute <= ?
         GROUP BY partition, service ORDER BY partition, service LIMIT ?",
        &[
            Value::Str(destination_id),
            Value::I64(first),
            Value::I64(last),
            Value::U64(limit),
        ],
    )?;
    Ok(client
        .rows::<P>(&q)?
        .into_iter()
        .filter_map(|p| {
            Some(crate::model::PartitionTraffic {
                partition: i32::try_from(p.partition).ok()?,
                service: p.service,
                published: p.published.max(0) as u64,
                consumed: p.consumed.max(0) as u64,
            })
        })
        .collect())
}
