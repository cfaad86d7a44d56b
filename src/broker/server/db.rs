//! The broker's SQLite file: schema (migrations by `PRAGMA user_version`, each in one
//! transaction; a newer schema is refused) and every statement, with bound parameters only.
//! Only the router thread holds the connection.
//!
//! Tables: `topics`, `subscriptions`, `messages` (one row per published message, with its
//! data, the publish span's context and `holders`, the number of queue rows that still hold
//! it) and `queue` (one row per message and subscription: the delivery state machine). A
//! message row goes when its last queue row goes: `holders` counts them down, so that no index
//! on `queue(seq)` has to be kept up to date (and written to the WAL) by every publish and ack.

use super::{BrokerError, SubscriptionSpec};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// Migrations in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE topics (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_unix_nanos INTEGER NOT NULL
);
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    topic_id INTEGER NOT NULL REFERENCES topics(id),
    visibility_timeout_ms INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    created_unix_nanos INTEGER NOT NULL
);
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY,
    topic_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    data BLOB,
    data_is_json INTEGER NOT NULL,
    traceparent TEXT NOT NULL,
    tracestate TEXT,
    published_unix_nanos INTEGER NOT NULL
);
-- state 0: ready (visible_unix_ms <= now) or leased (lease set, visible_unix_ms = expiry);
-- state 1: dead-lettered.
CREATE TABLE queue (
    id INTEGER PRIMARY KEY,
    sub_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    visible_unix_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease TEXT,
    lease_service TEXT,
    lease_traceparent TEXT,
    dead_unix_nanos INTEGER
);
CREATE INDEX queue_due ON queue(sub_id, state, visible_unix_ms, id);
CREATE INDEX queue_seq ON queue(seq);
"#,
    super::stream_db::MIGRATION,
    "ALTER TABLE subscriptions ADD COLUMN filter TEXT;",
    "ALTER TABLE subscriptions ADD COLUMN push TEXT;",
    "ALTER TABLE streams ADD COLUMN max_bytes INTEGER;",
    r#"
ALTER TABLE messages ADD COLUMN holders INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET holders = (SELECT COUNT(*) FROM queue WHERE queue.seq = messages.seq);
DROP INDEX queue_seq;
"#,
];

pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Page size of a new broker file. Every commit appends each page it changed to the WAL, and a
/// message's commits change the same few small pages (its row, its queue row and that row's
/// `queue_due` entry): at 4 KiB a page, one message wrote about 24 KiB to the WAL (32 KiB
/// before schema 6), which the disk then has to take in; at 1 KiB, a quarter of that. A file
/// created with another size keeps it (the size of a WAL-mode file cannot change without a
/// VACUUM out of WAL mode).
pub const PAGE_SIZE: i64 = 1024;

