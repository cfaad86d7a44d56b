//! Live Kafka interoperability: kafkajs (with @opentelemetry/instrumentation-kafkajs, OTLP/JSON)
//! and confluent-kafka (with opentelemetry-instrumentation-confluent-kafka, OTLP protobuf)
//! against a tansu broker of the test's own, exporting to a running Switchyard that also
//! discovers the broker (`--discover kafka=...`). The scenario is
//! `tools/record/kafka_scenario.sh`: topic orders (3 partitions), group billing with two
//! members (a work queue inside the group), group audit with one that fails two messages (a
//! broadcast across groups), producers in both languages, one message per produce request;
//! after the consumers stop, more messages that nobody reads. The topology from traces, from
//! the broker and merged, and the lag figures, are each what the scenario built.

mod common;

use common::browser::Browser;
use common::builder::now_unix_nanos;
use common::fixtures::Window;
use common::kafka::Tansu;
use common::topo::{edge, edges, nodes};
use common::{wait_for, wait_until, wait_with_deadline, TestEnv};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const SCENARIO_DEADLINE: Duration = Duration::from_secs(10 * 60);
const DEADLINE: Duration = Duration::from_secs(60);
/// Messages produced after the consumers stopped: each group's lag.
const AFTER_STOP: u64 = 3;

fn kafka(name: &str) -> String {
    format!("destination:kafka:{name}")
}

fn service(name: &str) -> String {
    format!("service:{name}")
}

