//! The trace index (trace key -> blocks) written in sorted batches.
//!
//! Trace ids are random, so inserting each block's keys into the B-tree at once would dirty
//! about one index page per key on every commit (megabytes of WAL per commit). Instead the
//! writer keeps new keys in memory, split into key-range chunks, and writes one chunk sorted
//! when enough keys have gathered, so several keys share each dirty page. Until then a shared
//! in-memory table answers for them. Each chunk's watermark (the last block it covers) is
//! committed with it; at start, blocks past a chunk's watermark are indexed again, so a crash
//! loses nothing.

use super::block;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

const CHUNKS: usize = 64;
/// Keys gathered before chunks are written, one chunk per commit (two past twice this).
/// Page sharing depends on how many keys are buffered per index page, not on the chunk
/// count: more chunks only cut the work of each commit into smaller pieces.
const FLUSH_AT: usize = 131_072;
/// Age of a chunk's oldest unwritten key before that chunk is written anyway (below
/// `FLUSH_AT`). The age is each chunk's own, counted from the first key it gathered after its
/// last write: below `FLUSH_AT` keys in this time (about 4,400 a second), every chunk holds
/// this much time's keys when it is written, and the pages each write dirties are shared by
/// that many keys. Faster, `FLUSH_AT` decides.
const FLUSH_AFTER: Duration = Duration::from_secs(30);

/// Recent keys not yet in `trace_blocks`, shared with readers. A std RwLock: held only to
/// insert or look up a few entries, never across an await.
pub type Unwritten = Arc<RwLock<foldhash::HashMap<i64, Vec<i64>>>>;

fn chunk_of(key: i64) -> usize {
    ((key as u64) >> 58) as usize
}

pub struct TraceIndex {
    pub unwritten: Unwritten,
    chunks: Vec<Vec<(i64, i64)>>,
    cursor: usize,
    total: usize,
    /// Per chunk, when its oldest unwritten key arrived.
    oldest: Vec<Option<Instant>>,
}

/// Keys written by a flush, to drop from the shared table once the transaction commits.
pub struct Written(Vec<(i64, i64)>);

impl TraceIndex {
    pub fn new(unwritten: Unwritten) -> TraceIndex {
        TraceIndex {
            unwritten,
            chunks: vec![Vec::new(); CHUNKS],
            cursor: 0,
            total: 0,
            oldest: vec![None; CHUNKS],
        }
    }

    /// Notes the distinct trace keys of a new block.
    pub fn add(&mut self, keys: &[i64], block_id: i64) {
        if let Ok(mut map) = self.unwritten.write() {
            for &k in keys {
                map.entry(k).or_default().push(block_id);
            }
        }
        let now = Instant::now();
        for &k in keys {
            let c = chunk_of(k);
            self.chunks[c].push((k, block_id));
            self.oldest[c].get_or_insert(now);
        }
        self.total += keys.len();
    }

    /// Writes the next non-empty chunk when due, inside the writer's transaction.
    pub fn flush_due(
        &mut self,
        tx: &Transaction<'_>,
        last_block: i64,
    ) -> rusqlite::Result<Option<Written>> {
        let now = Instant::now();
        let mut written = match self.flush_one(tx, last_block, now)? {
            Some(w) => w,
            None => return Ok(None),
        };
        if self.total >= 2 * FLUSH_AT {
            if let Some(more) = self.flush_one(tx, last_block, now)? {
                written.0.extend(more.0);
            }
        }
        Ok(Some(written))
    }

    /// Writes every chunk (at shutdown).
    pub fn flush_all(
        &mut self,
        tx: &Transaction<'_>,
        last_block: i64,
    ) -> rusqlite::Result<Written> {
        let mut keys: Vec<(i64, i64)> = self.chunks.iter_mut().flat_map(std::mem::take).collect();
        keys.sort_unstable();
        keys.dedup();
        write_sorted(tx, &keys)?;
        for c in 0..CHUNKS {
            set_watermark(tx, c, last_block)?;
        }
        self.total = 0;
        self.oldest.iter_mut().for_each(|o| *o = None);
        Ok(Written(keys))
    }

    /// The chunk to write now, if any: the next non-empty one past `FLUSH_AT` keys, else the
    /// next one whose oldest key is `FLUSH_AFTER` old.
    fn due_chunk(&self, now: Instant) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut order = (0..CHUNKS).map(|i| (self.cursor + i) % CHUNKS);
        if self.total >= FLUSH_AT {
            return order.find(|&c| !self.chunks[c].is_empty());
        }
        order.find(|&c| self.oldest[c].is_some_and(|t| now.duration_since(t) >= FLUSH_AFTER))
    }

    fn flush_one(
        &mut self,
        tx: &Transaction<'_>,
        last_block: i64,
        now: Instant,
    ) -> rusqlite::Result<Option<Written>> {
        let Some(c) = self.due_chunk(now) else {
            return Ok(None);
        };
        self.cursor = (c + 1) % CHUNKS;
        let mut keys = std::mem::take(&mut self.chunks[c]);
        self.oldest[c] = None;
        self.total -= keys.len();
        keys.sort_unstable();
        keys.dedup();
        write_sorted(tx, &keys)?;
        set_watermark(tx, c, last_block)?;
        Ok(Some(Written(keys)))
    }

    /// After the commit: the written keys are answered by the database now.
    pub fn forget(&self, written: Written) {
        if let Ok(mut map) = self.unwritten.write() {
            for (k, b) in written.0 {
                if let Some(list) = map.get_mut(&k) {
                    list.retain(|x| *x != b);
                    if list.is_empty() {
                        map.remove(&k);
                    }
                }
            }
        }
    }

    /// After a rolled-back transaction: the shared table may name blocks that do not exist.
    /// Readers skip missing blocks, and keys in the chunks would point at them too; rebuilding
    /// from the database (`recover`) is the simple, correct answer.
    pub fn reset(&mut self) {
        self.chunks.iter_mut().for_each(Vec::clear);
        self.total = 0;
        self.oldest.iter_mut().for_each(|o| *o = None);
        if let Ok(mut map) = self.unwritten.write() {
            map.clear();
        }
    }
}

