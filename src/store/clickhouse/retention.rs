//! Retention by partition drop: every table is partitioned by day, and a day older than the
//! retention goes whole (`ALTER TABLE ... DROP PARTITION`, which 18.16 has). Granularity is a
//! day: the day the cutoff falls in stays until it is wholly older. By size: while the
//! database's active parts take more than the cap on disk (`system.parts.bytes_on_disk`), the
//! oldest day goes, never the newest. Idempotent, so every collector may run it. On a cluster,
//! on every server's local tables (sizes summed over the servers, days by the oldest and
//! newest of any server).

use super::client::{Client, ClientError};
use super::schema::DATA_TABLES;
use super::sql::{render, Value};

/// The tables partitioned by `day`: all but `nodes`.
fn day_tables() -> impl Iterator<Item = &'static str> {
    DATA_TABLES.iter().copied().filter(|t| *t != "nodes")
}

/// The day tables' local names on `client`'s servers (on a cluster, `TABLE_local`).
fn local_day_tables(client: &Client) -> Vec<String> {
    day_tables().map(|t| client.local_table(t)).collect()
}

#[derive(serde::Deserialize)]
struct Part {
    table: String,
    day: u64,
}

/// Each server's active parts of the day tables, as (table, day) with the day from
/// `bound` (`min_date` or `max_date`), only days before `before` (days since the epoch)
/// when given.
fn day_parts<'a>(
    client: &'a Client,
    bound: &str,
    before: Option<u64>,
) -> Result<Vec<(&'a Client, Part)>, ClientError> {
    let locals = local_day_tables(client);
    let mut all = Vec::new();
    for server in client.servers() {
        let tables = locals.iter().map(|t| Value::Str(t)).collect();
        let mut values = vec![Value::Str(server.database()), Value::List(tables)];
        let mut sql = format!(
            "SELECT DISTINCT table, toUInt64(toUInt16({bound})) AS day FROM system.parts
             WHERE database = ? AND active AND table IN ?"
        );
        if let Some(day) = before {
            sql.push_str(&format!(" AND toUInt16({bound}) < ?"));
            values.push(Value::U64(day));
        }
        let q = render(&sql, &values)?;
        all.extend(server.rows::<Part>(&q)?.into_iter().map(|p| (server, p)));
    }
    Ok(all)
}

/// Drops every day partition wholly before the day of `cutoff_unix_nanos`, on every server;
/// answers how many partitions went.
pub fn drop_before(client: &Client, cutoff_unix_nanos: u64) -> Result<usize, ClientError> {
    let cutoff_day = cutoff_unix_nanos / 86_400_000_000_000;
    let parts = day_parts(client, "max_date", Some(cutoff_day))?;
    let locals = local_day_tables(client);
    for (server, p) in &parts {
        drop_day(server, &locals, &p.table, p.day)?;
    }
    let spans = client.local_table("spans");
    let days: std::collections::BTreeSet<u64> = parts
        .iter()
        .filter(|(_, p)| p.table == spans)
        .map(|(_, p)| p.day)
        .collect();
    crate::telemetry::METRICS
        .store
        .retention_deleted_by_age
        .fetch_add(days.len() as u64, std::sync::atomic::Ordering::Relaxed);
    Ok(parts.len())
}

/// Drops one day (days since the epoch) of one of the day tables (`locals`: their names on
/// `server`); other names are ignored.
fn drop_day(server: &Client, locals: &[String], table: &str, day: u64) -> Result<(), ClientError> {
    // Only names of our own list reach the statement.
    let Some(table) = locals.iter().find(|t| *t == table) else {
        return Ok(());
    };
    let drop = render(
        &format!("ALTER TABLE {table} DROP PARTITION ?"),
        &[Value::Day(day.saturating_mul(86_400_000_000_000))],
    )?;
    server.execute(&drop, true)
}

/// Bytes the database's active parts take on disk, summed over its servers.
pub fn size_on_disk(client: &Client) -> Result<u64, ClientError> {
    #[derive(serde::Deserialize)]
    struct B {
        bytes: u64,
    }
    let mut total = 0u64;
    for server in client.servers() {
        let q = render(
            "SELECT toUInt64(sum(bytes_on_disk)) AS bytes FROM system.parts WHERE database = ? AND active",
            &[Value::Str(server.database())],
        )?;
        let bytes = server.rows::<B>(&q)?.first().map_or(0, |b| b.bytes);
        total = total.saturating_add(bytes);
    }
    Ok(total)
}

/// Days dropped by one size pass at most (each is a few statements).
const MAX_DAYS_PER_PASS: usize = 64;

/// While the database takes more than `max_bytes` on disk (over all its servers), drops its
/// oldest day from every table of every server, never the newest day; answers how many days
/// went.
pub fn drop_oldest_over(client: &Client, max_bytes: u64) -> Result<usize, ClientError> {
    let locals = local_day_tables(client);
    let mut dropped = 0;
    while dropped < MAX_DAYS_PER_PASS && size_on_disk(client)? > max_bytes {
        let parts = day_parts(client, "min_date", None)?;
        let days = parts.iter().map(|(_, p)| p.day);
        let (Some(oldest), Some(newest)) = (days.clone().min(), days.max()) else {
            break;
        };
        if oldest >= newest {
            // One day left: it stays, whatever its size.
            break;
        }
        for (server, p) in parts.iter().filter(|(_, p)| p.day == oldest) {
            drop_day(server, &locals, &p.table, p.day)?;
        }
        dropped += 1;
        crate::telemetry::METRICS
            .store
            .retention_deleted_by_size
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(dropped)
}
