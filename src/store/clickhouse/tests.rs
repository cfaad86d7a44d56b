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
fn tables_sent_with_a_query_are_read_whole_whatever_their_bytes() {
    let c = client();
    // Hostile strings, and bytes that look like the multipart framing the tables travel in:
    // the first boundary the client would pick, a CRLF, a closing delimiter.
    let mut texts: Vec<String> = super::sql::tests_hostile()
        .iter()
        .map(|t| t.to_string())
        .collect();
    texts.push("--switchyard-0000000000000000\r\n".into());
    texts.push("\r\n--switchyard-0000000000000000--\r\n".into());
    let mut rows = rowbinary::Rows::default();
    for (i, text) in texts.iter().enumerate() {
        rows.u64(i as u64).str(text);
        rows.end_row();
    }
    let mut ids = rowbinary::Rows::default();
    for i in [1u64, 3, 1_000] {
        ids.u64(i);
        ids.end_row();
    }
    #[derive(serde::Deserialize)]
    struct R {
        n: u64,
        s: String,
    }
    let back: Vec<R> = c
        .rows_with(
            "SELECT n, s FROM texts WHERE n NOT IN ids ORDER BY n",
            &[
                client::External {
                    name: "texts",
                    structure: "n UInt64, s String",
                    rows: &rows,
                },
                client::External {
                    name: "ids",
                    structure: "n UInt64",
                    rows: &ids,
                },
            ],
        )
        .unwrap();
    let want: Vec<(u64, &str)> = texts
        .iter()
        .enumerate()
        .filter(|(i, _)| ![1, 3].contains(i))
        .map(|(i, t)| (i as u64, t.as_str()))
        .collect();
    let got: Vec<(u64, &str)> = back.iter().map(|r| (r.n, r.s.as_str())).collect();
    assert_eq!(got, want);
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
    // A request ClickHouse's HTTP server could not read (an empty 400) ran nothing: retried.
    let unread = ClientError::Server {
        status: 400,
        message: String::new(),
    };
    assert!(unread.is_transient());
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
                retention_size: None,
                settle: DEFAULT_SETTLE,
                cluster: None,
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
    open_with_settle(url, DEFAULT_SETTLE)
}

fn open_with_settle(
    url: &ClickHouseUrl,
    settle: std::time::Duration,
) -> Result<ClickHouseStore, crate::store::StoreError> {
    ClickHouseStore::open(&ClickHouseConfig {
        url: url.clone(),
        queue_depth: 8,
        timeouts: Timeouts::default(),
        retention: None,
        retention_size: None,
        settle,
        cluster: None,
    })
}

pub(super) fn write(store: &ClickHouseStore, spans: Vec<crate::model::Span>) {
    use crate::store::Writes;
    store.write_blocking(crate::store::prepare(spans)).unwrap();
}