/// Opens the file in WAL mode and migrates it.
pub fn open(path: &Path, synchronous: &str) -> Result<Connection, BrokerError> {
    let mut conn = Connection::open(path)?;
    // Only takes effect while the file is still empty.
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Checkpoints run on their own thread (see Broker::open), not inside a commit.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    crate::store::stable_plans(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), BrokerError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT_VERSION {
        return Err(BrokerError::Conflict(format!(
            "broker schema version {version} is newer than this build supports ({CURRENT_VERSION}); upgrade switchyard"
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// A topic or subscription as the router keeps it in memory.
#[derive(Clone, Debug)]
pub struct SubRow {
    pub id: i64,
    pub spec: SubscriptionSpec,
}

/// Topics as (id, name), and subscriptions.
pub type Loaded = (Vec<(i64, String)>, Vec<SubRow>);

/// Every topic and subscription, for the router's catalogue.
pub fn load(conn: &Connection) -> Result<Loaded, BrokerError> {
    let mut stmt = conn.prepare("SELECT id, name FROM topics ORDER BY id")?;
    let topics = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut stmt = conn.prepare(
        "SELECT s.id, s.name, t.name, s.visibility_timeout_ms, s.max_attempts, s.filter, s.push
         FROM subscriptions s JOIN topics t ON t.id = s.topic_id ORDER BY s.id",
    )?;
    let subs = stmt
        .query_map([], |r| {
            Ok(SubRow {
                id: r.get(0)?,
                spec: SubscriptionSpec {
                    name: r.get(1)?,
                    topic: r.get(2)?,
                    visibility_timeout_ms: r.get::<_, i64>(3)? as u64,
                    max_attempts: r.get::<_, i64>(4)? as u32,
                    filter: r
                        .get::<_, Option<String>>(5)?
                        .and_then(|f| serde_json::from_str(&f).ok()),
                    push: r
                        .get::<_, Option<String>>(6)?
                        .and_then(|p| serde_json::from_str(&p).ok()),
                },
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((topics, subs))
}

pub fn insert_topic(tx: &Connection, name: &str, now: u64) -> rusqlite::Result<i64> {
    tx.prepare_cached("INSERT INTO topics (name, created_unix_nanos) VALUES (?1, ?2)")?
        .execute(params![name, now as i64])?;
    Ok(tx.last_insert_rowid())
}

pub fn insert_subscription(
    tx: &Connection,
    spec: &SubscriptionSpec,
    topic_id: i64,
    now: u64,
) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO subscriptions (name, topic_id, visibility_timeout_ms, max_attempts, created_unix_nanos, filter, push)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        spec.name,
        topic_id,
        spec.visibility_timeout_ms as i64,
        spec.max_attempts as i64,
        now as i64,
        spec.filter
            .as_ref()
            .and_then(|f| serde_json::to_string(f).ok()),
        spec.push
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok())
    ])?;
    Ok(tx.last_insert_rowid())
}

/// What a published message stores.
pub struct NewMessage<'a> {
    pub topic_id: i64,
    pub event_id: &'a str,
    pub attributes: &'a str,
    pub data: Option<&'a [u8]>,
    pub data_is_json: bool,
    pub traceparent: &'a str,
    pub tracestate: Option<&'a str>,
    pub published_unix_nanos: u64,
}

/// Stores a message and queues it on each subscription (fan-out).
pub fn insert_message(tx: &Connection, m: &NewMessage, subs: &[i64]) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO messages (topic_id, event_id, attributes, data, data_is_json, traceparent, tracestate, published_unix_nanos, holders)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        m.topic_id,
        m.event_id,
        m.attributes,
        m.data,
        m.data_is_json,
        m.traceparent,
        m.tracestate,
        m.published_unix_nanos as i64,
        subs.len() as i64
    ])?;
    let seq = tx.last_insert_rowid();
    let visible = (m.published_unix_nanos / 1_000_000) as i64;
    let mut stmt =
        tx.prepare_cached("INSERT INTO queue (sub_id, seq, visible_unix_ms) VALUES (?1, ?2, ?3)")?;
    for sub in subs {
        stmt.execute(params![sub, seq, visible])?;
    }
    Ok(seq)
}

/// A queue row due for delivery, with its message.
pub struct Due {
    pub id: i64,
    pub seq: i64,
    pub attempts: u32,
    pub lease: Option<String>,
    pub lease_service: Option<String>,
    pub lease_traceparent: Option<String>,
    pub event_id: String,
    pub attributes: String,
    pub data: Option<Vec<u8>>,
    pub data_is_json: bool,
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// Up to `limit` rows of a subscription that are deliverable at `now_ms`, oldest due first.
pub fn due(tx: &Connection, sub: i64, now_ms: u64, limit: usize) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = tx.prepare_cached(
        "SELECT q.id, q.seq, q.attempts, q.lease, q.lease_service, q.lease_traceparent,
                m.event_id, m.attributes, m.data, m.data_is_json, m.traceparent, m.tracestate
         FROM queue q JOIN messages m ON m.seq = q.seq
         WHERE q.sub_id = ?1 AND q.state = 0 AND q.visible_unix_ms <= ?2
         ORDER BY q.visible_unix_ms, q.id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![sub, now_ms as i64, limit as i64], |r| {
        Ok(Due {
            id: r.get(0)?,
            seq: r.get(1)?,
            attempts: r.get::<_, i64>(2)? as u32,
            lease: r.get(3)?,
            lease_service: r.get(4)?,
            lease_traceparent: r.get(5)?,
            event_id: r.get(6)?,
            attributes: r.get(7)?,
            data: r.get(8)?,
            data_is_json: r.get(9)?,
            traceparent: r.get(10)?,
            tracestate: r.get(11)?,
        })
    })?;
    rows.collect()
}

/// Leases a row: one more attempt, invisible until `expires_ms`.
pub fn lease(
    tx: &Connection,
    id: i64,
    lease: &str,
    service: &str,
    traceparent: &str,
    expires_ms: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE queue SET attempts = attempts + 1, lease = ?2, lease_service = ?3,
                lease_traceparent = ?4, visible_unix_ms = ?5 WHERE id = ?1",
    )?
    .execute(params![id, lease, service, traceparent, expires_ms as i64])?;
    Ok(())
}

/// Moves a row to the dead-letter queue.
pub fn kill(tx: &Connection, id: i64, now: u64) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "UPDATE queue SET state = 1, lease = NULL, dead_unix_nanos = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now as i64])?;
    Ok(())
}

