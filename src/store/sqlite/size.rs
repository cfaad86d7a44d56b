//! `--retention-size`: the database file and its WAL together stay within the bound, under
//! any load. The writer asks [`SizeGuard::hold`] before each group of writes:
//!
//! - When the pages in use pass [`HIGH`] (60%) of the bound, the oldest blocks go, whatever their
//!   age, down to [`LOW`] (50%; deleting ahead of the writer, so that the groups after it find
//!   room), and with them every derived row older than the oldest span kept (span flags,
//!   pending references, trace index rows, statistics and broker snapshots of earlier
//!   minutes). Size retention can therefore delete spans seconds after they were
//!   acknowledged, when the bound holds less than the ingest rate brings in a few seconds.
//! - Freed pages go back to the file system with `incremental_vacuum` (files created under
//!   a bound have `auto_vacuum = INCREMENTAL`; another file is converted with one `VACUUM`
//!   at open when a size bound is set) once the file and WAL pass [`VACUUM_AT`] (70%).
//! - The WAL: `journal_size_limit` cuts it back each time it starts over, and a WAL over
//!   [`WAL_SHARE`] (15%) of the bound is checkpointed with TRUNCATE by the writer itself. When
//!   the checkpointer thread holds the checkpoint lock (a pass in the background, which a busy
//!   machine may not run for seconds), the writer raises it to a normal share and tries again
//!   for at most [`TRUNCATE_WAIT`], instead of refusing groups while the lock is held.
//! - When the file and WAL are over [`REFUSE_AT`] (85%) all the same (a reader holding the
//!   WAL, a bound smaller than what cannot be deleted), the group is refused with
//!   [`StoreError::Full`] (503 with `Retry-After`; gRPC UNAVAILABLE): nothing of it is stored.
//!
//! Groups are smaller under a bound ([`group_limit`]), so one group cannot overshoot by much.

use super::StoreError;
use crate::model::window::unix_minute;
use crate::priority::Lift;
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pages in use past this share of the bound start a deletion...
pub const HIGH: f64 = 0.60;
/// ...which goes down to this share.
pub const LOW: f64 = 0.50;
/// A WAL larger than this share of the bound is truncated by the writer.
pub const WAL_SHARE: f64 = 0.15;
/// File and WAL past this share: free pages go back to the file system.
pub const VACUUM_AT: f64 = 0.70;
/// File and WAL past this share: the group is refused. The rest is room for the group being
/// written, whose pages count twice until the WAL starts over (in the WAL, and in the file
/// once checkpointed).
pub const REFUSE_AT: f64 = 0.85;
/// Blocks deleted per statement at most.
const MAX_CHUNK: i64 = 256;
/// Longest deletion pass (a pass that ran out of time goes on before the next group).
const BUDGET: Duration = Duration::from_millis(300);
/// Pages handed back per `incremental_vacuum` (each one it moves is written to the WAL).
const VACUUM_PAGES: i64 = 2048;
/// Longest wait for the checkpoint lock before a group is refused for the WAL's size.
const TRUNCATE_WAIT: Duration = Duration::from_millis(500);

/// What [`SizeGuard::hold`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Blocks deleted.
    pub deleted: usize,
    /// Pending references deleted (the writer reloads its list).
    pub pending_deleted: usize,
}

#[derive(Debug)]
pub struct SizeGuard {
    bound: u64,
    db: PathBuf,
    wal: PathBuf,
    /// The next slice of the trace index to sweep (see [`delete_oldest`]).
    slice: u32,
    /// The checkpointer thread, raised when its background pass holds the checkpoint lock.
    checkpointer: Lift,
}

/// Sizes of the file as SQLite and the file system see them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    page_size: u64,
    pages: u64,
    free: u64,
    file: u64,
    wal: u64,
}

impl Sizes {
    fn read(conn: &Connection, db: &Path, wal: &Path) -> rusqlite::Result<Sizes> {
        let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        let page_size = q("PRAGMA page_size")?.max(0) as u64;
        let pages = q("PRAGMA page_count")?.max(0) as u64;
        let free = q("PRAGMA freelist_count")?.max(0) as u64;
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        Ok(Sizes {
            page_size,
            pages,
            free,
            // Pages committed to the WAL count before a checkpoint writes them to the file.
            file: len(db).max(pages * page_size),
            wal: len(wal),
        })
    }

    fn used(&self) -> u64 {
        self.pages.saturating_sub(self.free) * self.page_size
    }

