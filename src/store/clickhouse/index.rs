//! The trace search index (schema v5), ClickHouse's counterpart of the SQLite store's block
//! postings: `trace_terms (day, term, first_unix_nanos, last_unix_nanos, trace_id)`, ordered
//! by `(term, first_unix_nanos, trace_id)`, so that a search reads one key range per term
//! instead of scanning `spans`.
//!
//! Terms (as the SQLite store's): `''` (every trace), `s:<service>`, `o:<operation>` (span
//! name), `d:<destination>` (messaging spans), `e` (spans with status error) and
//! `e:<service>` (the service's spans with status error). One row per term, trace and
//! [`BUCKET_NANOS`] of span starts in one writer group, with the earliest and latest start of
//! the trace's spans matching the term there: a row never spans more than a bucket, so a
//! window's rows are found by `first_unix_nanos` alone (from the window's start less a bucket),
//! and a trace whose rows straddle the window's start is told apart (`first < since <= last`)
//! and checked against its spans.
//!
//! Attribute conditions are not indexed (values are many and long): they are checked on the
//! spans of the candidates the terms give, or, alone, by a scan of the window's spans.

use super::rowbinary::Rows;
use crate::model::{Span, StatusCode, TraceId, TraceQuery};
use foldhash::HashMap;

/// The widest stretch of span starts one index row covers (ten minutes; a day is a whole
/// number of them, so a row's day is both ends' day).
pub const BUCKET_NANOS: u64 = 10 * 60 * 1_000_000_000;

pub const TERM_COLUMNS: &str = "day, term, first_unix_nanos, last_unix_nanos, trace_id";

/// The table (schema v5). `ReplacingMergeTree`: rows written twice (a backfill run by two
/// collectors migrating at once) collapse; reads group by trace anyway.
pub const CREATE: &str = "CREATE TABLE IF NOT EXISTS trace_terms (
        day Date, term String, first_unix_nanos UInt64, last_unix_nanos UInt64,
        trace_id FixedString(16)
    ) ENGINE = ReplacingMergeTree PARTITION BY day ORDER BY (term, first_unix_nanos, trace_id)";

/// Indexes the spans stored before the index existed, one row per span and term (run once, by
/// the migration to v5, on each server's own tables).
pub fn backfill(terms: &str, spans: &str) -> String {
    format!(
        "INSERT INTO {terms} ({TERM_COLUMNS})
        SELECT day, term, start_unix_nanos, start_unix_nanos, trace_id FROM {spans}
        ARRAY JOIN arrayConcat(['', concat('s:', service), concat('o:', name)],
            if(msg_operation != '', [concat('d:', msg_destination)], emptyArrayString()),
            if(status = {error}, ['e', concat('e:', service)], emptyArrayString())) AS term",
        error = StatusCode::Error.as_i32()
    )
}

/// One index term, borrowing its text from the span (no string is built per span and term):
/// its stored form is the prefix followed by the text (`s:` and the service, ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Term<'a> {
    /// `''`: every trace.
    All,
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
            Term::All => ("", ""),
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
        Some(Term::All),
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
/// among them). None: no term (no condition, or an attribute alone) but `''`.
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
/// start. Borrows the terms' text from the group's spans.
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

    /// The rows to insert, in the table's order (`term, first_unix_nanos, trace_id`:
    /// ClickHouse then skips sorting the insert), and the group's memory cleared.
    pub fn take_rows(&mut self) -> Rows {
        let mut found: Vec<_> = self.extents.drain().collect();
        found.sort_unstable_by(|((a, ta, _), (fa, _)), ((b, tb, _), (fb, _))| {
            a.bytes()
                .cmp(b.bytes())
                .then(fa.cmp(fb))
                .then(ta.0.cmp(&tb.0))
        });
        let mut rows = Rows::default();
        for ((term, trace, _), (first, last)) in found {
            let (prefix, text) = term.parts();
            rows.date(first)
                .str_of(prefix, text)
                .u64(first)
                .u64(last)
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
                assert!(terms.contains(&t), "{t:?} of {q:?} not in {terms:?}");
            }
        }
        assert!(terms.contains(&name));
        let ok = span(6, 1, None, "cart", SpanKind::Server);
        let terms: Vec<String> = span_terms(&ok, false).map(Term::text).collect();
        assert_eq!(terms.len(), 3, "no destination, no error: {terms:?}");
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
            .filter(|((t, _, _), _)| *t == Term::All)
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
        // '', s:cart and one name, each in two buckets.
        let rows = g.take_rows();
        assert_eq!(rows.count, 6);
        assert!(g.extents.is_empty());
    }

    /// Reads back `take_rows`'s rows: (term, first, trace).
    fn decode(rows: &Rows) -> Vec<(Vec<u8>, u64, [u8; 16])> {
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
            let trace: [u8; 16] = b[16..32].try_into().unwrap();
            b = &b[32..];
            out.push((term, first, trace));
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
            s.start_unix_nanos = 1_000 * BUCKET_NANOS + 100 - i as u64;
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
        assert_eq!(decoded, sorted, "rows in (term, first, trace) order");
        let terms: Vec<String> = decoded
            .iter()
            .map(|(t, _, _)| String::from_utf8(t.clone()).unwrap())
            .collect();
        for t in ["", "e", "e:zeta", "o:o:", "s:alpha", "s:mid"] {
            assert!(terms.contains(&t.to_string()), "{t:?} in {terms:?}");
        }
    }
}
