//! Live interoperability: the recording scenarios run with real OpenTelemetry SDKs (Python
//! pika, aio-pika and Celery over OTLP protobuf on HTTP or gRPC, Node.js amqplib over
//! OTLP/JSON or gRPC, nats-py with the SDK's W3C propagator) against a real RabbitMQ or NATS
//! JetStream and export to a running Switchyard, straight or through an intermediate
//! collector (rotel). With broker discovery on, the topology from traces alone, from the
//! broker alone and from both merged is each what the scenario built.

mod common;

use common::builder::now_unix_nanos;
use common::expected::Expected;
use common::fixtures::Window;
use common::nats::NatsServer;
use common::topo::nats;
use common::TestEnv;
use common::{
    discover_flags, expected, topo, wait_for, wait_until, wait_with_deadline, with_flags,
};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Longest run of the scenarios (they set up their toolchain first when it is missing).
const SCENARIO_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// Longest wait for broker state to show: RabbitMQ's management API collects statistics every
/// 5 s, and discovery polls every second.
const BROKER_DEADLINE: Duration = Duration::from_secs(60);

fn require_rabbitmq() {
    let rabbit = "127.0.0.1:5672".parse().unwrap();
    if let Err(e) = std::net::TcpStream::connect_timeout(&rabbit, Duration::from_secs(5)) {
        panic!("RabbitMQ is not reachable on {rabbit} ({e}); the interop test needs it running");
    }
}

/// The scenarios of `tools/record/run_scenarios.sh`, running against a server.
struct Run {
    child: std::process::Child,
    log_path: PathBuf,
}

impl Run {
    /// Starts `tools/record/run_scenarios.sh` against `env` (OTLP/HTTP, and OTLP/gRPC for the
    /// `-grpc` scenarios) with names suffixed by `suffix` and `extra` in its environment.
    fn start(env: &TestEnv, suffix: &str, scenarios: &[&str], extra: &[(&str, String)]) -> Run {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/record/run_scenarios.sh");
        let log_path = env
            .dir()
            .join(format!("scenarios-{}.log", now_unix_nanos()));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(&script)
            .arg(env.otlp_endpoint())
            .args(scenarios)
            .env("RUN_SUFFIX", suffix)
            .env("OTLP_GRPC_ENDPOINT", env.grpc_url())
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        Run { child, log_path }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded) for the scenarios to end and asserts they succeeded; their output.
    fn finish(mut self) -> String {
        let status = wait_with_deadline(&mut self.child, SCENARIO_DEADLINE);
        let Some(status) = status else {
            // The scenario processes share the script's process group.
            unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
            let _ = self.child.wait();
            panic!(
                "the scenarios did not finish within {SCENARIO_DEADLINE:?}:\n{}",
                self.output()
            );
        };
        assert!(
            status.success(),
            "run_scenarios.sh failed ({status}):\n{}",
            self.output()
        );
        self.output()
    }
}

/// Polls (bounded) `env`'s topology since `started` until every edge `want` names is there
/// with its counts, and returns that topology.
fn wait_for_edges(env: &TestEnv, started: u64, want: &Expected) -> Value {
    // The exporters flush when each process exits; poll until every edge is complete.
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

/// Runs the scenarios to their end against `env`, then waits (bounded) until every edge
/// `want` names is complete, and returns that topology.
fn run_scenarios(env: &TestEnv, suffix: &str, scenarios: &[&str], want: &Expected) -> Value {
    run_scenarios_with(env, suffix, scenarios, &[], want).0
}

/// [`run_scenarios`] with more environment; also returns the scenarios' output.
fn run_scenarios_with(
    env: &TestEnv,
    suffix: &str,
    scenarios: &[&str],
    extra: &[(&str, String)],
    want: &Expected,
) -> (Value, String) {
    if !scenarios.iter().any(|s| s.contains("nats")) {
        require_rabbitmq();
    }
    let started = now_unix_nanos();
    let output = Run::start(env, suffix, scenarios, extra).finish();
    (wait_for_edges(env, started, want), output)
}

/// (kind, from, to, count, errors, seen_in) of an expected edge.
type WantEdge<'a> = (&'a str, &'a str, &'a str, i64, i64, &'a [&'a str]);

