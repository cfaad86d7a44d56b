//! Probe of rskafka 0.6.0 for Kafka discovery (not part of the product):
//! `rskprobe crafted` serves, from local TcpListeners, a peer that never answers, one that
//! asks for a throttle of i32::MAX ms, and Metadata answers claiming i32::MAX entries, and
//! reports what rskafka does with each (and this process's peak memory); `rskprobe cluster TANSU_BINARY` starts tansu,
//! makes 500 topics of 3 partitions and times what rskafka can do of one discovery poll
//! (topics, partitions, first and end offsets) against one Metadata call for every topic
//! (the bench's baseline), with this process's CPU time.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::BackoffConfig;

fn cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn status(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn builder(servers: Vec<String>) -> ClientBuilder {
    ClientBuilder::new(servers)
        .client_id("switchyard-probe")
        .max_message_size(32 << 20)
        .backoff_config(BackoffConfig {
            init_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            base: 3.0,
            deadline: Some(Duration::from_millis(300)),
        })
}

/// A peer answering ApiVersions (v3 layout: Metadata v0-v4) well and Metadata with `metadata`.
fn crafted(metadata: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let metadata = Arc::new(metadata);
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let metadata = metadata.clone();
            std::thread::spawn(move || loop {
                let mut size = [0u8; 4];
                if conn.read_exact(&mut size).is_err() {
                    return;
                }
                let mut req = vec![0u8; i32::from_be_bytes(size).clamp(8, 1 << 16) as usize];
                if conn.read_exact(&mut req).is_err() {
                    return;
                }
                let key = i16::from_be_bytes([req[0], req[1]]);
                let version = i16::from_be_bytes([req[2], req[3]]);
                let versions: Vec<u8> = if version >= 3 {
                    // error 0, compact array of 1: (3, 0, 4, no tags), throttle 0, no tags
                    vec![0, 0, 2, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0]
                } else {
                    vec![0, 0, 0, 0, 0, 1, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0]
                };
                let body: &[u8] = match key {
                    18 => &versions,
                    3 => &metadata,
                    _ => return,
                };
                let mut reply = ((4 + body.len()) as i32).to_be_bytes().to_vec();
                reply.extend_from_slice(&req[4..8]);
                reply.extend_from_slice(body);
                if conn.write_all(&reply).is_err() {
                    return;
                }
            });
        }
    });
    port
}

/// A peer that reads and never answers; `throttle`: one that answers ApiVersions v3 asking
/// the client to wait i32::MAX ms.
fn stalling(throttle: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut sent = false;
                while conn.read(&mut buf).is_ok_and(|n| n > 0) {
                    if throttle && !sent {
                        let body = [0u8, 0, 2, 0, 3, 0, 0, 0, 4, 0, 0x7f, 0xff, 0xff, 0xff, 0];
                        let mut reply = ((4 + body.len()) as i32).to_be_bytes().to_vec();
                        reply.extend_from_slice(&[0, 0, 0, 0]);
                        reply.extend_from_slice(&body);
                        let _ = conn.write_all(&reply);
                        sent = true;
                    }
                }
            });
        }
    });
    port
}

async fn stalls() {
    for (what, port) in [
        ("silent", stalling(false)),
        ("throttle i32::MAX ms", stalling(true)),
    ] {
        let started = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            builder(vec![format!("127.0.0.1:{port}")]).build(),
        )
        .await;
        let said = match r {
            Ok(Ok(_)) => "a client".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "still waiting when our 5 s timeout dropped it".to_string(),
        };
        println!("{what} peer: {said} after {:?}", started.elapsed());
    }
}

async fn crafted_answers() {
    stalls().await;
    const MAX: [u8; 4] = [0x7f, 0xff, 0xff, 0xff];
    let string = |s: &str| [&(s.len() as i16).to_be_bytes()[..], s.as_bytes()].concat();
    // Metadata v4: throttle, brokers (id, host, port, rack), cluster id, controller, topics
    // (error, name, internal, partitions (error, index, leader, replicas, isr)).
    let brokers = [
        &[0u8; 4][..],
        &[0, 0, 0, 1, 0, 0, 0, 1],
        &string("127.0.0.1"),
        &[0, 0, 0, 9, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1],
    ]
    .concat();
    let topic = [&[0u8, 0, 0, 1, 0, 0][..], &string("t"), &[0]].concat();
    let partition = [0u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let answers = [
        ("brokers", [&[0u8; 4][..], &MAX, &[0; 8]].concat()),
        ("topics", [&brokers[..], &MAX, &[0; 8]].concat()),
        ("partitions", [&brokers[..], &topic, &MAX, &[0; 8]].concat()),
        (
            "replicas",
            [&brokers[..], &topic, &partition, &MAX, &[0; 8]].concat(),
        ),
        // A host string claiming 32767 bytes in a short answer.
        (
            "host string",
            [
                &[0u8; 4][..],
                &[0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff],
                &[0; 8],
            ]
            .concat(),
        ),
    ];
    println!(
        "crafted: before: VmHWM {} KiB, VmPeak {} KiB",
        status("VmHWM:"),
        status("VmPeak:")
    );
    for (what, answer) in answers {
        let port = crafted(answer);
        let started = Instant::now();
        let mut last = String::new();
        for _ in 0..25 {
            let client = tokio::time::timeout(
                Duration::from_secs(5),
                builder(vec![format!("127.0.0.1:{port}")]).build(),
            )
            .await;
            last = match client {
                Ok(Ok(_)) => "a client (no error)".to_string(),
                Ok(Err(e)) => format!("error: {e}"),
                Err(_) => "timed out (5 s)".to_string(),
            };
        }
        println!(
            "crafted {what}: 25 builds in {:?}, last: {last}; VmHWM {} KiB, VmPeak {} KiB",
            started.elapsed(),
            status("VmHWM:"),
            status("VmPeak:")
        );
    }
}

/// Metadata v5 for every topic over a fresh connection: the bench's baseline.
fn baseline(port: u16) -> Duration {
    let t = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let client = b"bench";
    let mut req = Vec::new();
    req.extend_from_slice(&3i16.to_be_bytes());
    req.extend_from_slice(&5i16.to_be_bytes());
    req.extend_from_slice(&1i32.to_be_bytes());
    req.extend_from_slice(&(client.len() as i16).to_be_bytes());
    req.extend_from_slice(client);
    req.extend_from_slice(&(-1i32).to_be_bytes());
    req.push(0);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    s.write_all(&frame).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("len");
    let mut answer = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut answer).expect("answer");
    t.elapsed()
}

