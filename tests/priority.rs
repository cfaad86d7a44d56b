//! Background priority of the real binary's threads (read from /proc): the checkpointers, the
//! store's dropper and the broker's span exporter run as SCHED_IDLE where a thread can come
//! back from it, the message path never does, and where it cannot come back (no CAP_SYS_NICE)
//! nothing changes.

#![cfg(target_os = "linux")]

mod common;

use common::TestEnv;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use switchyard::broker::client::Client;

const SCHED_OTHER: u32 = 0;
const SCHED_IDLE: u32 = 5;

/// Each thread's name (as the kernel truncates it) and scheduling policy.
fn threads(pid: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("/proc task list") {
        let dir = task.expect("task entry").path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended meanwhile
        };
        // Fields after the parenthesised name; `policy` is field 41 of the whole line.
        let rest = &stat[stat.rfind(')').expect("stat line") + 2..];
        let policy = rest.split(' ').nth(41 - 3).and_then(|p| p.parse().ok());
        out.push((comm.trim().to_string(), policy.expect("policy field")));
    }
    out
}

fn policies(pid: u32, prefix: &str) -> Vec<u32> {
    threads(pid)
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(_, p)| p)
        .collect()
}

/// Waits until every thread named `prefix…` has `policy`; panics with what it saw.
fn wait_for(pid: u32, prefix: &str, policy: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = policies(pid, prefix);
        if !seen.is_empty() && seen.iter().all(|&p| p == policy) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: policies {seen:?}, expected {policy}; all: {:?}",
            threads(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn background_threads_yield_and_the_message_path_keeps_its_share() {
    let env = TestEnv::start();
    let pid = env.pid();
    // The same user and capabilities as the server: the probe answers the same there.
    let background = if switchyard::priority::available() {
        SCHED_IDLE
    } else {
        SCHED_OTHER
    };
    wait_for(pid, "store-checkpoin", background);
    wait_for(pid, "broker-checkpoi", background);
    wait_for(pid, "store-dropper", background);

    // A trickle of broker traffic: the exporter's batches stay partial, so it goes to the
    // background too, and the writer is back to normal between its groups.
    let c = Client::new(&env.server().http.to_string()).with_service("shop");
    c.declare_topic("orders").unwrap();
    for n in 0..20 {
        c.publish_json("orders", &json!({ "n": n }), None).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for(pid, "OpenTelemetry", background);
    wait_for(pid, "store-writer", SCHED_OTHER);

    // The message path never leaves the normal policy.
    let by_name: BTreeMap<String, Vec<u32>> =
        threads(pid)
            .into_iter()
            .fold(BTreeMap::new(), |mut m, (name, p)| {
                m.entry(name).or_default().push(p);
                m
            });
    for name in ["broker-router", "actix-server wo", "tokio-rt-worker"] {
        let seen = by_name
            .get(name)
            .unwrap_or_else(|| panic!("no {name} thread: {by_name:?}"));
        assert!(seen.iter().all(|&p| p == SCHED_OTHER), "{name}: {seen:?}");
    }
    // The spans of that traffic were stored (export in the background still exports).
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.spans_in_store() < 20 {
        assert!(Instant::now() < deadline, "broker spans not stored");
        std::thread::sleep(Duration::from_millis(50));
    }
}
