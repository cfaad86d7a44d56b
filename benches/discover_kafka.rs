//! Kafka discovery against a real broker: `cargo bench --bench discover_kafka` (needs
//! `tools/kafka/tansu.sh --if-missing`). Starts tansu (memory storage) on a free port, makes
//! 500 topics of 3 partitions and 200 consumer groups with committed offsets (each on 3
//! topics), then times one poll (wall and this process's CPU) and the next polls (which keep
//! their connections), and reports after 5, 100 and 1,000 polls (`BENCH_POLLS`) this
//! process's resident size and the bytes its heap holds (a counting allocator: a leak grows
//! the second, an allocator keeping freed pages only the first). The baseline, measured in the
//! same run: one Metadata request for every topic over a fresh connection, the least any poll
//! does.
//!
//! `BENCH_SERVERS=NAME=BINARY,NAME=BINARY` (e.g. `main=/path/to/other/switchyard,this=target/release/switchyard`)
//! also runs each binary's `serve --discover kafka=` against the same broker, polling every
//! 100 ms, in turn (`BENCH_ROUNDS` rounds, 2 by default), and reports the server's CPU time
//! (utime + stime) per poll over `BENCH_SERVER_POLLS` polls (100 by default) and its resident
//! size after 5 polls and after the last: the whole of Switchyard's work per poll (discovery,
//! the snapshot's store write), each against the first binary's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};
use switchyard::discover::kafka::wire::{self, Conn, Writer};
use switchyard::discover::kafka::{KafkaSource, Limits};
use switchyard::discover::Source;

const TOPICS: usize = 500;
const PARTITIONS: i32 = 3;
const GROUPS: usize = 200;
/// Polls watched (`BENCH_POLLS` overrides); resident size and heap are reported after 5, 100
/// and 1,000 of them (those up to this count) and after the last.
const POLLS: usize = 1_000;
const MARKS: [usize; 3] = [5, 100, 1_000];

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_kib() -> i64 {
    LIVE.load(Ordering::Relaxed) / 1024
}

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
    // The first poll above is poll 1.
    let (mut peak, mut at_marks) = (rss_kib(), Vec::new());
    let (t, c) = (Instant::now(), cpu());
    for n in 2..=polls.max(1) {
        source.poll().expect("poll");
        peak = peak.max(rss_kib());
        if MARKS.contains(&n) || n == polls {
            at_marks.push((n, rss_kib(), live_kib()));
        }
    }
    let n = polls.saturating_sub(1).max(1) as u32;
    let (each, each_cpu) = (t.elapsed() / n, (cpu() - c) / n);
    println!(
        "the next {} polls (connections kept): {each:?} wall ({:.1}x baseline), {each_cpu:?} CPU each",
        n,
        each.as_secs_f64() / baseline.as_secs_f64()
    );
    let first = at_marks.first().copied().unwrap_or((1, 0, 0));
    for (n, rss, live) in &at_marks {
        println!(
            "after {n} polls: resident {rss} KiB ({:.3}x after {}), heap in use {live} KiB ({:.3}x)",
            *rss as f64 / first.1.max(1) as f64,
            first.0,
            *live as f64 / first.2.max(1) as f64
        );
    }
    println!("resident at most {peak} KiB");
    if let Ok(servers) = std::env::var("BENCH_SERVERS") {
        compare_servers(&servers, port);
    }
    let _ = tansu.kill();
    let _ = tansu.wait();
}

/// A binary's `serve` polling the broker every 100 ms: its CPU time per poll over `polls`
/// polls (after the first, which pays for start-up) and its resident size after 5 polls and
/// after the last.
struct Served {
    cpu_per_poll: Duration,
    rss_at_5: u64,
    rss_at_end: u64,
    polls: u64,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port()
}

/// utime + stime of a process, from /proc (clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of the line; after the name's `)` they are the 12th and 13th.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn process_rss_kib(pid: u32) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4
}

/// The polls the server's discovery made so far (`GET /api/brokers`), 0 before it answers.
fn polls_of(http: u16) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", http)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /api/brokers HTTP/1.0\r\nHost: 127.0.0.1:{http}\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["brokers"][0]["polls"].as_u64())
        .unwrap_or(0)
}

fn serve(binary: &str, kafka: u16, polls: u64) -> Served {
    let dir = tempfile::tempdir().expect("dir");
    let http = free_port();
    let mut child = Command::new(binary)
        .current_dir(dir.path())
        .arg("serve")
        .arg("--db")
        .arg(dir.path().join("bench.db"))
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(["--otlp-http", &format!("127.0.0.1:{}", free_port())])
        .args(["--otlp-grpc", &format!("127.0.0.1:{}", free_port())])
        .args(["--discover", &format!("kafka=127.0.0.1:{kafka}")])
        .args(["--discover-interval", "100ms"])
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let pid = child.id();
    let wait_for = |n: u64| {
        let started = Instant::now();
        loop {
            let seen = polls_of(http);
            if seen >= n {
                return seen;
            }
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "{binary}: {seen} polls, waiting for {n}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let first = wait_for(1);
    let cpu0 = process_cpu(pid);
    wait_for(5);
    let rss_at_5 = process_rss_kib(pid);
    let last = wait_for(first + polls);
    let cpu1 = process_cpu(pid);
    let rss_at_end = process_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    let done = (last - first).max(1);
    Served {
        cpu_per_poll: (cpu1.saturating_sub(cpu0)) / done as u32,
        rss_at_5,
        rss_at_end,
        polls: last,
    }
}

fn compare_servers(list: &str, kafka: u16) {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (polls, rounds) = (env("BENCH_SERVER_POLLS", 100), env("BENCH_ROUNDS", 2));
    let servers: Vec<(&str, &str)> = list.split(',').filter_map(|s| s.split_once('=')).collect();
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); servers.len()];
    for round in 0..rounds {
        for (i, (name, binary)) in servers.iter().enumerate() {
            let s = serve(binary, kafka, polls);
            println!(
                "round {round} {name}: serve CPU {:?} per poll over {polls} polls; resident {} KiB after 5 polls, {} KiB after {}",
                s.cpu_per_poll, s.rss_at_5, s.rss_at_end, s.polls
            );
            cpu[i].push(s.cpu_per_poll);
        }
    }
    let total = |v: &[Duration]| v.iter().sum::<Duration>().as_secs_f64();
    for (i, (name, _)) in servers.iter().enumerate() {
        println!(
            "{name}: serve CPU per poll {:.1} ms over {rounds} rounds, {:.3}x {}",
            total(&cpu[i]) * 1e3 / rounds.max(1) as f64,
            total(&cpu[i]) / total(&cpu[0]).max(1e-9),
            servers[0].0
        );
    }
}
