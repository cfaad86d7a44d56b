//! Schema version 6: the layout the reads need at 10,000,000 spans (docs/SCALE.md,
//! "Measurements").
//!
//! - `edge_minutes` and `pair_minutes` get the latency sketch as two array columns
//!   (`latency_buckets`, `latency_counts`: [`Sketch::buckets`](crate::model::sketch::Sketch)),
//!   which ClickHouse sums with `sumMap`, so the topology read answers one row per edge
//!   instead of shipping every minute row's sketch. Rows written before keep their blob
//!   (`latency`, empty in new rows) and are merged by the reader as before.
//! - `spans` is rebuilt with an index granularity of [`SPANS_GRANULARITY`] rows (ClickHouse's
//!   default is 8,192, which a trace read reads whole in every part for a few spans): a new
//!   table is created, swapped in by `RENAME TABLE` (writers go on into the new one), the
//!   old one's rows are copied into it day by day, and the old one is dropped. Every step is
//!   safe to run again: a migration stopped during the copy copies again (the copies of one
//!   span collapse on merge, and reads take one row per span). While the copy runs, a trace
//!   read answers only the spans copied or written since. A day leaves the old table (its
//!   partition dropped) only when its row count did not change while it was copied; a day
//!   that changed (an insert that reached the old table late) is copied again, and the old
//!   table is dropped only once it is empty. A restart resumes with the days left.
//!
//! Each step is run on a server's own tables (on a cluster, its local tables, and the array
//! columns on the distributed tables in front too).

use super::client::{Client, LOCAL_SUFFIX};
use super::index;
use super::sql::{render, Value};
use crate::store::StoreError;

/// Rows per granule of `spans`: a trace read reads one granule per part it touches.
pub const SPANS_GRANULARITY: u32 = 256;

/// The sketch's columns, in the order inserts write them.
const SKETCH_COLUMNS: [(&str, &str); 2] = [
    ("latency_buckets", "Array(Int32)"),
    ("latency_counts", "Array(Int64)"),
];

/// How long one day's copy of `spans` may take (a read timeout: ClickHouse answers the
/// statement when it is done).
const COPY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3_600);

/// How many rounds over the old table's days at most while its rows keep changing.
const COPY_ROUNDS: usize = 5;

