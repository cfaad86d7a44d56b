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
        crate::store::Store::new(
            ClickHouseStore::open(&ClickHouseConfig {
                url: self.0.clone(),
                queue_depth: 8,
                timeouts: Timeouts::default(),
            })
            .unwrap(),
        )
    }
}

mod suite {
    use super::Harness;
    crate::storage_suite_all!(Harness::new());
}
