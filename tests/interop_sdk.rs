//! Live interoperability: the recording scenarios run with real OpenTelemetry SDKs (Python
//! pika, aio-pika and Celery over OTLP protobuf on HTTP or gRPC, Node.js amqplib over
//! OTLP/JSON or gRPC) against a real RabbitMQ and export straight to a running Switchyard.

mod common;

use common::builder::now_unix_nanos;
use common::expected::Expected;
use common::fixtures::Window;
use common::{expected, topo, wait_for, wait_with_deadline, TestEnv};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest run of the scenarios (they set up their toolchain first when it is missing).
const SCENARIO_DEADLINE: Duration = Duration::from_secs(15 * 60);

fn require_rabbitmq() {
    let rabbit = "127.0.0.1:5672".parse().unwrap();
    if let Err(e) = std::net::TcpStream::connect_timeout(&rabbit, Duration::from_secs(5)) {
        panic!("RabbitMQ is not reachable on {rabbit} ({e}); the interop test needs it running");
    }
}

/// Runs `tools/record/run_scenarios.sh` against `env` (OTLP/HTTP, and OTLP/gRPC for the
/// `-grpc` scenarios) with names suffixed by `suffix`, then waits (bounded) until every edge
/// `want` names is complete, and returns that topology.
fn run_scenarios(env: &TestEnv, suffix: &str, scenarios: &[&str], want: &Expected) -> Value {
    require_rabbitmq();
    let started = now_unix_nanos();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/record/run_scenarios.sh");
    let log_path = env.dir().join("scenarios.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(&script)
        .arg(env.otlp_endpoint())
        .args(scenarios)
        .env("RUN_SUFFIX", suffix)
        .env("OTLP_GRPC_ENDPOINT", env.grpc_url())
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
    // The exporters flush when each process exits; poll (bounded) until every edge is complete.
    wait_for(
        "the exported spans to form the expected topology",
        Duration::from_secs(60),
        || {
            let window = Window::covering(started, now_unix_nanos());
            let t = env.topology(&window);
            let got: Vec<_> = topo::edges(&t)
                .into_iter()
                .map(|((k, f, to), (c, e))| (k, f, to, c, e))
                .collect();
            want.edges.iter().all(|e| got.contains(e)).then_some(t)
        },
    )
}

#[test]
fn python_pika_and_node_amqplib_sdks_build_the_recorded_topology() {
    let env = TestEnv::start();
    let suffix = format!(".t{}", std::process::id());
    let want = expected::python_pika(&suffix).and(expected::node_amqplib(&suffix));
    let t = run_scenarios(&env, &suffix, &["python-pika", "node-amqplib-json"], &want);
    want.assert_topology(&t);
    let temporary = &topo::nodes(&t)[&topo::rabbit(expected::TEMPORARY)];
    assert_eq!(
        temporary["kind"], "destination",
        "the reply queue is folded into (temporary)"
    );
}

#[test]
fn python_aio_pika_over_http_celery_and_node_amqplib_over_grpc_build_the_recorded_topology() {
    let env = TestEnv::start();
    let suffix = format!(".u{}", std::process::id());
    let want = expected::python_aio_pika(&suffix)
        .and(expected::python_celery(&suffix))
        .and(expected::node_amqplib(&suffix));
    let t = run_scenarios(
        &env,
        &suffix,
        &["python-aio-pika", "python-celery-grpc", "node-amqplib-grpc"],
        &want,
    );
    want.assert_topology(&t);
}
