//! Retention by age and by size, in small steps so ingest never waits long.

use crate::model::window::{now_unix_nanos, unix_minute};
use rusqlite::{params, Connection};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct RetentionConfig {
    /// Spans and statistics older than this are deleted.
    pub max_age: Duration,
    /// When the database holds more than this many bytes, the oldest spans go first.
    pub max_bytes: Option<u64>,
}

const CHUNK: i64 = 500;
const BUDGET: Duration = Duration::from_millis(200);
/// The trace index is swept for rows of deleted blocks one key slice per pass.
const SLICES: u32 = 64;

pub fn run(conn: &mut Connection, cfg: &RetentionConfig, slice: u32) -> rusqlite::Result<()> {
    let started = Instant::now();
    let cutoff = now_unix_nanos().saturating_sub(cfg.max_age.as_nanos() as u64) as i64;
    loop {
        let deleted = conn.execute(
            "DELETE FROM blocks WHERE id IN (SELECT id FROM blocks WHERE max_start_unix_nanos < ?1 ORDER BY id LIMIT ?2)",
            params![cutoff, CHUNK],
        )?;
        if (deleted as i64) < CHUNK || started.elapsed() > BUDGET {
            break;
        }
    }
    if let Some(max) = cfg.max_bytes {
        while used_bytes(conn)? > max && started.elapsed() < BUDGET {
            let deleted = conn.execute(
                "DELETE FROM blocks WHERE id IN (SELECT id FROM blocks ORDER BY id LIMIT ?1)",
                params![CHUNK / 10],
            )?;
            if deleted == 0 {
                break;
            }
        }
    }
    let minute = unix_minute(cutoff as u64);
    conn.execute(
        "DELETE FROM edge_minutes WHERE minute < ?1",
        params![minute],
    )?;
    conn.execute(
        "DELETE FROM service_minutes WHERE minute < ?1",
        params![minute],
    )?;
    conn.execute(
        "DELETE FROM consumer_instances WHERE minute < ?1",
        params![minute],
    )?;
    conn.execute(
        "DELETE FROM pending_refs WHERE start_unix_nanos < ?1",
        params![cutoff],
    )?;
    conn.execute(
        "DELETE FROM span_flags WHERE start_unix_nanos < ?1",
        params![cutoff],
    )?;
    sweep(conn, slice % SLICES)?;
    Ok(())
}

/// Deletes index rows that point below the oldest live block, in one slice of the key space.
fn sweep(conn: &Connection, slice: u32) -> rusqlite::Result<()> {
    let oldest: Option<i64> = conn.query_row("SELECT MIN(id) FROM blocks", [], |r| r.get(0))?;
    let oldest = oldest.unwrap_or(i64::MAX);
    conn.execute(
        "DELETE FROM block_terms WHERE block_id < ?1",
        params![oldest],
    )?;
    let width = (u64::MAX / SLICES as u64) as i128;
    let lo = (i64::MIN as i128 + width * slice as i128) as i64;
    let hi = if slice + 1 == SLICES {
        i64::MAX
    } else {
        (i64::MIN as i128 + width * (slice as i128 + 1)) as i64
    };
    conn.execute(
        "DELETE FROM trace_blocks WHERE trace_key >= ?1 AND trace_key <= ?2 AND block_id < ?3",
        params![lo, hi, oldest],
    )?;
    Ok(())
}

/// Bytes in use: pages minus free pages (freed pages are reused before the file grows).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}
