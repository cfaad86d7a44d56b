//! The ClickHouse client against a real server (`testing::shared`).

use super::sql::{render, Value};
use super::testing::shared;
use super::*;

fn client() -> Client {
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let c = Client::new(&url, Timeouts::default());
    c.execute(
        &format!("CREATE DATABASE IF NOT EXISTS {}", sql::ident(c.database())),
        false,
    )
    .unwrap();
    c
}

#[derive(Debug, serde::Deserialize)]
struct S {
    s: String,
}

#[test]
fn hostile_strings_come_back_unchanged_from_the_server() {
    let c = client();
    for text in super::sql::tests_hostile() {
        let q = render("SELECT ? AS s", &[Value::Str(text)]).unwrap();
        let rows: Vec<S> = c.rows(&q).unwrap();
        assert_eq!(rows.len(), 1, "{text:?}");
        assert_eq!(rows[0].s, *text);
        // And as a comparison in a WHERE clause: exactly one match, never more.
        let q = render(
            "SELECT s FROM (SELECT arrayJoin([?, 'other']) AS s) WHERE s = ?",
            &[Value::Str(text), Value::Str(text)],
        )
        .unwrap();
        let rows: Vec<S> = c.rows(&q).unwrap();
        assert_eq!(rows.len(), 1 + usize::from(*text == "other"), "{text:?}");
    }
}

#[test]
fn inserts_in_row_binary_read_back() {
    let c = client();
    c.execute(
        "CREATE TABLE t (id FixedString(8), s String, n UInt64, d Date) ENGINE = MergeTree PARTITION BY d ORDER BY id",
        true,
    )
    .unwrap();
    let mut rows = rowbinary::Rows::default();
    for text in super::sql::tests_hostile() {
        rows.fixed(&[0xff; 8]).str(text).u64(u64::MAX).date(0);
        rows.end_row();
    }
    c.insert("t", "id, s, n, d", &rows.buf).unwrap();
    #[derive(serde::Deserialize)]
    struct R {
        id: String,
        s: String,
        n: u64,
    }
    let back: Vec<R> = c.rows("SELECT hex(id) AS id, s, n FROM t").unwrap();
    let mut got: Vec<&str> = back.iter().map(|r| r.s.as_str()).collect();
    let mut want: Vec<&str> = super::sql::tests_hostile().to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    assert!(back
        .iter()
        .all(|r| r.id == "FF".repeat(8) && r.n == u64::MAX));
}