/// The queue row a lease names, if that lease is still the row's current one.
pub struct Leased {
    pub id: i64,
    pub seq: i64,
    pub attempts: u32,
    pub event_id: String,
    pub lease_traceparent: Option<String>,
}

pub fn find_lease(
    tx: &Connection,
    sub: i64,
    id: i64,
    lease: &str,
) -> rusqlite::Result<Option<Leased>> {
    tx.prepare_cached(
        "SELECT q.id, q.seq, q.attempts, m.event_id, q.lease_traceparent
         FROM queue q JOIN messages m ON m.seq = q.seq
         WHERE q.id = ?1 AND q.sub_id = ?2 AND q.state = 0 AND q.lease = ?3",
    )?
    .query_row(params![id, sub, lease], |r| {
        Ok(Leased {
            id: r.get(0)?,
            seq: r.get(1)?,
            attempts: r.get::<_, i64>(2)? as u32,
            event_id: r.get(3)?,
            lease_traceparent: r.get(4)?,
        })
    })
    .optional()
}

/// Removes an acknowledged row, and its message when no subscription still holds it.
pub fn remove(tx: &Connection, id: i64, seq: i64) -> rusqlite::Result<()> {
    let removed = tx
        .prepare_cached("DELETE FROM queue WHERE id = ?1")?
        .execute(params![id])?;
    if removed == 0 {
        return Ok(());
    }
    // The last holder takes the message with it; another only counts itself out.
    let gone = tx
        .prepare_cached("DELETE FROM messages WHERE seq = ?1 AND holders <= 1")?
        .execute(params![seq])?;
    if gone == 0 {
        tx.prepare_cached("UPDATE messages SET holders = holders - 1 WHERE seq = ?1")?
            .execute(params![seq])?;
    }
    Ok(())
}

/// Moves a subscription's dead letters back to its queue with their attempts reset.
pub fn redrive(tx: &Connection, sub: i64, now_ms: u64) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "UPDATE queue SET state = 0, attempts = 0, lease = NULL, dead_unix_nanos = NULL,
                visible_unix_ms = ?2 WHERE sub_id = ?1 AND state = 1",
    )?
    .execute(params![sub, now_ms as i64])
}

/// Deletes a subscription with its queue rows, and the messages no other subscription holds.
pub fn delete_subscription(tx: &Connection, sub: i64) -> rusqlite::Result<()> {
    // A message has at most one row per subscription.
    tx.execute(
        "UPDATE messages SET holders = holders - 1
         WHERE seq IN (SELECT seq FROM queue WHERE sub_id = ?1)",
        params![sub],
    )?;
    tx.execute(
        "DELETE FROM messages WHERE holders <= 0
         AND seq IN (SELECT seq FROM queue WHERE sub_id = ?1)",
        params![sub],
    )?;
    tx.execute("DELETE FROM queue WHERE sub_id = ?1", params![sub])?;
    tx.execute("DELETE FROM subscriptions WHERE id = ?1", params![sub])?;
    Ok(())
}

/// Deletes a topic (its subscriptions first: see [`delete_subscription`]).
pub fn delete_topic(tx: &Connection, topic: i64) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM topics WHERE id = ?1", params![topic])?;
    Ok(())
}

/// Makes a leased row deliverable again at `visible_ms` (the lease ends).
pub fn release(tx: &Connection, id: i64, visible_ms: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE queue SET lease = NULL, visible_unix_ms = ?2 WHERE id = ?1")?
        .execute(params![id, visible_ms as i64])?;
    Ok(())
}

/// When the next leased or delayed message of a subscription becomes deliverable (unix ms), if
/// one is waiting: the earliest time of its undelivered rows (called after a look found none
/// deliverable, so all of them lie ahead, unless the clock stepped back: then it is at once).
pub fn next_due(tx: &Connection, sub: i64) -> rusqlite::Result<Option<u64>> {
    tx.prepare_cached("SELECT MIN(visible_unix_ms) FROM queue WHERE sub_id = ?1 AND state = 0")?
        .query_row(params![sub], |r| r.get::<_, Option<i64>>(0))
        .map(|at| at.map(|at| at.max(0) as u64))
}

