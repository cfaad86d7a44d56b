//! SQL of streams (migration 2 in `db.rs`): `streams` (with the next offset, so offsets are
//! never reused even after retention empties a stream), `stream_events` (the log, keyed by
//! stream and offset) and `stream_groups` (committed offsets).

use super::StreamSpec;
use rusqlite::{params, Connection, OptionalExtension};

pub const MIGRATION: &str = r#"
CREATE TABLE streams (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    max_age_ms INTEGER,
    next_offset INTEGER NOT NULL DEFAULT 0,
    created_unix_nanos INTEGER NOT NULL
);
CREATE TABLE stream_events (
    stream_id INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    attributes TEXT NOT NULL,
    data BLOB,
    data_is_json INTEGER NOT NULL,
    traceparent TEXT NOT NULL,
    tracestate TEXT,
    published_unix_nanos INTEGER NOT NULL,
    PRIMARY KEY (stream_id, pos)
) WITHOUT ROWID;
CREATE INDEX stream_events_time ON stream_events(stream_id, published_unix_nanos);
CREATE TABLE stream_groups (
    stream_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    committed INTEGER NOT NULL,
    updated_unix_nanos INTEGER NOT NULL,
    PRIMARY KEY (stream_id, name)
) WITHOUT ROWID;
"#;

/// A stream as the router keeps it in memory.
#[derive(Clone, Debug)]
pub struct StreamRow {
    pub id: i64,
    pub spec: StreamSpec,
    pub next_offset: u64,
    /// Bytes its events hold (see [`event_bytes`]); ahead of the disk after a failed commit.
    pub bytes: u64,
}

/// The bytes an event counts for against `max_bytes`: its attributes' JSON and its data.
pub fn event_bytes(attributes: &str, data: Option<&[u8]>) -> u64 {
    (attributes.len() + data.map_or(0, <[u8]>::len)) as u64
}

const EVENT_BYTES_SQL: &str = "length(CAST(attributes AS BLOB)) + COALESCE(length(data), 0)";

pub fn load(conn: &Connection) -> rusqlite::Result<Vec<StreamRow>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT id, name, max_age_ms, next_offset, max_bytes,
                (SELECT COALESCE(SUM({EVENT_BYTES_SQL}), 0) FROM stream_events e
                 WHERE e.stream_id = streams.id)
         FROM streams"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok(StreamRow {
            id: r.get(0)?,
            spec: StreamSpec {
                name: r.get(1)?,
                max_age_ms: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                max_bytes: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            },
            next_offset: r.get::<_, i64>(3)? as u64,
            bytes: r.get::<_, i64>(5)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

pub fn insert_stream(conn: &Connection, spec: &StreamSpec, now: u64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO streams (name, max_age_ms, max_bytes, created_unix_nanos)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        spec.name,
        spec.max_age_ms.map(|v| v as i64),
        spec.max_bytes.map(|v| v as i64),
        now as i64
    ])?;
    Ok(conn.last_insert_rowid())
}

/// What an appended event stores.
pub struct Append<'a> {
    pub stream_id: i64,
    pub offset: u64,
    pub event_id: &'a str,
    pub attributes: &'a str,
    pub data: Option<&'a [u8]>,
    pub data_is_json: bool,
    pub traceparent: &'a str,
    pub tracestate: Option<&'a str>,
    pub published_unix_nanos: u64,
}

pub fn append(conn: &Connection, a: &Append) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO stream_events (stream_id, pos, event_id, attributes, data, data_is_json,
                                    traceparent, tracestate, published_unix_nanos)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        a.stream_id,
        a.offset as i64,
        a.event_id,
        a.attributes,
        a.data,
        a.data_is_json,
        a.traceparent,
        a.tracestate,
        a.published_unix_nanos as i64
    ])?;
    conn.prepare_cached("UPDATE streams SET next_offset = ?2 WHERE id = ?1")?
        .execute(params![a.stream_id, (a.offset + 1) as i64])?;
    Ok(())
}

/// A stored event.
pub struct Stored {
    pub offset: u64,
    pub event_id: String,
    pub attributes: String,
    pub data: Option<Vec<u8>>,
    pub data_is_json: bool,
    pub traceparent: String,
    pub tracestate: Option<String>,
    pub published_unix_nanos: u64,
}

