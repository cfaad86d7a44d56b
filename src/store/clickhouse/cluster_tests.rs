//! `--clickhouse-cluster` against a real two-shard cluster of two local servers
//! (`testing::shared_cluster`): the storage suite, the tables on every shard, pairing across
//! shards and collectors, retention on every shard, and a shard that is down.

use super::testing::{shared_cluster, TestCluster, CLUSTER};
use super::tests::{dependencies, write};
use super::*;
use crate::error::ErrorCode;
use crate::model::testing::{msg, span, T0};
use crate::model::{Link, Operation, SpanId, SpanKind, TraceId};
use crate::store::{StoreError, StoreStats, TopologyReads, TraceReads, Writes as _};

fn config(url: &ClickHouseUrl, cluster: Option<&str>) -> ClickHouseConfig {
    ClickHouseConfig {
        url: url.clone(),
        queue_depth: 8,
        timeouts: Timeouts::default(),
        retention: None,
        retention_size: None,
        settle: DEFAULT_SETTLE,
        cluster: cluster.map(str::to_string),
    }
}

fn open_cluster(url: &ClickHouseUrl) -> Result<ClickHouseStore, StoreError> {
    ClickHouseStore::open(&config(url, Some(CLUSTER)))
}

fn fresh() -> ClickHouseUrl {
    ClickHouseUrl::parse(&shared_cluster().fresh_url()).unwrap()
}

/// A number a shard's server answers (`SELECT ...`) in `database`; panics on an error.
fn number_in(cluster: &TestCluster, shard: usize, database: &str, q: &str) -> u64 {
    let text = cluster.shards[shard].sql(database, q).unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{q}: {text}"))
}

/// A number a shard's server answers in the URL's database.
fn number(cluster: &TestCluster, shard: usize, url: &ClickHouseUrl, q: &str) -> u64 {
    number_in(cluster, shard, &url.database, q)
}

/// The shard (0 or 1) whose local tables hold the trace `[n; 16]`'s rows.
fn shard_of(n: u8) -> usize {
    let hex = format!("{n:02X}").repeat(16);
    let q = format!("SELECT cityHash64(toFixedString(unhex('{hex}'), 16)) % 2");
    number_in(shared_cluster(), 0, "default", &q) as usize
}

/// The storage suite against the cluster: each harness a new database on both shards.
struct ClusterHarness(ClickHouseUrl);

impl crate::store::suite::Harness for ClusterHarness {
    fn fresh(&self) -> Box<dyn crate::store::suite::Harness> {
        Box::new(ClusterHarness(fresh()))
    }

    fn open(&self) -> crate::store::Store {
        crate::store::Store::new(open_cluster(&self.0).unwrap())
    }

    fn open_with_retention(&self, max_age: std::time::Duration) -> crate::store::Store {
        let mut cfg = config(&self.0, Some(CLUSTER));
        cfg.retention = Some(max_age);
        crate::store::Store::new(ClickHouseStore::open(&cfg).unwrap())
    }
}

mod suite {
    crate::storage_suite_all!(super::ClusterHarness(super::fresh()));
}

#[test]
fn an_unknown_cluster_or_another_layout_is_refused_with_a_clear_error() {
    let url = fresh();
    let e = ClickHouseStore::open(&config(&url, Some("no_such_cluster")))
        .err()
        .expect("an unknown cluster is refused");
    let text = e.to_string();
    assert!(
        text.contains("no_such_cluster") && text.contains("system.clusters"),
        "{text}"
    );
    assert_eq!(e.code(), ErrorCode::Internal);
    // Nothing was created for it.
    assert_eq!(
        number_in(
            shared_cluster(),
            0,
            "default",
            &format!(
                "SELECT count() FROM system.databases WHERE name = '{}'",
                url.database
            )
        ),
        0
    );
    let e = ClickHouseStore::open(&config(&url, Some("x'); DROP TABLE spans; --")))
        .err()
        .expect("a name that is no cluster name");
    assert!(e.to_string().contains("not a cluster name"), "{e}");
    // A database written on the cluster is not read as one server's, nor the other way.
    open_cluster(&url).unwrap().shutdown();
    let e = ClickHouseStore::open(&config(&url, None)).err().unwrap();
    assert!(e.to_string().contains("--clickhouse-cluster"), "{e}");
    let single = fresh();
    ClickHouseStore::open(&config(&single, None))
        .unwrap()
        .shutdown();
    let e = open_cluster(&single).err().unwrap();
    assert!(
        e.to_string().contains("without --clickhouse-cluster"),
        "{e}"
    );
    assert!(ClickHouseStore::open_read_only(&single, Some(CLUSTER)).is_err());
    assert!(ClickHouseStore::open_read_only(&url, None).is_err());
    assert!(ClickHouseStore::open_read_only(&url, Some(CLUSTER)).is_ok());
}