/// Runs `tools/record/kafka_scenario.sh` against `env` and `broker`; its output.
fn run_scenario(env: &TestEnv, broker: &Tansu, suffix: &str) -> String {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/record/kafka_scenario.sh");
    let log_path = env.dir().join("kafka-scenario.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new(&script)
        .arg(env.otlp_endpoint())
        .env("KAFKA_BOOTSTRAP", broker.bootstrap())
        .env("RUN_SUFFIX", suffix)
        .env("AFTER_STOP", AFTER_STOP.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let status = wait_with_deadline(&mut child, SCENARIO_DEADLINE);
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let Some(status) = status else {
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
        panic!("the Kafka scenario did not finish within {SCENARIO_DEADLINE:?}:\n{output}");
    };
    assert!(
        status.success(),
        "kafka_scenario.sh failed ({status}):\n{output}"
    );
    output
}

fn node<'a>(t: &'a Value, id: &str) -> &'a Value {
    t["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .unwrap_or_else(|| panic!("no node {id} in {:#?}", nodes(t).keys()))
}

#[test]
fn kafkajs_and_confluent_kafka_from_traces_from_the_broker_and_merged() {
    let broker = Tansu::start();
    let spec = format!("kafka={}", broker.bootstrap());
    let env = TestEnv::with_args(&["--discover", &spec, "--discover-interval", "300ms"]);
    let started = now_unix_nanos();
    run_scenario(&env, &broker, "");
    let window = || Window::covering(started, now_unix_nanos());
    let orders = kafka("orders");

    // Traces: both producers publish to the topic, both groups' services consume all 12.
    let t = wait_until("the traced topology", DEADLINE, || {
        let t = env.topology(&window());
        let e = edges(&t);
        let consumed = |s: &str| {
            e.get(&("consume".into(), orders.clone(), service(s)))
                .map(|c| c.0)
        };
        if consumed("billing") == Some(12) && consumed("audit") == Some(12) {
            Ok(t)
        } else {
            Err(format!("{e:#?}\n{:#?}", nodes(&t).keys()))
        }
    });
    let e = edges(&t);
    assert_eq!(
        e.get(&("publish".into(), service("checkout-js"), orders.clone())),
        Some(&(6 + AFTER_STOP as i64, 0))
    );
    assert_eq!(
        e.get(&("publish".into(), service("checkout-py"), orders.clone())),
        Some(&(6, 0))
    );
    assert_eq!(
        e.get(&("consume".into(), orders.clone(), service("audit"))),
        Some(&(12, 2)),
        "audit failed order-3 and order-9"
    );
    let billing = edge(&t, "consume", &orders, &service("billing"));
    assert_eq!(billing["instances"], 2, "{billing}");
    assert_eq!(node(&t, &orders)["entity"], "topic");

    // The broker: once the consumers left, each group's lag is what came after.
    let pending = |t: &Value, s: &str| {
        t["edges"].as_array()?.iter().find(|e| {
            e["kind"] == "consume" && e["from"] == orders.as_str() && e["to"] == service(s)
        })?["broker"]["pending"]
            .as_u64()
    };
    let t = wait_for("each group's lag after it stopped", DEADLINE, || {
        let t = env.topology(&window());
        (pending(&t, "billing") == Some(AFTER_STOP) && pending(&t, "audit") == Some(AFTER_STOP))
            .then_some(t)
    });
    // Merged: one topic node and one edge per group, seen by both.
    let topic = node(&t, &orders);
    assert_eq!(topic["seen_in"], serde_json::json!(["traces", "broker"]));
    let partitions = topic["broker"]["lag"].as_array().expect("partitions");
    assert_eq!(partitions.len(), 3, "{topic}");
    let written: u64 = partitions
        .iter()
        .filter_map(|p| p["end_offset"].as_u64())
        .sum();
    assert_eq!(
        written,
        12 + AFTER_STOP,
        "one message per request: exact end offsets"
    );
    assert_eq!(
        topic["broker"]["pending"],
        2 * AFTER_STOP,
        "both groups' lag"
    );
    for group in ["billing", "audit"] {
        let e = edge(&t, "consume", &orders, &service(group));
        assert_eq!(e["seen_in"], serde_json::json!(["traces", "broker"]), "{e}");
        assert_eq!(e["key"], group, "the group from the broker: {e}");
        assert_eq!(e["broker"]["consumers"], 0, "stopped: {e}");
        let lags: u64 = e["broker"]["lag"]
            .as_array()
            .expect("per partition")
            .iter()
            .filter_map(|p| p["lag"].as_u64())
            .sum();
        assert_eq!(lags, AFTER_STOP, "{e}");
    }
    // Partition by partition, from the API and on the topic's page in a real browser: every
    // partition read by both groups, each group's lag over them what came after it stopped.
    let p = env.get_json(&format!(
        "/api/partitions?node={orders}&{}",
        window().query()
    ));
    let parts = p["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 3, "{p}");
    let ends: u64 = parts.iter().filter_map(|p| p["end_offset"].as_u64()).sum();
    assert_eq!(ends, 12 + AFTER_STOP, "{p}");
    let lags: u64 = parts.iter().filter_map(|p| p["lag"].as_u64()).sum();
    assert_eq!(lags, 2 * AFTER_STOP, "{p}");
    for part in parts {
        let groups: Vec<&str> = part["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["group"].as_str())
            .collect();
        assert_eq!(groups, vec!["audit", "billing"], "{part}");
        assert_eq!(part["consumers"], 0, "stopped: {part}");
    }
    for group in ["billing", "audit"] {
        let lag: u64 = parts
            .iter()
            .flat_map(|p| p["groups"].as_array().into_iter().flatten())
            .filter(|g| g["group"] == group)
            .filter_map(|g| g["lag"].as_u64())
            .sum();
        assert_eq!(lag, AFTER_STOP, "{group}: {p}");
    }
    // The traces agree with the broker partition by partition: what each group's service
    // consumed from a partition, as its spans name it, is the group's committed offset there.
    for part in parts {
        for group in ["billing", "audit"] {
            let committed = part["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["group"] == group)
                .and_then(|g| g["committed"].as_u64());
            let traced = part["services"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["node"] == service(group))
                .and_then(|s| s["consumed"].as_u64());
            assert_eq!(traced, committed, "{group}: {part}");
        }
    }
    let consumed: u64 = parts.iter().filter_map(|p| p["consumed"].as_u64()).sum();
    assert_eq!(
        consumed,
        2 * 12,
        "each group consumed the 12 messages once: {p}"
    );
    if let Some(b) = Browser::start() {
        b.goto(&env.api_url(&format!(
            "/destinations/destination%3Akafka%3Aorders?{}",
            window().query()
        )));
        let shown = b.wait_for(
            "the partition table",
            "const rows = document.querySelectorAll('#partition-table .partition-row'); \
             return rows.length === 3 && Array.from(rows).map(r => ({ \
               end: Number(r.querySelector('.end-offset').textContent), \
               lag: Number(r.querySelector('.lag').textContent), \
               consumed: Number(r.querySelector('.traced-consumed').textContent), \
               groups: Array.from(r.querySelectorAll('.group-lag')).map(g => g.dataset.group) }));",
        );
        let rows = shown.as_array().expect("rows");
        let sum = |k: &str| rows.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
        assert_eq!(sum("end"), 12 + AFTER_STOP, "{shown}");
        assert_eq!(sum("lag"), 2 * AFTER_STOP, "{shown}");
        assert_eq!(sum("consumed"), 2 * 12, "{shown}");
        for r in rows {
            assert_eq!(
                r["groups"],
                serde_json::json!(["audit", "billing"]),
                "{shown}"
            );
        }
        b.screenshot("kafka-topic-partitions");
    }
    for producer in ["checkout-js", "checkout-py"] {
        let e = edge(&t, "publish", &service(producer), &orders);
        assert_eq!(e["seen_in"], serde_json::json!(["traces"]), "{e}");
    }
    let found: Vec<(String, Vec<String>)> = t["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let nodes = f["nodes"].as_array().into_iter().flatten();
            (
                f["pattern"].as_str().unwrap_or_default().to_string(),
                nodes.filter_map(|n| n.as_str().map(String::from)).collect(),
            )
        })
        .collect();
    for (pattern, nodes) in [
        (
            "broadcast",
            vec![orders.clone(), service("audit"), service("billing")],
        ),
        ("work_queue", vec![orders.clone(), service("billing")]),
        ("backlog", vec![orders.clone(), service("billing")]),
        ("backlog", vec![orders.clone(), service("audit")]),
    ] {
        assert!(
            found.contains(&(pattern.to_string(), nodes.clone())),
            "{pattern} {nodes:?} in {found:#?}"
        );
    }

    // The broker alone: a server with no spans sees the topic, both groups and their lag.
    let alone = TestEnv::with_args(&["--discover", &spec, "--discover-interval", "300ms"]);
    let t = wait_for("the broker's topology", DEADLINE, || {
        let t = alone.topology(&window());
        (pending(&t, "billing") == Some(AFTER_STOP) && pending(&t, "audit") == Some(AFTER_STOP))
            .then_some(t)
    });
    let e = edges(&t);
    let kinds: Vec<&str> = e.keys().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds, vec!["consume", "consume"], "{e:#?}");
    assert_eq!(node(&t, &orders)["seen_in"], serde_json::json!(["broker"]));
    let brokers = alone.get_json("/api/brokers");
    assert!(
        brokers
            .to_string()
            .contains(&format!("kafka {}", broker.bootstrap())),
        "{brokers}"
    );
}
