//! The ClickHouse schema, migrated with a version table (`schema_version`, one row per applied
//! version). Every statement is idempotent (`IF NOT EXISTS`), so collectors starting at once
//! may both migrate. A database whose version is newer than this build is refused.
//!
//! Only SQL that ClickHouse 18.16 (Debian's package) accepts: `MergeTree` family with
//! `PARTITION BY` / `ORDER BY`, `Date` partitions, `FixedString` ids, `AggregateFunction`
//! states, a `Null` table with a materialized view `TO` a table; no `DateTime64`,
//! `LowCardinality`, `TTL` or skip indexes (docs/SCALE.md says what a current release would
//! change).
//!
//! On a cluster (`--clickhouse-cluster`), every server gets each table as `TABLE_local` and a
//! `Distributed` table `TABLE` in front, sharded by [`shard_key`]; the version table is each
//! server's own (not distributed), and every server is migrated.

use super::client::{Client, ClientError, LOCAL_SUFFIX};
use super::index;
use super::read_layout;
use super::sql::{self, render, Value};
use crate::store::StoreError;

/// The newest version this build writes.
pub const VERSION: u32 = 8;

/// Version 1. Times are unix nanoseconds (`UInt64`); `day` partitions by the span's (or the
/// minute's) day, which retention drops whole. Ids: `FixedString(16)` trace, `FixedString(8)`
/// span (all zeros: none). Empty strings stand for absent optional text.
const V1: &[&str] = &[
    // Spans, one row each; a re-sent span collapses on merge and is read once (`LIMIT 1 BY`).
    "CREATE TABLE IF NOT EXISTS spans (
        day Date, trace_id FixedString(16), span_id FixedString(8), parent_span_id FixedString(8),
        start_unix_nanos UInt64, end_unix_nanos UInt64,
        service String, service_namespace String, service_instance String,
        name String, kind UInt8, status UInt8, status_message String, scope String,
        msg_system String, msg_destination String, msg_operation String,
        msg_consumer_group String, msg_message_id String, msg_conversation_id String,
        peer String, attributes String, resource String, events String, links String,
        link_trace_ids Array(FixedString(16)), flags UInt8
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (trace_id, span_id)",
    // Later changes of a stored span's pairing flags; the row with the highest version holds.
    "CREATE TABLE IF NOT EXISTS span_flags (
        day Date, trace_id FixedString(16), span_id FixedString(8), flags UInt8, version UInt64
    ) ENGINE = ReplacingMergeTree(version) PARTITION BY day ORDER BY (trace_id, span_id)",
    // Spans waiting for one not stored yet (`ref_*`), with the facts pairing needs of them.
    "CREATE TABLE IF NOT EXISTS pending_refs (
        day Date, ref_trace FixedString(16), ref_span FixedString(8),
        trace_id FixedString(16), span_id FixedString(8), parent_span_id FixedString(8),
        service String, namespace String, kind UInt8, operation String, system String,
        destination String, start_unix_nanos UInt64, end_unix_nanos UInt64, error UInt8,
        peer String, flags UInt8, expires_unix_nanos UInt64
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (ref_trace, ref_span, trace_id, span_id)",
    // Waiting rows that were settled (their referred span arrived).
    "CREATE TABLE IF NOT EXISTS pending_done (
        day Date, ref_trace FixedString(16), ref_span FixedString(8),
        trace_id FixedString(16), span_id FixedString(8)
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (ref_trace, ref_span, trace_id, span_id)",
    // Per-minute edge statistics as deltas, one row per edge, minute and write; reads sum
    // them and merge the latency sketches.
    "CREATE TABLE IF NOT EXISTS edge_minutes (
        day Date, minute Int64, from_node String, to_node String, kind UInt8, via String,
        count Int64, errors Int64, latency_sum_micros Int64, latency String,
        first_seen_unix_nanos UInt64, last_seen_unix_nanos UInt64
    ) ENGINE = MergeTree PARTITION BY day ORDER BY (minute, from_node, to_node, kind, via)",
    "CREATE TABLE IF NOT EXISTS service_minutes (
        day Date, minute Int64, service String, spans Int64, errors Int64
    ) ENGINE = SummingMergeTree PARTITION BY day ORDER BY (minute, service)",
    "CREATE TABLE IF NOT EXISTS consumer_instances (
        day Date, minute Int64, destination String, service String, instance String
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (minute, destination, service, instance)",
    "CREATE TABLE IF NOT EXISTS nodes (
        id String, kind String, name String, system String, namespace String,
        first_seen_unix_nanos UInt64
    ) ENGINE = ReplacingMergeTree ORDER BY id",
    // Each broker's snapshot of a minute (JSON; the latest taken in the minute holds), and
    // each destination's and flow's figures apart, for the pages' history.
    "CREATE TABLE IF NOT EXISTS broker_snapshots (
        day Date, broker String, minute Int64, taken_unix_nanos UInt64, data String
    ) ENGINE = ReplacingMergeTree(taken_unix_nanos) PARTITION BY day ORDER BY (broker, minute)",
    "CREATE TABLE IF NOT EXISTS broker_figures (
        day Date, node String, minute Int64, broker String, taken_unix_nanos UInt64, figures String
    ) ENGINE = ReplacingMergeTree(taken_unix_nanos) PARTITION BY day ORDER BY (node, minute, broker)",
];

