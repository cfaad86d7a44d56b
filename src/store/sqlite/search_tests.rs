//! Trace search against a brute-force answer over the same spans: each filter, combinations,
//! windows, after retention deleted blocks, after a restart, and over blocks written before
//! the block index existed (a migrated v1 file).

use super::retention::RetentionConfig;
use super::search::DECODE_BLOCKS;
use super::tests::open;
use super::*;
use crate::model::{
    Messaging, Operation, ServiceRef, Span, SpanId, SpanKind, StatusCode, TimeWindow, TraceId,
};
use crate::store::{prepare, TraceReads, Writes};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const T0: u64 = 1_790_000_000_000_000_000;
const MS: u64 = 1_000_000;

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `traces` traces of 1 to 4 spans each, their spans spread over `requests` requests (a
/// trace's spans often land in different blocks, as when each service exports its own).
/// Start times are distinct: trace `t`, span `i` starts at `T0 + t ms + i * 7 us`.
fn generate(seed: u64, traces: u64, requests: usize) -> Vec<Vec<Span>> {
    let mut rng = Rng(seed);
    let mut out: Vec<Vec<Span>> = vec![Vec::new(); requests];
    for t in 0..traces {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&rng.next().to_be_bytes());
        id[8..].copy_from_slice(&(t + 1).to_be_bytes());
        let spans = 1 + rng.pick(4);
        for i in 0..spans {
            let service = format!("svc-{}", rng.pick(5));
            let start = T0 + t * MS + i * 7_000;
            let mut attributes = vec![
                (
                    "tenant".to_string(),
                    serde_json::json!(format!("t{}", rng.pick(6))),
                ),
                ("retries".to_string(), serde_json::json!(rng.pick(4))),
                ("sampled".to_string(), serde_json::json!(rng.pick(2) == 0)),
            ];
            if rng.pick(10) == 0 {
                attributes.push(("list".to_string(), serde_json::json!([1, rng.pick(3)])));
            }
            let messaging = (rng.pick(2) == 0).then(|| Messaging {
                system: "kafka".into(),
                destination: format!("topic-{}", rng.pick(4)),
                operation: Operation::Produce,
                consumer_group: None,
                message_id: None,
                conversation_id: None,
                temporary: false,
                batch_count: None,
                partition: None,
            });
            let span = Span {
                trace_id: TraceId(id),
                span_id: SpanId(((t << 8) | (i + 1)).to_be_bytes()),
                parent_span_id: None,
                service: ServiceRef {
                    name: service,
                    namespace: None,
                    instance: None,
                },
                kind: SpanKind::Internal,
                name: format!("op-{}", rng.pick(6)),
                start_unix_nanos: start,
                end_unix_nanos: start + 500_000,
                status: if rng.pick(9) == 0 {
                    StatusCode::Error
                } else {
                    StatusCode::Unset
                },
                status_message: String::new(),
                attributes,
                resource: Default::default(),
                scope: String::new(),
                events: vec![],
                links: vec![],
                messaging,
                peer: None,
            };
            out[rng.pick(requests as u64) as usize].push(span);
        }
    }
    out
}

/// Whether one span matches the query, as search defines it.
fn span_matches(s: &Span, q: &TraceQuery) -> bool {
    let (since, until) = q
        .window
        .map(|w| (w.since_unix_nanos, w.until_unix_nanos))
        .unwrap_or((0, u64::MAX));
    let attr = |k: &str, v: &str| {
        s.attributes.iter().any(|(key, value)| {
            key == k
                && match value {
                    serde_json::Value::String(text) => text == v,
                    other => other.to_string().as_str() == v,
                }
        })
    };
    (since..until).contains(&s.start_unix_nanos)
        && (!q.errors_only || s.status == StatusCode::Error)
        && q.service.as_ref().is_none_or(|x| *x == s.service.name)
        && q.destination
            .as_ref()
            .is_none_or(|d| s.messaging.as_ref().is_some_and(|m| m.destination == *d))
        && q.operation.as_ref().is_none_or(|o| *o == s.name)
        && q.attribute.as_ref().is_none_or(|(k, v)| attr(k, v))
}