/// What the merge of traces and broker state is judged on: each node with where it was seen
/// and its entity, each edge with its counts and where it was seen.
#[derive(Debug, PartialEq)]
struct Seen {
    nodes: BTreeSet<(String, Vec<String>, Option<String>)>,
    edges: BTreeSet<(String, String, String, i64, i64, Vec<String>)>,
}

fn seen_in(v: &Value) -> Vec<String> {
    v["seen_in"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Seen {
    fn of(t: &Value) -> Seen {
        let nodes = topo::nodes(t)
            .into_values()
            .map(|n| {
                let entity = n["entity"].as_str().map(str::to_string);
                (
                    n["id"].as_str().unwrap_or("").to_string(),
                    seen_in(&n),
                    entity,
                )
            })
            .collect();
        let edges = t["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or("").to_string();
                let count = |k: &str| e[k].as_i64().unwrap_or(-1);
                let (kind, from, to) = (text("kind"), text("from"), text("to"));
                (kind, from, to, count("count"), count("errors"), seen_in(e))
            })
            .collect();
        Seen { nodes, edges }
    }

    fn want(nodes: &[(&str, &[&str], Option<&str>)], edges: &[WantEdge]) -> Seen {
        let list = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Seen {
            nodes: nodes
                .iter()
                .map(|(id, seen, entity)| (id.to_string(), list(seen), entity.map(str::to_string)))
                .collect(),
            edges: edges
                .iter()
                .map(|(k, f, t, c, e, seen)| {
                    (
                        k.to_string(),
                        f.to_string(),
                        t.to_string(),
                        *c,
                        *e,
                        list(seen),
                    )
                })
                .collect(),
        }
    }
}

/// Waits (bounded) until `env`'s topology since `started` is exactly `want`; that topology.
fn wait_for_seen(env: &TestEnv, what: &str, started: u64, want: &Seen) -> Value {
    wait_until(what, BROKER_DEADLINE, || {
        let t = env.topology(&Window::covering(started, now_unix_nanos()));
        let got = Seen::of(&t);
        if got == *want {
            return Ok(t);
        }
        let missing_nodes: Vec<_> = want.nodes.difference(&got.nodes).collect();
        let extra_nodes: Vec<_> = got.nodes.difference(&want.nodes).collect();
        let missing_edges: Vec<_> = want.edges.difference(&got.edges).collect();
        let extra_edges: Vec<_> = got.edges.difference(&want.edges).collect();
        Err(format!(
            "nodes missing {missing_nodes:#?} unexpected {extra_nodes:#?}; edges missing {missing_edges:#?} unexpected {extra_edges:#?}"
        ))
    })
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

/// NATS JetStream (`tools/record/python/orders_nats.py`: nats-py, the SDK's W3C propagator
/// carrying the trace context in message headers) on a `nats-server` of the test's own, with
/// JetStream discovery. Traces name subjects, the broker the stream that stores them: merged,
/// they are one node, the stream, seen in both; the durables name the consumers' services.
#[test]
fn python_nats_jetstream_from_traces_from_discovery_and_merged() {
    let server = NatsServer::start(&[]);
    let extra = [("NATS_URL", server.url())];
    let want = expected::python_nats("");

    // Traces alone: subjects.
    let traced = TestEnv::start();
    let (t, _) = run_scenarios_with(&traced, "", &["python-nats"], &extra, &want);
    want.assert_topology(&t);

    // Discovery alone: the stream and its durable consumers outlive the scenario's clients.
    let env = with_flags(&discover_flags(&format!("nats={}", server.url())));
    let started = now_unix_nanos();
    let stream = nats("ORDERS");
    let (checkout, invoicer, auditor) = (
        topo::service("checkout"),
        topo::service("invoicer"),
        topo::service("auditor"),
    );
    let broker: &[&str] = &["broker"];
    let both: &[&str] = &["traces", "broker"];
    let alone = Seen::want(
        &[
            (&stream, broker, Some("stream")),
            (&invoicer, broker, None),
            (&auditor, broker, None),
        ],
        &[
            ("consume", &stream, &invoicer, 0, 0, broker),
            ("consume", &stream, &auditor, 0, 0, broker),
        ],
    );
    let t = wait_for_seen(&env, "JetStream discovery alone", started, &alone);
    let edge = topo::edge(&t, "consume", &stream, &invoicer);
    assert_eq!(edge["key"], "orders.created", "the filter subject: {edge}");
    assert_eq!(edge["broker"]["pending"], 0, "{edge}");
    assert_eq!(topo::nodes(&t)[&stream]["broker"]["messages"], 6);

    // Merged: the same scenario again, exporting to the server that discovers.
    run_scenarios_with(&env, "", &["python-nats"], &extra, &Expected::default());
    let merged = Seen::want(
        &[
            (&stream, both, Some("stream")),
            (&checkout, &["traces"], None),
            (&invoicer, both, None),
            (&auditor, both, None),
        ],
        &[
            ("publish", &checkout, &stream, 6, 0, &["traces"]),
            ("consume", &stream, &invoicer, 4, 1, both),
            ("consume", &stream, &auditor, 6, 0, both),
        ],
    );
    let t = wait_for_seen(
        &env,
        "traces merged with JetStream discovery",
        started,
        &merged,
    );
    topo::assert_same_set(
        "dependencies (from, to, via, count)",
        topo::dependencies(&t),
        [
            (
                (checkout.clone(), invoicer.clone(), stream.clone()),
                Some(4),
            ),
            ((checkout.clone(), auditor.clone(), stream.clone()), Some(6)),
        ],
    );
    assert_eq!(
        topo::edge(&t, "consume", &stream, &invoicer)["instances"],
        2,
        "two invoicer instances share the durable"
    );
}

/// The management API, as the machine's guest user.
fn management(method: &str, path: &str, body: Option<Value>) -> Result<(), String> {
    let request = ureq::request(method, &format!("http://127.0.0.1:15672/api/{path}"))
        .timeout(Duration::from_secs(10))
        .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=");
    let answer = match body {
        Some(b) => request
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => request.call(),
    };
    answer.map(|_| ()).map_err(|e| e.to_string())
}

/// A virtual host of the test's own on the machine's RabbitMQ (guest may use it); deleted on
/// drop, with everything in it.
struct Vhost(String);

impl Vhost {
    fn create(name: &str) -> Vhost {
        let path = switchyard::percent::encode(name);
        management("PUT", &format!("vhosts/{path}"), Some(json!({})))
            .unwrap_or_else(|e| panic!("the management API (tools/rabbitmq/management.sh): {e}"));
        let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
        management("PUT", &format!("permissions/{path}/guest"), Some(all)).expect("permissions");
        Vhost(name.to_string())
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let path = switchyard::percent::encode(&self.0);
        let _ = management("DELETE", &format!("vhosts/{path}"), None);
    }
}

/// pika's broadcast (`shop.py`, fanout exchange `order.created` to two queues) in a virtual
/// host of its own, with RabbitMQ discovery of that virtual host. pika names the exchange on
/// both sides; discovery knows each consumer's queue (from its connection name), so merged
/// the consumes move to the queues and the binding carries the routed messages.
#[test]
fn python_pika_broadcast_from_traces_from_discovery_and_merged() {
    require_rabbitmq();
    let vhost = Vhost::create(&format!("sy-interop-{}", std::process::id()));
    let suffix = format!(".v{}", std::process::id());
    let want = expected::broadcast(&suffix);
    let in_vhost = ("AMQP_VHOST", vhost.0.clone());

    // Traces alone.
    let traced = TestEnv::start();
    let (t, _) = run_scenarios_with(
        &traced,
        &suffix,
        &["python-pika-gzip"],
        std::slice::from_ref(&in_vhost),
        &want,
    );
    want.assert_topology(&t);

    // Discovery alone and merged at once: the consumers stay connected (the scenario holds
    // them after exporting their spans) until the release file exists.
    let spec = format!(
        "rabbitmq=http://guest:guest@127.0.0.1:15672/{}",
        switchyard::percent::encode(&vhost.0)
    );
    let discovered = with_flags(&discover_flags(&spec));
    let merged = with_flags(&discover_flags(&spec));
    let release = merged.dir().join("release");
    let started = now_unix_nanos();
    let hold = ("SHOP_HOLD_FILE", release.to_string_lossy().to_string());
    let run = Run::start(&merged, &suffix, &["python-pika-gzip"], &[in_vhost, hold]);
    let r = |name: &str| topo::rabbit(&format!("{name}{suffix}"));
    let (exchange, shipping_q, billing_q) = (
        r("order.created"),
        r("shipping.order-created"),
        r("billing.order-created"),
    );
    let (orders, shipping, billing) = (
        topo::service("orders"),
        topo::service("shipping"),
        topo::service("billing"),
    );
    let broker: &[&str] = &["broker"];
    let both: &[&str] = &["traces", "broker"];
    let alone = Seen::want(
        &[
            (&exchange, broker, Some("exchange")),
            (&shipping_q, broker, Some("queue")),
            (&billing_q, broker, Some("queue")),
            (&shipping, broker, None),
            (&billing, broker, None),
        ],
        &[
            ("route", &exchange, &shipping_q, 0, 0, broker),
            ("route", &exchange, &billing_q, 0, 0, broker),
            ("consume", &shipping_q, &shipping, 0, 0, broker),
            ("consume", &billing_q, &billing, 0, 0, broker),
        ],
    );
    let both_views = Seen::want(
        &[
            (&orders, &["traces"], None),
            (&exchange, both, Some("exchange")),
            (&shipping_q, both, Some("queue")),
            (&billing_q, both, Some("queue")),
            (&shipping, both, None),
            (&billing, both, None),
        ],
        &[
            ("publish", &orders, &exchange, 5, 0, &["traces"]),
            ("route", &exchange, &shipping_q, 5, 0, both),
            ("route", &exchange, &billing_q, 5, 0, both),
            ("consume", &shipping_q, &shipping, 5, 0, both),
            ("consume", &billing_q, &billing, 5, 1, both),
        ],
    );
    let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for_seen(&discovered, "RabbitMQ discovery alone", started, &alone);
        wait_for_seen(
            &merged,
            "traces merged with RabbitMQ discovery",
            started,
            &both_views,
        )
    }));
    std::fs::write(&release, b"").expect("release the consumers");
    let output = run.finish();
    let t = match checks {
        Ok(t) => t,
        Err(panic) => {
            eprintln!("scenario output:\n{output}");
            std::panic::resume_unwind(panic)
        }
    };
    topo::assert_same_set(
        "dependencies (from, to, via, count)",
        topo::dependencies(&t),
        [
            (
                (orders.clone(), shipping.clone(), shipping_q.clone()),
                Some(5),
            ),
            (
                (orders.clone(), billing.clone(), billing_q.clone()),
                Some(5),
            ),
        ],
    );
}

/// One service exporting through an intermediate collector: the broadcast part of pika's shop
/// exports to rotel (the pinned PyPI package's agent), which forwards OTLP/HTTP (gzip
/// protobuf, in its own batches) to Switchyard; the topology is the one of a direct export.
#[test]
fn python_pika_through_rotel_builds_the_same_topology() {
    let env = TestEnv::start();
    let suffix = format!(".r{}", std::process::id());
    let want = expected::broadcast(&suffix);
    let (t, output) = run_scenarios_with(&env, &suffix, &["python-pika-rotel"], &[], &want);
    assert!(output.contains("rotel 0.0.1"), "rotel forwarded: {output}");
    want.assert_topology(&t);
}