fn write_sorted(tx: &Transaction<'_>, keys: &[(i64, i64)]) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR IGNORE INTO trace_blocks (trace_key, block_id) VALUES (?1, ?2)",
    )?;
    for (k, b) in keys {
        stmt.execute(params![k, b])?;
    }
    Ok(())
}

fn set_watermark(tx: &Transaction<'_>, chunk: usize, block: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![format!("trace_index_chunk_{chunk}"), block])?;
    Ok(())
}

/// Indexes the blocks past each chunk's watermark (after a crash, or a first start).
pub fn recover(conn: &mut Connection) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let mut marks = [0i64; CHUNKS];
    for (c, mark) in marks.iter_mut().enumerate() {
        *mark = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![format!("trace_index_chunk_{c}")],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
    }
    let from = marks.iter().copied().min().unwrap_or(0);
    let last: i64 = tx.query_row("SELECT COALESCE(MAX(id), 0) FROM blocks", [], |r| r.get(0))?;
    let mut keys: Vec<(i64, i64)> = Vec::new();
    {
        let mut stmt = tx.prepare("SELECT id, data FROM blocks WHERE id > ?1 ORDER BY id")?;
        let mut rows = stmt.query(params![from])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let data: Vec<u8> = r.get(1)?;
            let Ok(inflated) = block::inflate(&data) else {
                continue;
            };
            for rec in block::records(&inflated) {
                if let Some(t) =
                    block::record_trace(rec).and_then(|t| crate::model::TraceId::from_bytes(t).ok())
                {
                    let key = t.key();
                    if id > marks[chunk_of(key)] {
                        keys.push((key, id));
                    }
                }
            }
        }
    }
    keys.sort_unstable();
    keys.dedup();
    write_sorted(&tx, &keys)?;
    for c in 0..CHUNKS {
        set_watermark(&tx, c, last)?;
    }
    tx.commit()?;
    Ok(keys.len())
}

/// The blocks that may hold spans of a trace: unwritten keys and written index rows. The
/// unwritten ones are read first: keys leave that table only after their rows commit, so a
/// write in between cannot hide them from both.
pub fn blocks_of(
    conn: &Connection,
    unwritten: &Unwritten,
    trace_key: i64,
) -> rusqlite::Result<Vec<i64>> {
    let mut ids: Vec<i64> = Vec::new();
    if let Ok(map) = unwritten.read() {
        if let Some(list) = map.get(&trace_key) {
            ids.extend(list);
        }
    }
    let mut stmt = conn.prepare_cached("SELECT block_id FROM trace_blocks WHERE trace_key = ?1")?;
    for id in stmt.query_map(params![trace_key], |r| r.get::<_, i64>(0))? {
        ids.push(id?);
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key in chunk `c`.
    fn key(c: usize, low: i64) -> i64 {
        ((c as u64) << 58) as i64 | low
    }

    fn db() -> Connection {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.execute_batch(
            "CREATE TABLE trace_blocks (trace_key INTEGER NOT NULL, block_id INTEGER NOT NULL,
                 PRIMARY KEY (trace_key, block_id)) WITHOUT ROWID;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value)",
        )
        .expect("schema");
        conn
    }

    #[test]
    fn each_chunk_waits_its_own_age() {
        let mut index = TraceIndex::new(Unwritten::default());
        let start = Instant::now();
        index.add(&[key(3, 1), key(3, 2)], 1);
        index.add(&[key(7, 1)], 2);
        // Chunk 3's keys arrived at `start`, chunk 7's later.
        index.oldest[3] = Some(start);
        index.oldest[7] = Some(start + FLUSH_AFTER / 2);
        assert_eq!(index.due_chunk(start), None);
        let now = start + FLUSH_AFTER;
        assert_eq!(index.due_chunk(now), Some(3));

        let mut conn = db();
        let tx = conn.transaction().expect("transaction");
        let written = index
            .flush_one(&tx, 2, now)
            .expect("flush")
            .expect("chunk 3 due");
        assert_eq!(written.0, vec![(key(3, 1), 1), (key(3, 2), 1)]);
        // Writing chunk 3 leaves chunk 7 to its own age: nothing more is due yet.
        assert_eq!(index.total, 1);
        assert_eq!(index.due_chunk(now), None);
        assert!(index.flush_one(&tx, 2, now).expect("flush").is_none());
        assert_eq!(index.due_chunk(now + FLUSH_AFTER / 2), Some(7));
        let rows: i64 = tx
            .query_row("SELECT COUNT(*) FROM trace_blocks", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 2);
        let mark: i64 = tx
            .query_row(
                "SELECT value FROM meta WHERE key = 'trace_index_chunk_3'",
                [],
                |r| r.get(0),
            )
            .expect("chunk 3 watermark");
        assert_eq!(mark, 2);
    }

    /// Past `FLUSH_AT` keys a chunk is written at once; one key fewer, it waits.
    #[test]
    fn a_full_buffer_writes_whatever_its_age() {
        let mut index = TraceIndex::new(Unwritten::default());
        let keys: Vec<i64> = (0..FLUSH_AT as i64).map(|i| key(5, i)).collect();
        index.add(&keys, 1);
        let now = Instant::now();
        assert_eq!(index.due_chunk(now), Some(5));
        index.total -= 1;
        assert_eq!(index.due_chunk(now), None);
    }
}