/// The newest `limit` traces by their earliest matching span, as hex ids.
fn expected(spans: &[Span], q: &TraceQuery) -> BTreeSet<String> {
    let mut first: BTreeMap<TraceId, u64> = BTreeMap::new();
    for s in spans.iter().filter(|s| span_matches(s, q)) {
        let e = first.entry(s.trace_id).or_insert(u64::MAX);
        *e = (*e).min(s.start_unix_nanos);
    }
    let mut by_start: Vec<(u64, TraceId)> = first.into_iter().map(|(t, s)| (s, t)).collect();
    by_start.sort_by(|a, b| b.cmp(a));
    by_start
        .into_iter()
        .take(q.limit)
        .map(|(_, t)| t.to_hex())
        .collect()
}

fn found(store: &SqliteStore, q: &TraceQuery) -> (BTreeSet<String>, bool) {
    let r = store.search_traces(q).unwrap();
    (
        r.traces.iter().map(|t| t.trace_id.to_hex()).collect(),
        r.complete,
    )
}

fn window_ms(from: u64, to: u64) -> Option<TimeWindow> {
    TimeWindow::new(T0 + from * MS, T0 + to * MS)
}

fn window_us(from: u64, to: u64) -> Option<TimeWindow> {
    TimeWindow::new(T0 + from * 1_000, T0 + to * 1_000)
}

/// Queries covering each filter, combinations on one span, windows and limits.
fn queries() -> Vec<TraceQuery> {
    let q = |f: &dyn Fn(&mut TraceQuery)| {
        let mut q = TraceQuery {
            limit: 10_000,
            ..TraceQuery::default()
        };
        f(&mut q);
        q
    };
    let attr = |k: &str, v: &str| Some((k.to_string(), v.to_string()));
    vec![
        q(&|_| {}),
        q(&|q| q.service = Some("svc-1".into())),
        q(&|q| q.service = Some("nobody".into())),
        q(&|q| q.destination = Some("topic-2".into())),
        q(&|q| q.operation = Some("op-3".into())),
        q(&|q| q.errors_only = true),
        q(&|q| q.attribute = attr("tenant", "t4")),
        q(&|q| q.attribute = attr("retries", "2")),
        q(&|q| q.attribute = attr("sampled", "true")),
        q(&|q| q.attribute = attr("list", "[1,2]")),
        q(&|q| q.attribute = attr("tenant", "nobody")),
        q(&|q| {
            q.service = Some("svc-2".into());
            q.operation = Some("op-1".into());
        }),
        q(&|q| {
            q.service = Some("svc-0".into());
            q.errors_only = true;
        }),
        q(&|q| {
            q.destination = Some("topic-1".into());
            q.attribute = attr("tenant", "t2");
        }),
        q(&|q| {
            q.service = Some("svc-3".into());
            q.window = window_ms(40, 90);
        }),
        q(&|q| q.window = window_ms(25, 26)),
        // Bounds inside traces: their matching spans straddle the window's ends.
        q(&|q| q.window = window_us(40_010, 90_010)),
        q(&|q| {
            q.operation = Some("op-2".into());
            q.window = window_us(60_010, 120_003);
        }),
        q(&|q| {
            q.operation = Some("op-0".into());
            q.limit = 7;
        }),
        q(&|q| {
            q.errors_only = true;
            q.limit = 3;
        }),
    ]
}

fn check_all(store: &SqliteStore, spans: &[Span], context: &str) {
    for q in queries() {
        let (got, complete) = found(store, &q);
        assert!(complete, "{context}: {q:?} is complete");
        assert_eq!(got, expected(spans, &q), "{context}: {q:?}");
    }
}