    fn total(&self) -> u64 {
        self.file + self.wal
    }
}

/// Spans per group under a bound: one span per 32 KiB of the bound, so the WAL a group writes
/// stays a small part of it (2,048 spans for 64 MiB; at least 128, at most `limit`). A single
/// request larger than that is still one group.
pub fn group_limit(bound: Option<u64>, limit: usize) -> usize {
    match bound {
        Some(b) => ((b / 32_768) as usize).clamp(128, limit),
        None => limit,
    }
}

fn share(bound: u64, f: f64) -> u64 {
    (bound as f64 * f) as u64
}

impl SizeGuard {
    /// Sets the WAL's size limit on the writer's connection.
    pub fn new(
        conn: &Connection,
        db: &Path,
        bound: u64,
        checkpointer: Lift,
    ) -> Result<SizeGuard, StoreError> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        conn.pragma_update(
            None,
            "journal_size_limit",
            share(bound, WAL_SHARE / 3.0) as i64,
        )?;
        Ok(SizeGuard {
            bound,
            db: db.to_path_buf(),
            wal: PathBuf::from(wal),
            slice: 0,
            checkpointer,
        })
    }

    /// Makes room before a group of writes; `Err(Full)` when the file and WAL cannot be
    /// brought within the bound now.
    pub fn hold(&mut self, conn: &mut Connection) -> Result<Held, StoreError> {
        let mut held = Held::default();
        let mut s = Sizes::read(conn, &self.db, &self.wal)?;
        if s.used() > share(self.bound, HIGH) {
            self.slice = self.slice.wrapping_add(1);
            held = delete_oldest(conn, share(self.bound, LOW), self.slice)?;
            s = Sizes::read(conn, &self.db, &self.wal)?;
        }
        if s.wal > share(self.bound, WAL_SHARE) {
            self.truncate_wal(conn);
            s = Sizes::read(conn, &self.db, &self.wal)?;
        }
        if s.free > 0 && s.total() > share(self.bound, VACUUM_AT) {
            incremental_vacuum(conn, s.free.min(VACUUM_PAGES as u64))?;
            s = Sizes::read(conn, &self.db, &self.wal)?;
        }
        if s.total() > share(self.bound, REFUSE_AT) {
            return Err(StoreError::Full {
                bytes: s.total(),
                bound: self.bound,
            });
        }
        Ok(held)
    }

    /// The writer's own TRUNCATE: nothing is written meanwhile, readers are waited for
    /// (busy_timeout). A busy answer while the checkpointer thread holds the checkpoint lock
    /// raises that thread out of the background and tries again, for at most
    /// [`TRUNCATE_WAIT`]; an error leaves the WAL as it is (the size check decides).
    fn truncate_wal(&self, conn: &Connection) {
        let started = Instant::now();
        loop {
            let busy = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
            if !matches!(busy, Ok(1)) || started.elapsed() >= TRUNCATE_WAIT {
                return;
            }
            self.checkpointer.raise();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// At open: deletes down to the bound (however long it takes: nothing is served yet),
    /// then converts a file without incremental vacuum (one `VACUUM`, which rewrites what is
    /// left once, so it costs about the bound; its temporary copy goes to a file, not memory).
    pub fn at_open(&self, conn: &mut Connection) -> Result<(), StoreError> {
        let target = share(self.bound, LOW);
        let mut deleted = 0;
        let mut slice = 0;
        while Sizes::read(conn, &self.db, &self.wal)?.used() > target {
            let held = delete_oldest(conn, target, slice)?;
            if held.deleted == 0 {
                break;
            }
            deleted += held.deleted;
            slice += 1;
        }
        if deleted > 0 {
            // Every slice of the trace index once around.
            for s in slice..slice + SLICES {
                delete_oldest(conn, u64::MAX, s)?;
            }
            tracing::info!(blocks = deleted, "size retention at start");
        }
        let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
        if mode != AUTO_VACUUM_INCREMENTAL {
            let started = Instant::now();
            conn.pragma_update(None, "auto_vacuum", AUTO_VACUUM_INCREMENTAL)?;
            conn.pragma_update(None, "temp_store", "FILE")?;
            let done = conn.execute_batch("VACUUM");
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            done?;
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "database converted to incremental vacuum, so size retention gives space back"
            );
        }
        incremental_vacuum(conn, u64::MAX >> 2)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// Frees up to `pages` free pages. The pragma frees one page per step: it is stepped to the
/// end (`execute_batch` would step it once).
fn incremental_vacuum(conn: &Connection, pages: u64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare(&format!("PRAGMA incremental_vacuum({pages})"))?;
    let mut rows = stmt.query([])?;
    while rows.next()?.is_some() {}
    Ok(())
}

/// `PRAGMA auto_vacuum` value of INCREMENTAL.
pub const AUTO_VACUUM_INCREMENTAL: i64 = 2;

/// The trace index is swept for rows of deleted blocks one key slice per deletion.
const SLICES: u32 = 8;

/// Deletes the oldest blocks until the pages in use are at most `target` bytes (or no block
/// is left, or the pass ran out of time), then every derived row older than the oldest span
/// kept, and the trace index rows of deleted blocks in one key slice (`slice` modulo 8; the
/// trace index has no index by block: a slice at a time bounds the pass).
pub fn delete_oldest(conn: &mut Connection, target: u64, slice: u32) -> rusqlite::Result<Held> {
    let started = Instant::now();
    let tx = conn.transaction()?;
    let page_size: i64 = tx.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let used = |tx: &Connection| -> rusqlite::Result<u64> {
        let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let free: i64 = tx.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        Ok(((pages - free).max(0) * page_size) as u64)
    };
    let mut deleted = 0;
    let before = used(&tx)?;
    let mut now = before;
    // Blocks differ in size by orders of magnitude (a request each): the first statement
    // deletes one, the next as many as the bytes freed per block so far say are needed.
    let mut chunk = 1;
    while now > target && started.elapsed() < BUDGET {
        let n = tx
            .prepare_cached(
                "DELETE FROM blocks WHERE id IN (SELECT id FROM blocks ORDER BY id LIMIT ?1)",
            )?
            .execute(params![chunk])?;
        deleted += n;
        if n == 0 {
            break;
        }
        now = used(&tx)?;
        let per_block = (before.saturating_sub(now) / deleted as u64).max(1);
        chunk = (now.saturating_sub(target).div_ceil(per_block) as i64).clamp(1, MAX_CHUNK);
    }
    // With `target` u64::MAX nothing is deleted and only the index slice is swept.
    let pending_deleted = match (deleted, target) {
        (0, t) if t != u64::MAX => 0,
        _ => forget_before_oldest(&tx, slice % SLICES)?,
    };
    tx.commit()?;
    Ok(Held {
        deleted,
        pending_deleted,
    })
}

/// Derived rows older than the oldest span still stored (all of them when no block is left):
/// what size retention took the spans of. Returns the pending references deleted.
fn forget_before_oldest(tx: &Connection, slice: u32) -> rusqlite::Result<usize> {
    let oldest: Option<i64> =
        tx.query_row("SELECT MIN(min_start_unix_nanos) FROM blocks", [], |r| {
            r.get(0)
        })?;
    let oldest_block: Option<i64> = tx.query_row("SELECT MIN(id) FROM blocks", [], |r| r.get(0))?;
    let before = oldest.unwrap_or_else(|| crate::model::window::now_unix_nanos() as i64);
    tx.execute(
        "DELETE FROM span_flags WHERE start_unix_nanos < ?1",
        params![before],
    )?;
    let pending = tx.execute(
        "DELETE FROM pending_refs WHERE start_unix_nanos < ?1",
        params![before],
    )?;
    super::retention::delete_minutes_before(tx, unix_minute(before.max(0) as u64))?;
    // Index rows of deleted blocks (ids are never reused, so everything below the oldest
    // block id is gone), along the trace key, one slice of it.
    let below = oldest_block.unwrap_or(i64::MAX);
    let (lo, hi) = key_slice(slice, SLICES);
    tx.execute(
        "DELETE FROM trace_blocks WHERE trace_key >= ?1 AND trace_key <= ?2 AND block_id < ?3",
        params![lo, hi, below],
    )?;
    Ok(pending)
}

/// The `slice`-th of `slices` equal ranges of the i64 key space, inclusive.
pub fn key_slice(slice: u32, slices: u32) -> (i64, i64) {
    let width = (u64::MAX / slices as u64) as i128;
    let lo = (i64::MIN as i128 + width * slice as i128) as i64;
    let hi = if slice + 1 == slices {
        i64::MAX
    } else {
        (i64::MIN as i128 + width * (slice as i128 + 1)) as i64 - 1
    };
    (lo, hi)
}