pub(super) fn dependencies(store: &ClickHouseStore) -> Vec<Option<i64>> {
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
    let store = ClickHouseStore::start(
        Client::new(&url, Timeouts::default()),
        1,
        writer::Upkeep::default(),
    )
    .unwrap();
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

/// A race, reproduced exactly: each side analysed by a collector on a database holding
/// neither (what a collector sees when the other's insert has not landed yet), then both
/// collectors' rows put together in one database, as their inserts leave it.
fn raced(sides: [Vec<crate::model::Span>; 2]) -> ClickHouseUrl {
    let urls = [0, 1].map(|_| ClickHouseUrl::parse(&shared().fresh_url()).unwrap());
    for (url, spans) in urls.iter().zip(sides) {
        let store = open(url).unwrap();
        write(&store, spans);
        store.shutdown();
    }
    let c = Client::new(&urls[0], Timeouts::default());
    for t in schema::DATA_TABLES {
        let from = format!("{}.{t}", sql::ident(&urls[1].database));
        c.execute(&format!("INSERT INTO {t} SELECT * FROM {from}"), true)
            .unwrap();
    }
    urls[0].clone()
}

/// The graph's edges as the API counts them (no sketches: their sums say the same).
fn edges(store: &ClickHouseStore) -> Vec<(String, String, i64, String, i64, i64, i64)> {
    use crate::store::TopologyReads;
    let w = crate::model::TimeWindow::new(
        crate::model::testing::T0 - 60_000_000_000,
        crate::model::testing::T0 + 3_600_000_000_000,
    )
    .unwrap();
    let mut out: Vec<_> = store
        .topology(w)
        .unwrap()
        .edges
        .into_iter()
        .map(|e| {
            (
                e.from,
                e.to,
                e.kind.as_i64(),
                e.via,
                e.count,
                e.errors,
                e.latency_sum_micros,
            )
        })
        .collect();
    out.sort();
    out
}

fn open_settling(url: &ClickHouseUrl) -> ClickHouseStore {
    open_with_settle(url, std::time::Duration::ZERO).unwrap()
}

/// Waits (bounded) until the store's edges are `want`; answers the last ones seen.
fn converge(
    store: &ClickHouseStore,
    want: &[(String, String, i64, String, i64, i64, i64)],
) -> Vec<(String, String, i64, String, i64, i64, i64)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let got = edges(store);
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Distinct waits settled (two collectors settling one write two rows until they merge).
fn settled_waits(url: &ClickHouseUrl) -> u64 {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let c = Client::new(url, Timeouts::default());
    c.rows::<N>(
        "SELECT toUInt64(uniqExact(ref_trace, ref_span, trace_id, span_id)) AS n FROM pending_done",
    )
    .unwrap()
    .first()
    .map_or(0, |r| r.n)
}

/// The race cases: a publish and its consume (parent and span link), a nested publish, a
/// client call and its server, a message delivered twice to one service; each side stored
/// by a collector that does not see the other.
fn race_cases() -> Vec<(&'static str, [Vec<crate::model::Span>; 2])> {
    use crate::model::testing::{msg, span};
    use crate::model::{Link, Operation, SpanKind};
    let publish = |t, id| {
        msg(
            span(t, id, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        )
    };
    let consume = |t, id, parent| {
        msg(
            span(t, id, parent, "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        )
    };
    let mut linked = consume(101, 2, None);
    linked.links.push(Link {
        trace_id: crate::model::TraceId([100; 16]),
        span_id: crate::model::SpanId([1; 8]),
        attributes: Default::default(),
    });
    let nested = msg(
        span(102, 2, Some(1), "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let mut client = span(103, 1, None, "web", SpanKind::Client);
    client.peer = Some("api:443".into());
    let server = span(103, 2, Some(1), "api", SpanKind::Server);
    vec![
        (
            "parent",
            [vec![consume(99, 2, Some(1))], vec![publish(99, 1)]],
        ),
        ("link", [vec![linked], vec![publish(100, 1)]]),
        ("nested publish", [vec![nested], vec![publish(102, 1)]]),
        ("client call", [vec![server], vec![client]]),
        (
            "delivered twice",
            [
                vec![consume(104, 2, Some(1)), consume(104, 3, Some(1))],
                vec![publish(104, 1)],
            ],
        ),
    ]
}

#[test]
fn collectors_racing_each_other_pair_as_one_collector_once_reconciled() {
    for (case, sides) in race_cases() {
        // One collector storing both sides: the answer to reach.
        let single = open(&ClickHouseUrl::parse(&shared().fresh_url()).unwrap()).unwrap();
        write(&single, sides.iter().flatten().cloned().collect());
        let want = edges(&single);
        single.shutdown();
        let url = raced(sides);
        let before = open(&url).unwrap();
        assert_ne!(edges(&before), want, "{case}: the race left it unpaired");
        before.shutdown();
        // Two collectors reconciling at once count each wait once.
        let (a, b) = (open_settling(&url), open_settling(&url));
        assert_eq!(converge(&a, &want), want, "{case}");
        assert_eq!(edges(&b), want, "{case}: the same answer from either");
        a.shutdown();
        b.shutdown();
        // Settling every wait again (as a pass that stopped before marking them settled
        // would) writes the same rows: nothing counts twice.
        let c = Client::new(&url, Timeouts::default());
        let settled = settled_waits(&url);
        assert!(settled > 0, "{case}");
        c.execute("TRUNCATE TABLE pending_done", true).unwrap();
        let again = open_settling(&url);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while settled_waits(&url) < settled && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(settled_waits(&url), settled, "{case}: settled again");
        assert_eq!(edges(&again), want, "{case}: settled twice, counted once");
        again.shutdown();
    }
}

/// Two deliveries of one message to one service, each paired with the stored publish by a
/// collector that does not see the other's delivery (both count as the first), reproduced
/// exactly: the publish through a collector, its spans copied to a second database, one
/// delivery through a collector on each, then the second database's rows added to the first.
fn delivered_twice_at_once(
    publish: crate::model::Span,
    deliveries: [crate::model::Span; 2],
) -> ClickHouseUrl {
    let urls = [0, 1].map(|_| ClickHouseUrl::parse(&shared().fresh_url()).unwrap());
    let stores = urls.each_ref().map(|url| open(url).unwrap());
    write(&stores[0], vec![publish]);
    let c = Client::new(&urls[1], Timeouts::default());
    let first = sql::ident(&urls[0].database);
    for t in ["spans", "nodes"] {
        c.execute(&format!("INSERT INTO {t} SELECT * FROM {first}.{t}"), true)
            .unwrap();
    }
    for (store, delivery) in stores.iter().zip(deliveries) {
        write(store, vec![delivery]);
    }
    for store in stores {
        store.shutdown();
    }
    // The copy of the publish's spans collapses with the original.
    let c = Client::new(&urls[0], Timeouts::default());
    let second = sql::ident(&urls[1].database);
    for t in schema::DATA_TABLES {
        c.execute(&format!("INSERT INTO {t} SELECT * FROM {second}.{t}"), true)
            .unwrap();
    }
    urls[0].clone()
}

/// Distinct consumes noted as first deliveries.
fn first_deliveries(c: &Client) -> u64 {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let q = format!(
        "SELECT toUInt64(uniqExact({}, by_span)) AS n FROM deliveries",
        super::writer::BY_TRACE
    );
    c.rows::<N>(&q).unwrap().first().map_or(0, |r| r.n)
}

/// Distinct consumes taken back as second deliveries.
fn taken_back(c: &Client) -> u64 {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    c.rows::<N>(
        "SELECT toUInt64(uniqExact(ref_trace, ref_span, trace_id, span_id)) AS n
         FROM pair_minutes WHERE reason = 1",
    )
    .unwrap()
    .first()
    .map_or(0, |r| r.n)
}

#[test]
fn two_first_deliveries_stored_at_once_count_once_reconciled() {
    use crate::model::testing::{msg, span};
    use crate::model::{Operation, SpanKind};
    let publish = |destination| {
        msg(
            span(106, 1, None, "orders", SpanKind::Producer),
            destination,
            Operation::Produce,
        )
    };
    let delivery = |id| {
        msg(
            span(106, id, Some(1), "billing", SpanKind::Consumer),
            "billing-queue",
            Operation::Consume,
        )
    };
    // Through one destination, and through an exchange routing to a queue (the route counts
    // the message once too).
    for destination in ["billing-queue", "orders-exchange"] {
        let single = open(&ClickHouseUrl::parse(&shared().fresh_url()).unwrap()).unwrap();
        write(
            &single,
            vec![publish(destination), delivery(2), delivery(3)],
        );
        let want = edges(&single);
        single.shutdown();
        let url = delivered_twice_at_once(publish(destination), [delivery(3), delivery(2)]);
        let c = Client::new(&url, Timeouts::default());
        assert_eq!(
            first_deliveries(&c),
            2,
            "{destination}: both counted as the first"
        );
        // Two collectors taking it back at once count it once.
        let (a, b) = (open_settling(&url), open_settling(&url));
        assert_eq!(converge(&a, &want), want, "{destination}");
        assert_eq!(
            edges(&b),
            want,
            "{destination}: the same answer from either"
        );
        a.shutdown();
        b.shutdown();
        assert_eq!(taken_back(&c), 1, "{destination}");
        // Taken back again (its rows lost, as if a pass stopped before its insert): the same.
        c.execute("TRUNCATE TABLE pair_minutes", true).unwrap();
        let again = open_settling(&url);
        assert_eq!(
            converge(&again, &want),
            want,
            "{destination}: taken back again"
        );
        assert_eq!(taken_back(&c), 1, "{destination}");
        again.shutdown();
    }
}

#[test]
fn a_second_delivery_counts_once_across_collectors_and_restarts() {
    use crate::model::testing::{msg, span};
    use crate::model::{Operation, SpanKind};
    let publish = msg(
        span(105, 1, None, "orders", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    let delivery = |id| {
        msg(
            span(105, id, Some(1), "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        )
    };
    let single = open(&ClickHouseUrl::parse(&shared().fresh_url()).unwrap()).unwrap();
    write(
        &single,
        vec![publish.clone(), delivery(2), delivery(3), delivery(4)],
    );
    let want = edges(&single);
    single.shutdown();
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    // The publish and a first delivery through one collector, which then restarts; the
    // second delivery through it after the restart, the third through another collector.
    let a = open(&url).unwrap();
    write(&a, vec![publish, delivery(2)]);
    a.shutdown();
    let a = open(&url).unwrap();
    write(&a, vec![delivery(3)]);
    let b = open(&url).unwrap();
    write(&b, vec![delivery(4)]);
    assert_eq!(edges(&a), want);
    assert_eq!(edges(&b), want);
    a.shutdown();
    b.shutdown();
}

#[test]
fn retention_by_size_drops_the_oldest_days_never_the_newest() {
    use crate::model::testing::{span, T0};
    use crate::model::{SpanKind, TraceId};
    use crate::store::{StoreStats, TraceReads};
    const DAY: u64 = 86_400_000_000_000;
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let at = |trace, start| {
        let mut s = span(trace, 1, None, "a", SpanKind::Server);
        s.start_unix_nanos = start;
        s.end_unix_nanos = start + 1_000;
        s
    };
    write(
        &store,
        vec![at(95, T0 - 2 * DAY), at(96, T0 - DAY), at(97, T0)],
    );
    let c = Client::new(&url, Timeouts::default());
    let size = store.size_bytes().expect("clickhouse reports its size");
    assert!(size > 0);
    assert_eq!(
        retention::drop_oldest_over(&c, size).unwrap(),
        0,
        "under the cap"
    );
    // A cap nothing fits under: every day but the newest goes, oldest first.
    assert_eq!(retention::drop_oldest_over(&c, 1).unwrap(), 2);
    assert!(store.trace(TraceId([95; 16])).unwrap().is_empty());
    assert!(store.trace(TraceId([96; 16])).unwrap().is_empty());
    assert_eq!(store.trace(TraceId([97; 16])).unwrap().len(), 1);
    assert_eq!(store.span_count().unwrap(), 1);
    assert!(store.size_bytes().unwrap() < size);
    assert_eq!(
        retention::drop_oldest_over(&c, 1).unwrap(),
        0,
        "the newest day stays"
    );
    store.shutdown();
}

#[test]
fn recent_operations_are_the_stored_span_names() {
    use crate::model::testing::span;
    use crate::model::SpanKind;
    use crate::store::TraceReads;
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    assert!(store.recent_operations(10).unwrap().is_empty());
    let mut spans = Vec::new();
    for (i, name) in ["checkout", "GET /cart", "checkout", "o'hare\\"]
        .iter()
        .enumerate()
    {
        let mut s = span(98, i as u8 + 1, None, "a", SpanKind::Server);
        s.name = name.to_string();
        spans.push(s);
    }
    write(&store, spans);
    assert_eq!(
        store.recent_operations(10).unwrap(),
        vec!["GET /cart", "checkout", "o'hare\\"]
    );
    assert_eq!(store.recent_operations(1).unwrap().len(), 1);
    store.shutdown();
}

/// Trace ids found by a search, sorted, and whether it says it is complete.
fn searched(store: &ClickHouseStore, q: crate::model::TraceQuery) -> (Vec<u8>, bool) {
    use crate::store::TraceReads;
    let found = store
        .search_traces(&crate::model::TraceQuery { limit: 10, ..q })
        .unwrap();
    let mut ids: Vec<u8> = found.traces.iter().map(|t| t.trace_id.0[0]).collect();
    ids.sort();
    (ids, found.complete)
}

#[test]
fn search_reads_the_index_and_settles_what_it_cannot_tell_on_the_spans() {
    use crate::model::testing::{span, T0};
    use crate::model::{SpanKind, StatusCode, TimeWindow, TraceQuery};
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let minute = 60_000_000_000;
    // T0 starts an index bucket; the window starts 5 minutes into it.
    let since = T0 + 5 * minute;
    let at = |mut s: crate::model::Span, t: u64| {
        s.start_unix_nanos = t;
        s.end_unix_nanos = t + 1_000;
        s
    };
    let mut failed_b = at(span(62, 2, Some(1), "b", SpanKind::Client), since + minute);
    failed_b.status = StatusCode::Error;
    let mut failed_a = at(span(63, 1, None, "a", SpanKind::Server), since + minute);
    failed_a.status = StatusCode::Error;
    let mut other_name = at(span(64, 2, Some(1), "b", SpanKind::Client), since + minute);
    other_name.name = "checkout".into();
    let mut named = at(span(65, 1, None, "a", SpanKind::Server), since + 2 * minute);
    named.name = "checkout".into();
    write(
        &store,
        vec![
            // Straddles the window's start: one index row from before it to after it.
            at(span(60, 1, None, "a", SpanKind::Server), since - minute),
            at(span(60, 2, Some(1), "a", SpanKind::Server), since + minute),
            // Before the window only, in the same bucket.
            at(span(61, 1, None, "a", SpanKind::Server), since - minute),
            // a succeeded and b failed: not a failed span of a.
            at(span(62, 1, None, "a", SpanKind::Server), since + minute),
            failed_b,
            failed_a,
            // a and a span named checkout, but not one span of a named checkout.
            at(span(64, 1, None, "a", SpanKind::Server), since + minute),
            other_name,
            named,
        ],
    );
    let window = TimeWindow::new(since, since + 60 * minute);
    let (by_service, complete) = searched(
        &store,
        TraceQuery {
            service: Some("a".into()),
            window,
            ..TraceQuery::default()
        },
    );
    assert_eq!(
        by_service,
        [60, 62, 63, 64, 65],
        "not 61: before the window"
    );
    assert!(complete);
    let (errors, _) = searched(
        &store,
        TraceQuery {
            service: Some("a".into()),
            errors_only: true,
            window,
            ..TraceQuery::default()
        },
    );
    assert_eq!(errors, [63]);
    let (both, complete) = searched(
        &store,
        TraceQuery {
            service: Some("a".into()),
            operation: Some("checkout".into()),
            window,
            ..TraceQuery::default()
        },
    );
    assert_eq!(both, [65], "64's conditions hold on two spans, not one");
    assert!(complete);
    let (everything, _) = searched(
        &store,
        TraceQuery {
            window,
            ..TraceQuery::default()
        },
    );
    assert_eq!(everything, [60, 62, 63, 64, 65]);
    let (unbounded, _) = searched(&store, TraceQuery::default());
    assert_eq!(unbounded, [60, 61, 62, 63, 64, 65]);
    // The index is what answers: emptied, a service search finds nothing, while an
    // attribute alone (not indexed) is still read from the spans.
    let c = Client::new(&url, Timeouts::default());
    c.execute("TRUNCATE TABLE trace_postings", true).unwrap();
    let (gone, _) = searched(
        &store,
        TraceQuery {
            service: Some("a".into()),
            ..TraceQuery::default()
        },
    );
    assert!(gone.is_empty(), "{gone:?}");
    store.shutdown();
}

#[test]
fn spans_stored_before_the_index_are_indexed_by_the_migration() {
    use crate::model::testing::span;
    use crate::model::{SpanKind, StatusCode, TraceQuery};
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let mut failed = span(71, 1, None, "orders", SpanKind::Server);
    failed.status = StatusCode::Error;
    write(
        &store,
        vec![span(70, 1, None, "cart", SpanKind::Server), failed],
    );
    store.shutdown();
    // Back to version 3, as a database written before the index: no index table.
    let c = Client::new(&url, Timeouts::default());
    c.execute("DROP TABLE trace_postings", true).unwrap();
    c.execute("TRUNCATE TABLE schema_version", true).unwrap();
    c.execute(
        "INSERT INTO schema_version (version, applied_unix_seconds) VALUES (1, 0), (2, 0), (3, 0)",
        true,
    )
    .unwrap();
    let store = open(&url).unwrap();
    assert_eq!(schema::current(&c).unwrap(), schema::VERSION);
    let service = |s: &str| TraceQuery {
        service: Some(s.into()),
        ..TraceQuery::default()
    };
    assert_eq!(searched(&store, service("cart")).0, [70]);
    assert_eq!(searched(&store, service("orders")).0, [71]);
    let errors = TraceQuery {
        errors_only: true,
        ..TraceQuery::default()
    };
    assert_eq!(searched(&store, errors).0, [71]);
    assert_eq!(searched(&store, TraceQuery::default()).0, [70, 71]);
    // A span stored after the migration is indexed by the writer, once.
    write(&store, vec![span(72, 1, None, "cart", SpanKind::Server)]);
    assert_eq!(searched(&store, service("cart")).0, [70, 72]);
    store.shutdown();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A database of version 5 (before the sketch's arrays and the small granules of `spans`):
/// after the migration its spans read back whole, its minute rows' sketches (blobs) merge
/// with rows of the array columns, and nothing of the old `spans` table is left.
#[test]
fn a_version_5_database_migrates_to_6_and_reads_the_same() {
    use crate::model::sketch::Sketch;
    use crate::model::testing::T0;
    use crate::model::{EdgeKind, SpanId, TimeWindow, TraceId};
    use crate::store::{TopologyReads as _, TraceReads as _};
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let c = Client::new(&url, Timeouts::default());
    assert_eq!(schema::migrate_to(&c, 5).unwrap(), 5);
    let minute = (T0 / 60_000_000_000) as i64;
    let sketch = |values: &[(u64, i64)]| {
        let mut s = Sketch::new();
        for &(micros, weight) in values {
            s.add(micros, weight);
        }
        s
    };
    let (old_a, old_b, new) = (
        sketch(&[(100, 2), (9_000, 1)]),
        sketch(&[(100, 1), (40, 3)]),
        sketch(&[(9_000, -1), (250_000, 2)]),
    );
    let call = EdgeKind::Call.as_i64() as u64;
    for (s, count) in [(&old_a, 3), (&old_b, 4)] {
        let q = render(
            "INSERT INTO edge_minutes (day, minute, from_node, to_node, kind, via, count,
             latency_sum_micros, latency)
             VALUES (?, ?, 'service:a', 'service:b', ?, '', ?, 1, unhex(?))",
            &[
                Value::Day(T0),
                Value::I64(minute),
                Value::U64(call),
                Value::I64(count),
                Value::Str(&hex(&s.encode())),
            ],
        )
        .unwrap();
        c.execute(&q, true).unwrap();
    }
    let trace = TraceId([0x51; 16]);
    for id in 1..=3u8 {
        let q = render(
            "INSERT INTO spans (day, trace_id, span_id, start_unix_nanos, end_unix_nanos, service,
             name) VALUES (?, ?, ?, ?, ?, 'a', 'old op')",
            &[
                Value::Day(T0),
                Value::Trace(trace),
                Value::Span(SpanId([id; 8])),
                Value::U64(T0 + u64::from(id)),
                Value::U64(T0 + 1_000),
            ],
        )
        .unwrap();
        c.execute(&q, true).unwrap();
    }
    let store = open(&url).unwrap();
    assert_eq!(schema::current(&c).unwrap(), schema::VERSION);
    #[derive(serde::Deserialize)]
    struct T {
        name: String,
        engine_full: String,
    }
    let tables: Vec<T> = c
        .rows(&format!(
            "SELECT name, engine_full FROM system.tables WHERE database = '{}' AND name LIKE 'spans%'",
            c.database()
        ))
        .unwrap();
    assert_eq!(tables.len(), 1, "the old spans table is dropped");
    assert!(
        tables[0].name == "spans"
            && tables[0].engine_full.contains(&format!(
                "index_granularity = {}",
                read_layout::SPANS_GRANULARITY
            )),
        "{}",
        tables[0].engine_full
    );
    let spans = store.trace(trace).unwrap();
    assert_eq!(
        spans.iter().map(|s| s.span_id.0[0]).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // A row written since, in the array columns, for the same edge and minute.
    let buckets = new.buckets();
    let q = render(
        &format!(
            "INSERT INTO edge_minutes (day, minute, from_node, to_node, kind, via, count,
             latency_sum_micros, latency_buckets, latency_counts)
             VALUES (?, ?, 'service:a', 'service:b', ?, '', 1, 1, [{}], [{}])",
            buckets
                .iter()
                .map(|b| b.0.to_string())
                .collect::<Vec<_>>()
                .join(","),
            buckets
                .iter()
                .map(|b| b.1.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        &[Value::Day(T0), Value::I64(minute), Value::U64(call)],
    )
    .unwrap();
    c.execute(&q, true).unwrap();
    let window = TimeWindow::new(T0 - 60_000_000_000, T0 + 60_000_000_000).unwrap();
    let rows = store.topology(window).unwrap();
    let mut want = old_a.clone();
    want.merge(&old_b);
    want.merge(&new);
    assert_eq!(rows.edges.len(), 1);
    assert_eq!(
        (rows.edges[0].count, rows.edges[0].latency_sum_micros),
        (8, 3)
    );
    assert_eq!(rows.edges[0].latency, want);
    assert_eq!(rows.edges[0].latency.quantile(0.99), want.quantile(0.99));
    // Its steps run again (a collector migrating at the same moment) change nothing.
    read_layout::migrate(&c, false).unwrap();
    assert_eq!(store.topology(window).unwrap().edges[0].latency, want);
    assert_eq!(store.trace(trace).unwrap().len(), 3);
    store.shutdown();
}

/// A write whose spans start in thousands of different seconds (a late batch, a replay) is
/// stored, and sent again through another collector it is found stored (counted once): the
/// lookup of stored spans names its seconds in the query's URL, which ClickHouse's HTTP server
/// refuses past 16 KiB with an empty HTTP 400, so it asks in several queries.
#[test]
fn spans_of_thousands_of_seconds_are_stored_and_found_when_sent_again() {
    use crate::model::testing::{span, T0};
    use crate::model::{SpanId, SpanKind, TraceId};
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let spans: Vec<_> = (0..3_000u32)
        .map(|i| {
            let mut s = span(1, 1, None, "replayer", SpanKind::Internal);
            let mut trace = [7u8; 16];
            trace[..4].copy_from_slice(&i.to_be_bytes());
            s.trace_id = TraceId(trace);
            s.span_id = SpanId([1, 2, 3, 4, 5, 6, 7, 8]);
            // One span a second, 3,000 seconds before T0.
            s.start_unix_nanos = T0 - u64::from(i) * 1_000_000_000;
            s.end_unix_nanos = s.start_unix_nanos + 1_000;
            s
        })
        .collect();
    let a = open(&url).unwrap();
    write(&a, spans.clone());
    a.shutdown();
    // Another collector (no memory of them) is sent the same spans.
    let b = open(&url).unwrap();
    write(&b, spans);
    b.shutdown();
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let c = Client::new(&url, Timeouts::default());
    let counted = c
        .rows::<N>("SELECT toUInt64(sum(spans)) AS n FROM service_minutes")
        .unwrap();
    assert_eq!(counted.first().map(|r| r.n), Some(3_000), "counted once");
    let keys = c.rows::<N>("SELECT count() AS n FROM span_keys32").unwrap();
    assert_eq!(keys.first().map(|r| r.n), Some(3_000), "keyed once");
}

#[test]
fn a_query_too_long_for_the_url_is_refused_before_it_is_sent() {
    let c = client();
    let ids: Vec<String> = (0..3_000).map(|i| i.to_string()).collect();
    let q = format!("SELECT 'x' AS s FROM t WHERE x IN ({})", ids.join(", "));
    let rows = super::rowbinary::Rows::default();
    let t = super::client::External {
        name: "t",
        structure: "x UInt32",
        rows: &rows,
    };
    let e = c.rows_with::<S>(&q, &[t]).unwrap_err();
    assert!(matches!(e, ClientError::QueryTooLong(_)), "{e}");
    assert!(!e.is_transient());
}

/// A group's spans, their index rows and their keys reach ClickHouse in their tables' order,
/// so that it does not sort them again (18.16 counts such inserts in
/// `MergeTreeDataWriterBlocksAlreadySorted`). On a server of its own, whose counters no other
/// test moves; the spans arrive in the opposite order of their trace ids (oldest first is
/// the order the writer analyses them in), and one service in one minute gives the minute
/// tables one row each.
#[test]
fn a_groups_inserts_come_in_their_tables_order() {
    use crate::model::testing::{span, T0};
    use crate::model::SpanKind;
    let server = super::testing::TestServer::start().unwrap();
    let url = ClickHouseUrl::parse(&server.fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let blocks = || -> (u64, u64) {
        let text = server
            .sql(
                "system",
                "SELECT event, value FROM system.events WHERE event IN \
                 ('MergeTreeDataWriterBlocks', 'MergeTreeDataWriterBlocksAlreadySorted') \
                 FORMAT TSV",
            )
            .unwrap();
        let mut out = (0, 0);
        for line in text.lines() {
            let (event, value) = line.split_once('\t').unwrap();
            let value: u64 = value.trim().parse().unwrap();
            match event {
                "MergeTreeDataWriterBlocks" => out.0 = value,
                _ => out.1 = value,
            }
        }
        out
    };
    let before = blocks();
    let spans: Vec<_> = (0..120u8)
        .map(|i| {
            let mut s = span(250 - i, i % 7 + 1, None, "sorted", SpanKind::Internal);
            s.name = format!("op {}", i % 5);
            s.start_unix_nanos = T0 + u64::from(i) * 1_000_000;
            s.end_unix_nanos = s.start_unix_nanos + 500;
            s
        })
        .collect();
    write(&store, spans);
    let after = blocks();
    let written = after.0 - before.0;
    let sorted = after.1 - before.1;
    assert!(
        written >= 3,
        "spans, trace_postings, span_keys32 at least: {written}"
    );
    assert_eq!(
        written, sorted,
        "every part written by the group came sorted ({sorted} of {written})"
    );
    let c = Client::new(&url, Timeouts::default());
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let n: Vec<N> = c.rows("SELECT count() AS n FROM spans").unwrap();
    assert_eq!(n[0].n, 120);
    store.shutdown();
}

/// One edge delta as the topology answers it, keyed by its edge.
type EdgeFacts = (
    (String, String, i64, String),
    (i64, i64, i64, crate::model::sketch::Sketch, u64, u64, i64),
);

/// A window's edges with everything the store answers of them, sorted by edge.
pub(super) fn edge_facts(rows: crate::model::TopologyRows) -> Vec<EdgeFacts> {
    let mut out: Vec<EdgeFacts> = rows
        .edges
        .into_iter()
        .map(|e| {
            (
                (e.from, e.to, e.kind.as_i64(), e.via),
                (
                    e.count,
                    e.errors,
                    e.latency_sum_micros,
                    e.latency,
                    e.first_seen_unix_nanos,
                    e.last_seen_unix_nanos,
                    e.instances,
                ),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The window around T0's minute.
pub(super) fn t0_window() -> crate::model::TimeWindow {
    use crate::model::testing::T0;
    crate::model::TimeWindow::new(T0 - 60_000_000_000, T0 + 120_000_000_000).unwrap()
}

/// Groups that each add to the same two edges in T0's minute: a publish to `orders` and its
/// consume by `billing` (trace `first + i`), seven seconds apart, each consume later after
/// its publish than the one before (so that every group adds its own latency).
pub(super) fn minute_groups(first: u8, n: u8) -> Vec<Vec<crate::model::Span>> {
    use crate::model::testing::{msg, span, T0};
    use crate::model::{Operation, SpanKind};
    (0..n)
        .map(|i| {
            let trace = first + i;
            let at = T0 + u64::from(i) * 7_000_000_000;
            let mut publish = msg(
                span(trace, 1, None, "orders", SpanKind::Producer),
                "orders",
                Operation::Produce,
            );
            publish.start_unix_nanos = at;
            publish.end_unix_nanos = at + 1_000_000;
            let mut consume = msg(
                span(trace, 2, Some(1), "billing", SpanKind::Consumer),
                "orders",
                Operation::Consume,
            );
            consume.start_unix_nanos = at + 2_000_000 * (u64::from(i) + 1);
            consume.end_unix_nanos = consume.start_unix_nanos + 500_000;
            vec![publish, consume]
        })
        .collect()
}

/// The topology rows SQLite answers for these groups (each written as its own request).
pub(super) fn sqlite_edges(groups: &[Vec<crate::model::Span>]) -> Vec<EdgeFacts> {
    use crate::store::{StoreConfig, TopologyReads, Writes};
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::SqliteStore::open(&StoreConfig {
        path: dir.path().join("s.db"),
        retention: crate::store::RetentionConfig {
            max_age: std::time::Duration::from_secs(3600 * 24 * 365 * 100),
            max_bytes: None,
        },
        queue_depth: 8,
        synchronous: "NORMAL".into(),
    })
    .unwrap();
    for g in groups {
        store
            .write_blocking(crate::store::prepare(g.clone()))
            .unwrap();
    }
    edge_facts(store.topology(t0_window()).unwrap())
}

/// Rows of `edge_sums` in T0's minute, over every server (on a cluster, their local tables).
pub(super) fn edge_sum_rows(c: &Client) -> u64 {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let minute = (crate::model::testing::T0 / 60_000_000_000) as i64;
    let table = c.local_table("edge_sums");
    c.servers()
        .into_iter()
        .map(|server| {
            let q = render(
                &format!("SELECT count() AS n FROM {table} WHERE minute = ?"),
                &[Value::I64(minute)],
            )
            .unwrap();
            server.rows::<N>(&q).unwrap()[0].n
        })
        .sum()
}

/// Runs `statement` (`{t}`: the database's local `edge_sums`) on every server.
pub(super) fn on_edge_sums(c: &Client, statement: &str) {
    let table = format!(
        "{}.{}",
        sql::ident(c.database()),
        c.local_table("edge_sums")
    );
    for server in c.servers() {
        server
            .execute(&statement.replace("{t}", &table), true)
            .unwrap();
    }
}

/// Rows of one edge and minute written by many groups read as one edge, as SQLite's; they
/// are one row per group until merged, and one row after `OPTIMIZE ... FINAL`, with the same
/// answer (first and last seen the earliest and latest of the groups').
pub(super) fn minute_rows_collapse(store: &ClickHouseStore, c: &Client) {
    use crate::store::TopologyReads;
    let groups = minute_groups(0x60, 6);
    let want = sqlite_edges(&groups);
    // The publish, the consume, and the dependency between the two services through `orders`.
    assert_eq!(want.len(), 3, "{want:?}");
    assert!(want.iter().all(|(_, f)| f.0 == 6), "{want:?}");
    // Merges held, so that each group's rows stay apart until asked.
    on_edge_sums(c, "SYSTEM STOP MERGES {t}");
    for g in &groups {
        write(store, g.clone());
    }
    assert_eq!(edge_sum_rows(c), 18, "one row per group and edge");
    assert_eq!(edge_facts(store.topology(t0_window()).unwrap()), want);
    on_edge_sums(c, "SYSTEM START MERGES {t}");
    // OPTIMIZE does nothing, silently, while a background merge holds some of the parts:
    // asked again until the rows are merged (for at most a minute).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        on_edge_sums(c, "OPTIMIZE TABLE {t} FINAL");
        let rows = edge_sum_rows(c);
        if rows == 3 || std::time::Instant::now() > deadline {
            assert_eq!(rows, 3, "one row per edge and minute");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(edge_facts(store.topology(t0_window()).unwrap()), want);
}

#[test]
fn rows_of_one_edge_and_minute_from_many_groups_read_as_one_and_collapse() {
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    minute_rows_collapse(&store, &Client::new(&url, Timeouts::default()));
    store.shutdown();
}

/// Fills `c`'s database (of version 6) with what a database of version 7 (`from`, its
/// `edge_sums` unmerged) holds, as version 6's writer would have left it: one `edge_minutes`
/// row per edge, minute and group (the writer is this one but for the table), every other
/// table as it is.
pub(super) fn copy_as_version_6(c: &Client, from: &str) {
    let from = sql::ident(from);
    // Not the index nor the keys: version 6's are `trace_terms` and `span_keys` (version 8
    // moves them; the topology reads neither).
    for t in schema::DATA_TABLES {
        if !["edge_sums", super::index::TABLE, "span_keys32"].contains(t) {
            c.execute(&format!("INSERT INTO {t} SELECT * FROM {from}.{t}"), true)
                .unwrap();
        }
    }
    c.execute(
        &format!(
            "INSERT INTO edge_minutes (day, minute, from_node, to_node, kind, via, count, errors,
             latency_sum_micros, latency_buckets, latency_counts, first_seen_unix_nanos,
             last_seen_unix_nanos)
             SELECT day, minute, from_node, to_node, kind, via, finalizeAggregation(count),
             finalizeAggregation(errors), finalizeAggregation(latency_sum_micros),
             tupleElement(finalizeAggregation(latency_sketch), 1),
             tupleElement(finalizeAggregation(latency_sketch), 2),
             finalizeAggregation(first_seen), finalizeAggregation(last_seen)
             FROM {from}.edge_sums"
        ),
        true,
    )
    .unwrap();
}

/// A database of version 6 (every write a row of `edge_minutes`) migrates to 7: its rows are
/// read with the new table's, and the topology is the same as a database written by version 7
/// alone, before and after more writes.
#[test]
fn a_version_6_database_migrates_to_7_and_answers_the_same_topology() {
    use crate::store::TopologyReads;
    let groups = minute_groups(0x70, 5);
    let (before, after) = groups.split_at(3);
    // Version 7 alone.
    let url7 = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let c7 = Client::new(&url7, Timeouts::default());
    let store7 = open(&url7).unwrap();
    on_edge_sums(&c7, "SYSTEM STOP MERGES {t}");
    for g in before {
        write(&store7, g.clone());
    }
    store7.shutdown();
    // Version 6: the same rows as its writer left them (the writer is this one but for the
    // table: one `edge_minutes` row per edge, minute and group, here each unmerged row of
    // version 7's table), and every other table as version 7's.
    let url6 = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let c6 = Client::new(&url6, Timeouts::default());
    assert_eq!(schema::migrate_to(&c6, 6).unwrap(), 6);
    copy_as_version_6(&c6, &url7.database);
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let count = |c: &Client, q: &str| c.rows::<N>(q).unwrap()[0].n;
    // Three edges (publish, consume, the dependency) per group.
    assert_eq!(count(&c6, "SELECT count() AS n FROM edge_minutes"), 9);
    let store7 = open(&url7).unwrap();
    let store6 = open(&url6).unwrap();
    assert_eq!(schema::current(&c6).unwrap(), schema::VERSION);
    on_edge_sums(&c6, "SYSTEM STOP MERGES {t}");
    let want = edge_facts(store7.topology(t0_window()).unwrap());
    assert_eq!(want, sqlite_edges(before));
    assert_eq!(edge_facts(store6.topology(t0_window()).unwrap()), want);
    // Written since: into `edge_sums`; version 6's rows stay where they are, read with them.
    for g in after {
        write(&store7, g.clone());
        write(&store6, g.clone());
    }
    let want = edge_facts(store7.topology(t0_window()).unwrap());
    assert_eq!(want, sqlite_edges(&groups));
    assert_eq!(edge_facts(store6.topology(t0_window()).unwrap()), want);
    assert_eq!(count(&c6, "SELECT count() AS n FROM edge_minutes"), 9);
    assert_eq!(edge_sum_rows(&c6), 6);
    // The migration run again (a collector starting at the same moment) changes nothing.
    assert_eq!(schema::migrate(&c6).unwrap(), schema::VERSION);
    assert_eq!(edge_facts(store6.topology(t0_window()).unwrap()), want);
    store6.shutdown();
    store7.shutdown();
}

/// A span row of the old layout (schema version 5) in `table`.
fn old_span(c: &Client, table: &str, trace: u8, id: u8, at: u64) {
    use crate::model::{SpanId, TraceId};
    let q = render(
        &format!(
            "INSERT INTO {table} (day, trace_id, span_id, start_unix_nanos, end_unix_nanos,
             service, name) VALUES (?, ?, ?, ?, ?, 'a', 'old op')"
        ),
        &[
            Value::Day(at),
            Value::Trace(TraceId([trace; 16])),
            Value::Span(SpanId([id; 8])),
            Value::U64(at),
            Value::U64(at + 1_000),
        ],
    )
    .unwrap();
    c.execute(&q, true).unwrap();
}

/// Whether a table of that name is in the client's database.
fn table_exists(c: &Client, table: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let q = render(
        "SELECT count() AS n FROM system.tables WHERE database = ? AND name = ?",
        &[Value::Str(c.database()), Value::Str(table)],
    )
    .unwrap();
    c.rows::<N>(&q).unwrap()[0].n > 0
}

/// Distinct spans (trace, span) in `spans`.
fn distinct_spans(c: &Client) -> u64 {
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    c.rows::<N>("SELECT toUInt64(uniqExact(trace_id, span_id)) AS n FROM spans")
        .unwrap()[0]
        .n
}

/// Version 6's copy of `spans` (`read_layout.rs`): a day whose rows changed while it was
/// copied (an insert that reached the old table late) is copied again and leaves the old
/// table only then; a day that keeps changing keeps the old table, whose rows the next start
/// copies, and the old table is dropped only once empty.
#[test]
fn the_spans_copy_copies_a_changed_day_again_and_drops_the_old_table_once_empty() {
    use crate::model::testing::T0;
    const DAY: u64 = 86_400_000_000_000;
    let late_day = T0 / DAY;
    // A day changed once, during its first copy.
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let c = Client::new(&url, Timeouts::default());
    assert_eq!(schema::migrate_to(&c, 5).unwrap(), 5);
    old_span(&c, "spans", 1, 1, T0 - DAY);
    old_span(&c, "spans", 2, 1, T0);
    old_span(&c, "spans", 2, 2, T0);
    let mut copies = Vec::new();
    read_layout::rebuild_spans(&c, "spans", &mut |day| {
        copies.push(day);
        if day == late_day && copies.iter().filter(|d| **d == late_day).count() == 1 {
            old_span(&c, "spans_v5", 2, 3, T0 + 5);
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(copies, [late_day - 1, late_day, late_day], "copied again");
    assert!(!table_exists(&c, "spans_v5"), "the old table is dropped");
    assert_eq!(distinct_spans(&c), 4, "the late span is copied too");
    // A day that changes at every copy: the old table stays with its rows (nothing is
    // dropped), the copy answers an error, and the next start finishes it.
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let c = Client::new(&url, Timeouts::default());
    assert_eq!(schema::migrate_to(&c, 5).unwrap(), 5);
    old_span(&c, "spans", 3, 1, T0);
    let mut late = 1u8;
    let e = read_layout::rebuild_spans(&c, "spans", &mut |_| {
        late += 1;
        old_span(&c, "spans_v5", 3, late, T0 + u64::from(late));
        Ok(())
    })
    .unwrap_err();
    assert!(e.to_string().contains("next start"), "{e}");
    assert!(table_exists(&c, "spans_v5"), "kept while it has rows");
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    assert!(c.rows::<N>("SELECT count() AS n FROM spans_v5").unwrap()[0].n > 0);
    read_layout::rebuild_spans(&c, "spans", &mut |_| Ok(())).unwrap();
    assert!(!table_exists(&c, "spans_v5"));
    assert_eq!(
        distinct_spans(&c),
        u64::from(late),
        "every span, the late ones too"
    );
}

/// A database of version 7 (the search index in `trace_terms`, to the nanosecond, with a
/// `''` row per trace) migrates to 8: its rows move into `trace_postings` day by day (a day
/// written to during its copy is copied again), `trace_terms` is dropped once empty, and
/// every search answers as before the migration, and as the spans say.
#[test]
fn a_version_7_index_moves_to_ticks_and_answers_the_same() {
    use crate::model::testing::{msg, span, T0};
    use crate::model::{Operation, SpanKind, StatusCode, TimeWindow, TraceQuery};
    const DAY: u64 = 86_400_000_000_000;
    const MS: u64 = 1_000_000;
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let at = |mut s: crate::model::Span, t: u64| {
        s.start_unix_nanos = t;
        s.end_unix_nanos = t + MS;
        s
    };
    let mut failed = at(
        span(0x91, 2, Some(1), "pay", SpanKind::Client),
        T0 + 250 * MS,
    );
    failed.status = StatusCode::Error;
    let mut publish = msg(
        span(0x92, 1, None, "cart", SpanKind::Producer),
        "orders",
        Operation::Produce,
    );
    publish.name = "publish orders".into();
    let written = vec![
        at(span(0x90, 1, None, "cart", SpanKind::Server), T0 - DAY + 5),
        at(span(0x91, 1, None, "cart", SpanKind::Server), T0 + 100 * MS),
        failed,
        at(publish, T0 + 400 * MS),
        at(
            span(0x93, 1, None, "pay", SpanKind::Server),
            T0 + 2_300 * MS,
        ),
        at(
            span(0x93, 2, Some(1), "pay", SpanKind::Server),
            T0 + 9 * 60_000 * MS,
        ),
    ];
    write(&store, written.clone());
    let queries: Vec<TraceQuery> = [
        None,
        TimeWindow::new(T0 + 150 * MS, T0 + 2_300 * MS + 1),
        TimeWindow::new(T0 + 200 * MS, T0 + 600 * MS),
        TimeWindow::new(T0 - DAY, T0 + 120 * MS),
    ]
    .into_iter()
    .flat_map(|window| {
        [
            TraceQuery::default(),
            TraceQuery {
                service: Some("pay".into()),
                ..TraceQuery::default()
            },
            TraceQuery {
                errors_only: true,
                ..TraceQuery::default()
            },
            TraceQuery {
                destination: Some("orders".into()),
                ..TraceQuery::default()
            },
            TraceQuery {
                service: Some("cart".into()),
                operation: Some("publish orders".into()),
                ..TraceQuery::default()
            },
        ]
        .map(|q| TraceQuery { window, ..q })
    })
    .collect();
    let answers = |store: &ClickHouseStore| -> Vec<(Vec<u8>, bool)> {
        queries.iter().map(|q| searched(store, q.clone())).collect()
    };
    let before = answers(&store);
    assert_eq!(before[0].0, [0x90, 0x91, 0x92, 0x93], "{before:?}");
    assert_eq!(before[1].0, [0x91, 0x93]);
    assert_eq!(before[2].0, [0x91]);
    assert_eq!(before[3].0, [0x92]);
    assert_eq!(before[4].0, [0x92]);
    assert_eq!(before[5].0, [0x91, 0x92, 0x93], "from 150 ms: {before:?}");
    assert_eq!(before[10].0, [0x91, 0x92], "200 to 600 ms: {before:?}");
    assert_eq!(before[15].0, [0x90, 0x91], "to 120 ms: {before:?}");
    store.shutdown();
    // Back to version 7: the index as version 5 wrote it, from the spans, and the spans'
    // keys in 64 bits, as version 4 wrote them.
    let c = Client::new(&url, Timeouts::default());
    c.execute("DROP TABLE span_keys32", true).unwrap();
    c.execute(
        "CREATE TABLE span_keys (day Date, second UInt32, key UInt64)
         ENGINE = MergeTree PARTITION BY day ORDER BY (second, key)",
        true,
    )
    .unwrap();
    for s in &written {
        let q = render(
            "INSERT INTO span_keys VALUES (?, ?, ?)",
            &[
                Value::Day(s.start_unix_nanos),
                Value::U64(s.start_unix_nanos / 1_000_000_000),
                Value::U64(crate::accounting::memory::span_hash(s.trace_id, s.span_id)),
            ],
        )
        .unwrap();
        c.execute(&q, true).unwrap();
    }
    c.execute("DROP TABLE trace_postings", true).unwrap();
    c.execute(super::index::CREATE_V5, true).unwrap();
    c.execute(&super::index::backfill_v5("trace_terms", "spans"), true)
        .unwrap();
    c.execute("TRUNCATE TABLE schema_version", true).unwrap();
    c.execute(
        "INSERT INTO schema_version (version, applied_unix_seconds)
         VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 0)",
        true,
    )
    .unwrap();
    c.execute(super::index::CREATE, true).unwrap();
    // A row that reached the old table while T0's day is copied (an insert of a collector of
    // version 7 under way when the table was renamed): the day is copied again.
    let mut copies = Vec::new();
    read_layout::move_index_with(&c, false, &mut |day| {
        copies.push(day);
        if day == T0 / DAY && copies.len() == 2 {
            c.execute(
                &render(
                    "INSERT INTO trace_terms_v7 VALUES (?, 's:late', ?, ?, ?)",
                    &[
                        Value::Day(T0),
                        Value::U64(T0 + 700 * MS),
                        Value::U64(T0 + 700 * MS),
                        Value::Trace(crate::model::TraceId([0x94; 16])),
                    ],
                )
                .unwrap(),
                true,
            )?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(copies, [T0 / DAY - 1, T0 / DAY, T0 / DAY], "copied again");
    assert!(!table_exists(&c, "trace_terms"), "renamed away");
    assert!(
        !table_exists(&c, "trace_terms_v7"),
        "the old table is dropped"
    );
    let store = open(&url).unwrap();
    assert_eq!(schema::current(&c).unwrap(), schema::VERSION);
    #[derive(serde::Deserialize)]
    struct N {
        n: u64,
    }
    let rows = |q: &str| c.rows::<N>(q).unwrap()[0].n;
    assert_eq!(
        rows("SELECT count() AS n FROM trace_postings WHERE term = ''"),
        0
    );
    assert_eq!(
        rows("SELECT count() AS n FROM trace_postings WHERE term = 's:late'"),
        1,
        "the late row is moved too"
    );
    // The late row names a trace with no spans: an index row alone finds nothing.
    let late = searched(
        &store,
        TraceQuery {
            service: Some("late".into()),
            ..TraceQuery::default()
        },
    );
    assert!(late.0.is_empty(), "{late:?}");
    assert_eq!(answers(&store), before);
    // The keys moved: every span sent again is found stored (by its key, then its row).
    assert!(!table_exists(&c, "span_keys") && !table_exists(&c, "span_keys_v7"));
    use crate::store::Writes;
    let again = store
        .write_blocking(crate::store::prepare(written.clone()))
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (0, written.len() as u64));
    store.shutdown();
}

/// A stored span's key is 32 bits: another span of the same second may have left the one a
/// new span has. The writer confirms a key it finds in `spans`, so the new span is stored,
/// and a span stored already is found by its key and its row.
#[test]
fn a_key_another_span_left_does_not_make_a_span_a_duplicate() {
    use crate::model::testing::span;
    use crate::model::SpanKind;
    use crate::store::Writes;
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let c = Client::new(&url, Timeouts::default());
    let s = span(0xA1, 1, None, "cart", SpanKind::Server);
    let hash = crate::accounting::memory::span_hash(s.trace_id, s.span_id);
    let q = render(
        "INSERT INTO span_keys32 VALUES (?, ?, ?)",
        &[
            Value::Day(s.start_unix_nanos),
            Value::U64(s.start_unix_nanos / 1_000_000_000),
            Value::U64(super::writer::stored_key(hash).into()),
        ],
    )
    .unwrap();
    c.execute(&q, true).unwrap();
    let first = store
        .write_blocking(crate::store::prepare(vec![s.clone()]))
        .unwrap();
    assert_eq!(
        (first.stored, first.duplicates),
        (1, 0),
        "stored: not in spans"
    );
    store.shutdown();
    // Another collector (a store with no memory of it) is sent it again.
    let other = open(&url).unwrap();
    let again = other
        .write_blocking(crate::store::prepare(vec![s]))
        .unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 1), "found stored");
    other.shutdown();
    assert_eq!(distinct_spans(&c), 1);
}

/// A search that settles thousands of traces on their spans (here 7,000 whose rows straddle
/// the window's start) names them all in one query, past ClickHouse's default query size
/// (256 KiB, about 6,000 ids), which the client raises: answered whole, the newest first.
#[test]
fn a_search_settles_thousands_of_straddling_traces_in_one_query() {
    use crate::model::testing::{span, T0};
    use crate::model::{SpanKind, TimeWindow, TraceId, TraceQuery};
    use crate::store::TraceReads;
    let url = ClickHouseUrl::parse(&shared().fresh_url()).unwrap();
    let store = open(&url).unwrap();
    let since = T0 + 60_000_000_000;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (mut spans, mut ids) = (Vec::new(), Vec::new());
    for i in 0..7_000u64 {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next().to_le_bytes());
        id[8..].copy_from_slice(&next().to_le_bytes());
        let trace = TraceId(id);
        let mut before = span(1, 1, None, "cart", SpanKind::Server);
        before.trace_id = trace;
        before.start_unix_nanos = since - 1_000_000;
        before.end_unix_nanos = since + 5_000_000_000;
        let mut inside = span(1, 2, Some(1), "cart", SpanKind::Client);
        inside.trace_id = trace;
        inside.start_unix_nanos = since + 1_000_000 + i * 1_000;
        inside.end_unix_nanos = inside.start_unix_nanos + 1_000;
        spans.extend([before, inside]);
        ids.push(trace);
    }
    write(&store, spans);
    let found = store
        .search_traces(&TraceQuery {
            service: Some("cart".into()),
            window: TimeWindow::new(since, since + 3_600_000_000_000),
            limit: 20,
            ..TraceQuery::default()
        })
        .unwrap();
    assert!(found.complete);
    let mut got: Vec<TraceId> = found.traces.iter().map(|t| t.trace_id).collect();
    let mut want = ids[ids.len() - 20..].to_vec();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the 20 whose spans inside the window start last");
    store.shutdown();
}