#[test]
fn every_filter_finds_exactly_the_matching_traces() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let requests = generate(7, 150, 12);
    let spans: Vec<Span> = requests.iter().flatten().cloned().collect();
    for r in requests {
        store.write_blocking(prepare(r)).unwrap();
    }
    assert!(expected(&spans, &queries()[5]).len() > 5, "some errors");
    assert!(
        expected(&spans, &queries()[9]).len() > 2,
        "some list values"
    );
    check_all(&store, &spans, "fresh");
    store.shutdown();
    let store = open(&dir);
    check_all(&store, &spans, "after a restart");
    store.shutdown();
}

#[test]
fn operations_beyond_a_blocks_postings_are_still_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut spans = generate(3, 400, 1).remove(0);
    for (i, s) in spans.iter_mut().enumerate() {
        s.name = format!("unique-{i}");
    }
    store.write_blocking(prepare(spans.clone())).unwrap();
    for i in [0, 150, 399, 420] {
        let q = TraceQuery {
            operation: Some(format!("unique-{i}")),
            limit: 100,
            ..TraceQuery::default()
        };
        assert_eq!(found(&store, &q).0, expected(&spans, &q), "unique-{i}");
    }
    store.shutdown();
}

/// Retention's own pass deletes the older blocks; their index goes with them.
#[test]
fn results_stay_right_after_retention_deletes_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Requests in time order, so blocks cover successive slices of time.
    let mut all = generate(11, 150, 1).remove(0);
    all.sort_by_key(|s| s.start_unix_nanos);
    let requests: Vec<Vec<Span>> = all
        .chunks(all.len().div_ceil(10))
        .map(<[Span]>::to_vec)
        .collect();
    for r in &requests {
        store.write_blocking(prepare(r.clone())).unwrap();
    }
    store.shutdown();
    let mut conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let newest = |conn: &rusqlite::Connection| -> Vec<(i64, u64)> {
        let mut stmt = conn
            .prepare("SELECT id, max_start_unix_nanos FROM blocks ORDER BY id")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)));
        rows.unwrap().map(Result::unwrap).collect()
    };
    let before = newest(&conn);
    assert_eq!(before.len(), requests.len());
    // A cutoff between the fourth and fifth block: the four oldest go.
    let cutoff = (before[3].1 + before[4].1) / 2;
    let cfg = RetentionConfig {
        max_age: Duration::from_nanos(crate::model::window::now_unix_nanos() - cutoff),
        max_bytes: None,
    };
    retention::run(&mut conn, &cfg, 0, &mut 0).unwrap();
    let after = newest(&conn);
    assert_eq!(after, before[4..].to_vec());
    let orphans = |table: &str| -> i64 {
        conn.query_row(
            &format!("SELECT COUNT(*) FROM {table} WHERE block_id NOT IN (SELECT id FROM blocks)"),
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(orphans("block_postings"), 0);
    assert_eq!(orphans("block_blooms"), 0);
    drop(conn);
    let store = open(&dir);
    let first_kept = (after[0].0 - before[0].0) as usize;
    let spans: Vec<Span> = requests[first_kept..].iter().flatten().cloned().collect();
    check_all(&store, &spans, "after retention");
    store.shutdown();
}

/// Turns a file written by this build back into schema v1: blocks without an index (and
/// without the later versions' tables).
fn downgrade_to_v1(dir: &tempfile::TempDir) {
    let conn = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    conn.execute_batch(
        "DROP TABLE broker_snapshots; DROP TABLE broker_figures; DROP TABLE partition_minutes;
         DROP TRIGGER blocks_index_gone; DROP TABLE block_postings; DROP TABLE block_blooms;
         DROP INDEX blocks_by_range;
         CREATE INDEX blocks_by_end ON blocks(max_start_unix_nanos, span_count);
         DELETE FROM meta WHERE key = 'postings_from'; PRAGMA user_version = 1;",
    )
    .unwrap();
}

#[test]
fn a_migrated_v1_file_is_searched_whole_old_blocks_and_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let requests = generate(5, 150, 10);
    for r in &requests[..6] {
        store.write_blocking(prepare(r.clone())).unwrap();
    }
    store.shutdown();
    downgrade_to_v1(&dir);
    let store = open(&dir);
    for r in &requests[6..] {
        store.write_blocking(prepare(r.clone())).unwrap();
    }
    let spans: Vec<Span> = requests.iter().flatten().cloned().collect();
    check_all(&store, &spans, "v1 blocks and v2 blocks");
    store.shutdown();
}

