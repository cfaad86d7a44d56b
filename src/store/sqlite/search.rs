//! Trace search: the newest traces with a span matching every condition, over the block
//! index (`postings.rs`), newest blocks first.

use super::block::{self, Record};
use super::postings::{self, Bloom, Extent};
use super::reader::{decode_into, each_record, holding, newest_copies, records_by_trace, Tagged};
use super::reader::{skeleton, summarize, times_by_trace};
use super::trace_index::Unwritten;
use super::StoreError;
use crate::model::{StatusCode, TraceId};
use crate::model::{TraceQuery, TraceSearch, TraceSet, TraceSummary};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Blocks decoded at most by one search: blocks the index cannot answer alone (two or more
/// conditions on one span, an attribute its Bloom filter may hold, blocks written before
/// the index, a trace whose matching spans straddle the window's start).
pub const DECODE_BLOCKS: usize = 128;
/// No block is decoded once a search has run this long (a page stays under 50 ms).
#[cfg(not(test))]
const DECODE_TIME: Duration = Duration::from_millis(30);
/// Unit tests assert completeness against the block bound, which is deterministic; the wall
/// clock bound is a safety net that a loaded test machine must not trip.
#[cfg(test)]
const DECODE_TIME: Duration = Duration::from_secs(60);

/// What the index says of one block.
enum Plan {
    Skip,
    /// Traces of the block with the earliest start of their matching spans.
    Exact(Vec<(TraceId, u64)>),
    /// Decode the block and test its spans (all, or only these traces').
    Decode(Option<HashSet<TraceId>>),
}

struct Search<'a> {
    q: &'a TraceQuery,
    since: u64,
    until: u64,
    /// The index's terms, rarest kind first, and their places in the row.
    terms: Vec<String>,
    /// Whether the row carries the trace table (no term and no attribute: every trace).
    table: bool,
    bloom: bool,
    postings_from: i64,
    /// Bytes a span matching the attribute must hold in its record (the key and value as
    /// JSON writes them, when that is the text itself), to skip records without decoding.
    needles: Vec<memchr::memmem::Finder<'static>>,
}

/// Whether JSON writes `text` as it is (no quote, backslash or control character).
fn verbatim_in_json(text: &str) -> bool {
    !text.is_empty() && !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Blocks whose operation terms [`recent_operations`] reads (the newest).
const OPERATION_BLOCKS: i64 = 64;

/// Distinct span names in the newest blocks' postings (`o:` terms), sorted, at most `limit`.
pub fn recent_operations(conn: &Connection, limit: usize) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT substr(term, 3) FROM block_postings \
         WHERE block_id IN (SELECT id FROM blocks ORDER BY id DESC LIMIT ?1) \
         AND term >= 'o:' AND term < 'o;' LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![OPERATION_BLOCKS, limit.min(i64::MAX as usize) as i64],
        |r| r.get::<_, String>(0),
    )?;
    let mut names = rows.collect::<Result<Vec<String>, _>>()?;
    names.sort();
    Ok(names)
}

/// The most recent traces matching the query, newest first (by trace start).
///
/// Blocks are read newest first by their latest span start. A trace's start is estimated by
/// its earliest matching span read so far; reading stops once no unread block can hold a span
/// newer than the `limit`-th estimate. The chosen traces are then read whole and ordered by
/// their real start.
pub fn search_traces(
    conn: &Connection,
    unwritten: &Unwritten,
    q: &TraceQuery,
) -> Result<TraceSearch, StoreError> {
    // One read transaction for the search and the traces' blocks: the file's read lock is
    // taken once, not for each statement.
    let tx = conn.unchecked_transaction()?;
    let (found, complete) = newest(&tx, q)?;
    let traces = summaries(&tx, unwritten, &found)?;
    Ok(TraceSearch { traces, complete })
}

