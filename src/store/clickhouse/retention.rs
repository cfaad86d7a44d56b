//! Retention by partition drop: every table is partitioned by day, and a day older than the
//! retention goes whole (`ALTER TABLE ... DROP PARTITION`, which 18.16 has). Granularity is a
//! day: the day the cutoff falls in stays until it is wholly older. Idempotent, so every
//! collector may run it.

use super::client::{Client, ClientError};
use super::sql::{render, Value};

/// The tables partitioned by `day`.
const DAY_TABLES: &[&str] = &[
    "spans",
    "span_flags",
    "pending_refs",
    "pending_done",
    "edge_minutes",
    "service_minutes",
    "consumer_instances",
    "broker_snapshots",
    "broker_figures",
];

/// Drops every day partition wholly before the day of `cutoff_unix_nanos`; answers how many.
pub fn drop_before(client: &Client, cutoff_unix_nanos: u64) -> Result<usize, ClientError> {
    #[derive(serde::Deserialize)]
    struct Part {
        table: String,
        day: u64,
    }
    let tables = DAY_TABLES.iter().map(|t| Value::Str(t)).collect();
    let q = render(
        "SELECT DISTINCT table, toUInt64(toUInt16(max_date)) AS day FROM system.parts
         WHERE database = ? AND active AND table IN ? AND max_date < ?",
        &[
            Value::Str(client.database()),
            Value::List(tables),
            Value::Day(cutoff_unix_nanos),
        ],
    )?;
    let parts: Vec<Part> = client.rows(&q)?;
    for p in &parts {
        // Only names of our own list reach the statement.
        let Some(table) = DAY_TABLES.iter().find(|t| **t == p.table) else {
            continue;
        };
        let drop = render(
            &format!("ALTER TABLE {table} DROP PARTITION ?"),
            &[Value::Day(p.day.saturating_mul(86_400_000_000_000))],
        )?;
        client.execute(&drop, true)?;
    }
    Ok(parts.len())
}
