//! Span blocks: the spans of one request, encoded as length-prefixed records and compressed
//! with LZ4, stored as one row. Records are decoded only when a trace or a search needs them.
//!
//! Record layout (integers little-endian, varints LEB128, `str` = varint length + UTF-8,
//! `opt` = varint length + 1, or 0 for none):
//! `u32 len | trace_id[16] | span_id[8] | u8 has_parent [parent[8]] | u8 kind | u8 status |
//! u8 flags | u64 start | u64 end | varint resource_id+1 | str service | opt namespace |
//! opt instance | str name | opt scope | opt status_message | u8 has_messaging [str system |
//! str destination | u8 operation | opt group | opt message_id | opt conversation_id] |
//! opt peer | opt attributes | opt events | opt links`

use super::postings::Collector;
use crate::model::{Operation, SpanId, SpanKind, StatusCode, TraceId};
use crate::store::Prepared;
use prost::encoding::{decode_varint, encode_varint};

/// Largest inflated block accepted when reading (blocks are written by us; this guards
/// against a damaged file).
const MAX_INFLATED: usize = 256 * 1024 * 1024;

#[derive(Default)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    pub count: u32,
    pub min_start: u64,
    pub max_start: u64,
    /// Distinct trace keys in the block.
    pub traces: Vec<i64>,
    /// The block's search index (see `postings`).
    pub postings: Collector,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    encode_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            encode_varint(s.len() as u64 + 1, out);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

impl BlockBuilder {
    pub fn push(&mut self, p: &Prepared, resource_id: Option<i64>, flags: u8) {
        let s = &p.span;
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.buf.extend_from_slice(s.trace_id.as_bytes());
        self.buf.extend_from_slice(s.span_id.as_bytes());
        match s.parent_span_id {
            Some(parent) => {
                self.buf.push(1);
                self.buf.extend_from_slice(parent.as_bytes());
            }
            None => self.buf.push(0),
        }
        self.buf
            .extend_from_slice(&[s.kind.as_i32() as u8, s.status.as_i32() as u8, flags]);
        self.buf
            .extend_from_slice(&s.start_unix_nanos.to_le_bytes());
        self.buf.extend_from_slice(&s.end_unix_nanos.to_le_bytes());
        encode_varint(
            resource_id.map(|r| r as u64 + 1).unwrap_or(0),
            &mut self.buf,
        );
        put_str(&mut self.buf, &s.service.name);
        put_opt(&mut self.buf, s.service.namespace.as_deref());
        put_opt(&mut self.buf, s.service.instance.as_deref());
        put_str(&mut self.buf, &s.name);
        put_opt(
            &mut self.buf,
            (!s.scope.is_empty()).then_some(s.scope.as_str()),
        );
        put_opt(
            &mut self.buf,
            (!s.status_message.is_empty()).then_some(s.status_message.as_str()),
        );
        match &s.messaging {
            Some(m) => {
                self.buf.push(1);
                put_str(&mut self.buf, &m.system);
                put_str(&mut self.buf, &m.destination);
                self.buf.push(m.operation.code());
                put_opt(&mut self.buf, m.consumer_group.as_deref());
                put_opt(&mut self.buf, m.message_id.as_deref());
                put_opt(&mut self.buf, m.conversation_id.as_deref());
            }
            None => self.buf.push(0),
        }
        put_opt(&mut self.buf, s.peer.as_deref());
        put_opt(&mut self.buf, p.attributes.as_deref());
        put_opt(&mut self.buf, p.events.as_deref());
        put_opt(&mut self.buf, p.links.as_deref());
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());

        if self.count == 0 {
            self.min_start = s.start_unix_nanos;
            self.max_start = s.start_unix_nanos;
        }
        self.min_start = self.min_start.min(s.start_unix_nanos);
        self.max_start = self.max_start.max(s.start_unix_nanos);
        self.count += 1;
        self.traces.push(s.trace_id.key());
        self.postings.push(s, &p.attribute_hashes);
    }

    /// The compressed block; `traces` is sorted and deduplicated.
    pub fn finish(&mut self) -> Vec<u8> {
        self.traces.sort_unstable();
        self.traces.dedup();
        lz4_flex::compress_prepend_size(&self.buf)
    }
}

