//! Reads from ClickHouse: one trace, trace search, linking spans, span count. Each is one or
//! two queries; answers are capped by the client (64 MiB) and by `LIMIT`s here.

use super::client::{Client, ClientError};
use super::index;
use super::sql::{render, Value};
use super::summary;
use crate::model::{
    LinkingSpan, Operation, SpanId, SpanKind, StatusCode, StoredMessaging, StoredSpan, TraceId,
    TraceQuery, TraceSearch, TraceSummary,
};
use crate::store::StoreError;
use std::collections::BTreeMap;

/// Spans of one trace read at most.
pub(super) const TRACE_SPANS: usize = 100_000;
/// Traces one search answers at most.
const SEARCH_LIMIT: usize = 1_000;
/// How long after a trace's start a span linking to it is looked for (as the SQLite store).
const LINKING_AFTER_NANOS: u64 = 10 * 60 * 1_000_000_000;

pub(super) fn query(template: &str, values: &[Value<'_>]) -> Result<String, StoreError> {
    render(template, values).map_err(|e| StoreError::Backend(e.to_string()))
}

#[derive(serde::Deserialize)]
struct SpanRow {
    trace: String,
    span: String,
    parent: String,
    service: String,
    service_namespace: String,
    service_instance: String,
    name: String,
    kind: i32,
    status: i32,
    status_message: String,
    scope: String,
    msg_system: String,
    msg_destination: String,
    msg_operation: String,
    msg_consumer_group: String,
    msg_message_id: String,
    msg_conversation_id: String,
    peer: String,
    attributes: String,
    resource: String,
    events: String,
    links: String,
    start: u64,
    end: u64,
}

const SPAN_SELECT: &str =
    "SELECT hex(trace_id) AS trace, hex(span_id) AS span, hex(parent_span_id) AS parent,
    service, service_namespace, service_instance, name, kind, status, status_message, scope,
    msg_system, msg_destination, msg_operation, msg_consumer_group, msg_message_id,
    msg_conversation_id, peer, attributes, resource, events, links,
    start_unix_nanos AS start, end_unix_nanos AS end FROM spans";

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

pub(super) fn json(text: &str, empty: serde_json::Value) -> serde_json::Value {
    if text.is_empty() {
        return empty;
    }
    serde_json::from_str(text).unwrap_or(empty)
}

/// A span's ids from their hex (`None`: an invalid trace or span id); an all-zero or invalid
/// parent is none.
pub(super) fn span_ids(
    trace: &str,
    span: &str,
    parent: &str,
) -> Option<(TraceId, SpanId, Option<SpanId>)> {
    let parent = SpanId::from_hex(parent).ok().filter(|p| p.0 != [0; 8]);
    Some((
        TraceId::from_hex(trace).ok()?,
        SpanId::from_hex(span).ok()?,
        parent,
    ))
}

impl SpanRow {
    fn stored(self) -> Option<StoredSpan> {
        let operation = Operation::parse(&self.msg_operation);
        let (trace_id, span_id, parent_span_id) = span_ids(&self.trace, &self.span, &self.parent)?;
        Some(StoredSpan {
            trace_id,
            span_id,
            parent_span_id,
            service: self.service,
            service_namespace: some(self.service_namespace),
            service_instance: some(self.service_instance),
            name: self.name,
            kind: SpanKind::from_i32(self.kind),
            start_unix_nanos: self.start,
            end_unix_nanos: self.end,
            duration_micros: self.end.saturating_sub(self.start) / 1_000,
            status: StatusCode::from_i32(self.status),
            status_message: some(self.status_message),
            scope: some(self.scope),
            messaging: operation.map(|op| StoredMessaging {
                system: self.msg_system,
                destination: self.msg_destination,
                operation: op.as_str(),
                consumer_group: some(self.msg_consumer_group),
                message_id: some(self.msg_message_id),
                conversation_id: some(self.msg_conversation_id),
            }),
            peer: some(self.peer),
            attributes: json(&self.attributes, serde_json::json!({})),
            resource: json(&self.resource, serde_json::json!({})),
            events: json(&self.events, serde_json::json!([])),
            links: json(&self.links, serde_json::json!([])),
        })
    }
}

/// The spans of some traces, each once (a re-sent span may not be merged away yet); of a
/// span stored again marked failed (`backlog::mark_failed`), the failed copy.
fn spans_of(client: &Client, traces: Vec<TraceId>) -> Result<Vec<StoredSpan>, StoreError> {
    let ids = traces.into_iter().map(Value::Trace).collect();
    let q = query(
        &format!(
            "{SPAN_SELECT} WHERE trace_id IN ? ORDER BY trace_id, span_id, status DESC \
             LIMIT 1 BY trace_id, span_id LIMIT {TRACE_SPANS}"
        ),
        &[Value::List(ids)],
    )?;
    Ok(client
        .rows::<SpanRow>(&q)?
        .into_iter()
        .filter_map(SpanRow::stored)
        .collect())
}

/// Traces read by one query of [`traces`] at most.
const TRACES_PER_QUERY: usize = 256;

/// The spans of several traces (those stored), each trace's oldest first, in the order of
/// `ids`: one query per [`TRACES_PER_QUERY`] traces (pathways read the traces span links
/// reach in one go), none started after `deadline`. A query whose answer reaches the span cap
/// may have cut a trace: its traces are read again one by one, each with the cap to itself.
pub fn traces(
    client: &Client,
    ids: &[TraceId],
    deadline: std::time::Instant,
) -> Result<crate::model::TraceSet, StoreError> {
    let mut set = crate::model::TraceSet {
        traces: Vec::with_capacity(ids.len()),
        search_complete: true,
        out_of_time: false,
    };
    for chunk in ids.chunks(TRACES_PER_QUERY) {
        if std::time::Instant::now() >= deadline {
            set.out_of_time = true;
            break;
        }
        let spans = spans_of(client, chunk.to_vec())?;
        let mut by_trace: std::collections::HashMap<TraceId, Vec<StoredSpan>> =
            std::collections::HashMap::with_capacity(chunk.len());
        if spans.len() >= TRACE_SPANS && chunk.len() > 1 {
            for &id in chunk {
                if std::time::Instant::now() >= deadline {
                    set.out_of_time = true;
                    break;
                }
                by_trace.insert(id, spans_of(client, vec![id])?);
            }
        } else {
            for s in spans {
                by_trace.entry(s.trace_id).or_default().push(s);
            }
        }
        for id in chunk {
            if let Some(mut spans) = by_trace.remove(id).filter(|s| !s.is_empty()) {
                spans.sort_by_key(|s| (s.start_unix_nanos, s.span_id));
                set.traces.push(spans);
            }
        }
        if set.out_of_time {
            break;
        }
    }
    Ok(set)
}

/// Every span of one trace, oldest first.
pub fn trace(client: &Client, id: TraceId) -> Result<Vec<StoredSpan>, StoreError> {
    let mut spans = spans_of(client, vec![id])?;
    spans.sort_by_key(|s| (s.start_unix_nanos, s.span_id));
    Ok(spans)
}

pub fn span_count(client: &Client) -> Result<u64, StoreError> {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let rows: Vec<N> = client.rows("SELECT count() AS n FROM spans")?;
    Ok(rows.first().map_or(0, |r| r.n))
}

/// Traces a search checks against their spans at most: the candidates of several conditions
/// (or an attribute with others), and the traces whose matching spans may straddle the
/// window's start or end (besides the newest and their tick's ties, [`TIES`]). Past it, the
/// answer says it may be incomplete.
const CANDIDATES: usize = 10_000;

/// Traces with a span that meets every condition of the query, newest first (by the earliest
/// such span in the window). The index (`index.rs`) answers one condition alone; several, or
/// an attribute with others, give candidates that their spans settle; an attribute alone is
/// checked on the window's spans.
pub fn search_traces(client: &Client, q: &TraceQuery) -> Result<TraceSearch, StoreError> {
    let (found, complete) = find(client, q)?;
    if found.is_empty() {
        return Ok(TraceSearch {
            traces: Vec::new(),
            complete,
        });
    }
    let mut by_trace: BTreeMap<TraceId, Vec<summary::SummarySpan>> = BTreeMap::new();
    for s in summary::spans(client, found)? {
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    let mut traces: Vec<TraceSummary> = by_trace
        .into_iter()
        .filter_map(|(id, spans)| summary::summarize(id, spans))
        .collect();
    traces.sort_by_key(|t| std::cmp::Reverse(t.start_unix_nanos));
    Ok(TraceSearch { traces, complete })
}

/// The spans of the newest traces matching the query, newest first: the search's queries,
/// then [`traces`] (not a query per trace).
pub fn search_spans(
    client: &Client,
    q: &TraceQuery,
    deadline: std::time::Instant,
) -> Result<crate::model::TraceSet, StoreError> {
    let (found, _) = find(client, q)?;
    traces(client, &found, deadline)
}

/// The ids of the newest traces matching the query, newest first, and whether no newer match
/// may have been left out.
fn find(client: &Client, q: &TraceQuery) -> Result<(Vec<TraceId>, bool), StoreError> {
    let limit = q.limit.clamp(1, SEARCH_LIMIT);
    let terms = index::query_terms(q);
    let (found, complete) = match terms.as_slice() {
        [] => (matching(client, q, None, limit)?, true),
        [term] if q.attribute.is_none() => exact(client, q, term, limit)?,
        _ => candidates(client, q, &terms, limit)?,
    };
    Ok((found.into_iter().map(|(t, _)| t).collect(), complete))
}

#[derive(serde::Deserialize)]
struct Found {
    trace: String,
    start: u64,
}

/// A trace as [`exact`] ranks it: the tick of its earliest row in the window and whether its
/// rows may straddle the window (1).
#[derive(serde::Deserialize)]
struct Ranked {
    trace: String,
    start: u64,
    unsure: u8,
}

/// Traces of the last tick of the newest `limit` that [`exact`] settles at most besides them
/// (about 60 at 15,000 traces a second).
const TIES: usize = 1_000;

fn found(rows: Vec<Found>) -> Vec<(TraceId, u64)> {
    rows.into_iter()
        .filter_map(|f| Some((TraceId::from_hex(&f.trace).ok()?, f.start)))
        .collect()
}

/// The window's bounds on index rows, to the tick (the index keeps no finer): a row covers
/// at most a bucket of starts, so the rows of spans in the window start at most a bucket
/// before it (in its tick less a bucket, or after), in a tick before the window's end rounded
/// up, and their latest start is in the window's first tick or after.
fn term_window(q: &TraceQuery, sql: &mut String, values: &mut Vec<Value<'_>>) {
    if let Some(w) = &q.window {
        let since = index::tick(w.since_unix_nanos);
        sql.push_str(
            " AND day >= ? AND day <= ? AND first_tick >= ? AND first_tick < ?
             AND first_tick + span_ticks >= ?",
        );
        values.extend([
            Value::Day(w.since_unix_nanos.saturating_sub(index::BUCKET_NANOS)),
            Value::Day(w.until_unix_nanos),
            Value::U64(since.saturating_sub(index::BUCKET_TICKS)),
            Value::U64(index::tick_up(w.until_unix_nanos)),
            Value::U64(since),
        ]);
    }
}

/// The index rows of one term: `term = ?`, or the range of every trace for `''`.
fn term_rows<'a>(term: &'a str, sql: &mut String, values: &mut Vec<Value<'a>>) {
    if term.is_empty() {
        let (from, to) = index::EVERY_TRACE;
        sql.push_str(" term >= ? AND term < ?");
        values.extend([Value::Str(from), Value::Str(to)]);
    } else {
        sql.push_str(" term = ?");
        values.push(Value::Str(term));
    }
}

/// One term answers the query. The index tells apart, to the tick, the traces surely in the
/// window with the tick of their earliest matching start (every row starts in the window, the
/// earliest before its last tick), and the rest, whose rows may straddle its start or end
/// (only their spans tell whether one is in the window). The newest `limit` of the first
/// kind, those that start in the same tick as the last of them (a tick does not order them),
/// and the rest are settled by their spans, which give the exact order.
fn exact(
    client: &Client,
    q: &TraceQuery,
    term: &str,
    limit: usize,
) -> Result<(Vec<(TraceId, u64)>, bool), StoreError> {
    // Rows from this tick on start in the window; a trace whose earliest such row starts at
    // `before` or later may not (the window ends within that tick).
    let (inside, before) = q.window.map_or((0, u64::MAX), |w| {
        (
            index::tick_up(w.since_unix_nanos),
            index::tick(w.until_unix_nanos),
        )
    });
    // One pass over the term's rows in the window: the traces that may straddle it first (at
    // most CANDIDATES of them are settled), then the others newest first, as many as the
    // newest `limit` and the ties of the last of them may need.
    let n = CANDIDATES + limit + TIES;
    let mut sql = String::from(
        "SELECT hex(trace_id) AS trace, minIf(first_tick, first_tick >= ?) AS start,
         (max(first_tick < ?) OR start >= ?) AS unsure FROM trace_postings WHERE",
    );
    let mut values = vec![Value::U64(inside), Value::U64(inside), Value::U64(before)];
    term_rows(term, &mut sql, &mut values);
    term_window(q, &mut sql, &mut values);
    sql.push_str(&format!(
        " GROUP BY trace_id ORDER BY unsure DESC, start DESC LIMIT {n}"
    ));
    let rows = client.rows::<Ranked>(&query(&sql, &values)?)?;
    let cut = rows.len() >= n;
    let unsure = rows.iter().take_while(|r| r.unsure != 0).count();
    let mut complete = unsure < CANDIDATES;
    let mut settle: Vec<TraceId> = Vec::new();
    let ids = |rows: &[Ranked]| -> Vec<TraceId> {
        rows.iter()
            .filter_map(|r| TraceId::from_hex(&r.trace).ok())
            .collect()
    };
    settle.extend(ids(&rows[..unsure.min(CANDIDATES)]));
    let sure = &rows[unsure..];
    let newest = &sure[..sure.len().min(limit)];
    settle.extend(ids(newest));
    if let (true, Some(last)) = (newest.len() >= limit, newest.last()) {
        let ties = &sure[newest.len()..];
        let ties = &ties[..ties.iter().take_while(|r| r.start == last.start).count()];
        // Cut in the middle of the last tick's traces: some of them were left out.
        complete &= !(cut && ties.len() == sure.len() - newest.len());
        settle.extend(ids(ties));
    } else {
        // Fewer sure traces than the limit: all of them were read, unless the straddling
        // ones filled the answer.
        complete &= !cut;
    }
    if settle.is_empty() {
        return Ok((Vec::new(), complete));
    }
    settle.sort_unstable();
    settle.dedup();
    Ok((matching(client, q, Some(settle), limit)?, complete))
}

/// Several conditions (or an attribute with one): the newest [`CANDIDATES`] traces with a
/// span under every term (by the tick of their latest such start), settled by their spans
/// (one span must meet every condition). Past the bound, the answer is complete only when its
/// last trace is newer than every candidate left out could be (their latest starts are before
/// the tick after the last candidate's).
fn candidates(
    client: &Client,
    q: &TraceQuery,
    terms: &[String],
    limit: usize,
) -> Result<(Vec<(TraceId, u64)>, bool), StoreError> {
    let mut sql = String::from(
        "SELECT hex(trace_id) AS trace, max(first_tick + span_ticks) AS start
         FROM trace_postings WHERE term IN ?",
    );
    let mut values = vec![Value::List(
        terms.iter().map(|t| Value::Str(t.as_str())).collect(),
    )];
    term_window(q, &mut sql, &mut values);
    sql.push_str(" GROUP BY trace_id HAVING uniqExact(term) = ?");
    values.push(Value::U64(terms.len() as u64));
    sql.push_str(&format!(" ORDER BY start DESC LIMIT {CANDIDATES}"));
    let candidates = found(client.rows::<Found>(&query(&sql, &values)?)?);
    let Some(&(_, oldest)) = candidates.last() else {
        return Ok((Vec::new(), true));
    };
    let all = candidates.len() < CANDIDATES;
    let newer_than_left_out = oldest
        .saturating_add(1)
        .saturating_mul(index::NANOS_PER_TICK);
    let only = candidates.into_iter().map(|(t, _)| t).collect();
    let out = matching(client, q, Some(only), limit)?;
    let complete =
        all || (out.len() >= limit && out.last().is_some_and(|l| l.1 >= newer_than_left_out));
    Ok((out, complete))
}

/// Traces with a span meeting every condition (among `only`, when given), with the earliest
/// such span's start, newest first, at most `limit`: read from `spans`.
fn matching(
    client: &Client,
    q: &TraceQuery,
    only: Option<Vec<TraceId>>,
    limit: usize,
) -> Result<Vec<(TraceId, u64)>, StoreError> {
    let mut sql = String::from(
        "SELECT hex(trace_id) AS trace, min(start_unix_nanos) AS start FROM spans WHERE 1",
    );
    let mut values = Vec::new();
    if let Some(only) = only {
        sql.push_str(" AND trace_id IN ?");
        values.push(Value::List(only.into_iter().map(Value::Trace).collect()));
    }
    if let Some(s) = &q.service {
        sql.push_str(" AND service = ?");
        values.push(Value::Str(s));
    }
    if let Some(d) = &q.destination {
        sql.push_str(" AND msg_destination = ?");
        values.push(Value::Str(d));
    }
    if let Some(o) = &q.operation {
        sql.push_str(" AND name = ?");
        values.push(Value::Str(o));
    }
    if q.errors_only {
        sql.push_str(" AND status = ?");
        values.push(Value::U64(StatusCode::Error.as_i32() as u64));
    }
    if let Some((k, v)) = &q.attribute {
        // A string value compares with its text, a number or boolean with its JSON.
        sql.push_str(
            " AND (visitParamExtractString(attributes, ?) = ? OR visitParamExtractRaw(attributes, ?) = ?)",
        );
        values.extend([Value::Str(k), Value::Str(v), Value::Str(k), Value::Str(v)]);
    }
    if let Some(w) = &q.window {
        sql.push_str(
            " AND day >= ? AND day <= ? AND start_unix_nanos >= ? AND start_unix_nanos < ?",
        );
        values.extend([
            Value::Day(w.since_unix_nanos),
            Value::Day(w.until_unix_nanos),
            Value::U64(w.since_unix_nanos),
            Value::U64(w.until_unix_nanos),
        ]);
    }
    sql.push_str(&format!(
        " GROUP BY trace_id ORDER BY start DESC LIMIT {limit}"
    ));
    Ok(found(client.rows::<Found>(&query(&sql, &values)?)?))
}

/// Spans of other traces whose links point into `trace_id`, starting within ten minutes after
/// it, at most `limit` traces.
pub fn linking_spans(
    client: &Client,
    trace_id: TraceId,
    start_unix_nanos: u64,
    limit: usize,
) -> Result<Vec<LinkingSpan>, StoreError> {
    let until = start_unix_nanos.saturating_add(LINKING_AFTER_NANOS);
    let q = query(
        &format!(
            "SELECT hex(trace_id) AS trace, service, name FROM spans
             WHERE day >= ? AND day <= ? AND start_unix_nanos >= ? AND start_unix_nanos <= ?
             AND has(link_trace_ids, toFixedString(?, 16)) AND trace_id != ?
             ORDER BY start_unix_nanos LIMIT 1 BY trace_id LIMIT {}",
            limit.clamp(1, SEARCH_LIMIT)
        ),
        &[
            Value::Day(start_unix_nanos),
            Value::Day(until),
            Value::U64(start_unix_nanos),
            Value::U64(until),
            Value::Trace(trace_id),
            Value::Trace(trace_id),
        ],
    )?;
    #[derive(serde::Deserialize)]
    struct L {
        trace: String,
        service: String,
        name: String,
    }
    Ok(client
        .rows::<L>(&q)?
        .into_iter()
        .filter_map(|l| {
            Some(LinkingSpan {
                trace_id: TraceId::from_hex(&l.trace).ok()?,
                service: l.service,
                name: l.name,
            })
        })
        .collect())
}

impl From<super::sql::TemplateError> for ClientError {
    fn from(e: super::sql::TemplateError) -> ClientError {
        ClientError::BadAnswer(e.to_string())
    }
}

/// Spans whose names [`recent_operations`] reads at most (the newest day's newest).
const OPERATION_SPANS: u64 = 100_000;

/// Distinct span names of the newest stored spans (the newest day's newest
/// [`OPERATION_SPANS`]), sorted, at most `limit`.
pub fn recent_operations(client: &Client, limit: usize) -> Result<Vec<String>, StoreError> {
    #[derive(serde::Deserialize)]
    struct N {
        name: String,
    }
    let q = query(
        "SELECT DISTINCT name FROM (SELECT name FROM spans
         WHERE day = (SELECT max(day) FROM spans)
         ORDER BY start_unix_nanos DESC LIMIT ?) LIMIT ?",
        &[
            Value::U64(OPERATION_SPANS),
            Value::U64(limit.min(u64::MAX as usize) as u64),
        ],
    )?;
    let mut names: Vec<String> = client.rows::<N>(&q)?.into_iter().map(|n| n.name).collect();
    names.sort();
    Ok(names)
}

/// Bytes the database's active parts take on disk.
pub fn size_bytes(client: &Client) -> Result<u64, StoreError> {
    Ok(super::retention::size_on_disk(client)?)
}