/// (ready, leased, dead) counts of a subscription at `now_ms`.
pub fn counts(conn: &Connection, sub: i64, now_ms: u64) -> rusqlite::Result<(u64, u64, u64)> {
    conn.prepare_cached(
        "SELECT COALESCE(SUM(state = 0 AND (lease IS NULL OR visible_unix_ms <= ?2)), 0),
                COALESCE(SUM(state = 0 AND lease IS NOT NULL AND visible_unix_ms > ?2), 0),
                COALESCE(SUM(state = 1), 0)
         FROM queue WHERE sub_id = ?1",
    )?
    .query_row(params![sub, now_ms as i64], |r| {
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get::<_, i64>(1)? as u64,
            r.get::<_, i64>(2)? as u64,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_size(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn new_files_get_small_pages_and_old_files_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("new");
        assert_eq!(page_size(&open(&new, "NORMAL").unwrap()), PAGE_SIZE);
        // A file made by an earlier version, with SQLite's default page size.
        let old = dir.path().join("old");
        {
            let conn = Connection::open(&old).unwrap();
            conn.pragma_update(None, "page_size", 4096).unwrap();
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let conn = open(&old, "NORMAL").unwrap();
        assert_eq!(page_size(&conn), 4096);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, CURRENT_VERSION);
    }

    #[test]
    fn migrations_apply_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.db-broker");
        drop(open(&path, "NORMAL").unwrap());
        let conn = open(&path, "NORMAL").unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        drop(conn);
        assert!(open(&path, "NORMAL").is_err());
    }

    #[test]
    fn upgrading_counts_the_holders_of_queued_messages_and_drops_the_seq_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b");
        // A file of the version before holders were counted, with one message on two queues
        // (one of them already acknowledged) and one on a single queue.
        {
            let mut conn = Connection::open(&path).unwrap();
            let tx = conn.transaction().unwrap();
            for sql in &MIGRATIONS[..5] {
                tx.execute_batch(sql).unwrap();
            }
            tx.pragma_update(None, "user_version", 5).unwrap();
            tx.execute_batch(
                "INSERT INTO topics VALUES (1, 't', 0);
                 INSERT INTO subscriptions (id, name, topic_id, visibility_timeout_ms, max_attempts, created_unix_nanos)
                     VALUES (1, 'a', 1, 10, 2, 0), (2, 'b', 1, 10, 2, 0), (3, 'c', 1, 10, 2, 0);
                 INSERT INTO messages (seq, topic_id, event_id, attributes, data_is_json, traceparent, published_unix_nanos)
                     VALUES (1, 1, 'e1', '{}', 0, 'tp', 0), (2, 1, 'e2', '{}', 0, 'tp', 0);
                 INSERT INTO queue (id, sub_id, seq, visible_unix_ms)
                     VALUES (1, 1, 1, 0), (2, 2, 1, 0), (3, 3, 1, 0), (4, 1, 2, 0);
                 DELETE FROM queue WHERE id = 3;",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let conn = open(&path, "NORMAL").unwrap();
        let holders = |seq: i64| -> Option<i64> {
            conn.query_row("SELECT holders FROM messages WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })
            .optional()
            .unwrap()
        };
        assert_eq!((holders(1), holders(2)), (Some(2), Some(1)));
        let index: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'queue_seq'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(index, 0);
        remove(&conn, 1, 1).unwrap();
        assert_eq!(holders(1), Some(1));
        // Removing a row that is already gone counts nobody out.
        remove(&conn, 1, 1).unwrap();
        assert_eq!(holders(1), Some(1));
        remove(&conn, 2, 1).unwrap();
        remove(&conn, 4, 2).unwrap();
        assert_eq!((holders(1), holders(2)), (None, None));
    }

    #[test]
    fn a_message_goes_with_its_last_queue_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("b"), "NORMAL").unwrap();
        let tx = conn.transaction().unwrap();
        let t = insert_topic(&tx, "t", 1).unwrap();
        let spec = |n: &str| SubscriptionSpec {
            name: n.into(),
            topic: "t".into(),
            visibility_timeout_ms: 10,
            max_attempts: 2,
            filter: None,
            push: None,
        };
        let a = insert_subscription(&tx, &spec("a"), t, 1).unwrap();
        let b = insert_subscription(&tx, &spec("b"), t, 1).unwrap();
        let m = NewMessage {
            topic_id: t,
            event_id: "e",
            attributes: "{}",
            data: Some(b"x"),
            data_is_json: false,
            traceparent: "tp",
            tracestate: None,
            published_unix_nanos: 1_000_000,
        };
        let seq = insert_message(&tx, &m, &[a, b]).unwrap();
        let due_a = due(&tx, a, 1, 10).unwrap();
        let due_b = due(&tx, b, 1, 10).unwrap();
        assert_eq!((due_a.len(), due_b.len()), (1, 1));
        remove(&tx, due_a[0].id, seq).unwrap();
        let left: i64 = tx
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 1);
        remove(&tx, due_b[0].id, seq).unwrap();
        let left: i64 = tx
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }
}
