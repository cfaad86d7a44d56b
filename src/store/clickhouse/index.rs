//! The trace search index, ClickHouse's counterpart of the SQLite store's block postings:
//! `trace_postings (day, term, first_tick, span_ticks, trace_id)` (schema v8), ordered by
//! `(term, first_tick, trace_id, span_ticks)`, so that a search reads one key range per term
//! instead of scanning `spans`.
//!
//! Terms (as the SQLite store's): `s:<service>`, `o:<operation>` (span name),
//! `d:<destination>` (messaging spans), `e` (spans with status error) and `e:<service>` (the
//! service's spans with status error). Every span has a service, so the `s:` terms' range
//! ([`EVERY_TRACE`]) holds every trace: a search with no condition reads it (version 5's
//! `''` term, a row per trace besides the service's, is gone). One row per term, trace and
//! [`BUCKET_NANOS`] of span starts in one writer group, with the tick (1/256 of a second,
//! [`NANOS_PER_TICK`]) of the earliest start of the trace's spans matching the term there and
//! how many ticks later the latest one started (`first_tick + span_ticks`: the latest start's
//! tick). Times are kept to the tick, not the nanosecond: rows sorted by term and tick keep
//! runs of equal ticks, which compress to almost nothing, so the index takes half of what
//! version 5's did on disk (docs/SCALE.md, "Schema version 8"), and the reader (`reader.rs`)
//! settles on the spans whatever a tick cannot tell: the traces whose rows may straddle the
//! window's start or end, and the order of the traces that start in one tick (at 15,000
//! traces a second, about 60).
//!
//! A row never spans more than a bucket, so a window's rows are found by `first_tick` alone
//! (from the window's start less a bucket).
//!
//! Attribute conditions are not indexed (values are many and long): they are checked on the
//! spans of the candidates the terms give, or, alone, by a scan of the window's spans.

use super::rowbinary::Rows;
use crate::model::{Span, StatusCode, TraceId, TraceQuery};
use foldhash::HashMap;

/// The index's grain: 1/256 of a second (a second is a whole number of nanoseconds' ticks:
/// 1,000,000,000 = 256 x 3,906,250).
pub const NANOS_PER_TICK: u64 = 3_906_250;

/// The widest stretch of span starts one index row covers (ten minutes; a day is a whole
/// number of them, so a row's day is both ends' day).
pub const BUCKET_NANOS: u64 = 10 * 60 * 1_000_000_000;

/// [`BUCKET_NANOS`] in ticks (whole: a row's `span_ticks` is less).
pub const BUCKET_TICKS: u64 = BUCKET_NANOS / NANOS_PER_TICK;

/// The index's table (schema v8).
pub const TABLE: &str = "trace_postings";

pub const TERM_COLUMNS: &str = "day, term, first_tick, span_ticks, trace_id";

/// The range of terms that holds every trace (`[from, to)`, bytewise): the `s:` terms.
pub const EVERY_TRACE: (&str, &str) = ("s:", "s;");

/// The tick a time in unix nanoseconds falls in ([`tick_sql`] in SQL).
pub fn tick(unix_nanos: u64) -> u64 {
    unix_nanos / NANOS_PER_TICK
}

/// [`tick`] in SQL, of a `UInt64` column of unix nanoseconds.
pub fn tick_sql(column: &str) -> String {
    format!("intDiv({column}, {NANOS_PER_TICK})")
}

/// The tick of unix nanoseconds rounded up (a window's bound: the first whole tick at or after
/// it).
pub fn tick_up(unix_nanos: u64) -> u64 {
    unix_nanos.div_ceil(NANOS_PER_TICK)
}

/// The table (schema v8). `ReplacingMergeTree`: rows written twice (a copy run by two
/// collectors migrating at once, or again after a restart) collapse; reads group by trace
/// anyway. `span_ticks` is in the key, so that rows of one term, trace and first tick from
/// two groups, of different extents, are both kept.
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS trace_postings (
        day Date, term String, first_tick UInt64, span_ticks UInt32,
        trace_id FixedString(16)
    ) ENGINE = ReplacingMergeTree PARTITION BY day
    ORDER BY (term, first_tick, trace_id, span_ticks)";

