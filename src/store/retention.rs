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

const CHUNK: i64 = 5_000;
const BUDGET: Duration = Duration::from_millis(200);

pub fn run(conn: &mut Connection, cfg: &RetentionConfig) -> rusqlite::Result<()> {
    let started = Instant::now();
    let cutoff = now_unix_nanos().saturating_sub(cfg.max_age.as_nanos() as u64) as i64;
    loop {
        let deleted = conn.execute(
            "DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE start_unix_nanos < ?1 ORDER BY start_unix_nanos LIMIT ?2)",
            params![cutoff, CHUNK],
        )?;
        if (deleted as i64) < CHUNK || started.elapsed() > BUDGET {
            break;
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
        "DELETE FROM pending_refs WHERE created_unix_nanos < ?1",
        params![cutoff],
    )?;
    if let Some(max) = cfg.max_bytes {
        while used_bytes(conn)? > max && started.elapsed() < BUDGET {
            let deleted = conn.execute(
                "DELETE FROM spans WHERE id IN (SELECT id FROM spans ORDER BY start_unix_nanos LIMIT ?1)",
                params![CHUNK],
            )?;
            if deleted == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// Bytes in use: pages minus free pages (freed pages are reused before the file grows).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}
