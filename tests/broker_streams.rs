//! Broker streams over real HTTP against the real binary: replay from an offset and from a
//! time, consumer-group offsets across a restart, long-poll at the end, errors, and the
//! topology of stream traffic.

mod common;

use common::{topo, wait_for, TestEnv};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use switchyard::broker::client::Client;

fn ns(batch: &switchyard::broker::StreamBatch) -> Vec<i64> {
    batch
        .events
        .iter()
        .map(|e| e.event["data"]["n"].as_i64().unwrap())
        .collect()
}

#[test]
fn replay_from_earliest_an_offset_and_a_time() {
    let env = TestEnv::start();
    let c = env.broker("ledger");
    assert!(c.declare_stream("ledger", None).unwrap().created);
    assert!(!c.declare_stream("ledger", None).unwrap().created);
    for n in 0..5 {
        assert_eq!(
            c.append_json("ledger", &json!({ "n": n })).unwrap().offset,
            Some(n)
        );
    }
    // A time after the fifth event was stored; the next ones are stored after it is taken.
    let fifth = c
        .read("ledger", "4", None, 1, Duration::ZERO)
        .unwrap()
        .events[0]
        .published_unix_nanos;
    let middle = wait_for(
        "the clock to pass the fifth event",
        Duration::from_secs(10),
        || {
            let now = time::OffsetDateTime::now_utc();
            (now.unix_timestamp_nanos() > i128::from(fifth)).then_some(now)
        },
    );
    for n in 5..8 {
        c.append_json("ledger", &json!({ "n": n })).unwrap();
    }
    let all = c
        .read("ledger", "earliest", None, 100, Duration::ZERO)
        .unwrap();
    assert_eq!(ns(&all), (0..8).collect::<Vec<_>>());
    assert_eq!(all.next_offset, 8);
    // Reading does not consume: the same events again, from an offset, in pages.
    let page = c.read("ledger", "3", None, 2, Duration::ZERO).unwrap();
    assert_eq!((ns(&page), page.next_offset), (vec![3, 4], 5));
    let since = middle
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let recent = c.read("ledger", &since, None, 100, Duration::ZERO).unwrap();
    assert_eq!(ns(&recent), vec![5, 6, 7]);
    let latest = c
        .read("ledger", "latest", None, 100, Duration::ZERO)
        .unwrap();
    assert!(latest.events.is_empty());
    assert_eq!(latest.next_offset, 8);
}