/// As [`search_traces`] over the newest `q.limit` matches, keeping the newest `limit` traces
/// whose duration in microseconds is within `micros`. The durations are read from the
/// records' heads; only the kept traces are decoded and summarised.
pub fn search_traces_within(
    conn: &Connection,
    unwritten: &Unwritten,
    q: &TraceQuery,
    micros: std::ops::RangeInclusive<f64>,
    limit: usize,
) -> Result<TraceSearch, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let (found, complete) = newest(&tx, q)?;
    let times = times_by_trace(&tx, unwritten, &found)?;
    let mut kept: Vec<(u64, TraceId)> = found
        .iter()
        .filter_map(|id| {
            let &(start, end) = times.get(id)?;
            let duration_micros = end.saturating_sub(start) / 1_000;
            micros
                .contains(&(duration_micros as f64))
                .then_some((start, *id))
        })
        .collect();
    kept.sort_unstable_by(|a, b| b.cmp(a));
    kept.truncate(limit);
    let ids: Vec<TraceId> = kept.into_iter().map(|(_, id)| id).collect();
    let mut traces = summaries(&tx, unwritten, &ids)?;
    // A damaged record counts in the heads but not in a summary: the bounds hold on what is
    // shown.
    traces.retain(|t| micros.contains(&(t.duration_micros as f64)));
    Ok(TraceSearch { traces, complete })
}

/// The summaries of these traces (those stored), newest first.
fn summaries(
    conn: &Connection,
    unwritten: &Unwritten,
    ids: &[TraceId],
) -> Result<Vec<TraceSummary>, StoreError> {
    let mut records = records_by_trace(conn, unwritten, ids, false)?;
    let mut traces: Vec<TraceSummary> = ids
        .iter()
        .filter_map(|id| summarize(*id, records.remove(id)?))
        .collect();
    traces.sort_by_key(|t| std::cmp::Reverse((t.start_unix_nanos, t.trace_id)));
    Ok(traces)
}

/// The spans of the newest traces matching the query, newest first, for analyses over many
/// traces (pathways): the fields that tie spans together and time them, without their
/// attributes, events or resource (not parsed). Reading stops at `deadline`.
pub fn search_spans(
    conn: &Connection,
    unwritten: &Unwritten,
    q: &TraceQuery,
    deadline: Instant,
) -> Result<TraceSet, StoreError> {
    // One read transaction for the search and every trace's blocks: the file's read lock is
    // taken once, not for each of the hundreds of statements (and they read one snapshot).
    let tx = conn.unchecked_transaction()?;
    let (found, complete) = newest(&tx, q)?;
    let mut set = read_spans(&tx, unwritten, &found, deadline)?;
    set.search_complete = complete;
    Ok(set)
}

/// The spans of these traces (those stored), in the given order, as [`search_spans`] reads
/// them (in one read transaction); reading stops at `deadline`.
pub fn spans_of(
    conn: &Connection,
    unwritten: &Unwritten,
    found: &[TraceId],
    deadline: Instant,
) -> Result<TraceSet, StoreError> {
    let tx = conn.unchecked_transaction()?;
    read_spans(&tx, unwritten, found, deadline)
}

fn read_spans(
    conn: &Connection,
    unwritten: &Unwritten,
    found: &[TraceId],
    deadline: Instant,
) -> Result<TraceSet, StoreError> {
    let mut set = TraceSet {
        traces: Vec::with_capacity(found.len()),
        search_complete: true,
        out_of_time: false,
    };
    // Each block that holds any of the traces is read once, newest first, until the deadline;
    // the traces are then taken in order while every block of each was read.
    let blocks = holding(conn, unwritten, found)?;
    let mut oldest_block: HashMap<TraceId, i64> = HashMap::new();
    for (&block, traces) in &blocks {
        for &t in traces {
            oldest_block.entry(t).or_insert(block);
        }
    }
    let mut read = Tagged::default();
    let stopped = each_record(conn, &blocks, Some(deadline), |t, id, rec| {
        decode_into(&mut read, t, id, rec, false)
    })?;
    // One record per span: a span stored again (marked failed) is read as its newest copy.
    let mut records = newest_copies(&blocks, read);
    let mut taken: HashMap<TraceId, usize> = HashMap::new();
    for &id in found {
        let unread = stopped
            .zip(oldest_block.get(&id))
            .is_some_and(|(s, o)| *o <= s);
        if unread {
            set.out_of_time = true;
            break;
        }
        let spans = match records.remove(&id) {
            Some(records) => {
                let mut spans: Vec<_> = records.into_iter().map(|r| skeleton(id, r)).collect();
                spans.sort_by_key(|s| (s.start_unix_nanos, s.span_id));
                spans
            }
            // A trace listed twice is answered twice, as it was read the first time.
            None => match taken.get(&id) {
                Some(&at) => set.traces[at].clone(),
                None => continue,
            },
        };
        if !spans.is_empty() {
            taken.insert(id, set.traces.len());
            set.traces.push(spans);
        }
    }
    Ok(set)
}

