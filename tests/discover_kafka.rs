//! Kafka discovery's source against a real Kafka-protocol broker (tansu, memory storage, one
//! of the test's own) and against peers that misbehave: a closed port, a server that never
//! answers, and one that answers garbage. Topology from real kafkajs and confluent-kafka
//! clients is in tests/interop_kafka.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::kafka::{commit_offsets, Tansu};
use common::nats::free_port;
use switchyard::discover::kafka::{KafkaSource, Limits};
use switchyard::discover::{DiscoverError, Source};

fn quick() -> Limits {
    Limits {
        timeout: Duration::from_millis(800),
        poll_budget: Duration::from_secs(3),
        ..Limits::default()
    }
}

#[test]
fn an_empty_cluster_is_a_snapshot_with_nothing_in_it() {
    let broker = Tansu::start();
    let mut source = KafkaSource::new(&broker.bootstrap(), Limits::default()).expect("source");
    assert_eq!(source.label(), format!("kafka {}", broker.bootstrap()));
    let snap = source.poll().expect("poll");
    assert_eq!(snap.system, "kafka");
    assert_eq!(snap.broker, source.label());
    assert!(snap.flows.is_empty() && snap.services.is_empty());
    // A dead first bootstrap server: the next one answers.
    let dead = format!("127.0.0.1:{},{}", free_port(), broker.bootstrap());
    let snap = KafkaSource::new(&dead, quick())
        .expect("source")
        .poll()
        .expect("poll through the second server");
    assert_eq!(snap.system, "kafka");
}

#[test]
fn a_closed_port_is_unreachable() {
    let mut source = KafkaSource::new(&format!("127.0.0.1:{}", free_port()), quick()).unwrap();
    let started = Instant::now();
    match source.poll() {
        Err(DiscoverError::Unreachable(e)) => assert!(e.contains("127.0.0.1"), "{e}"),
        other => panic!("expected unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A server that accepts and then does what `answer` does with each connection.
fn peer(answer: fn(std::net::TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn));
        }
    });
    port
}