fn template(sql: &str, values: &[Value<'_>]) -> Result<String, StoreError> {
    render(sql, values).map_err(|e| StoreError::Backend(e.to_string()))
}

/// Brings one server's tables to version 6 (`cluster`: its tables are `TABLE_local` with a
/// distributed `TABLE` in front).
pub fn migrate(client: &Client, cluster: bool) -> Result<(), StoreError> {
    let suffix = if cluster { LOCAL_SUFFIX } else { "" };
    for table in ["edge_minutes", "pair_minutes"] {
        add_sketch_columns(client, &format!("{table}{suffix}"))?;
        if cluster {
            add_sketch_columns(client, table)?;
        }
    }
    rebuild_spans(client, &format!("spans{suffix}"), &mut |_| Ok(()))
}

/// The names of a table's columns (none: no such table).
fn columns(client: &Client, table: &str) -> Result<Vec<String>, StoreError> {
    #[derive(serde::Deserialize)]
    struct C {
        name: String,
    }
    let q = template(
        "SELECT name FROM system.columns WHERE database = ? AND table = ?",
        &[Value::Str(client.database()), Value::Str(table)],
    )?;
    Ok(client.rows::<C>(&q)?.into_iter().map(|c| c.name).collect())
}

/// Adds the sketch's array columns a table lacks (18.16 has no `ADD COLUMN IF NOT EXISTS`:
/// a collector migrating at the same moment may add one first, which is fine).
fn add_sketch_columns(client: &Client, table: &str) -> Result<(), StoreError> {
    for (name, kind) in SKETCH_COLUMNS {
        if columns(client, table)?.iter().any(|c| c == name) {
            continue;
        }
        let added = client.execute(
            &format!("ALTER TABLE {table} ADD COLUMN {name} {kind}"),
            true,
        );
        if let Err(e) = added {
            if !columns(client, table)?.iter().any(|c| c == name) {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// A table's engine with its settings (`system.tables.engine_full`); `None`: no such table.
fn engine(client: &Client, table: &str) -> Result<Option<String>, StoreError> {
    #[derive(serde::Deserialize)]
    struct E {
        engine_full: String,
    }
    let q = template(
        "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?",
        &[Value::Str(client.database()), Value::Str(table)],
    )?;
    Ok(client
        .rows::<E>(&q)?
        .into_iter()
        .next()
        .map(|e| e.engine_full))
}

fn rebuilt(engine: Option<&str>) -> bool {
    engine.is_some_and(|e| e.contains(&format!("index_granularity = {SPANS_GRANULARITY}")))
}

/// Swaps in a `spans` table of [`SPANS_GRANULARITY`] (unless done), then copies the old one's
/// rows into it and drops it (if an old one is left). `copied` is called after each day's
/// copy with the day (days since the epoch), before its rows are counted again (tests write
/// into the old table there, as a late insert would).
pub(super) fn rebuild_spans(
    client: &Client,
    table: &str,
    copied: &mut dyn FnMut(u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let (next, old) = (format!("{table}_v6"), format!("{table}_v5"));
    if !rebuilt(engine(client, table)?.as_deref()) {
        client.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {next} AS {table} ENGINE = ReplacingMergeTree
                 PARTITION BY day ORDER BY (trace_id, span_id)
                 SETTINGS index_granularity = {SPANS_GRANULARITY}"
            ),
            true,
        )?;
        let swapped = client.execute(
            &format!("RENAME TABLE {table} TO {old}, {next} TO {table}"),
            true,
        );
        if let Err(e) = swapped {
            // Another collector migrating at the same moment swapped first.
            if !rebuilt(engine(client, table)?.as_deref()) {
                return Err(e.into());
            }
        }
    }
    let copy = format!("INSERT INTO {table} SELECT * FROM {old} WHERE day = ?");
    move_days(client, &old, table, &copy, copied)
}

/// Moves the rows of table `old` (if there is one) into `into` day by day with `copy` (an
/// `INSERT ... SELECT` of one day, `?`), then drops `old`. Each day is copied, its rows
/// counted before and after, and dropped from `old` only when the count did not change
/// meanwhile (a day that changed is copied again in the next round: its copies collapse on
/// merge in a `ReplacingMergeTree`, and reads take them once, as `span_keys32`'s reads do with
/// `DISTINCT`). `old` goes only once it is empty; a restart resumes with
/// the days left. `copied` is called after each day's copy with the day (days since the
/// epoch), before its rows are counted again (tests write into `old` there, as a late insert
/// would).
pub(super) fn move_days(
    client: &Client,
    old: &str,
    into: &str,
    copy: &str,
    copied: &mut dyn FnMut(u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if engine(client, old)?.is_none() {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct D {
        day: u64,
    }
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let long = client.with_read_timeout(COPY_TIMEOUT);
    let days_left = format!("SELECT DISTINCT toUInt32(day) AS day FROM {old} ORDER BY day");
    for _ in 0..COPY_ROUNDS {
        let days: Vec<D> = client.rows(&days_left)?;
        if days.is_empty() {
            return Ok(client.execute(&format!("DROP TABLE IF EXISTS {old}"), true)?);
        }
        for d in days {
            let at = [Value::Day(d.day.saturating_mul(86_400_000_000_000))];
            let copy = template(copy, &at)?;
            let count = template(
                &format!("SELECT count() AS n FROM {old} WHERE day = ?"),
                &at,
            )?;
            let rows = || -> Result<u64, StoreError> {
                Ok(client.rows::<N>(&count)?.first().map_or(0, |r| r.n))
            };
            let before = rows()?;
            long.execute(&copy, true)?;
            copied(d.day)?;
            if rows()? == before {
                let drop = template(&format!("ALTER TABLE {old} DROP PARTITION ?"), &at)?;
                client.execute(&drop, true)?;
            }
        }
    }
    if client.rows::<D>(&days_left)?.is_empty() {
        return Ok(client.execute(&format!("DROP TABLE IF EXISTS {old}"), true)?);
    }
    // The old table is kept (nothing acknowledged is dropped); the next start goes on.
    Err(StoreError::Backend(format!(
        "{old} was still written to while it was copied into {into}; the copy goes on at \
         the next start"
    )))
}

/// Version 8, on one server's own tables (`cluster`: its local tables; the distributed
/// tables in front of the old ones are dropped once they are gone), day by day as
/// [`move_days`] does: the search index moved from version 5's `trace_terms` (nanoseconds, a
/// `''` row per trace) into `trace_postings` (ticks of 1/256 s; `index.rs`), and the stored
/// spans' keys from version 4's `span_keys` (64 bits) into `span_keys32` (the high half). While
/// the move runs, a search answers from the days moved so far and what was written since,
/// and a span re-sent then whose key is not moved yet is stored again (its copies collapse
/// on merge and are read once).
pub fn migrate_v8(client: &Client, cluster: bool) -> Result<(), StoreError> {
    move_index_with(client, cluster, &mut |_| Ok(()))?;
    move_into(
        client,
        cluster,
        ("span_keys", "span_keys32"),
        &|from, into| {
            format!(
                "INSERT INTO {into} (day, second, key)
                 SELECT day, second, toUInt32(bitShiftRight(key, 32)) FROM {from} WHERE day = ?"
            )
        },
        &mut |_| Ok(()),
    )
}

/// Version 8's move of the search index ([`migrate_v8`]), calling `copied` after each day's
/// copy (as [`move_days`]).
pub(super) fn move_index_with(
    client: &Client,
    cluster: bool,
    copied: &mut dyn FnMut(u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    move_into(
        client,
        cluster,
        ("trace_terms", index::TABLE),
        &index::copy_from_v5,
        copied,
    )
}

/// Moves table `old` into `new` (names without the local suffix) with `copy(from, into)`, a
/// day's `INSERT ... SELECT` ([`move_days`]), then drops the distributed `old` on a cluster.
/// `old` is first renamed `old_v7`, so that a collector of version 7 still running fails its
/// next insert into it (answered 503, retried by its client elsewhere) instead of writing
/// rows the move could miss; a table of the old name made again meanwhile (a version 7
/// collector starting while the move runs) is moved too.
fn move_into(
    client: &Client,
    cluster: bool,
    (old, new): (&str, &str),
    copy: &dyn Fn(&str, &str) -> String,
    copied: &mut dyn FnMut(u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let suffix = if cluster { LOCAL_SUFFIX } else { "" };
    let (named, from, into) = (
        format!("{old}{suffix}"),
        format!("{old}_v7{suffix}"),
        format!("{new}{suffix}"),
    );
    if engine(client, &named)?.is_some() && engine(client, &from)?.is_none() {
        let renamed = client.execute(&format!("RENAME TABLE {named} TO {from}"), true);
        if let Err(e) = renamed {
            // Another collector migrating at the same moment renamed it first.
            if engine(client, &named)?.is_some() {
                return Err(e.into());
            }
        }
    }
    for source in [&from, &named] {
        move_days(client, source, &into, &copy(source, &into), copied)?;
    }
    if cluster {
        client.execute(&format!("DROP TABLE IF EXISTS {old}"), true)?;
    }
    Ok(())
}