/// Version 2: what the reconciliation pass (`reconcile.rs`) writes, keyed so that collectors
/// settling the same wait twice count once, and the deliveries every collector's pairing
/// memory reads back.
const V2: &[&str] = &[
    // The pairing share of a wait settled by the reconciliation pass: edge deltas keyed by
    // the wait (referred span, waiting span) and the edge; duplicates collapse (`FINAL`).
    // `reason`: 0 the pairing's share, 1 a second first delivery of one message taken back.
    "CREATE TABLE IF NOT EXISTS pair_minutes (
        day Date, ref_trace FixedString(16), ref_span FixedString(8),
        trace_id FixedString(16), span_id FixedString(8), reason UInt8,
        minute Int64, from_node String, to_node String, kind UInt8, via String,
        count Int64, errors Int64, latency_sum_micros Int64, latency String,
        first_seen_unix_nanos UInt64, last_seen_unix_nanos UInt64
    ) ENGINE = ReplacingMergeTree PARTITION BY day
    ORDER BY (ref_trace, ref_span, trace_id, span_id, reason, minute, from_node, to_node, kind, via)",
    // Which (consuming service, destination) each publish reached, so that a second delivery
    // of one message counts once whichever collector stores it, and after a restart.
    // `by_*`: the consume that delivered it (a pass settling that consume again leaves its
    // own row out, so that it counts as the first pass did).
    "CREATE TABLE IF NOT EXISTS deliveries (
        day Date, trace_id FixedString(16), span_id FixedString(8),
        service String, destination String, by_trace FixedString(16), by_span FixedString(8)
    ) ENGINE = ReplacingMergeTree PARTITION BY day
    ORDER BY (trace_id, span_id, service, destination, by_trace, by_span)",
];

/// Version 3: the partitions spans name (Kafka), per minute, destination, partition and
/// service: messages published and consumed, summed on merge and by the read.
const V3: &[&str] = &["CREATE TABLE IF NOT EXISTS partition_minutes (
        day Date, destination String, minute Int64, partition_id Int64, service String,
        published Int64, consumed Int64
    ) ENGINE = SummingMergeTree PARTITION BY day ORDER BY (destination, minute, partition_id, service)"];

/// Version 4: every stored span's key by its start second, so that the writer finds which
/// of a group's spans are stored already (re-sent, maybe to another collector) by reading the
/// few seconds its spans start in, not every span of the day (`spans` is ordered by trace).
/// `key` is the span's hash (`accounting::memory::span_hash`, the writer's own memory's key).
const V4: &[&str] = &["CREATE TABLE IF NOT EXISTS span_keys (
        day Date, second UInt32, key UInt64
    ) ENGINE = MergeTree PARTITION BY day ORDER BY (second, key)"];

/// Version 5: the trace search index (`trace_terms`, [`index::CREATE_V5`]), filled from the
/// spans already stored ([`index::backfill_v5`], on each server's own tables); moved into
/// version 8's table.
const V5: &[&str] = &[index::CREATE_V5];

/// Version 6: the sketch's array columns and `spans` rebuilt with small granules
/// ([`read_layout::migrate`], on each server's own tables).
const V6: &[&str] = &[];

