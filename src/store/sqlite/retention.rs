//! Retention by age, in small steps so ingest never waits long (by size: `size.rs`, before
//! each group of writes).

use crate::model::window::{duration_nanos, now_unix_nanos, unix_minute};
use rusqlite::{params, Connection};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Spans and statistics older than this are deleted.
    pub max_age: Duration,
    /// The database file and its WAL stay within this many bytes: the oldest spans go first,
    /// and writes are refused while it cannot hold (`size.rs`).
    pub max_bytes: Option<u64>,
}

/// The smallest `--retention-size` accepted: below it the indexes and statistics alone could
/// fill the budget and size retention would delete spans as fast as they arrive.
impl RetentionConfig {
    pub const MIN_SIZE_BYTES: u64 = 64 * 1024 * 1024;

    /// Spans that start before this time (unix nanoseconds) are past the age retention.
    pub fn cutoff(&self, now_unix_nanos: u64) -> u64 {
        now_unix_nanos.saturating_sub(duration_nanos(self.max_age))
    }
}

const CHUNK: i64 = 500;
const BUDGET: Duration = Duration::from_millis(200);
/// The trace index is swept for rows of deleted blocks one key slice per pass.
const SLICES: u32 = 64;

/// What a pass did, so the writer can refresh what it keeps in memory.
#[derive(Debug, Default)]
pub struct Pass {
    pub pending_deleted: usize,
}

/// One retention pass. `swept_below` is the oldest block id the previous pass saw; index rows
/// below the current oldest block are swept only when it moved.
pub fn run(
    conn: &mut Connection,
    cfg: &RetentionConfig,
    slice: u32,
    swept_below: &mut i64,
) -> rusqlite::Result<Pass> {
    let started = Instant::now();
    let now = now_unix_nanos();
    let cutoff = now.saturating_sub(duration_nanos(cfg.max_age)) as i64;
    loop {
        let deleted = conn.execute(
            "DELETE FROM blocks WHERE id IN (SELECT id FROM blocks WHERE max_start_unix_nanos < ?1 ORDER BY max_start_unix_nanos LIMIT ?2)",
            params![cutoff, CHUNK],
        )?;
        crate::telemetry::METRICS
            .store
            .retention_deleted_by_age
            .fetch_add(deleted as u64, std::sync::atomic::Ordering::Relaxed);
        if (deleted as i64) < CHUNK || started.elapsed() > BUDGET {
            break;
        }
    }
    delete_minutes_before(conn, unix_minute(cutoff as u64))?;
    thin_broker_snapshots(conn, unix_minute(now))?;
    let pending_deleted = conn.execute(
        "DELETE FROM pending_refs WHERE expires_unix_nanos < ?1 OR start_unix_nanos < ?2",
        params![now.min(i64::MAX as u64) as i64, cutoff],
    )?;
    conn.execute(
        "DELETE FROM span_flags WHERE start_unix_nanos < ?1",
        params![cutoff],
    )?;
    sweep(conn, slice % SLICES, swept_below)?;
    Ok(Pass { pending_deleted })
}

/// Deletes the statistics and broker snapshots of the minutes before `minute`.
pub fn delete_minutes_before(conn: &Connection, minute: i64) -> rusqlite::Result<()> {
    for sql in [
        "DELETE FROM edge_minutes WHERE minute < ?1",
        "DELETE FROM service_minutes WHERE minute < ?1",
        "DELETE FROM consumer_instances WHERE minute < ?1",
        "DELETE FROM partition_minutes WHERE minute < ?1",
        "DELETE FROM broker_snapshots WHERE minute < ?1",
        "DELETE FROM broker_figures WHERE minute < ?1",
    ] {
        conn.execute(sql, params![minute])?;
    }
    Ok(())
}

/// Whole broker snapshots kept per minute for the last hour; older ones thin out to one an
/// hour (a broker with thousands of queues is a large document, and a poll each minute for
/// the whole retention would grow the file by gigabytes a day). Windows older than an hour
/// still find a snapshot at each hour; each destination's figures keep their minutes in
/// `broker_figures`.
const SNAPSHOTS_EVERY_MINUTE_FOR: i64 = 60;

pub fn thin_broker_snapshots(conn: &Connection, now_minute: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM broker_snapshots WHERE minute < ?1 AND minute % 60 != 0",
        params![now_minute - SNAPSHOTS_EVERY_MINUTE_FOR],
    )
}

/// Deletes index and search-term rows that point below the oldest live block. Block ids are
/// never reused (AUTOINCREMENT), so such rows can only name deleted blocks.
fn sweep(conn: &Connection, slice: u32, swept_below: &mut i64) -> rusqlite::Result<()> {
    let oldest: Option<i64> = conn.query_row("SELECT MIN(id) FROM blocks", [], |r| r.get(0))?;
    let oldest = match oldest {
        Some(id) => id,
        None => conn.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM sqlite_sequence WHERE name = 'blocks'",
            [],
            |r| r.get(0),
        )?,
    };
    if oldest <= *swept_below {
        return Ok(());
    }
    // One range delete per search term, along the (term, block_id) key.
    let terms: Vec<String> = conn
        .prepare_cached("SELECT CASE kind WHEN 'service' THEN 's:' ELSE 'd:' END || name FROM nodes WHERE kind IN ('service', 'destination')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete_term =
        conn.prepare_cached("DELETE FROM block_terms WHERE term = ?1 AND block_id < ?2")?;
    for term in terms {
        delete_term.execute(params![term, oldest])?;
    }
    let (lo, hi) = super::size::key_slice(slice, SLICES);
    conn.execute(
        "DELETE FROM trace_blocks WHERE trace_key >= ?1 AND trace_key <= ?2 AND block_id < ?3",
        params![lo, hi, oldest],
    )?;
    if slice + 1 == SLICES {
        // Every slice has been swept up to `oldest` once around.
        *swept_below = oldest;
    }
    Ok(())
}