/// Up to `limit` events from `offset` on, in offset order.
pub fn read(
    conn: &Connection,
    stream: i64,
    offset: u64,
    limit: usize,
) -> rusqlite::Result<Vec<Stored>> {
    let mut stmt = conn.prepare_cached(
        "SELECT pos, event_id, attributes, data, data_is_json, traceparent, tracestate,
                published_unix_nanos
         FROM stream_events WHERE stream_id = ?1 AND pos >= ?2 ORDER BY pos LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![stream, offset as i64, limit as i64], |r| {
        Ok(Stored {
            offset: r.get::<_, i64>(0)? as u64,
            event_id: r.get(1)?,
            attributes: r.get(2)?,
            data: r.get(3)?,
            data_is_json: r.get(4)?,
            traceparent: r.get(5)?,
            tracestate: r.get(6)?,
            published_unix_nanos: r.get::<_, i64>(7)? as u64,
        })
    })?;
    rows.collect()
}

/// The first offset published at or after `t`, if any.
pub fn offset_at(conn: &Connection, stream: i64, t: u64) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(
        "SELECT pos FROM stream_events WHERE stream_id = ?1 AND published_unix_nanos >= ?2
         ORDER BY published_unix_nanos, pos LIMIT 1",
    )?
    .query_row(params![stream, t as i64], |r| r.get::<_, i64>(0))
    .optional()
    .map(|o| o.map(|v| v as u64))
}

/// The smallest offset still stored, if any.
pub fn first_offset(conn: &Connection, stream: i64) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT MIN(pos) FROM stream_events WHERE stream_id = ?1")?
        .query_row(params![stream], |r| r.get::<_, Option<i64>>(0))
        .map(|o| o.map(|v| v as u64))
}

pub fn committed(conn: &Connection, stream: i64, group: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached("SELECT committed FROM stream_groups WHERE stream_id = ?1 AND name = ?2")?
        .query_row(params![stream, group], |r| r.get::<_, i64>(0))
        .optional()
        .map(|o| o.map(|v| v as u64))
}

pub fn commit(
    conn: &Connection,
    stream: i64,
    group: &str,
    offset: u64,
    now: u64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO stream_groups (stream_id, name, committed, updated_unix_nanos)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (stream_id, name) DO UPDATE SET committed = excluded.committed,
             updated_unix_nanos = excluded.updated_unix_nanos",
    )?
    .execute(params![stream, group, offset as i64, now as i64])?;
    Ok(())
}

/// Every group of a stream with its committed offset.
pub fn groups(conn: &Connection, stream: i64) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, committed FROM stream_groups WHERE stream_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map(params![stream], |r| {
        Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    rows.collect()
}

/// Deletes up to `limit` of a stream's oldest events published before `before`; returns the
/// bytes freed.
pub fn expire(conn: &Connection, stream: i64, before: u64, limit: usize) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(&format!(
        "DELETE FROM stream_events WHERE stream_id = ?1 AND pos IN (
             SELECT pos FROM stream_events WHERE stream_id = ?1 AND published_unix_nanos < ?2
             ORDER BY pos LIMIT ?3)
         RETURNING {EVENT_BYTES_SQL}"
    ))?;
    let freed = stmt.query_map(params![stream, before as i64, limit as i64], |r| {
        r.get::<_, i64>(0)
    })?;
    freed
        .sum::<rusqlite::Result<i64>>()
        .map(|b| b.max(0) as u64)
}

/// Deletes a stream's oldest events (up to `limit`) until at least `excess` bytes are freed;
/// returns the bytes freed.
pub fn trim(conn: &Connection, stream: i64, excess: u64, limit: usize) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT pos, {EVENT_BYTES_SQL} FROM stream_events WHERE stream_id = ?1 ORDER BY pos LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![stream, limit as i64])?;
    let (mut freed, mut last) = (0u64, None);
    while let Some(r) = rows.next()? {
        if freed >= excess {
            break;
        }
        last = Some(r.get::<_, i64>(0)?);
        freed += r.get::<_, i64>(1)?.max(0) as u64;
    }
    drop(rows);
    if let Some(pos) = last {
        conn.prepare_cached("DELETE FROM stream_events WHERE stream_id = ?1 AND pos <= ?2")?
            .execute(params![stream, pos])?;
    }
    Ok(freed)
}

/// Deletes a stream with its events and consumer groups.
pub fn delete_stream(tx: &Connection, stream: i64) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM stream_events WHERE stream_id = ?1",
        params![stream],
    )?;
    tx.execute(
        "DELETE FROM stream_groups WHERE stream_id = ?1",
        params![stream],
    )?;
    tx.execute("DELETE FROM streams WHERE id = ?1", params![stream])?;
    Ok(())
}
