//! Kafka discovery against a real broker: `cargo bench --bench discover_kafka` (needs
//! `tools/kafka/tansu.sh --if-missing`). Starts tansu (memory storage) on a free port, makes
//! 500 topics of 3 partitions and 200 consumer groups with committed offsets (each on 3
//! topics), then times one poll (wall and this process's CPU), the next polls (which keep
//! their connections) and watches this process's resident memory over 100 polls
//! (`BENCH_POLLS`). The baseline, measured in the same run: one Metadata
//! request for every topic over a fresh connection, the least any poll does.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchyard::discover::kafka::wire::{self, Conn, Writer};
use switchyard::discover::kafka::{KafkaSource, Limits};
use switchyard::discover::Source;

const TOPICS: usize = 500;
const PARTITIONS: i32 = 3;
const GROUPS: usize = 200;
/// Polls whose resident memory is watched (`BENCH_POLLS` overrides).
const POLLS: usize = 100;

fn cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| Duration::new(v.tv_sec as u64, v.tv_usec as u32 * 1000);
    t(u.ru_utime) + t(u.ru_stime)
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn conn(port: u16) -> Conn {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut c = Conn::new(s, "bench", 64 << 20);
    c.set_timeout(Duration::from_secs(30)).expect("timeout");
    c
}

fn main() {
    let polls: usize = std::env::var("BENCH_POLLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(POLLS);
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/kafka/.venv/bin/tansu");
    let dir = tempfile::tempdir().expect("dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let mut tansu = Command::new(&bin)
        .current_dir(dir.path())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://tansu/"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu (tools/kafka/tansu.sh --if-missing)");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "tansu did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut admin = conn(port);
    let names: Vec<String> = (0..TOPICS).map(|i| format!("bench-topic-{i}")).collect();
    for chunk in names.chunks(100) {
        // CreateTopics v2: name, partitions, replication, no assignments, no configs.
        let mut w = Writer::default();
        w.len(Some(chunk.len()));
        for n in chunk {
            w.string(n).i32(PARTITIONS).i16(1).len(Some(0)).len(Some(0));
        }
        w.i32(30_000).bool(false);
        admin.call(19, 2, &w).expect("create topics");
    }
    for g in 0..GROUPS {
        // OffsetCommit v2 outside any generation (a group with no members).
        let mut w = Writer::default();
        w.string(&format!("bench-group-{g}"))
            .i32(-1)
            .string("")
            .i64(-1);
        w.len(Some(3));
        for t in 0..3 {
            w.string(&names[(g * 3 + t) % TOPICS])
                .len(Some(PARTITIONS as usize));
            for p in 0..PARTITIONS {
                w.i32(p).i64(0).i16(-1);
            }
        }
        admin.call(8, 2, &w).expect("offset commit");
    }

    let baseline = {
        let t = Instant::now();
        let mut c = conn(port);
        let answer = c
            .call(wire::METADATA, 5, &wire::metadata_request())
            .expect("metadata");
        let m = wire::metadata_answer(&answer).expect("answer");
        assert!(m.topics.len() >= TOPICS);
        t.elapsed()
    };
    // What a cluster that cannot answer "every committed offset" (tansu) costs per group:
    // one OffsetFetch naming every partition.
    let per_group = {
        let every: Vec<(&str, Vec<i32>)> = names
            .iter()
            .map(|n| (n.as_str(), (0..PARTITIONS).collect()))
            .collect();
        let mut c = conn(port);
        let t = Instant::now();
        let body = wire::offset_fetch_request("bench-group-0", Some(&every));
        c.call(wire::OFFSET_FETCH, 2, &body).expect("offset fetch");
        t.elapsed()
    };
    let limits = Limits {
        timeout: Duration::from_secs(30),
        poll_budget: Duration::from_secs(120),
        ..Limits::default()
    };
    let mut source = KafkaSource::new(&format!("127.0.0.1:{port}"), limits).expect("source");
    let (wall, cpu_used, snap) = {
        let (t, c) = (Instant::now(), cpu());
        let snap = source.poll().expect("poll");
        (t.elapsed(), cpu() - c, snap)
    };
    println!(
        "discovered {} topics, {} groups' flows, {} services",
        snap.destinations.len(),
        snap.flows.len(),
        snap.services.len()
    );
    println!("baseline: one Metadata call for every topic {baseline:?}");
    println!(
        "one OffsetFetch of every partition for one group: {per_group:?} ({:.1}x baseline; x{GROUPS} groups = {:?})",
        per_group.as_secs_f64() / baseline.as_secs_f64(),
        per_group * GROUPS as u32
    );
    println!(
        "one poll: {wall:?} wall ({:.1}x baseline), {cpu_used:?} CPU of this process",
        wall.as_secs_f64() / baseline.as_secs_f64()
    );
    let before = rss_kib();
    let mut peak = before;
    let (t, c) = (Instant::now(), cpu());
    for _ in 0..polls {
        source.poll().expect("poll");
        peak = peak.max(rss_kib());
    }
    let n = polls.max(1) as u32;
    let (each, each_cpu) = (t.elapsed() / n, (cpu() - c) / n);
    let after = rss_kib();
    println!(
        "the next {polls} polls (connections kept): {each:?} wall ({:.1}x baseline), {each_cpu:?} CPU each",
        each.as_secs_f64() / baseline.as_secs_f64()
    );
    println!(
        "resident memory over {polls} polls: {before} KiB before, {after} KiB after, {peak} KiB at most ({:.3}x)",
        after as f64 / before.max(1) as f64
    );
    let _ = tansu.kill();
    let _ = tansu.wait();
}