/// Version 7: the edge statistics collapsed per edge and minute in the background. Writers
/// insert their deltas into `edge_deltas` (a `Null` table: it keeps nothing), whose
/// materialized view ([`EDGE_FEED`], on each server's own tables) adds each insert into
/// `edge_sums`, an `AggregatingMergeTree` whose merges fold the rows of one edge and minute
/// into one: the counts and the sketch summed (`sum`, `sumMap` states), first and last seen
/// kept as `min` and `max` states. Reads still aggregate (merges are never complete).
/// `edge_minutes` (the deltas of versions 1-6) is kept and read with it, no longer written
/// by this version, until retention drops its days: nothing is copied (a copy of summed
/// rows that stopped half-way could not be told from one that did not, and a collector of
/// version 6 still running goes on writing there).
const V7: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS edge_sums (
        day Date, minute Int64, from_node String, to_node String, kind UInt8, via String,
        count AggregateFunction(sum, Int64), errors AggregateFunction(sum, Int64),
        latency_sum_micros AggregateFunction(sum, Int64),
        latency_sketch AggregateFunction(sumMap, Array(Int32), Array(Int64)),
        first_seen AggregateFunction(min, UInt64), last_seen AggregateFunction(max, UInt64)
    ) ENGINE = AggregatingMergeTree PARTITION BY day ORDER BY (minute, from_node, to_node, kind, via)",
    // The columns of `edge_minutes`, so that a writer's rows are the same as before (`latency`,
    // the blob of versions before 6, stays empty and is not read).
    "CREATE TABLE IF NOT EXISTS edge_deltas (
        day Date, minute Int64, from_node String, to_node String, kind UInt8, via String,
        count Int64, errors Int64, latency_sum_micros Int64, latency String,
        first_seen_unix_nanos UInt64, last_seen_unix_nanos UInt64,
        latency_buckets Array(Int32), latency_counts Array(Int64)
    ) ENGINE = Null",
];

/// Version 8, bytes on disk (docs/SCALE.md): the search index at 1/256 of a second, without
/// a `''` row per trace (`trace_postings`, `index.rs`), half of version 5's bytes; the stored
/// spans' keys in 32 bits (`span_keys32`: the high half of version 4's hash, a key found
/// then confirmed in `spans` by the writer). Version 5's and 4's rows are moved into them
/// ([`read_layout::migrate_v8`]). Also from this version, `deliveries` keeps the consume
/// that delivered a message without its trace id when that is the message's own
/// (`reconcile.rs`, `BY_TRACE`): rows written before read the same.
const V8: &[&str] = &[
    index::CREATE,
    "CREATE TABLE IF NOT EXISTS span_keys32 (
        day Date, second UInt32, key UInt32
    ) ENGINE = MergeTree PARTITION BY day ORDER BY (second, key)",
];

/// The materialized view that feeds `edge_sums` from each insert into `edge_deltas`
/// (`{s}`: the local tables' suffix on a cluster, where each server has its own view over its
/// own tables). Created after both tables, before any writer of version 7 starts.
const EDGE_FEED: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS edge_sums_feed{s} TO edge_sums{s}
    AS SELECT day, minute, from_node, to_node, kind, via, sumState(count) AS count,
    sumState(errors) AS errors, sumState(latency_sum_micros) AS latency_sum_micros,
    sumMapState(latency_buckets, latency_counts) AS latency_sketch,
    minState(first_seen_unix_nanos) AS first_seen, maxState(last_seen_unix_nanos) AS last_seen
    FROM edge_deltas{s} GROUP BY day, minute, from_node, to_node, kind, via";

/// Creates the view of [`EDGE_FEED`] on one server (`local`: its tables are `TABLE_local`).
fn create_edge_feed(client: &Client, local: bool) -> Result<(), StoreError> {
    let suffix = if local { LOCAL_SUFFIX } else { "" };
    Ok(client.execute(&EDGE_FEED.replace("{s}", suffix), true)?)
}

/// Every table of the schema that holds rows, but the version table (not `edge_deltas`,
/// which keeps none, nor the view that feeds `edge_sums` from it).
pub const DATA_TABLES: &[&str] = &[
    "spans",
    "span_flags",
    "pending_refs",
    "pending_done",
    "edge_minutes",
    "edge_sums",
    "service_minutes",
    "consumer_instances",
    "nodes",
    "broker_snapshots",
    "broker_figures",
    "pair_minutes",
    "deliveries",
    "partition_minutes",
    "span_keys32",
    "trace_postings",
];

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version UInt32, applied_unix_seconds UInt64
) ENGINE = MergeTree ORDER BY version";

