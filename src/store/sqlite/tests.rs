//! Store tests on a real SQLite file: pairing in any arrival order, counting rules,
//! duplicates, restarts.

use super::retention::RetentionConfig;
use super::*;
use crate::model::testing::{msg, span};
use crate::model::{Operation, SpanId, SpanKind};
use crate::store::{prepare, Writes};
use std::time::Duration;

/// The SQLite store under the store suite: each harness is a fresh directory.
struct Harness(tempfile::TempDir);

impl Harness {
    fn new() -> Harness {
        Harness(tempfile::tempdir().unwrap())
    }
}

impl crate::store::suite::Harness for Harness {
    fn fresh(&self) -> Box<dyn crate::store::suite::Harness> {
        Box::new(Harness::new())
    }

    fn open(&self) -> crate::store::Store {
        crate::store::Store::new(open(&self.0))
    }

    fn open_with_retention(&self, max_age: Duration) -> crate::store::Store {
        crate::store::Store::new(open_with(&self.0, max_age))
    }
}

crate::storage_suite_all!(Harness::new());

pub(super) fn open(dir: &tempfile::TempDir) -> SqliteStore {
    open_with(dir, Duration::from_secs(3600 * 24 * 365 * 100))
}

fn open_with(dir: &tempfile::TempDir, max_age: Duration) -> SqliteStore {
    SqliteStore::open(&StoreConfig {
        path: dir.path().join("s.db"),
        retention: RetentionConfig {
            max_age,
            max_bytes: None,
        },
        queue_depth: 8,
        synchronous: "NORMAL".into(),
    })
    .unwrap()
}

fn write_spans(store: &SqliteStore, spans: Vec<crate::model::Span>) {
    store.write_blocking(prepare(spans)).unwrap();
}

#[test]
fn parents_come_first_and_cycles_terminate() {
    // 3 -> 2 -> 1 (child -> parent), listed children first; 9 has an absent parent.
    let p = |id, parent| span(1, id, parent, "s", SpanKind::Internal);
    let spans = prepare(vec![
        p(3, Some(2)),
        p(9, Some(8)),
        p(2, Some(1)),
        p(1, None),
    ]);
    let order = writer::parents_first(&spans);
    let pos = |id: u8| {
        order
            .iter()
            .position(|&i| spans[i].span.span_id == SpanId([id; 8]))
            .unwrap()
    };
    assert_eq!(order.len(), 4);
    assert!(pos(1) < pos(2) && pos(2) < pos(3));
    let cyclic = prepare(vec![p(1, Some(2)), p(2, Some(1))]);
    assert_eq!(writer::parents_first(&cyclic).len(), 2);
}

#[test]
fn a_span_that_arrives_settles_what_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // A publish inside a handler span that is exported later: the publish waits for its parent.
    write_spans(
        &store,
        vec![msg(
            span(9, 2, Some(1), "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        )],
    );
    let waiting = |s: &SqliteStore| {
        s.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM pending_refs", [], |r| {
                r.get::<_, i64>(0)
            })?)
        })
        .unwrap()
    };
    assert_eq!(waiting(&store), 1);
    write_spans(&store, vec![span(9, 1, None, "orders", SpanKind::Server)]);
    assert_eq!(waiting(&store), 0, "the handler's arrival clears the wait");
    store.shutdown();
}

#[test]
fn broker_snapshots_older_than_an_hour_thin_out_to_one_an_hour() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let snapshot = |minute: u64| crate::model::BrokerSnapshot {
        broker: "rabbitmq 127.0.0.1:15672".into(),
        system: "rabbitmq".into(),
        taken_unix_nanos: minute * 60_000_000_000,
        ..Default::default()
    };
    for minute in [0, 1, 59, 60, 61, 119, 120, 150] {
        store
            .write(
                crate::store::WriteBatch::BrokerState(Box::new(snapshot(minute))),
                crate::store::Room::Always,
                crate::priority::Priority::Normal,
            )
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap();
    }
    let minutes = |s: &SqliteStore| -> Vec<i64> {
        s.read(|c| {
            let mut stmt = c.prepare("SELECT minute FROM broker_snapshots ORDER BY minute")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
        })
        .unwrap()
    };
    // As the writer's retention pass does, on a writable connection.
    let rw = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
    let deleted = super::retention::thin_broker_snapshots(&rw, 150).unwrap();
    assert_eq!(
        deleted, 3,
        "minutes 1, 59 and 61 are over an hour old and off the hour"
    );
    assert_eq!(minutes(&store), vec![0, 60, 119, 120, 150]);
    store.shutdown();
}