#[test]
fn every_shard_holds_local_tables_behind_distributed_ones_and_its_share_of_spans() {
    let url = fresh();
    let store = open_cluster(&url).unwrap();
    let traces: Vec<u8> = (1..=16).collect();
    write(
        &store,
        traces
            .iter()
            .flat_map(|t| {
                [
                    span(*t, 1, None, "a", SpanKind::Server),
                    span(*t, 2, Some(1), "a", SpanKind::Internal),
                ]
            })
            .collect(),
    );
    let cluster = shared_cluster();
    let mut total = 0;
    for shard in 0..2 {
        let n = |q: &str| number(cluster, shard, &url, q);
        let db = &url.database;
        for table in schema::DATA_TABLES {
            let engine = |name: String| {
                cluster.shards[shard]
                    .sql(
                        db,
                        &format!(
                            "SELECT engine FROM system.tables WHERE database = '{db}' AND name = '{name}'"
                        ),
                    )
                    .unwrap()
                    .trim()
                    .to_string()
            };
            assert_eq!(engine(table.to_string()), "Distributed", "{table}");
            assert!(
                engine(format!("{table}_local")).ends_with("MergeTree"),
                "{table}_local"
            );
        }
        assert_eq!(
            n("SELECT max(version) FROM schema_version"),
            u64::from(schema::VERSION)
        );
        let here = n("SELECT count() FROM spans_local");
        assert!(here > 0, "shard {shard} holds spans");
        // A trace's spans are on one shard: the one its id hashes to.
        for t in &traces {
            let hex = format!("{t:02X}").repeat(16);
            let rows = n(&format!(
                "SELECT count() FROM spans_local WHERE trace_id = unhex('{hex}')"
            ));
            assert_eq!(rows, if shard_of(*t) == shard { 2 } else { 0 }, "{t}");
        }
        total += here;
    }
    assert_eq!(total, 32);
    assert_eq!(store.span_count().unwrap(), 32);
    assert_eq!(store.trace(TraceId([5; 16])).unwrap().len(), 2);
    // Migrating again (another collector starting) changes nothing.
    let again = open_cluster(&url).unwrap();
    assert_eq!(again.span_count().unwrap(), 32);
    again.shutdown();
    store.shutdown();
}

#[test]
fn a_publish_and_its_linked_consume_on_different_shards_pair_through_two_collectors() {
    // A publish's trace and a batch consume's trace that hash to different shards.
    let publish_trace = 40;
    let consume_trace = (41..=120)
        .find(|t| shard_of(*t) != shard_of(publish_trace))
        .expect("a trace on the other shard");
    for consume_first in [true, false] {
        let url = fresh();
        // One collector on each shard's server.
        let other =
            ClickHouseUrl::parse(&shared_cluster().shards[1].url_of(&url.to_string())).unwrap();
        let (a, b) = (open_cluster(&url).unwrap(), open_cluster(&other).unwrap());
        let publish = msg(
            span(publish_trace, 1, None, "orders", SpanKind::Producer),
            "orders",
            Operation::Produce,
        );
        let mut consume = msg(
            span(consume_trace, 2, None, "billing", SpanKind::Consumer),
            "orders",
            Operation::Consume,
        );
        consume.links = vec![Link {
            trace_id: TraceId([publish_trace; 16]),
            span_id: SpanId([1; 8]),
            attributes: vec![],
        }];
        if consume_first {
            write(&a, vec![consume]);
            write(&b, vec![publish]);
        } else {
            write(&a, vec![publish]);
            write(&b, vec![consume]);
        }
        for shard in 0..2 {
            assert_eq!(
                number(
                    shared_cluster(),
                    shard,
                    &url,
                    "SELECT count() FROM spans_local"
                ),
                1,
                "one span on shard {shard}"
            );
        }
        assert_eq!(
            dependencies(&a),
            vec![Some(1)],
            "consume first: {consume_first}"
        );
        assert_eq!(dependencies(&b), vec![Some(1)], "the same from either");
        let linking = a
            .linking_spans(TraceId([publish_trace; 16]), T0 - 1_000_000_000, 10)
            .unwrap();
        assert_eq!(linking.len(), 1);
        assert_eq!(linking[0].trace_id, TraceId([consume_trace; 16]));
        a.shutdown();
        b.shutdown();
    }
}