/// The ids of the newest traces matching the query, newest first by the estimate of their
/// start, and whether the search covered every block it had to.
fn newest(conn: &Connection, q: &TraceQuery) -> Result<(Vec<TraceId>, bool), StoreError> {
    let started = Instant::now();
    let limit = q.limit.clamp(1, 10_000);
    let s = Search::new(conn, q)?;
    let mut stmt = conn.prepare_cached(&s.sql())?;
    let mut args: Vec<rusqlite::types::Value> = vec![
        (s.since.min(i64::MAX as u64) as i64).into(),
        (s.until.min(i64::MAX as u64) as i64).into(),
    ];
    args.extend(s.terms.iter().map(|t| t.clone().into()));
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut estimate: HashMap<TraceId, u64> = HashMap::new();
    let (mut changed, mut threshold) = (false, 0u64);
    let (mut decoded, mut complete) = (0usize, true);
    let mut inflater = block::Inflater::default();
    while let Some(r) = rows.next()? {
        let (id, min_start) = (r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64);
        let block_newest = r.get::<_, i64>(2)? as u64;
        if changed && estimate.len() >= limit {
            // The limit-th newest estimate, recomputed only when estimates changed.
            let mut starts: Vec<u64> = estimate.values().copied().collect();
            let (_, nth, _) = starts.select_nth_unstable_by(limit - 1, |a, b| b.cmp(a));
            threshold = *nth;
            changed = false;
        }
        if estimate.len() >= limit && block_newest < threshold {
            break;
        }
        let mut note = |id: TraceId, start: u64| {
            let e = estimate.entry(id).or_insert(u64::MAX);
            if start < *e {
                *e = start;
                changed = true;
            }
        };
        match s.plan(conn, id, min_start, r)? {
            Plan::Skip => {}
            Plan::Exact(found) => found.into_iter().for_each(|(t, start)| note(t, start)),
            Plan::Decode(only) => {
                if decoded >= DECODE_BLOCKS || started.elapsed() >= DECODE_TIME {
                    complete = false;
                    break;
                }
                decoded += 1;
                s.decode(conn, &mut inflater, id, only.as_ref(), &mut note)?;
            }
        }
    }
    let mut found: Vec<(u64, TraceId)> = estimate
        .into_iter()
        .map(|(id, start)| (start, id))
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found.truncate(limit);
    Ok((found.into_iter().map(|(_, id)| id).collect(), complete))
}