fn open_bounded(dir: &tempfile::TempDir, bound: u64) -> SqliteStore {
    SqliteStore::open(&StoreConfig {
        path: dir.path().join("s.db"),
        retention: RetentionConfig {
            max_age: Duration::from_secs(3600 * 24 * 365 * 100),
            max_bytes: Some(bound),
        },
        queue_depth: 8,
        synchronous: "NORMAL".into(),
    })
    .unwrap()
}

fn auto_vacuum(store: &SqliteStore) -> i64 {
    store
        .read(|c| Ok(c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn new_files_can_give_pages_back_and_older_ones_are_converted_under_a_size_bound() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_bounded(&dir, 64 << 20);
    assert_eq!(auto_vacuum(&store), size::AUTO_VACUUM_INCREMENTAL);
    store.shutdown();

    // A file made before: no auto vacuum, spans in it.
    let old = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(old.path().join("s.db")).unwrap();
        c.execute_batch("PRAGMA auto_vacuum = NONE; PRAGMA journal_mode = WAL;")
            .unwrap();
    }
    let store = open(&old);
    assert_eq!(
        auto_vacuum(&store),
        0,
        "no bound: the file is left as it is"
    );
    write_spans(&store, vec![span(3, 1, None, "orders", SpanKind::Server)]);
    store.shutdown();
    let store = open_bounded(&old, 64 << 20);
    assert_eq!(auto_vacuum(&store), size::AUTO_VACUUM_INCREMENTAL);
    assert_eq!(store.span_count().unwrap(), 1, "converting keeps the data");
    store.shutdown();
}

/// The database, its WAL and shared memory, as the file system sees them.
fn on_disk(dir: &tempfile::TempDir) -> u64 {
    ["s.db", "s.db-wal", "s.db-shm"]
        .iter()
        .map(|f| std::fs::metadata(dir.path().join(f)).map_or(0, |m| m.len()))
        .sum()
}

/// 100 spans of about 3 KiB each that do not compress, distinct per round.
fn noisy_spans(round: u32) -> Vec<crate::model::Span> {
    (0..100u32)
        .map(|i| {
            let mut s = span(1, 1, None, "orders", SpanKind::Server);
            s.trace_id = crate::model::TraceId(
                (round * 1000 + i + 1)
                    .to_be_bytes()
                    .repeat(4)
                    .try_into()
                    .unwrap(),
            );
            let mut x =
                (u64::from(round) << 32 | u64::from(i)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let noise: String = (0..200)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    format!("{x:016x}")
                })
                .collect();
            s.attributes = vec![("payload".into(), crate::model::AttrValue::String(noise))];
            s
        })
        .collect()
}

#[test]
fn a_size_bound_holds_the_file_deleting_the_oldest_spans() {
    let dir = tempfile::tempdir().unwrap();
    let bound: u64 = 8 << 20;
    let store = open_bounded(&dir, bound);
    let (mut stored, mut refused) = (0u64, 0);
    for round in 0..120u32 {
        match store.write_blocking(prepare(noisy_spans(round))) {
            Ok(o) => stored += o.stored,
            Err(crate::store::StoreError::Full { .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
        let bytes = on_disk(&dir);
        assert!(
            bytes <= bound + bound / 10,
            "round {round}: {bytes} bytes over the bound {bound}"
        );
    }
    let kept = store.span_count().unwrap();
    assert!(stored > 4_000, "{stored} stored, {refused} refused");
    assert!(kept < stored && kept > 0, "{kept} kept of {stored}");
    store.shutdown();
}

#[test]
fn a_file_over_a_new_size_bound_is_brought_within_it_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for round in 0..80u32 {
        write_spans(&store, noisy_spans(round));
    }
    store.shutdown();
    let bound: u64 = 8 << 20;
    assert!(on_disk(&dir) > 2 * bound, "{}", on_disk(&dir));
    let store = open_bounded(&dir, bound);
    assert!(on_disk(&dir) <= bound, "{} after open", on_disk(&dir));
    let kept = store.span_count().unwrap();
    assert!(kept > 0 && kept < 8_000, "{kept}");
    store.shutdown();
}
