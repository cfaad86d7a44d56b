//! Live interoperability: the recording scenarios run with real OpenTelemetry SDKs (Python
//! pika over OTLP protobuf, Node.js amqplib over OTLP/JSON) against a real RabbitMQ and export
//! straight to a running Switchyard.

mod common;

use common::builder::now_unix_nanos;
use common::fixtures::Window;
use common::{expected, topo, wait_for, wait_with_deadline, TestEnv};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest run of the scenarios (they set up their toolchain first when it is missing).
const SCENARIO_DEADLINE: Duration = Duration::from_secs(15 * 60);

#[test]
fn python_pika_and_node_amqplib_sdks_build_the_recorded_topology() {
    let rabbit = "127.0.0.1:5672".parse().unwrap();
    if let Err(e) = std::net::TcpStream::connect_timeout(&rabbit, Duration::from_secs(5)) {
        panic!("RabbitMQ is not reachable on {rabbit} ({e}); the interop test needs it running");
    }
    let env = TestEnv::start();
    let suffix = format!(".t{}", std::process::id());
    let started = now_unix_nanos();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/record/run_scenarios.sh");
    let log_path = env.dir().join("scenarios.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(&script)
        .arg(env.otlp_endpoint())
        .args(["python-pika", "node-amqplib-json"])
        .env("RUN_SUFFIX", &suffix)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let status = wait_with_deadline(&mut child, SCENARIO_DEADLINE);
    let output = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let Some(status) = status else {
        // The scenario processes share the script's process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
        panic!(
            "the scenarios did not finish within {SCENARIO_DEADLINE:?}:\n{}",
            output()
        );
    };
    assert!(
        status.success(),
        "run_scenarios.sh failed ({status}):\n{}",
        output()
    );

    let want = expected::python_pika(&suffix).and(expected::node_amqplib(&suffix));
    let want_edges: Vec<_> = want.edges.clone();
    // The exporters flush when each process exits; poll (bounded) until every edge is complete.
    let t = wait_for(
        "the exported spans to form the expected topology",
        Duration::from_secs(60),
        || {
            let window = Window::covering(started, now_unix_nanos());
            let t = env.topology(&window);
            let got: Vec<_> = topo::edges(&t)
                .into_iter()
                .map(|((k, f, to), (c, e))| (k, f, to, c, e))
                .collect();
            want_edges.iter().all(|e| got.contains(e)).then_some(t)
        },
    );
    want.assert_topology(&t);
    let temporary = &topo::nodes(&t)[&topo::rabbit(expected::TEMPORARY)];
    assert_eq!(
        temporary["kind"], "destination",
        "the reply queue is folded into (temporary)"
    );
}
