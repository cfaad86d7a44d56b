//! Background priority of the real binary's threads (read from /proc): the checkpointers, the
//! store's dropper and the broker's span exporter run as SCHED_IDLE where a thread can come
//! back from it, the message path never does, and where it cannot come back (no CAP_SYS_NICE)
//! nothing changes.

#![cfg(target_os = "linux")]

mod common;

use common::{wait_for, wait_until, TestEnv};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

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
fn wait_for_policy(pid: u32, prefix: &str, policy: u32) {
    let what = format!("{prefix} threads with policy {policy}");
    wait_until(&what, Duration::from_secs(10), || {
        let seen = policies(pid, prefix);
        if !seen.is_empty() && seen.iter().all(|&p| p == policy) {
            Ok(())
        } else {
            Err(format!(
                "{prefix}: policies {seen:?}; all: {:?}",
                threads(pid)
            ))
        }
    });
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
    wait_for_policy(pid, "store-checkpoin", background);
    wait_for_policy(pid, "broker-checkpoi", background);
    wait_for_policy(pid, "store-dropper", background);

    // A trickle of broker traffic: each publish waits until its span is stored, so every
    // export batch is partial and the exporter goes to the background too, and the writer is
    // back to normal between its groups.
    let c = env.broker("shop");
    c.declare_topic("orders").unwrap();
    for n in 0..20 {
        let before = env.spans_in_store();
        c.publish_json("orders", &json!({ "n": n }), None).unwrap();
        wait_for("the publish span stored", Duration::from_secs(20), || {
            (env.spans_in_store() > before).then_some(())
        });
    }
    wait_for_policy(pid, "OpenTelemetry", background);
    wait_for_policy(pid, "store-writer", SCHED_OTHER);

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
    assert!(env.spans_in_store() >= 20, "broker spans not stored");
}