#[test]
fn a_silent_server_times_out_within_the_limits() {
    let port = peer(|mut conn| {
        // Reads the request, never answers, holds the connection until the client leaves.
        let mut buf = [0u8; 1024];
        while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let mut source = KafkaSource::new(&format!("127.0.0.1:{port}"), quick()).unwrap();
    let started = Instant::now();
    assert_eq!(source.poll().err(), Some(DiscoverError::Timeout(800)));
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_bootstrap_list_is_tried_in_turn_past_dead_silent_and_garbage_servers() {
    let broker = Tansu::start();
    let silent = peer(|mut conn| {
        let mut buf = [0u8; 1024];
        while conn.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    let garbage = peer(|conn| answer_with(conn, b"HTTP/1.1 400 Bad Request\r\n\r\n"));
    let list = format!(
        "127.0.0.1:{},127.0.0.1:{silent},127.0.0.1:{garbage},{}",
        free_port(),
        broker.bootstrap()
    );
    // Each dead server costs at most one call's timeout, all within the poll's budget.
    let mut source = KafkaSource::new(&list, quick()).expect("source");
    let snap = source.poll().expect("the fourth server answers");
    assert_eq!(snap.system, "kafka");
    assert_eq!(snap.broker, format!("kafka {list}"));
    commit_offsets(broker.port, &["orders"], &[], 0);
    let snap = source.poll().expect("a second poll");
    assert!(
        snap.destinations.iter().any(|d| d.name == "orders"),
        "{snap:?}"
    );
    // With every server dead, the error says so.
    let dead = format!("127.0.0.1:{},127.0.0.1:{silent}", free_port());
    let mut source = KafkaSource::new(&dead, quick()).expect("source");
    assert_eq!(source.poll().err(), Some(DiscoverError::Timeout(800)));
}

#[test]
fn a_kept_connection_the_broker_closed_is_made_again() {
    let broker = Tansu::start();
    let port = broker.port;
    let mut source = KafkaSource::new(&broker.bootstrap(), Limits::default()).expect("source");
    source.poll().expect("first poll");
    drop(broker);
    let _broker = Tansu::start_on(port);
    commit_offsets(port, &["after-restart"], &[], 0);
    let snap = source.poll().expect("a poll over new connections");
    assert!(
        snap.destinations.iter().any(|d| d.name == "after-restart"),
        "{snap:?}"
    );
}

#[test]
fn committed_offsets_of_every_group_are_read_with_their_lag() {
    let broker = Tansu::start();
    commit_offsets(
        broker.port,
        &["orders", "refunds"],
        &[
            ("billing", "orders"),
            ("audit", "orders"),
            ("audit", "refunds"),
        ],
        0,
    );
    let mut source = KafkaSource::new(&broker.bootstrap(), Limits::default()).expect("source");
    let snap = source.poll().expect("poll");
    let mut flows: Vec<(&str, &str, Option<&str>)> = snap
        .flows
        .iter()
        .map(|f| (f.from.as_str(), f.to.as_str(), f.key.as_deref()))
        .collect();
    flows.sort();
    assert_eq!(
        flows,
        vec![
            ("orders", "audit", Some("audit")),
            ("orders", "billing", Some("billing")),
            ("refunds", "audit", Some("audit")),
        ]
    );
    for f in &snap.flows {
        let committed: Vec<(i32, Option<u64>, Option<u64>)> = f
            .figures
            .lag
            .iter()
            .map(|l| (l.partition, l.committed, l.lag))
            .collect();
        assert_eq!(
            committed,
            vec![
                (0, Some(0), Some(0)),
                (1, Some(0), Some(0)),
                (2, Some(0), Some(0))
            ],
            "{f:?}"
        );
    }
    // The next poll reads the same over the connections it kept.
    let again = source.poll().expect("second poll");
    assert_eq!(again.flows.len(), 3);
}

/// One request read from `conn`: its body after the size prefix (at most 64 KiB), `None`
/// once the connection ends.
fn request(conn: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 16) as usize];
    conn.read_exact(&mut body).ok()?;
    Some(body)
}

/// Reads one request (its size prefix and body) and writes `reply`.
fn answer_with(mut conn: std::net::TcpStream, reply: &[u8]) {
    if request(&mut conn).is_none() {
        return;
    }
    let _ = conn.write_all(reply);
    let _ = conn.flush();
}

#[test]
fn garbage_answers_are_errors_not_panics() {
    // A frame claiming 1 GiB: over the largest answer read.
    let huge = peer(|conn| answer_with(conn, &[0x40, 0, 0, 0, 0, 0, 0, 1]));
    // The right correlation id, then a broker array claiming two billion entries.
    let lying = peer(|conn| {
        answer_with(
            conn,
            &[0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff],
        )
    });
    // An answer to another request.
    let other = peer(|conn| answer_with(conn, &[0, 0, 0, 4, 0, 0, 0, 9]));
    // Random bytes.
    let noise = peer(|conn| answer_with(conn, b"HTTP/1.1 400 Bad Request\r\n\r\n"));
    for (port, what) in [
        (huge, "over the limit"),
        (lying, "array longer"),
        (other, "another request"),
        (noise, ""),
    ] {
        let mut source = KafkaSource::new(&format!("127.0.0.1:{port}"), quick()).unwrap();
        match source.poll() {
            Err(DiscoverError::BadAnswer(e)) => assert!(e.contains(what), "{what}: {e}"),
            other => panic!("{what}: expected a bad answer, got {other:?}"),
        }
    }
}

/// A peer that speaks the protocol's framing: ApiVersions gets a good answer (Metadata up to
/// v12), Metadata gets `metadata` (the body after the correlation id), anything else a closed
/// connection.
fn crafted(metadata: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let metadata = std::sync::Arc::new(metadata);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let metadata = metadata.clone();
            std::thread::spawn(move || loop {
                let Some(request) = request(&mut conn).filter(|r| r.len() >= 8) else {
                    return;
                };
                let api_key = i16::from_be_bytes([request[0], request[1]]);
                let body: &[u8] = match api_key {
                    18 => &[0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 12],
                    3 => &metadata,
                    _ => return,
                };
                let mut reply = ((4 + body.len()) as i32).to_be_bytes().to_vec();
                reply.extend_from_slice(&request[4..8]);
                reply.extend_from_slice(body);
                if conn.write_all(&reply).is_err() {
                    return;
                }
            });
        }
    });
    port
}

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Metadata answers that claim `i32::MAX` brokers, topics, partitions or replicas in a few
/// bytes (a client that sizes its vector from the count before reading an element asks for
/// hundreds of GB and aborts): each poll is a clear error, the process goes on, and its peak
/// memory does not grow with the claims.
#[test]
fn metadata_claiming_i32_max_entries_is_an_error_and_memory_stays_bounded() {
    const MAX: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
    let string = |s: &str| [&(s.len() as i16).to_be_bytes()[..], s.as_bytes()].concat();
    // throttle, one broker (node 1, 127.0.0.1:9, no rack), no cluster id, controller 1.
    let brokers = [
        &[0u8; 4][..],
        &[0, 0, 0, 1, 0, 0, 0, 1],
        &string("127.0.0.1"),
        &[0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1],
    ]
    .concat();
    // One topic "t" (no error, not internal).
    let topic = [&[0u8, 0, 0, 1, 0, 0][..], &string("t"), &[0]].concat();
    // One partition: no error, index 0, leader 1.
    let partition = [0u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let answers = [
        ("brokers", [&[0u8; 4][..], &MAX, &[0; 8]].concat()),
        ("topics", [&brokers[..], &MAX, &[0; 8]].concat()),
        ("partitions", [&brokers[..], &topic, &MAX, &[0; 8]].concat()),
        (
            "replicas",
            [&brokers[..], &topic, &partition, &MAX, &[0; 8]].concat(),
        ),
    ];
    let before = peak_rss_kib();
    for (what, answer) in answers {
        let port = crafted(answer);
        let mut source = KafkaSource::new(&format!("127.0.0.1:{port}"), quick()).unwrap();
        for _ in 0..25 {
            match source.poll() {
                Err(DiscoverError::BadAnswer(e)) => assert!(
                    e.starts_with("metadata") && e.contains("array longer"),
                    "{what}: {e}"
                ),
                other => panic!("{what}: expected a bad answer, got {other:?}"),
            }
        }
    }
    // The check that counts is the error above: a decoder that reserved a claimed count
    // would abort the process (an allocation of 8 GiB and more fails) or, where the system
    // overcommits, reserve it untouched, which the peak resident size below cannot see; it
    // sees only memory the decoding wrote (one element of the smallest claim, 4-byte replica
    // ids, at i32::MAX is 8 GiB).
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 64 << 10, "peak memory grew by {grown} KiB");
}