#[test]
fn a_search_that_hits_its_decode_bound_says_it_is_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let requests = generate(9, DECODE_BLOCKS as u64 + 20, DECODE_BLOCKS + 20);
    for r in requests.iter().filter(|r| !r.is_empty()) {
        store.write_blocking(prepare(r.clone())).unwrap();
    }
    store.shutdown();
    // Blocks without an index can only be decoded: more of them than the bound.
    downgrade_to_v1(&dir);
    let store = open(&dir);
    let miss = TraceQuery {
        attribute: Some(("tenant".into(), "nobody".into())),
        limit: 20,
        ..TraceQuery::default()
    };
    let r = store.search_traces(&miss).unwrap();
    assert!(r.traces.is_empty());
    assert!(!r.complete, "the miss could not be proven");
    // The index answers the same question for new blocks without decoding them.
    for r in &requests {
        let mut moved = r.clone();
        for s in &mut moved {
            s.trace_id.0[0] ^= 0xff;
            s.start_unix_nanos += 3_600_000 * MS;
            s.end_unix_nanos += 3_600_000 * MS;
        }
        if !moved.is_empty() {
            store.write_blocking(prepare(moved)).unwrap();
        }
    }
    let newer = TraceQuery {
        window: TimeWindow::new(T0 + 3_600_000 * MS, u64::MAX / 2),
        ..miss
    };
    let r = store.search_traces(&newer).unwrap();
    assert!(r.traces.is_empty() && r.complete);
    store.shutdown();
}

#[test]
fn recent_operations_are_the_stored_span_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let requests = generate(11, 60, 8);
    let names: BTreeSet<String> = requests.iter().flatten().map(|s| s.name.clone()).collect();
    for r in requests {
        store.write_blocking(prepare(r)).unwrap();
    }
    let listed = store.recent_operations(1000).unwrap();
    assert!(names.len() > 1, "{names:?}");
    assert_eq!(listed, names.into_iter().collect::<Vec<_>>());
    assert_eq!(store.recent_operations(1).unwrap().len(), 1);
    store.shutdown();
}

/// Duration bounds read from the records' heads keep the same traces, in the same order and
/// with the same summaries, as summarising every match and filtering the summaries.
#[test]
fn duration_bounds_keep_what_filtering_the_summaries_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for r in generate(11, 150, 12) {
        store.write_blocking(prepare(r)).unwrap();
    }
    // Spans last 500 us and start 7 us apart: a trace of n spans lasts 493 + 7n us.
    let ranges = [
        0.0..=f64::INFINITY,
        505.0..=515.0,
        0.0..=503.0,
        520.0..=f64::INFINITY,
        600.0..=700.0,
    ];
    for q in queries() {
        let all = store.search_traces(&q).unwrap();
        for micros in ranges.clone() {
            for limit in [1, 5, 50] {
                let want: Vec<String> = all
                    .traces
                    .iter()
                    .filter(|t| micros.contains(&(t.duration_micros as f64)))
                    .take(limit)
                    .map(|t| format!("{t:?}"))
                    .collect();
                let got = store
                    .search_traces_within(&q, micros.clone(), limit)
                    .unwrap();
                let got: Vec<String> = got.traces.iter().map(|t| format!("{t:?}")).collect();
                assert_eq!(got, want, "{q:?} {micros:?} {limit}");
            }
        }
    }
    let narrow = store
        .search_traces_within(&queries()[0], 505.0..=515.0, 10_000)
        .unwrap();
    let everything = store.search_traces(&queries()[0]).unwrap();
    assert!(
        !narrow.traces.is_empty() && narrow.traces.len() < everything.traces.len(),
        "the bounds keep some traces and leave out others"
    );
    store.shutdown();
}