/// Version 5's table, `trace_terms`: times in nanoseconds, and a `''` row per trace. Created
/// and filled ([`backfill_v5`]) by the migration of a database older than version 5, then
/// moved into [`TABLE`] by version 8's ([`copy_from_v5`]).
pub const CREATE_V5: &str = "CREATE TABLE IF NOT EXISTS trace_terms (
        day Date, term String, first_unix_nanos UInt64, last_unix_nanos UInt64,
        trace_id FixedString(16)
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (term, first_unix_nanos, trace_id)";

/// Indexes into version 5's table the spans stored before the index existed, one row per
/// span and term (run once, by the migration to v5, on each server's own tables).
pub fn backfill_v5(terms: &str, spans: &str) -> String {
    format!(
        "INSERT INTO {terms} (day, term, first_unix_nanos, last_unix_nanos, trace_id)
        SELECT day, term, start_unix_nanos, start_unix_nanos, trace_id FROM {spans}
        ARRAY JOIN arrayConcat(['', concat('s:', service), concat('o:', name)],
            if(msg_operation != '', [concat('d:', msg_destination)], emptyArrayString()),
            if(status = {error}, ['e', concat('e:', service)], emptyArrayString())) AS term",
        error = StatusCode::Error.as_i32()
    )
}

/// Copies one day (`?`) of version 5's rows (`from`) into the index of version 8 (`into`):
/// the times to their ticks, the `''` rows left out.
pub fn copy_from_v5(from: &str, into: &str) -> String {
    let first = tick_sql("first_unix_nanos");
    let last = tick_sql("last_unix_nanos");
    format!(
        "INSERT INTO {into} ({TERM_COLUMNS})
        SELECT day, term, {first} AS f, toUInt32(least({last} - f, 4294967295)), trace_id
        FROM {from} WHERE day = ? AND term != ''"
    )
}

