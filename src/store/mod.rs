//! Storage. The rest of the crate talks to the [`Store`] handle and its traits
//! ([`interface`]); each backend implements them. [`sqlite`], the embedded default, is the
//! only module that speaks SQL: one writer thread owns the write connection (group commit,
//! reply after COMMIT); reads use a small pool of read-only WAL connections. The messaging
//! rules the writer applies (pairing, per-message accounting, minute statistics) are pure, in
//! `crate::accounting`; the store persists their results.

pub mod clickhouse;
mod insert;
pub mod interface;
pub mod sqlite;
#[cfg(test)]
pub mod suite;

pub use insert::{attributes_json, prepare, Prepared};
pub use interface::{
    Pending, Room, Storage, Store, StoreStats, TopologyReads, TraceReads, WriteBatch, Writes,
};
pub use sqlite::retention::RetentionConfig;
pub use sqlite::{open_read_only, stable_plans, start_checkpointer, Checkpointer, SqliteStore};

use crate::error::ErrorCode;
use std::path::PathBuf;

/// The result of one write: how many spans were new, how many were already stored, and how
/// many were not stored because they started before the retention's cutoff (retention would
/// delete them at its next pass: they are refused instead, and reported as rejected).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub stored: u64,
    pub duplicates: u64,
    pub expired: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (its own error, as text: `sqlite: ...`).
    #[error("{0}")]
    Backend(String),
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade switchyard")]
    NewerSchema { found: i64, supported: i64 },
    #[error("the write queue is full")]
    Busy,
    #[error("the store is shutting down")]
    Closed,
    #[error("write failed: {0}")]
    Write(String),
    /// A server-backed store cannot reach its server (down, restarting, overloaded): the
    /// client should retry later (503 with `Retry-After`).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The file and WAL would not stay within `--retention-size` (retry later).
    #[error("the database is at its size bound ({bytes} of {bound} bytes); retry later")]
    Full { bytes: u64, bound: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            // A rolled-back write is transient: the client should retry it.
            StoreError::Busy
            | StoreError::Closed
            | StoreError::Write(_)
            | StoreError::Unavailable(_)
            | StoreError::Full { .. } => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        }
    }
}

#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub path: PathBuf,
    pub retention: RetentionConfig,
    /// Write requests queued for the writer at most; past that, writes answer `Busy`.
    pub queue_depth: usize,
    /// `NORMAL` (durable across process crashes, the default) or `FULL` (also power loss).
    pub synchronous: String,
}