#[test]
fn retention_by_age_and_by_size_drops_days_on_every_shard() {
    const DAY: u64 = 86_400_000_000_000;
    let url = fresh();
    let store = open_cluster(&url).unwrap();
    let at = |trace, start| {
        let mut s = span(trace, 1, None, "a", SpanKind::Server);
        s.start_unix_nanos = start;
        s.end_unix_nanos = start + 1_000;
        s
    };
    // Three days, each with traces on both shards.
    let mut spans = Vec::new();
    for (day, first) in [(3, 10u8), (2, 30), (0, 50)] {
        for t in first..first + 8 {
            spans.push(at(t, T0 - day * DAY));
        }
    }
    write(&store, spans);
    let days_on = |shard| {
        number(
            shared_cluster(),
            shard,
            &url,
            "SELECT uniqExact(day) FROM spans_local",
        )
    };
    assert_eq!((days_on(0), days_on(1)), (3, 3));
    let c = cluster::connect(&url, Timeouts::default(), CLUSTER).unwrap();
    // By age: the day three days back goes from both shards, the others stay.
    assert!(retention::drop_before(&c, T0 - 2 * DAY).unwrap() >= 2);
    assert_eq!((days_on(0), days_on(1)), (2, 2));
    assert_eq!(store.span_count().unwrap(), 16);
    assert_eq!(retention::drop_before(&c, T0 - 2 * DAY).unwrap(), 0);
    // By size, summed over the shards: under the cap nothing goes; a cap nothing fits under
    // leaves the newest day on both shards.
    let size = store.size_bytes().expect("both shards report their parts");
    assert!(size > 0);
    assert_eq!(retention::drop_oldest_over(&c, size).unwrap(), 0);
    assert_eq!(retention::drop_oldest_over(&c, 1).unwrap(), 1);
    assert_eq!((days_on(0), days_on(1)), (1, 1));
    assert_eq!(store.span_count().unwrap(), 8);
    assert_eq!(store.trace(TraceId([50; 16])).unwrap().len(), 1);
    assert!(store.size_bytes().unwrap() < size);
    store.shutdown();
}

#[test]
fn a_shard_down_answers_unavailable_never_a_partial_answer() {
    let mut cluster = TestCluster::start().unwrap();
    let url = ClickHouseUrl::parse(&cluster.fresh_url()).unwrap();
    let store = open_cluster(&url).unwrap();
    write(
        &store,
        (1..=8)
            .map(|t| span(t, 1, None, "a", SpanKind::Server))
            .collect(),
    );
    assert_eq!(store.span_count().unwrap(), 8);
    // The second shard stops; the first (the URL's server) still answers.
    drop(cluster.shards.pop());
    let unavailable = |e: StoreError| {
        assert_eq!(e.code(), ErrorCode::Unavailable, "{e}");
    };
    unavailable(store.span_count().unwrap_err());
    let w = crate::model::TimeWindow::new(T0 - 60_000_000_000, T0 + 60_000_000_000).unwrap();
    unavailable(store.topology(w).unwrap_err());
    unavailable(
        store
            .search_traces(&crate::model::TraceQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap_err(),
    );
    // A trace on either shard: the whole question is refused, not answered from one shard.
    unavailable(store.trace(TraceId([1; 16])).unwrap_err());
    let answer = store.write_blocking(crate::store::prepare(
        (11..=18)
            .map(|t| span(t, 1, None, "a", SpanKind::Server))
            .collect(),
    ));
    unavailable(answer.unwrap_err());
    assert!(store.size_bytes().is_none());
    store.shutdown();
    // Opening a collector refuses too, with the same code.
    unavailable(open_cluster(&url).err().expect("a shard is down"));
}

#[test]
fn rows_of_one_edge_and_minute_collapse_on_their_shard() {
    let url = fresh();
    let store = open_cluster(&url).unwrap();
    let c = cluster::connect(&url, Timeouts::default(), CLUSTER).unwrap();
    super::tests::minute_rows_collapse(&store, &c);
    store.shutdown();
}

/// A cluster's database of version 6 migrates to 7 on every shard: the edge rows version 6
/// wrote (`edge_minutes`, through its distributed table) are read with those written since,
/// and the topology is SQLite's for all of them.
#[test]
fn a_version_6_cluster_database_migrates_to_7_and_answers_as_sqlite() {
    let url = fresh();
    let c = cluster::connect(&url, Timeouts::default(), CLUSTER).unwrap();
    assert_eq!(schema::migrate_to(&c, 6).unwrap(), 6);
    let groups = super::tests::minute_groups(0x80, 4);
    let (before, after) = groups.split_at(2);
    // Version 6's rows: what a store of version 7 on another database wrote, one row per
    // edge, minute and group (its `edge_sums` unmerged), and every other table as it is.
    let other = fresh();
    let store = open_cluster(&other).unwrap();
    let oc = cluster::connect(&other, Timeouts::default(), CLUSTER).unwrap();
    super::tests::on_edge_sums(&oc, "SYSTEM STOP MERGES {t}");
    for g in before {
        write(&store, g.clone());
    }
    store.shutdown();
    super::tests::copy_as_version_6(&c, &other.database);
    let store = open_cluster(&url).unwrap();
    for shard in 0..2 {
        let n = |q: &str| number(shared_cluster(), shard, &url, q);
        assert_eq!(
            n("SELECT max(version) FROM schema_version"),
            u64::from(schema::VERSION)
        );
        assert_eq!(
            n("SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'edge_sums_feed_local'"),
            1,
            "the view on shard {shard}"
        );
    }
    let window = super::tests::t0_window();
    assert_eq!(
        super::tests::edge_facts(store.topology(window).unwrap()),
        super::tests::sqlite_edges(before)
    );
    for g in after {
        write(&store, g.clone());
    }
    assert_eq!(
        super::tests::edge_facts(store.topology(window).unwrap()),
        super::tests::sqlite_edges(&groups)
    );
    store.shutdown();
}