/// How each table's rows are spread over a cluster's shards: rows that a
/// `ReplacingMergeTree` collapses, or that one read must find together (`FINAL`, `LIMIT 1
/// BY`), share a shard. Spans and what is keyed by a span go by its trace, waits by the
/// referred span's trace (so a wait, its settlement and its `pair_minutes` rows share a
/// shard), the summed minute tables anywhere.
fn shard_key(table: &str) -> Option<&'static str> {
    Some(match table {
        "spans" | "span_flags" | "deliveries" | "trace_terms" | "trace_postings" => {
            "cityHash64(trace_id)"
        }
        "pending_refs" | "pending_done" | "pair_minutes" => "cityHash64(ref_trace)",
        "edge_minutes" | "service_minutes" | "partition_minutes" => "rand()",
        // One edge and minute on one shard, so that its rows collapse into one.
        "edge_sums" | "edge_deltas" => "cityHash64(minute, from_node, to_node, kind, via)",
        "consumer_instances" => "cityHash64(minute, destination, service, instance)",
        "nodes" => "cityHash64(id)",
        "span_keys" | "span_keys32" => "key",
        "broker_snapshots" => "cityHash64(broker)",
        "broker_figures" => "cityHash64(node)",
        _ => return None,
    })
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS ";

/// A statement of [`V1`]..[`V8`] as a cluster's server runs it: the table created as
/// `TABLE_local`, then the distributed table `TABLE` in front of the cluster's local tables.
fn clustered(statement: &str, cluster: &str, database: &str) -> Result<[String; 2], StoreError> {
    let unknown = || StoreError::Backend("a schema statement without a shard key".into());
    let rest = statement.strip_prefix(CREATE).ok_or_else(unknown)?;
    let table = rest.split_whitespace().next().ok_or_else(unknown)?;
    let key = shard_key(table).ok_or_else(unknown)?;
    let local = format!("{table}{LOCAL_SUFFIX}");
    let body = rest.get(table.len()..).ok_or_else(unknown)?;
    let distributed = render(
        &format!("{CREATE}{table} AS {local} ENGINE = Distributed(?, ?, ?, {key})"),
        &[
            Value::Str(cluster),
            Value::Str(database),
            Value::Str(&local),
        ],
    )
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok([format!("{CREATE}{local}{body}"), distributed])
}

/// Creates the database if missing and brings its schema to [`VERSION`]; refuses a newer one.
/// On a cluster, on every server of it (each has its own version table, and gets the same
/// versions), since 18.16 has no `ON CLUSTER` DDL without ZooKeeper.
pub fn migrate(client: &Client) -> Result<u32, StoreError> {
    let db = sql::ident(client.database());
    client.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"), false)?;
    check_layout(client)?;
    match client.cluster() {
        None => migrate_server(client, None),
        Some(cluster) => {
            // Every server checked before any changes, so a newer one changes nothing.
            for server in &cluster.servers {
                refuse_newer(server)?;
            }
            for server in &cluster.servers {
                migrate_server(server, Some(&cluster.name))?;
            }
            Ok(VERSION)
        }
    }
}

/// A version of a server newer than this build: refused.
fn refuse_newer(server: &Client) -> Result<(), StoreError> {
    let found = match current(server) {
        Ok(v) => v,
        // No database or no version table yet: nothing to refuse.
        Err(ClientError::Server { .. }) => 0,
        Err(e) => return Err(e.into()),
    };
    supported(found)
}

/// A found version this build can migrate from, or the error refusing it.
fn supported(found: u32) -> Result<(), StoreError> {
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            found: i64::from(found),
            supported: i64::from(VERSION),
        });
    }
    Ok(())
}

/// A database written with `--clickhouse-cluster` is read with it, and one written without
/// it without it: else refused, naming the flag (its `spans` table is distributed or not).
pub fn check_layout(client: &Client) -> Result<(), StoreError> {
    #[derive(serde::Deserialize)]
    struct T {
        engine: String,
    }
    let q = render(
        "SELECT engine FROM system.tables WHERE database = ? AND name = 'spans'",
        &[Value::Str(client.database())],
    )
    .map_err(|e| StoreError::Backend(e.to_string()))?;
    let Some(t) = client.rows::<T>(&q)?.into_iter().next() else {
        return Ok(());
    };
    let db = client.database();
    match (client.cluster(), t.engine == "Distributed") {
        (Some(c), false) => Err(StoreError::Backend(format!(
            "database {db} was written without --clickhouse-cluster (its tables are not distributed); it cannot be read as cluster {:?}",
            c.name
        ))),
        (None, true) => Err(StoreError::Backend(format!(
            "database {db} was written with --clickhouse-cluster (its tables are distributed); pass the cluster's name"
        ))),
        _ => Ok(()),
    }
}

