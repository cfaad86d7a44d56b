//! Retention by partition drop: every table is partitioned by day, and a day older than the
//! retention goes whole (`ALTER TABLE ... DROP PARTITION`, which 18.16 has). Granularity is a
//! day: the day the cutoff falls in stays until it is wholly older. By size: while the
//! database's active parts take more than the cap on disk (`system.parts.bytes_on_disk`), the
//! oldest day goes, never the newest. Idempotent, so every collector may run it.

use super::client::{Client, ClientError};
use super::schema::DATA_TABLES;
use super::sql::{render, Value};

/// The tables partitioned by `day`: all but `nodes`.
fn day_tables() -> impl Iterator<Item = &'static str> {
    DATA_TABLES.iter().copied().filter(|t| *t != "nodes")
}

/// Drops every day partition wholly before the day of `cutoff_unix_nanos`; answers how many.
pub fn drop_before(client: &Client, cutoff_unix_nanos: u64) -> Result<usize, ClientError> {
    #[derive(serde::Deserialize)]
    struct Part {
        table: String,
        day: u64,
    }
    let tables = day_tables().map(Value::Str).collect();
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
        drop_day(client, &p.table, p.day)?;
    }
    let days = parts.iter().filter(|p| p.table == "spans").count() as u64;
    crate::telemetry::METRICS
        .store
        .retention_deleted_by_age
        .fetch_add(days, std::sync::atomic::Ordering::Relaxed);
    Ok(parts.len())
}

/// Drops one day (days since the epoch) of one of the day tables; other names are ignored.
fn drop_day(client: &Client, table: &str, day: u64) -> Result<(), ClientError> {
    // Only names of our own list reach the statement.
    let Some(table) = day_tables().find(|t| *t == table) else {
        return Ok(());
    };
    let drop = render(
        &format!("ALTER TABLE {table} DROP PARTITION ?"),
        &[Value::Day(day.saturating_mul(86_400_000_000_000))],
    )?;
    client.execute(&drop, true)
}

/// Bytes the database's active parts take on disk.
pub fn size_on_disk(client: &Client) -> Result<u64, ClientError> {
    #[derive(serde::Deserialize)]
    struct B {
        bytes: u64,
    }
    let q = render(
        "SELECT toUInt64(sum(bytes_on_disk)) AS bytes FROM system.parts WHERE database = ? AND active",
        &[Value::Str(client.database())],
    )?;
    Ok(client.rows::<B>(&q)?.first().map_or(0, |b| b.bytes))
}

/// Days dropped by one size pass at most (each is a few statements).
const MAX_DAYS_PER_PASS: usize = 64;

/// While the database takes more than `max_bytes` on disk, drops its oldest day from every
/// table, never the newest day; answers how many days went.
pub fn drop_oldest_over(client: &Client, max_bytes: u64) -> Result<usize, ClientError> {
    #[derive(serde::Deserialize)]
    struct Part {
        table: String,
        day: u64,
    }
    let tables = || Value::List(day_tables().map(Value::Str).collect());
    let mut dropped = 0;
    while dropped < MAX_DAYS_PER_PASS && size_on_disk(client)? > max_bytes {
        let q = render(
            "SELECT DISTINCT table, toUInt64(toUInt16(min_date)) AS day FROM system.parts
             WHERE database = ? AND active AND table IN ? ORDER BY day",
            &[Value::Str(client.database()), tables()],
        )?;
        let parts: Vec<Part> = client.rows(&q)?;
        let (Some(oldest), Some(newest)) = (parts.first(), parts.last()) else {
            break;
        };
        if oldest.day >= newest.day {
            // One day left: it stays, whatever its size.
            break;
        }
        for p in parts.iter().filter(|p| p.day == oldest.day) {
            drop_day(client, &p.table, p.day)?;
        }
        dropped += 1;
        crate::telemetry::METRICS
            .store
            .retention_deleted_by_size
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(dropped)
}