/// A partition's end and first offsets: one ListOffsets each.
async fn offsets(pc: &rskafka::client::partition::PartitionClient) -> (i64, i64) {
    let end = pc.get_offset(OffsetAt::Latest).await.expect("latest");
    let first = pc.get_offset(OffsetAt::Earliest).await.expect("earliest");
    (end, first)
}

async fn cluster(tansu: &str) {
    let dir = std::env::temp_dir().join(format!("rskprobe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut child = std::process::Command::new(tansu)
        .current_dir(&dir)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tansu");
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let servers = vec![format!("127.0.0.1:{port}")];
    let admin = builder(servers.clone())
        .backoff_config(BackoffConfig {
            deadline: Some(Duration::from_secs(30)),
            ..BackoffConfig::default()
        })
        .build()
        .await
        .expect("admin client");
    let controller = admin.controller_client().expect("controller");
    for i in 0..500 {
        controller
            .create_topic(format!("bench-topic-{i}"), 3, 1, 30_000)
            .await
            .expect("create topic");
    }
    let mut base = Vec::new();
    for _ in 0..5 {
        base.push(baseline(port));
    }
    base.sort();
    let base = base[2];
    println!("baseline: one Metadata call for every topic {base:?} (median of 5)");

    let poll = |client: Arc<rskafka::client::Client>| async move {
        let topics = client.list_topics().await.expect("list topics");
        let parts: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.name.clone(), *p)))
            .collect();
        let n = parts.len();
        let offsets = futures::stream::iter(parts)
            .map(|(t, p)| {
                let client = client.clone();
                async move {
                    let pc = client
                        .partition_client(t, p, UnknownTopicHandling::Error)
                        .await
                        .expect("partition client");
                    offsets(&pc).await
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        (n, offsets.len())
    };
    let (t, c) = (Instant::now(), cpu());
    let client = Arc::new(builder(servers.clone()).build().await.expect("client"));
    let (n, got) = poll(client.clone()).await;
    let (wall, used) = (t.elapsed(), cpu() - c);
    println!(
        "rskafka first poll (bootstrap, list_topics, a partition client and 2 offsets per partition, 64 at a time): {n} partitions, {got} answered; {wall:?} wall ({:.1}x baseline), {used:?} CPU",
        wall.as_secs_f64() / base.as_secs_f64()
    );
    let rounds = 20;
    let (t, c) = (Instant::now(), cpu());
    let rss5 = status("VmRSS:");
    for _ in 0..rounds {
        poll(client.clone()).await;
    }
    let (wall, used) = (t.elapsed() / rounds, (cpu() - c) / rounds);
    println!(
        "rskafka next {rounds} polls (client kept): {wall:?} wall ({:.1}x baseline), {used:?} CPU each; resident {rss5} KiB -> {} KiB",
        wall.as_secs_f64() / base.as_secs_f64(),
        status("VmRSS:")
    );
    // Partition clients made once and kept: each poll only the two offsets per partition.
    let topics = client.list_topics().await.expect("topics");
    let mut kept = Vec::new();
    for t in &topics {
        for p in &t.partitions {
            kept.push(
                client
                    .partition_client(t.name.clone(), *p, UnknownTopicHandling::Error)
                    .await
                    .expect("partition client"),
            );
        }
    }
    let (t, c) = (Instant::now(), cpu());
    for _ in 0..rounds {
        futures::stream::iter(kept.iter())
            .map(offsets)
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
    }
    let (wall, used) = (t.elapsed() / rounds, (cpu() - c) / rounds);
    println!(
        "rskafka offsets only, {} partition clients kept: {wall:?} wall ({:.1}x baseline), {used:?} CPU each",
        kept.len(),
        wall.as_secs_f64() / base.as_secs_f64()
    );
    // Only what the crate does without partition clients: the topic list.
    let (t, c) = (Instant::now(), cpu());
    for _ in 0..rounds {
        client.list_topics().await.expect("topics");
    }
    println!(
        "rskafka list_topics alone: {:?} wall, {:?} CPU each",
        t.elapsed() / rounds,
        (cpu() - c) / rounds
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("crafted") => crafted_answers().await,
        Some("cluster") => cluster(args.get(2).expect("tansu binary")).await,
        _ => eprintln!("usage: rskprobe crafted | cluster TANSU"),
    }
}
