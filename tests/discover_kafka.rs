//! Kafka discovery's source against a real Kafka-protocol broker (tansu, memory storage, one
//! of the test's own) and against peers that misbehave: a closed port, a server that never
//! answers, and one that answers garbage. Topology from real kafkajs and confluent-kafka
//! clients is in tests/interop_kafka.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::kafka::Tansu;
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

/// Reads one request (its size prefix and body) and writes `reply`.
fn answer_with(mut conn: std::net::TcpStream, reply: &[u8]) {
    let mut size = [0u8; 4];
    if conn.read_exact(&mut size).is_err() {
        return;
    }
    let mut body = vec![0u8; i32::from_be_bytes(size).clamp(0, 1 << 16) as usize];
    if conn.read_exact(&mut body).is_err() {
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