/// One decoded record.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub kind: SpanKind,
    pub status: StatusCode,
    pub flags: u8,
    pub start: u64,
    pub end: u64,
    pub resource_id: Option<i64>,
    pub service: String,
    pub namespace: Option<String>,
    pub instance: Option<String>,
    pub name: String,
    pub scope: Option<String>,
    pub status_message: Option<String>,
    pub messaging: Option<RecordMessaging>,
    pub peer: Option<String>,
    pub attributes: Option<String>,
    pub events: Option<String>,
    pub links: Option<String>,
}

impl Record {
    /// The record as the writer had it to store ([`BlockBuilder::push`] writes it back the
    /// same), its attributes' filter entries recomputed from their JSON.
    pub fn into_prepared(self) -> Prepared {
        use crate::model::{messaging::Messaging, ServiceRef, Span};
        let attributes: crate::model::Attributes = self
            .attributes
            .as_deref()
            .and_then(|j| serde_json::from_str::<serde_json::Map<_, _>>(j).ok())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        Prepared {
            attribute_hashes: super::postings::attribute_hashes(&attributes),
            span: Span {
                trace_id: self.trace_id,
                span_id: self.span_id,
                parent_span_id: self.parent,
                service: ServiceRef {
                    name: self.service,
                    namespace: self.namespace,
                    instance: self.instance,
                },
                kind: self.kind,
                name: self.name,
                start_unix_nanos: self.start,
                end_unix_nanos: self.end,
                status: self.status,
                status_message: self.status_message.unwrap_or_default(),
                attributes: Vec::new(),
                resource: Default::default(),
                scope: self.scope.unwrap_or_default(),
                events: Vec::new(),
                links: Vec::new(),
                messaging: self.messaging.map(|m| Messaging {
                    system: m.system,
                    destination: m.destination,
                    operation: m.operation,
                    consumer_group: m.consumer_group,
                    message_id: m.message_id,
                    conversation_id: m.conversation_id,
                    temporary: false,
                    batch_count: None,
                    partition: None,
                }),
                peer: self.peer,
            },
            db_system: None,
            marks: Default::default(),
            attributes: self.attributes,
            events: self.events,
            links: self.links,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordMessaging {
    pub system: String,
    pub destination: String,
    pub operation: Operation,
    pub consumer_group: Option<String>,
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("damaged span block: {0}")]
pub struct BlockError(pub String);

pub fn inflate(data: &[u8]) -> Result<Vec<u8>, BlockError> {
    if data.len() >= 4 {
        let size = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if size > MAX_INFLATED {
            return Err(BlockError(format!("inflated size {size} is too large")));
        }
    }
    lz4_flex::decompress_size_prepended(data).map_err(|e| BlockError(e.to_string()))
}

/// One buffer that blocks are inflated into in turn, for a request that reads several blocks
/// once each: the buffer is allocated (and zeroed) for the largest of them only, where
/// [`inflate`] allocates, zeroes and faults in fresh memory for every block.
#[derive(Default)]
pub struct Inflater {
    buf: Vec<u8>,
}

impl Inflater {
    /// Inflates `data` as [`inflate`] does, into the buffer.
    pub fn inflate(&mut self, data: &[u8]) -> Result<&[u8], BlockError> {
        let len = self.fill(data)?;
        Ok(&self.buf[..len])
    }

    /// Inflates `data` into the buffer; returns its length.
    fn fill(&mut self, data: &[u8]) -> Result<usize, BlockError> {
        let (size, body) =
            lz4_flex::block::uncompressed_size(data).map_err(|e| BlockError(e.to_string()))?;
        if size > MAX_INFLATED {
            return Err(BlockError(format!("inflated size {size} is too large")));
        }
        if self.buf.len() < size {
            self.buf.resize(size, 0);
        }
        lz4_flex::block::decompress_into(body, &mut self.buf[..size])
            .map_err(|e| BlockError(e.to_string()))
    }

    /// The inflated data of the stored block `id`, read in place from the row (no copy of the
    /// compressed bytes); `None` if it is gone or damaged (logged), as [`inflated_block`].
    pub fn block(
        &mut self,
        conn: &rusqlite::Connection,
        id: i64,
    ) -> rusqlite::Result<Option<&[u8]>> {
        let mut stmt = conn.prepare_cached("SELECT data FROM blocks WHERE id = ?1")?;
        let mut rows = stmt.query([id])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let filled = match row.get_ref(0)? {
            rusqlite::types::ValueRef::Blob(data) => self.fill(data),
            _ => Err(BlockError("not a blob".into())),
        };
        match filled {
            Ok(len) => Ok(Some(&self.buf[..len])),
            Err(e) => {
                tracing::warn!(block = id, error = %e, "skipping a damaged block");
                Ok(None)
            }
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        if self.b.len() < n {
            return Err(BlockError("truncated record".into()));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BlockError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, BlockError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn varint(&mut self) -> Result<u64, BlockError> {
        decode_varint(&mut self.b).map_err(|_| BlockError("bad varint".into()))
    }

    fn string(&mut self, len: usize) -> Result<String, BlockError> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| BlockError("invalid UTF-8".into()))
    }

    fn str(&mut self) -> Result<String, BlockError> {
        let n = self.varint()? as usize;
        self.string(n)
    }

    /// [`Cursor::opt`] when `keep`, else steps over the value (checked, not copied).
    fn opt_if(&mut self, keep: bool) -> Result<Option<String>, BlockError> {
        if keep {
            return self.opt();
        }
        match self.varint()? as usize {
            0 => Ok(None),
            n => {
                std::str::from_utf8(self.take(n - 1)?)
                    .map_err(|_| BlockError("invalid UTF-8".into()))?;
                Ok(None)
            }
        }
    }

    fn opt(&mut self) -> Result<Option<String>, BlockError> {
        match self.varint()? as usize {
            0 => Ok(None),
            n => Ok(Some(self.string(n - 1)?)),
        }
    }
}

/// The records of one trace in the stored block `id`, read through `conn`. A missing block
/// (deleted by retention) or a damaged one yields nothing: its spans cannot be shown, and the
/// damage is logged rather than failing the whole trace.
pub fn trace_records(
    conn: &rusqlite::Connection,
    id: i64,
    trace: TraceId,
) -> rusqlite::Result<Vec<Record>> {
    Ok(match inflated_block(conn, id)? {
        Some(inflated) => records_of(&inflated, id, trace, true),
        None => Vec::new(),
    })
}

/// The inflated data of the stored block `id`; `None` if it is gone or damaged (logged).
pub fn inflated_block(conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<Option<Vec<u8>>> {
    let mut stmt = conn.prepare_cached("SELECT data FROM blocks WHERE id = ?1")?;
    let mut rows = stmt.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    // Inflated from the row in place (no copy of the compressed bytes).
    let inflated = match row.get_ref(0)? {
        rusqlite::types::ValueRef::Blob(data) => inflate(data),
        _ => Err(BlockError("not a blob".into())),
    };
    match inflated {
        Ok(i) => Ok(Some(i)),
        Err(e) => {
            tracing::warn!(block = id, error = %e, "skipping a damaged block");
            Ok(None)
        }
    }
}

/// The records of one trace in an inflated block (`id` names it in logs); without their
/// attributes and events unless `full` ([`decode_with`]).
pub fn records_of(inflated: &[u8], id: i64, trace: TraceId, full: bool) -> Vec<Record> {
    let mut out = Vec::new();
    for rec in records(inflated).filter(|rec| record_trace(rec) == Some(trace.as_bytes())) {
        match decode_as(rec, full) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(block = id, error = %e, "skipping a damaged record"),
        }
    }
    out
}

/// Iterates over the raw records of an inflated block: (trace id bytes, record bytes).
pub fn records(inflated: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = inflated;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if rest.len() < 4 + len {
            return None;
        }
        let (rec, tail) = rest[4..].split_at(len);
        rest = tail;
        Some(rec)
    })
}

/// The trace id of a raw record, without decoding the rest.
pub fn record_trace(rec: &[u8]) -> Option<&[u8]> {
    rec.get(..16)
}

/// The span id of a raw record, without decoding the rest.
pub fn record_span(rec: &[u8]) -> Option<&[u8]> {
    rec.get(16..24)
}

pub fn decode(rec: &[u8]) -> Result<Record, BlockError> {
    decode_as(rec, true)
}

/// The start and end of a raw record (nanoseconds), read from its fixed head without
/// decoding the rest; `None` when the head is truncated.
pub fn record_times(rec: &[u8]) -> Option<(u64, u64)> {
    // trace_id[16] | span_id[8] | u8 has_parent [parent[8]] | kind | status | flags | start | end
    let at = match *rec.get(24)? {
        0 => 25,
        _ => 33,
    } + 3;
    let word = |i: usize| -> Option<u64> {
        let b: [u8; 8] = rec.get(i..i + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    };
    Some((word(at)?, word(at + 8)?))
}

/// Decodes a record, with its attributes and events (`full`) or without them (left `None`,
/// not copied): what summaries and analyses over many traces read.
pub fn decode_with(rec: &[u8], full: bool) -> Result<Record, BlockError> {
    decode_as(rec, full)
}

fn decode_as(rec: &[u8], full: bool) -> Result<Record, BlockError> {
    let mut c = Cursor { b: rec };
    let trace_id = TraceId::from_bytes(c.take(16)?).map_err(|e| BlockError(e.to_string()))?;
    let span_id = SpanId::from_bytes(c.take(8)?).map_err(|e| BlockError(e.to_string()))?;
    let parent = match c.u8()? {
        0 => None,
        _ => Some(SpanId::from_bytes(c.take(8)?).map_err(|e| BlockError(e.to_string()))?),
    };
    let kind = SpanKind::from_i32(c.u8()? as i32);
    let status = StatusCode::from_i32(c.u8()? as i32);
    let flags = c.u8()?;
    let start = c.u64()?;
    let end = c.u64()?;
    let resource_id = match c.varint()? {
        0 => None,
        n => Some(n as i64 - 1),
    };
    let service = c.str()?;
    let namespace = c.opt()?;
    let instance = c.opt()?;
    let name = c.str()?;
    let scope = c.opt()?;
    let status_message = c.opt()?;
    let messaging = match c.u8()? {
        0 => None,
        _ => Some(RecordMessaging {
            system: c.str()?,
            destination: c.str()?,
            operation: Operation::from_code(c.u8()?),
            consumer_group: c.opt()?,
            message_id: c.opt()?,
            conversation_id: c.opt()?,
        }),
    };
    Ok(Record {
        trace_id,
        span_id,
        parent,
        kind,
        status,
        flags,
        start,
        end,
        resource_id,
        service,
        namespace,
        instance,
        name,
        scope,
        status_message,
        messaging,
        peer: c.opt()?,
        attributes: c.opt_if(full)?,
        events: c.opt_if(full)?,
        links: c.opt()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Messaging, ServiceRef, Span};

    fn span(i: u8, messaging: bool) -> Prepared {
        Prepared {
            span: Span {
                trace_id: TraceId([i; 16]),
                span_id: SpanId([i; 8]),
                parent_span_id: (i > 1).then_some(SpanId([1; 8])),
                service: ServiceRef {
                    name: format!("svc-{i}"),
                    namespace: None,
                    instance: Some("a".into()),
                },
                kind: SpanKind::Producer,
                name: "n".into(),
                start_unix_nanos: 100 + i as u64,
                end_unix_nanos: 200,
                status: StatusCode::Error,
                status_message: "boom".into(),
                attributes: vec![],
                resource: Default::default(),
                scope: String::new(),
                events: vec![],
                links: vec![],
                messaging: messaging.then(|| Messaging {
                    system: "kafka".into(),
                    destination: "orders".into(),
                    operation: Operation::Produce,
                    consumer_group: None,
                    message_id: Some("m".into()),
                    conversation_id: None,
                    temporary: false,
                    batch_count: None,
                    partition: None,
                }),
                peer: None,
            },
            db_system: None,
            marks: Default::default(),
            attributes: Some("{\"k\":\"<v>\"}".into()),
            events: None,
            links: None,
            attribute_hashes: vec![],
        }
    }

    #[test]
    fn round_trips_records() {
        let mut b = BlockBuilder::default();
        b.push(&span(1, false), None, 0);
        b.push(&span(2, true), Some(7), 1);
        let data = b.finish();
        assert_eq!((b.count, b.min_start, b.max_start), (2, 101, 102));
        let (rows, _) = b.postings.finish(b.min_start);
        let mut terms: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
        terms.sort_unstable();
        assert_eq!(
            terms,
            vec!["", "d:orders", "e", "e:svc-1", "e:svc-2", "o:n", "s:svc-1", "s:svc-2"]
        );
        let inflated = inflate(&data).unwrap();
        let recs: Vec<Record> = records(&inflated).map(|r| decode(r).unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].resource_id, Some(7));
        assert_eq!(recs[1].parent, Some(SpanId([1; 8])));
        assert_eq!(recs[1].messaging.as_ref().unwrap().destination, "orders");
        assert_eq!(recs[0].attributes.as_deref(), Some("{\"k\":\"<v>\"}"));
        assert_eq!(recs[0].status_message.as_deref(), Some("boom"));
    }

    #[test]
    fn record_times_read_the_head_as_decode_does() {
        let mut b = BlockBuilder::default();
        b.push(&span(1, false), None, 0);
        b.push(&span(2, true), Some(7), 1);
        let inflated = inflate(&b.finish()).unwrap();
        for rec in records(&inflated) {
            let r = decode(rec).unwrap();
            assert_eq!(record_times(rec), Some((r.start, r.end)));
            let head = 24 + if r.parent.is_some() { 9 } else { 1 } + 3 + 16;
            assert_eq!(record_times(&rec[..head - 1]), None, "a truncated head");
        }
    }

    #[test]
    fn one_inflater_reads_blocks_of_any_size_in_turn() {
        let block = |n: u8| {
            let mut b = BlockBuilder::default();
            for i in 1..=n {
                b.push(&span(i, i % 2 == 0), None, 0);
            }
            b.finish()
        };
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE blocks (id INTEGER PRIMARY KEY, data BLOB)")
            .unwrap();
        let sizes = [40u8, 3, 25, 1];
        for (id, &n) in sizes.iter().enumerate() {
            conn.execute(
                "INSERT INTO blocks (id, data) VALUES (?1, ?2)",
                rusqlite::params![id as i64, block(n)],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO blocks (id, data) VALUES (9, x'ffffff7f0102')",
            [],
        )
        .unwrap();
        let mut inflater = Inflater::default();
        for (id, &n) in sizes.iter().enumerate() {
            let want = inflate(&block(n)).unwrap();
            let got = inflater.block(&conn, id as i64).unwrap().unwrap();
            assert_eq!(got, want.as_slice(), "block {id}");
            assert_eq!(records(got).count(), n as usize);
        }
        assert!(inflater.block(&conn, 9).unwrap().is_none(), "damaged");
        assert!(inflater.block(&conn, 10).unwrap().is_none(), "gone");
    }

    #[test]
    fn damaged_blocks_are_errors() {
        assert!(inflate(&[0xff, 0xff, 0xff, 0x7f, 1, 2]).is_err());
        assert!(decode(&[1, 2, 3]).is_err());
    }

    #[test]
    fn varints_are_the_stored_leb128_and_damage_is_an_error() {
        // 624,485 and u64::MAX as the encoder wrote them before it used prost's varints.
        let mut stored = vec![0xE5, 0x8E, 0x26];
        stored.extend([0xFF; 9]);
        stored.push(0x01);
        let mut out = Vec::new();
        encode_varint(624_485, &mut out);
        encode_varint(u64::MAX, &mut out);
        assert_eq!(out, stored);
        stored.push(0x80);
        let mut c = Cursor { b: &stored };
        assert_eq!(c.varint().unwrap(), 624_485);
        assert_eq!(c.varint().unwrap(), u64::MAX);
        assert!(c.varint().is_err(), "a truncated varint");
        assert!(
            Cursor { b: &[0xFF; 11] }.varint().is_err(),
            "an overlong varint"
        );
    }
}