#[test]
fn errors_say_what_failed_and_whether_to_retry() {
    let c = client();
    let e = c.rows::<S>("SELECT s FROM no_such_table").unwrap_err();
    assert!(
        matches!(
            e,
            ClientError::Server {
                status: 404 | 500,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.is_transient());
    let url = format!("http://writer:wrong@127.0.0.1:{}/x", shared().http_port);
    let bad = Client::new(&ClickHouseUrl::parse(&url).unwrap(), Timeouts::default());
    let e = bad.rows::<S>("SELECT 'x' AS s").unwrap_err();
    assert!(matches!(e, ClientError::Unauthorized(_)), "{e}");
    assert!(!e.to_string().contains("wrong"));
    let good = format!(
        "http://writer:s3cret%3A%40%2Fpass@127.0.0.1:{}/x",
        shared().http_port
    );
    let ok = Client::new(&ClickHouseUrl::parse(&good).unwrap(), Timeouts::default());
    ok.execute("SELECT 1", false).unwrap();
    // Nothing listens on a port just released: unreachable, transient, a 503 for clients.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = Client::new(
        &ClickHouseUrl::parse(&format!("http://127.0.0.1:{port}/x")).unwrap(),
        Timeouts::default(),
    );
    let e = down.execute("SELECT 1", false).unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(
        crate::store::StoreError::from(e).code(),
        crate::error::ErrorCode::Unavailable
    );
}

/// The ClickHouse store under the store suite: each harness is a new database on the test
/// binary's shared server.
struct Harness(ClickHouseUrl);

impl Harness {
    fn new() -> Harness {
        Harness(ClickHouseUrl::parse(&shared().fresh_url()).unwrap())
    }
}

impl crate::store::suite::Harness for Harness {
    fn fresh(&self) -> Box<dyn crate::store::suite::Harness> {
        Box::new(Harness::new())
    }

    fn open(&self) -> crate::store::Store {
        crate::store::Store::new(open(&self.0).unwrap())
    }

    fn open_with_retention(&self, max_age: std::time::Duration) -> crate::store::Store {
        crate::store::Store::new(
            ClickHouseStore::open(&ClickHouseConfig {
                url: self.0.clone(),
                queue_depth: 8,
                timeouts: Timeouts::default(),
                retention: Some(max_age),
            })
            .unwrap(),
        )
    }
}

mod suite {
    use super::Harness;
    crate::storage_suite_all!(Harness::new());
}

use crate::store::Writes as _;

fn open(url: &ClickHouseUrl) -> Result<ClickHouseStore, crate::store::StoreError> {
    ClickHouseStore::open(&ClickHouseConfig {
        url: url.clone(),
        queue_depth: 8,
        timeouts: Timeouts::default(),
        retention: None,
    })
}

fn write(store: &ClickHouseStore, spans: Vec<crate::model::Span>) {
    use crate::store::Writes;
    store.write_blocking(crate::store::prepare(spans)).unwrap();
}

fn dependencies(store: &ClickHouseStore) -> Vec<Option<i64>> {
    use crate::store::TopologyReads;
    let w = crate::model::TimeWindow::new(
        crate::model::testing::T0 - 60_000_000_000,
        crate::model::testing::T0 + 3_600_000_000_000,
    )
    .unwrap();
    crate::topology::build(store.topology(w).unwrap(), w)
        .dependencies
        .iter()
        .map(|d| d.count)
        .collect()
}

#[test]
fn two_collectors_on_one_database_pair_a_message_in_either_order() {
    use crate::model::testing::{msg, span};
    use crate::model::{Operation, SpanKind};
    for consume_first in [true, false] {
        let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
        let (a, b) = (open(&url).unwrap(), open(&url).unwrap());
        let publish = msg(
            span(90, 1, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        let consume = msg(
            span(90, 2, Some(1), "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        );
        // Each collector stores one side; the second arrives after the first is stored.
        if consume_first {
            write(&a, vec![consume]);
            write(&b, vec![publish]);
        } else {
            write(&a, vec![publish]);
            write(&b, vec![consume]);
        }
        assert_eq!(
            dependencies(&a),
            vec![Some(1)],
            "consume first: {consume_first}"
        );
        assert_eq!(
            dependencies(&b),
            vec![Some(1)],
            "the same answer from either"
        );
        a.shutdown();
        b.shutdown();
    }
}

#[test]
fn a_newer_schema_is_refused_and_a_missing_database_created() {
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    store.shutdown();
    let c = Client::new(&url, Timeouts::default());
    assert_eq!(schema::current(&c).unwrap(), schema::VERSION);
    c.execute(
        "INSERT INTO schema_version (version, applied_unix_seconds) VALUES (99, 0)",
        true,
    )
    .unwrap();
    assert!(matches!(
        open(&url),
        Err(crate::store::StoreError::NewerSchema { found: 99, .. })
    ));
}

#[test]
fn clickhouse_down_answers_unavailable_and_never_crashes() {
    use crate::error::ErrorCode;
    use crate::model::testing::span;
    use crate::model::{SpanKind, TraceId};
    use crate::store::{TraceReads, Writes};
    let server = testing::TestServer::start().unwrap();
    let url = ClickHouseUrl::parse(&format!("http://127.0.0.1:{}/down", server.http_port)).unwrap();
    let store = open(&url).unwrap();
    write(&store, vec![span(91, 1, None, "a", SpanKind::Server)]);
    drop(server);
    let answer = store.write_blocking(crate::store::prepare(vec![span(
        91,
        2,
        None,
        "a",
        SpanKind::Server,
    )]));
    let e = answer.unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    let e = store.trace(TraceId([91; 16])).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    store.shutdown();
    let e = open(&url).err().expect("no server to open");
    assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
}

#[test]
fn a_full_queue_answers_busy_while_clickhouse_is_slow() {
    use crate::model::testing::span;
    use crate::model::SpanKind;
    use crate::priority::Priority;
    use crate::store::{Room, StoreError, WriteBatch, Writes};
    // A server that takes requests and never answers: the writer waits on its first insert.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            if held_tx.send(conn).is_err() {
                return;
            }
        }
    });
    let url = ClickHouseUrl::parse(&format!("http://127.0.0.1:{port}/slow")).unwrap();
    let store = ClickHouseStore::start(Client::new(&url, Timeouts::default()), 1, None).unwrap();
    let batch = |i| {
        WriteBatch::Spans(crate::store::prepare(vec![span(
            92,
            i,
            None,
            "a",
            SpanKind::Server,
        )]))
    };
    let mut queued = Vec::new();
    let mut busy = false;
    for i in 1..=3 {
        match store.write(batch(i), Room::Now, Priority::Normal) {
            Ok(p) => queued.push(p),
            Err(StoreError::Busy) => {
                busy = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        busy,
        "one writer waiting and a queue of one: the third write at most is refused"
    );
    assert_eq!(
        StoreError::Busy.code(),
        crate::error::ErrorCode::Unavailable
    );
    // The server drops its connections: every queued write is answered with an error.
    let first = held_rx.recv().unwrap();
    first.shutdown(std::net::Shutdown::Both).unwrap();
    drop(first);
    std::thread::spawn(move || {
        while let Ok(c) = held_rx.recv() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    });
    for p in queued {
        let e = p.blocking_recv().unwrap().unwrap_err();
        assert_eq!(e.code(), crate::error::ErrorCode::Unavailable, "{e}");
    }
    store.shutdown();
}

#[test]
fn a_test_server_starts_answers_and_stops_with_its_handle() {
    let server = testing::TestServer::start().unwrap();
    let url = format!("http://127.0.0.1:{}/ping", server.http_port);
    assert_eq!(ureq::get(&url).call().unwrap().status(), 200);
    let dir = server.dir().to_path_buf();
    drop(server);
    // The watchdog has stopped the server and removed its files before `drop` returned.
    assert!(ureq::get(&url).call().is_err());
    assert!(!dir.exists());
}

#[test]
fn retention_drops_whole_days_older_than_the_cutoff() {
    use crate::model::testing::{span, T0};
    use crate::model::{SpanKind, TraceId};
    use crate::store::{StoreStats, TraceReads};
    const DAY: u64 = 86_400_000_000_000;
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let mut old = span(93, 1, None, "a", SpanKind::Server);
    old.start_unix_nanos = T0 - 3 * DAY;
    old.end_unix_nanos = old.start_unix_nanos + 1_000;
    write(&store, vec![old, span(94, 1, None, "a", SpanKind::Server)]);
    let c = Client::new(&url, Timeouts::default());
    // The cutoff's own day stays: nothing of T0's day goes, the day three days back does.
    assert!(retention::drop_before(&c, T0 - DAY).unwrap() > 0);
    assert!(store.trace(TraceId([93; 16])).unwrap().is_empty());
    assert_eq!(store.trace(TraceId([94; 16])).unwrap().len(), 1);
    assert_eq!(store.span_count().unwrap(), 1);
    assert_eq!(
        retention::drop_before(&c, T0 - DAY).unwrap(),
        0,
        "idempotent"
    );
    store.shutdown();
}
