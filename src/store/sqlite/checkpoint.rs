//! WAL checkpoints on their own thread and connection. A PASSIVE checkpoint copies committed pages
//! into the database file while the writer keeps appending to the WAL, so commits never wait for
//! the bulk of a checkpoint (with SQLite's automatic checkpoints, every few MiB a commit would pay
//! for copying and syncing the whole WAL). The writer finishes the job when it is idle (see
//! writer.rs), which lets the WAL start over. Between passes, while the WAL is being written, the
//! thread syncs it every 10 ms, so the writer's checkpoint finds little of the WAL left to wait
//! for. A TRUNCATE checkpoint runs at shutdown, and as a safety valve if the WAL grows past a limit
//! anyway. The thread runs its passes in the background (`crate::priority`) unless a pass leaves a
//! backlog or comes far too late; TRUNCATE, which holds writers back, always runs with a normal
//! share. A background pass holds the checkpoint lock, which the writer's own TRUNCATE (size
//! retention) needs: the writer raises the pass to a normal share ([`Lift`]) instead of waiting
//! for a busy machine to leave a core idle.

use super::StoreError;
use crate::lograte::ERRORS;
use crate::priority::Lift;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(100);
/// How often, between passes, the WAL is synced while it is being written.
const SYNC_EVERY: Duration = Duration::from_millis(10);
/// A WAL larger than this is truncated: a TRUNCATE checkpoint briefly holds the writer back,
/// which a PASSIVE one never does, but without it a busy writer keeps the WAL growing.
const WAL_LIMIT: u64 = 256 * 1024 * 1024;
/// WAL frames left to copy after a pass past which the checkpointer stops running in the
/// background (see `priority`) and takes a fair share of the CPU until it has caught up.
const BACKLOG_FRAMES: i64 = 4096;
/// A pass this much later than [`EVERY`] means the background thread was starved of CPU: the
/// next pass runs with a fair share.
const STARVED: Duration = Duration::from_secs(1);

/// Runs a checkpoint; returns (frames in the WAL, frames copied to the database).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(1)?, r.get(2)?))
    })
}

/// Waits for the next pass; true if a stop was asked. Given the WAL (path and file, opened
/// once), syncs it every [`SYNC_EVERY`] meanwhile: a checkpoint, the writer's own included,
/// syncs the WAL first and waits for every page not yet on disk, so a WAL kept synced in the
/// background leaves the writer's checkpoint little to wait for (the broker router blocked
/// on I/O about 40% less, and four times less often for over 0.3 ms, at one message in
/// flight).
fn wait_for_pass(
    stopped: &Receiver<()>,
    mut wal: Option<(&std::path::PathBuf, &mut Option<std::fs::File>)>,
) -> bool {
    let due = Instant::now() + EVERY;
    loop {
        let now = Instant::now();
        if now >= due {
            return false;
        }
        let step = if wal.is_some() { SYNC_EVERY } else { EVERY };
        match stopped.recv_timeout(step.min(due - now)) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return true,
        }
        if let Some((path, file)) = wal.as_mut() {
            if file.is_none() {
                **file = std::fs::File::open(path).ok();
            }
            if let Some(f) = file.as_ref() {
                let _ = f.sync_data();
            }
        }
    }
}

pub struct Checkpointer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

/// Starts the checkpointer of the database at `path` on a thread named `thread`. The writer's
/// connection should have `wal_autocheckpoint` 0.
/// `lift` lets the writer raise a pass that runs in the background.
pub fn start(
    thread: &str,
    path: &Path,
    synchronous: &str,
    lift: Lift,
) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path)?;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = std::path::PathBuf::from(wal);
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "cache_size", -1024)?;
    // Only with synchronous NORMAL does a checkpoint sync what commits left unsynced (FULL
    // syncs at each commit, OFF never). Linux only: elsewhere an fsync can mean more (a full
    // drive cache flush on macOS) or need a writable handle (Windows).
    let keep_synced = cfg!(target_os = "linux")
        && (synchronous.eq_ignore_ascii_case("normal") || synchronous == "1");
    let (stop, stopped) = channel::<()>();
    let thread = std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || {
            // In the background between passes and during them, unless a pass is behind; the
            // writer raises a background pass when it needs the checkpoint lock
            // (`Lift::raise`), and the next lowering puts the thread back.
            lift.lower(|| false);
            let mut last_pass = Instant::now();
            let mut wal_file = None;
            let mut frames_seen = 0;
            let mut active = false;
            loop {
                let sync = keep_synced && active;
                let last = wait_for_pass(&stopped, sync.then_some((&wal, &mut wal_file)));
                // Far later than EVERY since the last pass ended: the thread was starved of CPU.
                let late = last_pass.elapsed() > STARVED;
                if last || late {
                    // The last checkpoint holds up the shutdown; a late one is catching up.
                    lift.restore();
                }
                let started = Instant::now();
                let mode = if last { "TRUNCATE" } else { "PASSIVE" };
                let done = checkpoint(&conn, mode);
                let behind = late
                    || matches!(done, Ok((frames, copied)) if frames - copied > BACKLOG_FRAMES);
                // The WAL changed since the last pass: it is being written.
                if let Ok((frames, _)) = done {
                    active = frames != frames_seen;
                    frames_seen = frames;
                }
                match done {
                    Ok((frames, _))
                        if !last
                            && std::fs::metadata(&wal)
                                .map(|m| m.len() > WAL_LIMIT)
                                .unwrap_or(false) =>
                    {
                        // TRUNCATE holds writers back while it runs: never in the background.
                        lift.restore();
                        let result = checkpoint(&conn, "TRUNCATE");
                        tracing::debug!(
                            frames,
                            ms = started.elapsed().as_millis() as u64,
                            ok = result.is_ok(),
                            "wal truncated"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => {
                        if let Some(suppressed) = ERRORS.allow("store.checkpoint") {
                            tracing::warn!(error = %e, mode, suppressed, "checkpoint failed");
                        }
                    }
                }
                if last {
                    return;
                }
                last_pass = Instant::now();
                if behind {
                    lift.restore();
                } else {
                    lift.lower(|| false);
                }
            }
        })?;
    Ok(Checkpointer { stop, thread })
}

impl Checkpointer {
    /// Runs a last checkpoint and waits for the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}