/// One index term, borrowing its text from the span (no string is built per span and term):
/// its stored form is the prefix followed by the text (`s:` and the service, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Term<'a> {
    Service(&'a str),
    Operation(&'a str),
    Destination(&'a str),
    /// `e`: spans with status error.
    Error,
    ErrorOf(&'a str),
}

impl<'a> Term<'a> {
    fn parts(self) -> (&'static str, &'a str) {
        match self {
            Term::Service(s) => ("s:", s),
            Term::Operation(o) => ("o:", o),
            Term::Destination(d) => ("d:", d),
            Term::Error => ("e", ""),
            Term::ErrorOf(s) => ("e:", s),
        }
    }

    /// The stored form's bytes, in order (as ClickHouse compares `String`s: bytewise).
    fn bytes(self) -> impl Iterator<Item = u8> + 'a {
        let (prefix, text) = self.parts();
        prefix.bytes().chain(text.bytes())
    }

    #[cfg(test)]
    fn text(self) -> String {
        let (prefix, text) = self.parts();
        format!("{prefix}{text}")
    }
}

/// The terms of one span; `error`: whether it is stored with status error (the writer may
/// mark a span failed that did not say so).
fn span_terms(s: &Span, error: bool) -> impl Iterator<Item = Term<'_>> {
    [
        Some(Term::Service(&s.service.name)),
        Some(Term::Operation(&s.name)),
        s.messaging
            .as_ref()
            .map(|m| Term::Destination(&m.destination)),
        error.then_some(Term::Error),
        error.then_some(Term::ErrorOf(&s.service.name)),
    ]
    .into_iter()
    .flatten()
}

/// The index terms a query's conditions need, each a span must match (an attribute is not
/// among them). None: an attribute alone; `''` alone: no condition (every trace, read from
/// the [`EVERY_TRACE`] range).
pub fn query_terms(q: &TraceQuery) -> Vec<String> {
    let mut terms = Vec::new();
    match (&q.service, q.errors_only) {
        (Some(s), true) => terms.push(format!("e:{s}")),
        (None, true) => terms.push("e".to_string()),
        (Some(s), false) => terms.push(format!("s:{s}")),
        (None, false) => {}
    }
    terms.extend(q.operation.as_ref().map(|o| format!("o:{o}")));
    terms.extend(q.destination.as_ref().map(|d| format!("d:{d}")));
    if terms.is_empty() && q.attribute.is_none() {
        terms.push(String::new());
    }
    terms
}

/// The index rows of one writer group: per term, trace and bucket, the earliest and latest
/// start (kept to the nanosecond until written, then to their ticks). Borrows the terms'
/// text from the group's spans.
#[derive(Default)]
pub struct GroupTerms<'a> {
    extents: HashMap<(Term<'a>, TraceId, u64), (u64, u64)>,
}

impl<'a> GroupTerms<'a> {
    /// Notes a span as stored; `error`: whether it is stored with status error (after the
    /// writer's last change to it, e.g. marked failed; its names do not change).
    pub fn add(&mut self, s: &'a Span, error: bool) {
        let start = s.start_unix_nanos;
        let bucket = start / BUCKET_NANOS;
        for term in span_terms(s, error) {
            let e = self
                .extents
                .entry((term, s.trace_id, bucket))
                .or_insert((start, start));
            e.0 = e.0.min(start);
            e.1 = e.1.max(start);
        }
    }

    /// The rows to insert, in the table's order (`term, first_tick, trace_id, span_ticks`:
    /// ClickHouse then skips sorting the insert), and the group's memory cleared.
    pub fn take_rows(&mut self) -> Rows {
        let mut found: Vec<_> = self
            .extents
            .drain()
            .map(|((term, trace, _), (first, last))| {
                let first_tick = tick(first);
                // A row's starts are within a bucket (153,600 ticks) of each other.
                let span = tick(last).saturating_sub(first_tick);
                let span = u32::try_from(span).unwrap_or(u32::MAX);
                (term, first_tick, trace, span, first)
            })
            .collect();
        found.sort_unstable_by(|(a, fa, ta, sa, _), (b, fb, tb, sb, _)| {
            a.bytes()
                .cmp(b.bytes())
                .then(fa.cmp(fb))
                .then(ta.0.cmp(&tb.0))
                .then(sa.cmp(sb))
        });
        let mut rows = Rows::default();
        for (term, first_tick, trace, span, first) in found {
            let (prefix, text) = term.parts();
            rows.date(first)
                .str_of(prefix, text)
                .u64(first_tick)
                .u32(span)
                .fixed(&trace.0);
            rows.end_row();
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{msg, span};
    use crate::model::{Operation, SpanKind};

    #[test]
    fn a_span_is_indexed_under_each_term_a_search_asks_for() {
        let mut failed = msg(
            span(5, 1, None, "cart", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        failed.status = StatusCode::Error;
        let terms: Vec<String> = span_terms(&failed, true).map(Term::text).collect();
        let name = format!("o:{}", failed.name);
        for q in [
            TraceQuery::default(),
            TraceQuery {
                service: Some("cart".into()),
                ..TraceQuery::default()
            },
            TraceQuery {
                service: Some("cart".into()),
                errors_only: true,
                ..TraceQuery::default()
            },
            TraceQuery {
                errors_only: true,
                destination: Some("orders".into()),
                operation: Some(failed.name.clone()),
                ..TraceQuery::default()
            },
        ] {
            for t in query_terms(&q) {
                if t.is_empty() {
                    // No condition: the range of every trace holds a term of every span.
                    let (from, to) = EVERY_TRACE;
                    let inside = |x: &&String| x.as_str() >= from && x.as_str() < to;
                    assert_eq!(terms.iter().filter(inside).count(), 1, "{terms:?}");
                    continue;
                }
                assert!(terms.contains(&t), "{t:?} of {q:?} not in {terms:?}");
            }
        }
        assert!(terms.contains(&name));
        let ok = span(6, 1, None, "cart", SpanKind::Server);
        let terms: Vec<String> = span_terms(&ok, false).map(Term::text).collect();
        assert_eq!(
            terms,
            ["s:cart", &format!("o:{}", ok.name)],
            "no destination, no error"
        );
        let attribute_only = TraceQuery {
            attribute: Some(("k".into(), "v".into())),
            ..TraceQuery::default()
        };
        assert!(query_terms(&attribute_only).is_empty());
    }

    #[test]
    fn a_group_keeps_one_row_per_term_trace_and_bucket_with_its_extent() {
        let mut g = GroupTerms::default();
        let mut a = span(7, 1, None, "cart", SpanKind::Server);
        let mut b = span(7, 2, Some(1), "cart", SpanKind::Server);
        let mut c = span(7, 3, Some(1), "cart", SpanKind::Server);
        let base = 1_000 * BUCKET_NANOS;
        a.start_unix_nanos = base + 5;
        b.start_unix_nanos = base + 9;
        c.start_unix_nanos = base + BUCKET_NANOS + 1;
        for s in [&a, &b, &c] {
            g.add(s, false);
        }
        let trace_rows: Vec<(u64, u64)> = g
            .extents
            .iter()
            .filter(|((t, _, _), _)| *t == Term::Service("cart"))
            .map(|(_, e)| *e)
            .collect();
        let mut trace_rows = trace_rows;
        trace_rows.sort();
        assert_eq!(
            trace_rows,
            [
                (base + 5, base + 9),
                (base + BUCKET_NANOS + 1, base + BUCKET_NANOS + 1)
            ]
        );
        // s:cart and one name, each in two buckets.
        let rows = g.take_rows();
        assert_eq!(rows.count, 4);
        assert!(g.extents.is_empty());
    }

    /// Reads back `take_rows`'s rows: (term, first tick, trace, span ticks).
    fn decode(rows: &Rows) -> Vec<(Vec<u8>, u64, [u8; 16], u32)> {
        let mut out = Vec::new();
        let mut b = &rows.buf[..];
        while !b.is_empty() {
            b = &b[2..];
            let (mut len, mut shift) = (0usize, 0);
            loop {
                let byte = b[0];
                b = &b[1..];
                len |= usize::from(byte & 0x7f) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            let term = b[..len].to_vec();
            b = &b[len..];
            let first = u64::from_le_bytes(b[..8].try_into().unwrap());
            let span = u32::from_le_bytes(b[8..12].try_into().unwrap());
            let trace: [u8; 16] = b[12..28].try_into().unwrap();
            b = &b[28..];
            out.push((term, first, trace, span));
        }
        out
    }

    #[test]
    fn a_groups_rows_come_in_the_tables_order() {
        let mut spans = Vec::new();
        for (i, (trace, service, name)) in [
            (9, "zeta", "b"),
            (3, "alpha", "z"),
            (7, "alpha", "a"),
            (3, "mid", "m"),
            (1, "a", "o:"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut s = span(trace, i as u8 + 1, None, service, SpanKind::Server);
            s.name = name.to_string();
            s.start_unix_nanos = 1_000 * BUCKET_NANOS + (5 - i as u64) * NANOS_PER_TICK + 7;
            spans.push(s);
        }
        let mut g = GroupTerms::default();
        for (i, s) in spans.iter().enumerate() {
            g.add(s, i % 2 == 0);
        }
        let rows = g.take_rows();
        let decoded = decode(&rows);
        assert_eq!(decoded.len(), rows.count);
        assert!(decoded.len() > 10, "{decoded:?}");
        let mut sorted = decoded.clone();
        sorted.sort();
        assert_eq!(decoded, sorted, "rows in (term, first, trace, span) order");
        let terms: Vec<String> = decoded
            .iter()
            .map(|(t, _, _, _)| String::from_utf8(t.clone()).unwrap())
            .collect();
        assert!(!terms.contains(&String::new()), "no '' rows: {terms:?}");
        for t in ["e", "e:zeta", "o:o:", "s:alpha", "s:mid"] {
            assert!(terms.contains(&t.to_string()), "{t:?} in {terms:?}");
        }
    }

    #[test]
    fn a_rows_times_are_kept_to_their_ticks() {
        let base = 1_000 * BUCKET_NANOS;
        let mut g = GroupTerms::default();
        let mut a = span(8, 1, None, "cart", SpanKind::Server);
        let mut b = span(8, 2, Some(1), "cart", SpanKind::Server);
        a.start_unix_nanos = base + NANOS_PER_TICK / 2;
        b.start_unix_nanos = base + 42 * NANOS_PER_TICK + 700;
        let mut late = span(9, 1, None, "cart", SpanKind::Server);
        late.start_unix_nanos = u64::MAX - 5;
        for s in [&a, &b, &late] {
            g.add(s, false);
        }
        let rows = decode(&g.take_rows());
        let service: Vec<_> = rows
            .iter()
            .filter(|(t, _, _, _)| t == b"s:cart")
            .map(|&(_, first, trace, span)| (first, trace[15], span))
            .collect();
        let base_tick = base / NANOS_PER_TICK;
        assert_eq!(tick(base), base_tick);
        assert_eq!(
            service,
            [(base_tick, 8, 42), ((u64::MAX - 5) / NANOS_PER_TICK, 9, 0)]
        );
        assert_eq!(tick_up(base), base_tick);
        assert_eq!(tick_up(base + 1), base_tick + 1);
        assert_eq!(1_000_000_000 % NANOS_PER_TICK, 0, "a second is whole ticks");
    }
}