#[test]
fn group_offsets_survive_a_restart() {
    let mut env = TestEnv::start();
    let c = env.broker("reporting");
    c.declare_stream("payments", None).unwrap();
    for n in 0..6 {
        c.append_json("payments", &json!({ "n": n })).unwrap();
    }
    let first = c
        .read("payments", "committed", Some("reports"), 4, Duration::ZERO)
        .unwrap();
    assert_eq!(ns(&first), vec![0, 1, 2, 3]);
    let info = c.commit("payments", "reports", first.next_offset).unwrap();
    assert_eq!((info.committed, info.lag), (4, 2));
    env.restart();
    let c = env.broker("reporting");
    let rest = c
        .read(
            "payments",
            "committed",
            Some("reports"),
            100,
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(ns(&rest), vec![4, 5]);
    let streams = c.streams().unwrap();
    assert_eq!(streams[0].next_offset, 6);
    assert_eq!(streams[0].groups[0].committed, 4);
    // Offsets keep counting after the restart.
    assert_eq!(
        c.append_json("payments", &json!({ "n": 6 }))
            .unwrap()
            .offset,
        Some(6)
    );
    // A commit past the end is refused.
    assert_eq!(
        c.commit("payments", "reports", 99).unwrap_err().status(),
        Some(400)
    );
}

#[test]
fn a_read_at_the_end_waits_for_the_next_event() {
    let env = TestEnv::start();
    let c = env.broker("tail");
    c.declare_stream("s", None).unwrap();
    let started = Instant::now();
    let read = env.waiting_request(
        "GET",
        "/broker/streams/s/events?from=latest&max=10&wait=20000ms",
    );
    c.append_json("s", &json!({ "n": 1 })).unwrap();
    let (code, batch) = read.read_reply().answer();
    let waited = started.elapsed();
    assert_eq!(code, 200, "{batch}");
    let batch: switchyard::broker::StreamBatch = serde_json::from_value(batch).unwrap();
    assert_eq!(ns(&batch), vec![1]);
    assert!(waited < Duration::from_secs(5));
}

#[test]
fn stream_errors_and_shared_names() {
    let env = TestEnv::start();
    let c = env.broker("x");
    c.declare_topic("t").unwrap();
    assert_eq!(c.declare_stream("t", None).unwrap_err().status(), Some(409));
    c.declare_stream("s", Some(60_000)).unwrap();
    assert_eq!(
        c.declare_stream("s", Some(1)).unwrap_err().status(),
        Some(409)
    );
    assert_eq!(
        c.append_json("nope", &json!({})).unwrap_err().status(),
        Some(404)
    );
    let err = c
        .read("nope", "earliest", None, 1, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    let err = c
        .read("s", "yesterday", None, 1, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let err = c
        .read("s", "committed", None, 1, Duration::ZERO)
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
}

#[test]
fn retention_by_age_drops_old_events_but_keeps_offsets() {
    let env = TestEnv::start();
    let c = env.broker("r");
    c.declare_stream("short", Some(300)).unwrap();
    for n in 0..3 {
        c.append_json("short", &json!({ "n": n })).unwrap();
    }
    wait_for("old events expired", Duration::from_secs(10), || {
        let b = c
            .read("short", "earliest", None, 10, Duration::ZERO)
            .unwrap();
        b.events.is_empty().then_some(())
    });
    assert_eq!(
        c.append_json("short", &json!({ "n": 3 })).unwrap().offset,
        Some(3)
    );
    let s = &c.streams().unwrap()[0];
    assert_eq!((s.first_offset, s.next_offset), (3, 4));
}

/// The bytes an event read back counts for: its attributes' JSON and its data (JSON data as
/// its text).
fn stored_bytes(e: &Value) -> u64 {
    let mut attributes = e.as_object().unwrap().clone();
    let data = attributes.remove("data").map_or(0, |d| d.to_string().len());
    Value::Object(attributes).to_string().len() as u64 + data as u64
}

#[test]
fn retention_by_size_keeps_the_newest_events_within_max_bytes_across_a_restart() {
    let mut env = TestEnv::start();
    let c = env.broker("r");
    c.declare_stream_bounded("capped", None, Some(4_000))
        .unwrap();
    let pad = "x".repeat(300);
    for n in 0..40 {
        c.append_json("capped", &json!({ "n": n, "pad": pad }))
            .unwrap();
    }
    let kept = |c: &Client| -> (Vec<i64>, u64) {
        let b = c
            .read("capped", "earliest", None, 100, Duration::ZERO)
            .unwrap();
        let ns = b
            .events
            .iter()
            .map(|e| e.event["data"]["n"].as_i64().unwrap())
            .collect();
        (ns, b.events.iter().map(|e| stored_bytes(&e.event)).sum())
    };
    let (ns, bytes) = wait_for(
        "the stream trimmed to size",
        Duration::from_secs(10),
        || {
            let (ns, bytes) = kept(&c);
            (ns.len() < 40).then_some((ns, bytes))
        },
    );
    assert!(bytes <= 4_000, "{bytes} bytes kept");
    // The newest events stay, and nothing more was dropped than the bound needs.
    let first = 40 - ns.len() as i64;
    assert_eq!(ns, (first..40).collect::<Vec<_>>());
    assert!(bytes + 450 > 4_000, "only {bytes} bytes kept");
    let s = &c.streams().unwrap()[0];
    assert_eq!(s.spec.max_bytes, Some(4_000));
    assert_eq!((s.first_offset, s.next_offset), (first as u64, 40));

    // After a restart the bound and the byte count come back from the file.
    env.restart();
    let c = env.broker("r");
    for n in 40..50 {
        c.append_json("capped", &json!({ "n": n, "pad": pad }))
            .unwrap();
    }
    wait_for(
        "trimmed again after a restart",
        Duration::from_secs(10),
        || {
            let (ns, bytes) = kept(&c);
            (ns.last() == Some(&49) && bytes <= 4_000 && ns.len() == 50 - ns[0] as usize)
                .then_some(())
        },
    );
    assert!(c
        .declare_stream_bounded("capped", None, Some(8_000))
        .is_err_and(|e| e.status() == Some(409)));
}

#[test]
fn stream_traffic_builds_publish_and_consume_edges() {
    let env = TestEnv::start();
    let producer = env.broker("payments");
    producer.declare_stream("payment.processed", None).unwrap();
    for n in 0..4 {
        producer
            .append_json("payment.processed", &json!({ "n": n }))
            .unwrap();
    }
    let reader = env.broker("reporting");
    let b = reader
        .read(
            "payment.processed",
            "earliest",
            Some("reports"),
            10,
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(b.events.len(), 4);
    let dest = "destination:switchyard:payment.processed";
    wait_for("stream edges", Duration::from_secs(20), || {
        let t = env.get_json("/api/topology");
        let edges = topo::edges(&t);
        let count = |kind: &str, from: &str, to: &str| {
            edges
                .get(&(kind.to_string(), from.to_string(), to.to_string()))
                .map(|(c, _)| *c)
        };
        (count("publish", &topo::service("payments"), dest) == Some(4)
            && count("consume", dest, &topo::service("reporting")) == Some(4))
        .then_some(())
    });
}

/// A reader replaying a stream's history: the events read again count as replays, apart from
/// the consume edge's messages and publish-to-consume delay, and are no new hops.
#[test]
fn replays_count_apart_from_first_reads() {
    let env = TestEnv::start();
    let producer = env.broker("ledger-writer");
    producer.declare_stream("ledger.replayed", None).unwrap();
    for n in 0..3 {
        producer
            .append_json("ledger.replayed", &json!({ "n": n }))
            .unwrap();
    }
    let reader = env.broker("auditor");
    let first = reader
        .read(
            "ledger.replayed",
            "committed",
            Some("audit"),
            10,
            Duration::ZERO,
        )
        .unwrap();
    assert_eq!(first.events.len(), 3);
    reader
        .commit("ledger.replayed", "audit", first.next_offset)
        .unwrap();
    // The group again from its committed offset: nothing new, nothing replayed.
    let none = reader
        .read(
            "ledger.replayed",
            "committed",
            Some("audit"),
            10,
            Duration::ZERO,
        )
        .unwrap();
    assert!(none.events.is_empty());
    // The whole history again, without a group: three replays.
    let again = reader
        .read("ledger.replayed", "earliest", None, 10, Duration::ZERO)
        .unwrap();
    assert_eq!(again.events.len(), 3);
    let dest = "destination:switchyard:ledger.replayed";
    let edge = wait_for(
        "the replays on the consume edge",
        Duration::from_secs(20),
        || {
            let t = env.get_json("/api/topology");
            t["edges"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["kind"] == "consume"
                        && e["from"] == dest
                        && e["replays"]["count"].as_i64() == Some(3)
                })
                .cloned()
        },
    );
    assert_eq!(edge["count"], 3, "{edge}");
    assert_eq!(edge["latency"]["samples"], 3, "{edge}");
    assert_eq!(edge["replays"]["latency"]["samples"], 3, "{edge}");
    // Each event's trace: one publish, one first read (a hop), one replay (not a hop). The
    // group's commit is a trace of its own, with no hop.
    let list = env.get_json("/api/traces?destination=ledger.replayed");
    let hops: Vec<i64> = list["traces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["hops"].as_i64())
        .filter(|&h| h > 0)
        .collect();
    assert_eq!(hops, [1, 1, 1], "{list}");
}