/// One server's migration: on a cluster (`cluster`), its local tables and the distributed
/// tables in front of them.
fn migrate_server(client: &Client, cluster: Option<&str>) -> Result<u32, StoreError> {
    migrate_server_to(client, cluster, VERSION)
}

/// One server's migration up to version `target` (tests start from an older version).
fn migrate_server_to(
    client: &Client,
    cluster: Option<&str>,
    target: u32,
) -> Result<u32, StoreError> {
    let db = sql::ident(client.database());
    client.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"), false)?;
    client.execute(VERSION_TABLE, true)?;
    let found = current(client)?;
    supported(found)?;
    let steps: &[&[&str]] = &[V1, V2, V3, V4, V5, V6, V7, V8];
    for (i, step) in steps.iter().enumerate() {
        let version = i as u32 + 1;
        if version <= found || version > target {
            continue;
        }
        for statement in *step {
            match cluster {
                None => client.execute(statement, true)?,
                Some(name) => {
                    for s in clustered(statement, name, client.database())? {
                        client.execute(&s, true)?;
                    }
                }
            }
        }
        if version == 5 {
            backfill_index(client, cluster.is_some())?;
        }
        if version == 6 {
            read_layout::migrate(client, cluster.is_some())?;
        }
        if version == 7 {
            create_edge_feed(client, cluster.is_some())?;
        }
        if version == 8 {
            read_layout::migrate_v8(client, cluster.is_some())?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let insert = render(
            "INSERT INTO schema_version (version, applied_unix_seconds) VALUES (?, ?)",
            &[Value::U64(u64::from(version)), Value::U64(now)],
        )
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        client.execute(&insert, true)?;
    }
    if target >= 7 {
        // Writers insert into the Null `edge_deltas`, which keeps nothing: without its view
        // (dropped, or left out of a restore) every edge statistic would vanish unseen. Made
        // again at every start (it is `IF NOT EXISTS`).
        create_edge_feed(client, cluster.is_some())?;
    }
    Ok(target.min(VERSION))
}

/// A database (on a cluster, on every server) brought to version `target` only (a test's
/// older database).
#[cfg(test)]
pub(super) fn migrate_to(client: &Client, target: u32) -> Result<u32, StoreError> {
    match client.cluster() {
        None => migrate_server_to(client, None, target),
        Some(cluster) => {
            for server in &cluster.servers {
                migrate_server_to(server, Some(&cluster.name), target)?;
            }
            Ok(target.min(VERSION))
        }
    }
}

/// How long one day's index backfill may take (a read timeout: ClickHouse answers the
/// statement when it is done).
const BACKFILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Indexes the spans a server stored before version 5 (on a cluster, its local tables), one
/// statement per day, each answered when done.
fn backfill_index(client: &Client, local: bool) -> Result<(), StoreError> {
    let suffix = if local { LOCAL_SUFFIX } else { "" };
    let (terms, spans) = (format!("trace_terms{suffix}"), format!("spans{suffix}"));
    #[derive(serde::Deserialize)]
    struct D {
        day: String,
    }
    let days: Vec<D> = client.rows(&format!(
        "SELECT DISTINCT toString(day) AS day FROM {spans} ORDER BY day"
    ))?;
    let long = client.with_read_timeout(BACKFILL_TIMEOUT);
    for d in days {
        let statement = render(
            &format!(
                "{} WHERE day = toDate(?)",
                index::backfill_v5(&terms, &spans)
            ),
            &[Value::Str(&d.day)],
        )
        .map_err(|e| StoreError::Backend(e.to_string()))?;
        long.execute(&statement, true)?;
    }
    Ok(())
}

/// The newest version of the database over its servers (every server of a cluster).
pub fn newest(client: &Client) -> Result<u32, ClientError> {
    let mut v = 0;
    for server in client.servers() {
        v = v.max(current(server)?);
    }
    Ok(v)
}

/// The database's schema version (0: none yet).
pub fn current(client: &Client) -> Result<u32, ClientError> {
    #[derive(serde::Deserialize)]
    struct V {
        v: u32,
    }
    let rows: Vec<V> = client.rows("SELECT toUInt32(max(version)) AS v FROM schema_version")?;
    Ok(rows.first().map_or(0, |r| r.v))
}