impl<'a> Search<'a> {
    fn new(conn: &Connection, q: &'a TraceQuery) -> Result<Search<'a>, StoreError> {
        let (since, until) = q
            .window
            .map(|w| (w.since_unix_nanos, w.until_unix_nanos))
            .unwrap_or((0, u64::MAX));
        let mut terms = Vec::new();
        match (&q.service, q.errors_only) {
            (Some(s), true) => terms.push(format!("e:{s}")),
            (None, true) => terms.push("e".to_string()),
            _ => {}
        }
        terms.extend(q.operation.as_ref().map(|o| format!("o:{o}")));
        terms.extend(q.destination.as_ref().map(|d| format!("d:{d}")));
        if !q.errors_only {
            terms.extend(q.service.as_ref().map(|s| format!("s:{s}")));
        }
        let postings_from = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'postings_from'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(i64::MAX);
        let needles = q
            .attribute
            .iter()
            .flat_map(|(k, v)| [k, v])
            .filter(|t| verbatim_in_json(t))
            .map(|t| memchr::memmem::Finder::new(t.as_bytes()).into_owned())
            .collect();
        Ok(Search {
            needles,
            table: terms.is_empty() && q.attribute.is_none(),
            bloom: q.attribute.is_some() || q.operation.is_some(),
            q,
            since,
            until,
            terms,
            postings_from,
        })
    }

    /// Blocks in the window, newest first, with the entries of each term (or the trace table
    /// when there is none) and the Bloom filter when an attribute or operation needs it.
    fn sql(&self) -> String {
        let mut cols = String::from("b.id, b.min_start_unix_nanos, b.max_start_unix_nanos");
        let mut joins = String::new();
        for i in 0..self.terms.len() {
            cols.push_str(&format!(", t{i}.entries"));
            joins.push_str(&format!(
                " LEFT JOIN block_postings t{i} ON t{i}.block_id = b.id AND t{i}.term = ?{}",
                i + 3
            ));
        }
        if self.table {
            cols.push_str(", tt.entries");
            joins.push_str(" LEFT JOIN block_postings tt ON tt.block_id = b.id AND tt.term = ''");
        }
        if self.bloom {
            cols.push_str(", bl.bloom");
            joins.push_str(" LEFT JOIN block_blooms bl ON bl.block_id = b.id");
        }
        format!(
            "SELECT {cols} FROM blocks b{joins} WHERE b.max_start_unix_nanos >= ?1 AND b.min_start_unix_nanos < ?2 ORDER BY b.max_start_unix_nanos DESC"
        )
    }

    fn plan(
        &self,
        conn: &Connection,
        id: i64,
        min_start: u64,
        r: &rusqlite::Row<'_>,
    ) -> Result<Plan, StoreError> {
        if id < self.postings_from {
            return Ok(Plan::Decode(None));
        }
        let blob = |i: usize| r.get::<_, Option<Vec<u8>>>(3 + i);
        let bloom_blob = if self.bloom {
            r.get::<_, Option<Vec<u8>>>(3 + self.terms.len() + self.table as usize)?
        } else {
            None
        };
        let bloom = bloom_blob.as_deref().and_then(Bloom::new);
        if self.bloom && bloom.is_none() {
            // An index row missing or damaged: the block itself answers.
            return Ok(Plan::Decode(None));
        }
        if self.table {
            let table = blob(0)?.unwrap_or_default();
            return Ok(self.exact(postings::decode_table(&table, min_start)));
        }
        let mut lists = Vec::with_capacity(self.terms.len());
        let mut decode = self.q.attribute.is_some();
        for (i, term) in self.terms.iter().enumerate() {
            match blob(i)? {
                Some(b) => lists.push(postings::decode_list(&b, min_start)),
                // An operation beyond the block's postings may be in its Bloom filter.
                None if term.starts_with("o:") && self.operation_overflows(bloom.as_ref()) => {
                    decode = true
                }
                None => return Ok(Plan::Skip),
            }
        }
        if let (Some((k, v)), Some(b)) = (&self.q.attribute, &bloom) {
            let may = b.may_contain(postings::attribute_hash(k, v))
                || b.may_contain(postings::unindexed_key_hash(k));
            if !may {
                return Ok(Plan::Skip);
            }
        }
        if lists.is_empty() {
            return Ok(Plan::Decode(None));
        }
        let candidates = postings::intersect(&lists);
        if candidates.is_empty() {
            return Ok(Plan::Skip);
        }
        let table = trace_table(conn, id, min_start)?;
        let id_of = |i: u32| table.get(i as usize).map(|(t, _)| *t);
        if decode || lists.len() > 1 {
            let only = candidates.into_iter().filter_map(id_of).collect();
            return Ok(Plan::Decode(Some(only)));
        }
        let found: Vec<(TraceId, Extent)> = lists[0]
            .iter()
            .filter_map(|(i, e)| id_of(*i).map(|t| (t, *e)))
            .collect();
        Ok(self.exact(found))
    }

    fn operation_overflows(&self, bloom: Option<&Bloom<'_>>) -> bool {
        let (Some(b), Some(op)) = (bloom, &self.q.operation) else {
            return false;
        };
        b.flags() & postings::OPERATIONS_OVERFLOW != 0
            && b.may_contain(postings::operation_hash(op))
    }

    /// Traces whose matching spans' extent settles the window test; a trace whose matching
    /// spans straddle the window's start needs its spans decoded.
    fn exact(&self, found: Vec<(TraceId, Extent)>) -> Plan {
        let mut out = Vec::with_capacity(found.len());
        let mut straddling = HashSet::new();
        for (t, e) in found {
            if e.first >= self.since && e.first < self.until {
                out.push((t, e.first));
            } else if e.last >= self.since && e.first < self.since {
                straddling.insert(t);
            }
        }
        if straddling.is_empty() {
            Plan::Exact(out)
        } else {
            // Decoding finds the exact traces, straddling or not.
            Plan::Decode(Some(
                out.into_iter().map(|(t, _)| t).chain(straddling).collect(),
            ))
        }
    }

    fn decode(
        &self,
        conn: &Connection,
        inflater: &mut block::Inflater,
        id: i64,
        only: Option<&HashSet<TraceId>>,
        note: &mut impl FnMut(TraceId, u64),
    ) -> Result<(), StoreError> {
        let Some(inflated) = inflater.block(conn, id)? else {
            return Ok(());
        };
        let holds = |b: &[u8]| self.needles.iter().all(|n| n.find(b).is_some());
        if !holds(inflated) {
            return Ok(());
        }
        for rec in block::records(inflated) {
            if !holds(rec) {
                continue;
            }
            if let Some(only) = only {
                let wanted = block::record_trace(rec)
                    .and_then(|t| TraceId::from_bytes(t).ok())
                    .is_some_and(|t| only.contains(&t));
                if !wanted {
                    continue;
                }
            }
            let Ok(s) = block::decode(rec) else { continue };
            if self.matches(&s) {
                note(s.trace_id, s.start);
            }
        }
        Ok(())
    }

    fn matches(&self, s: &Record) -> bool {
        let q = self.q;
        s.start >= self.since
            && s.start < self.until
            && (!q.errors_only || s.status == StatusCode::Error)
            && q.service.as_ref().is_none_or(|svc| *svc == s.service)
            && q.destination
                .as_ref()
                .is_none_or(|d| s.messaging.as_ref().is_some_and(|m| m.destination == *d))
            && q.operation.as_ref().is_none_or(|op| *op == s.name)
            && q.attribute
                .as_ref()
                .is_none_or(|(k, v)| attribute_is(s.attributes.as_deref(), k, v))
    }
}

/// The trace table of an indexed block (empty if it is gone).
fn trace_table(
    conn: &Connection,
    id: i64,
    min_start: u64,
) -> Result<Vec<(TraceId, Extent)>, StoreError> {
    let blob: Option<Vec<u8>> = conn
        .prepare_cached("SELECT entries FROM block_postings WHERE block_id = ?1 AND term = ''")?
        .query_row(params![id], |r| r.get(0))
        .optional()?;
    Ok(postings::decode_table(
        blob.as_deref().unwrap_or_default(),
        min_start,
    ))
}

/// Whether the attributes JSON object holds `key` with `value` (strings compared as they
/// are, numbers and booleans by their JSON text).
fn attribute_is(attributes: Option<&str>, key: &str, value: &str) -> bool {
    let Some(text) = attributes.filter(|a| a.contains(key)) else {
        return false;
    };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) else {
        return false;
    };
    match map.get(key) {
        Some(serde_json::Value::String(s)) => s == value,
        // Numbers and booleans by their JSON text (`Value == str` would compare strings only).
        Some(other) => {
            let text = other.to_string();
            text == value
        }
        None => false,
    }
}
