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
        // A publisher the broker's counters suggest (`inferred`, broker-only) depends on how the
        // scenario's producers fall between two polls: tests/discover_rabbitmq.rs checks the
        // inference with controlled timing; here only what was reported or traced is compared.
        let edges = t["edges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| !(e["inferred"] == true && seen_in(e) == ["broker"]))
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
    common::rabbit_management(method, path, body)
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

/// A check of figures on a topology for a suffix (`Err`: what is not there yet).
type Settled = fn(&str, &Value) -> Result<(), String>;

/// One scenario seen three ways, each on its own RabbitMQ virtual host.
struct ThreeWay<'a> {
    /// Names each of its virtual host, suffix and test servers' files.
    name: &'a str,
    /// The scenario exporting to the server with traces alone (the `-grpc` variants export
    /// over OTLP/gRPC).
    traced_run: &'a str,
    /// The same scenario exporting to the server that also discovers (another transport).
    merged_run: &'a str,
    /// What traces alone build.
    traced: fn(&str) -> Expected,
    /// Queues of one consumer instance each that the scenario declares under names of the
    /// client's choosing (Celery's `bcast.<uuid>`): how many, read from discovery.
    per_instance: usize,
    /// (discovery alone, merged) for a suffix and those queues' node ids.
    seen: fn(&str, &[String]) -> (Seen, Seen),
    /// Figures the broker reports later than the shape (its statistics are sampled): both
    /// views are read again until this holds for the suffix (`Err`: what is not there yet).
    settled: Option<Settled>,
}

impl ThreeWay<'_> {
    /// `t`, or once `settled` is given, the view read again until it holds.
    fn settle(&self, env: &TestEnv, what: &str, started: u64, suffix: &str, t: Value) -> Value {
        let Some(settled) = self.settled else {
            return t;
        };
        wait_until(what, BROKER_DEADLINE, || {
            let t = env.topology(&Window::covering(started, now_unix_nanos()));
            settled(suffix, &t).map(|()| t)
        })
    }

    /// Runs the scenario to its end against a server with traces alone; then again against
    /// one with the traces and RabbitMQ discovery of the virtual host, beside a server with
    /// discovery alone. The consumers stay connected (they export their spans once every
    /// message is processed, `HOLD_FILE`) until both views are what `seen` says. The
    /// topologies (discovery alone, merged).
    fn check(&self) -> (Value, Value) {
        require_rabbitmq();
        let id = std::process::id();
        let vhost = Vhost::create(&format!("sy-{}-{id}", self.name));
        let suffix = format!(".{}{id}", self.name);
        let want = (self.traced)(&suffix);
        let in_vhost = ("AMQP_VHOST", vhost.0.clone());

        let traced = TestEnv::start();
        let (t, _) = run_scenarios_with(
            &traced,
            &suffix,
            &[self.traced_run],
            std::slice::from_ref(&in_vhost),
            &want,
        );
        want.assert_topology(&t);

        let spec = format!(
            "rabbitmq=http://guest:guest@127.0.0.1:15672/{}",
            switchyard::percent::encode(&vhost.0)
        );
        // The window opens before the servers' first poll, when the virtual host is empty:
        // the broker's counters then grow from nothing within it.
        let started = now_unix_nanos();
        let discovered = with_flags(&discover_flags(&spec));
        let merged = with_flags(&discover_flags(&spec));
        let release = merged.dir().join("release");
        let hold = ("HOLD_FILE", release.to_string_lossy().to_string());
        // Names of their own: RabbitMQ's statistics of a queue declared again under an old
        // name carry the old one's counters on.
        let suffix = format!("{suffix}m");
        let run = Run::start(&merged, &suffix, &[self.merged_run], &[in_vhost, hold]);
        let checks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let named = self.per_instance_queues(&discovered, started);
            let (alone, both_views) = (self.seen)(&suffix, &named);
            let alone = wait_for_seen(&discovered, "RabbitMQ discovery alone", started, &alone);
            let alone = self.settle(
                &discovered,
                "RabbitMQ discovery alone",
                started,
                &suffix,
                alone,
            );
            let both = wait_for_seen(
                &merged,
                "traces merged with RabbitMQ discovery",
                started,
                &both_views,
            );
            let both = self.settle(
                &merged,
                "traces merged with RabbitMQ discovery",
                started,
                &suffix,
                both,
            );
            (alone, both)
        }));
        std::fs::write(&release, b"").expect("release the consumers");
        let output = run.finish();
        match checks {
            Ok(t) => t,
            Err(panic) => {
                eprintln!("scenario output:\n{output}");
                std::panic::resume_unwind(panic)
            }
        }
    }
}

/// pika's nacks (`shop.py`'s retry part): settler nacks every first delivery with requeue and
/// dead-letters one message. No instrumentation marks a redelivery, and traces count each
/// message once; RabbitMQ counts the queue's redeliveries and holds the dead letter in the
/// queue its dead-letter exchange routes to. From the broker alone and merged, both are
/// failures of the consume edge and of the queue (with their reasons), the dead letter an
/// error.
#[test]
fn python_pika_redeliveries_and_dead_letters_are_failures_of_the_consume() {
    let (alone, merged) = ThreeWay {
        name: "retry",
        traced_run: "python-pika-retry",
        merged_run: "python-pika-retry",
        traced: expected::python_pika_retry,
        per_instance: 0,
        seen: retry_seen,
        settled: Some(retry_failures_counted),
    }
    .check();
    let suffix = format!(".retry{}m", std::process::id());
    let (payments, dead) = (
        topo::rabbit(&format!("payments{suffix}")),
        topo::rabbit(&format!("payments.dead{suffix}")),
    );
    let settler = topo::service("settler");
    let failures = json!({"dead_letter": 1, "redelivered": 4});
    for (view, t) in [("discovery alone", &alone), ("merged", &merged)] {
        let edge = topo::edge(t, "consume", &payments, &settler);
        assert_eq!(edge["failures"], failures, "{view}: {edge}");
        let queue = &topo::nodes(t)[&payments];
        assert_eq!(queue["failures"], failures, "{view}: {queue}");
        assert_eq!(queue["errors"], 1, "{view}: {queue}");
        assert_eq!(topo::nodes(t)[&dead]["broker"]["depth"], 1, "{view}");
    }
    assert_eq!(
        topo::edge(&merged, "consume", &payments, &settler)["instances"],
        1
    );
}

/// The same nacks in traces alone: pika records no `redelivered` bit, but each payment reaches
/// settler twice (its first delivery nacked with requeue), so the second consume of each is
/// stored as an error with `error.type` `redelivered` (its row and reason in the trace view,
/// found by "errors only"), and the consume edge counts 4 messages and 4 `redelivered`
/// failures, not errors.
#[test]
fn python_pika_redeliveries_show_in_traces_alone() {
    let id = std::process::id();
    let vhost = Vhost::create(&format!("sy-redelivered-{id}"));
    let suffix = format!(".redelivered{id}");
    let env = TestEnv::start();
    let (t, output) = run_scenarios_with(
        &env,
        &suffix,
        &["python-pika-retry"],
        &[("AMQP_VHOST", vhost.0.clone())],
        &expected::python_pika_retry(&suffix),
    );
    let payments = topo::rabbit(&format!("payments{suffix}"));
    let edge = topo::edge(&t, "consume", &payments, &topo::service("settler"));
    assert_eq!(
        edge["failures"],
        json!({"redelivered": 4}),
        "{edge}\n{output}"
    );
    assert_eq!(
        (&edge["count"], &edge["errors"]),
        (&json!(4), &json!(0)),
        "{edge}"
    );
    let failed = env.get_json("/api/traces?service=settler&status=error&limit=100")["traces"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed.len(), 4, "one failed trace per payment: {failed:?}");
    for trace in &failed {
        let id = trace["trace_id"].as_str().unwrap_or_default();
        let spans = env.trace_spans(id);
        let consumes: Vec<&Value> = spans
            .iter()
            .filter(|s| s["service"] == "settler" && s["kind"] == "consumer")
            .collect();
        let marked: Vec<&Value> = consumes
            .iter()
            .copied()
            .filter(|s| s["status"] == "error")
            .collect();
        assert_eq!((consumes.len(), marked.len()), (2, 1), "{spans:?}");
        assert_eq!(marked[0]["attributes"]["error.type"], "redelivered");
        let page = env.get(&format!("/traces/{id}")).text();
        assert!(
            page.contains(r#"class="err-reason""#),
            "{id}: no reason on the page"
        );
    }
}

/// The retry scenario's failures as the broker counts them: RabbitMQ's redelivery counter
/// reaches the statistics after the dead letter can (sampled every few seconds).
fn retry_failures_counted(suffix: &str, t: &Value) -> Result<(), String> {
    let payments = topo::rabbit(&format!("payments{suffix}"));
    let settler = topo::service("settler");
    let want = json!({"dead_letter": 1, "redelivered": 4});
    let edge = topo::edge(t, "consume", &payments, &settler);
    let queue = &topo::nodes(t)[&payments];
    if edge["failures"] == want && queue["failures"] == want {
        Ok(())
    } else {
        Err(format!(
            "edge failures {} and queue failures {}",
            edge["failures"], queue["failures"]
        ))
    }
}

fn retry_seen(suffix: &str, _: &[String]) -> (Seen, Seen) {
    let r = |name: &str| topo::rabbit(&format!("{name}{suffix}"));
    let (payments, dlx, dead) = (r("payments"), r("payments.dlx"), r("payments.dead"));
    let (cashier, settler) = (topo::service("cashier"), topo::service("settler"));
    let alone = Seen::want(
        &[
            (&payments, BROKER, Some("queue")),
            (&dlx, BROKER, Some("exchange")),
            (&dead, BROKER, Some("queue")),
            (&settler, BROKER, None),
            (&default_exchange(), BROKER, Some("exchange")),
        ],
        &[
            ("dead_letter", &payments, &dlx, 0, 0, BROKER),
            ("route", &dlx, &dead, 0, 0, BROKER),
            ("consume", &payments, &settler, 0, 1, BROKER),
        ],
    );
    let merged = Seen::want(
        &[
            (&cashier, TRACES, None),
            (&payments, BOTH, Some("queue")),
            (&dlx, BROKER, Some("exchange")),
            (&dead, BROKER, Some("queue")),
            (&settler, BOTH, None),
            (&default_exchange(), BROKER, Some("exchange")),
        ],
        &[
            ("publish", &cashier, &payments, 4, 0, TRACES),
            ("consume", &payments, &settler, 4, 1, BOTH),
            ("dead_letter", &payments, &dlx, 0, 0, BROKER),
            ("route", &dlx, &dead, 0, 0, BROKER),
        ],
    );
    (alone, merged)
}

impl ThreeWay<'_> {
    /// The ids of the `bcast.` queues discovery finds, once there are `per_instance` of them.
    fn per_instance_queues(&self, env: &TestEnv, started: u64) -> Vec<String> {
        if self.per_instance == 0 {
            return Vec::new();
        }
        wait_for(
            "the per-instance queues in discovery",
            BROKER_DEADLINE,
            || {
                let t = env.topology(&Window::covering(started, now_unix_nanos()));
                let ids: Vec<String> = topo::node_ids(&t)
                    .into_iter()
                    .filter(|id| id.starts_with(&topo::rabbit("bcast.")))
                    .collect();
                (ids.len() == self.per_instance).then_some(ids)
            },
        )
    }
}

/// The default exchange: a node once something was published through it.
fn default_exchange() -> String {
    topo::rabbit("")
}

const BROKER: &[&str] = &["broker"];
const TRACES: &[&str] = &["traces"];
const BOTH: &[&str] = &["traces", "broker"];

/// pika's broadcast (`shop.py`, fanout exchange `order.created` to two queues). pika names
/// the exchange on both sides; discovery knows each consumer's queue (from its connection
/// name), so merged the consumes move to the queues and the binding carries the routed
/// messages.
#[test]
fn python_pika_broadcast_from_traces_from_discovery_and_merged() {
    let (_, t) = ThreeWay {
        name: "pika",
        traced_run: "python-pika-gzip",
        merged_run: "python-pika-gzip",
        traced: expected::broadcast,
        per_instance: 0,
        seen: pika_broadcast_seen,
        settled: None,
    }
    .check();
    let suffix = format!(".pika{}m", std::process::id());
    let r = |name: &str| topo::rabbit(&format!("{name}{suffix}"));
    let (orders, shipping, billing) = (
        topo::service("orders"),
        topo::service("shipping"),
        topo::service("billing"),
    );
    topo::assert_same_set(
        "dependencies (from, to, via, count)",
        topo::dependencies(&t),
        [
            (
                (orders.clone(), shipping, r("shipping.order-created")),
                Some(5),
            ),
            ((orders, billing, r("billing.order-created")), Some(5)),
        ],
    );
}

fn pika_broadcast_seen(suffix: &str, _: &[String]) -> (Seen, Seen) {
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
    let alone = Seen::want(
        &[
            (&exchange, BROKER, Some("exchange")),
            (&shipping_q, BROKER, Some("queue")),
            (&billing_q, BROKER, Some("queue")),
            (&shipping, BROKER, None),
            (&billing, BROKER, None),
        ],
        &[
            ("route", &exchange, &shipping_q, 0, 0, BROKER),
            ("route", &exchange, &billing_q, 0, 0, BROKER),
            ("consume", &shipping_q, &shipping, 0, 0, BROKER),
            ("consume", &billing_q, &billing, 0, 0, BROKER),
        ],
    );
    let merged = Seen::want(
        &[
            (&orders, TRACES, None),
            (&exchange, BOTH, Some("exchange")),
            (&shipping_q, BOTH, Some("queue")),
            (&billing_q, BOTH, Some("queue")),
            (&shipping, BOTH, None),
            (&billing, BOTH, None),
        ],
        &[
            ("publish", &orders, &exchange, 5, 0, TRACES),
            ("route", &exchange, &shipping_q, 5, 0, BOTH),
            ("route", &exchange, &billing_q, 5, 0, BOTH),
            ("consume", &shipping_q, &shipping, 5, 0, BOTH),
            ("consume", &billing_q, &billing, 5, 1, BOTH),
        ],
    );
    (alone, merged)
}

/// Node amqplib (`stock.js`): a topic exchange, bound by pattern to catalog's queue. Traces
/// alone over OTLP/JSON, merged over OTLP/gRPC. amqplib's consume names the exchange the
/// message was published to; merged it moves to the bound queue.
#[test]
fn node_amqplib_from_traces_from_discovery_and_merged() {
    ThreeWay {
        name: "amqplib",
        traced_run: "node-amqplib-json",
        merged_run: "node-amqplib-grpc",
        traced: expected::node_amqplib,
        per_instance: 0,
        seen: amqplib_seen,
        settled: None,
    }
    .check();
}

fn amqplib_seen(suffix: &str, _: &[String]) -> (Seen, Seen) {
    let r = |name: &str| topo::rabbit(&format!("{name}{suffix}"));
    let (exchange, queue) = (r("stock.changed"), r("catalog.stock"));
    let (inventory, catalog) = (topo::service("inventory"), topo::service("catalog"));
    let alone = Seen::want(
        &[
            (&exchange, BROKER, Some("exchange")),
            (&queue, BROKER, Some("queue")),
            (&catalog, BROKER, None),
        ],
        &[
            ("route", &exchange, &queue, 0, 0, BROKER),
            ("consume", &queue, &catalog, 0, 0, BROKER),
        ],
    );
    let merged = Seen::want(
        &[
            (&inventory, TRACES, None),
            (&exchange, BOTH, Some("exchange")),
            (&queue, BOTH, Some("queue")),
            (&catalog, BOTH, None),
        ],
        &[
            ("publish", &inventory, &exchange, 4, 0, TRACES),
            ("route", &exchange, &queue, 4, 0, BOTH),
            ("consume", &queue, &catalog, 4, 0, BOTH),
        ],
    );
    (alone, merged)
}

/// aio-pika (`quotes.py`): a topic exchange to two services, a work queue with two indexer
/// instances on the default exchange, request/reply over a server-named reply queue. Traces
/// alone over OTLP/HTTP protobuf, merged over OTLP/gRPC.
#[test]
fn python_aio_pika_from_traces_from_discovery_and_merged() {
    ThreeWay {
        name: "aiopika",
        traced_run: "python-aio-pika",
        merged_run: "python-aio-pika-grpc",
        traced: expected::python_aio_pika,
        per_instance: 0,
        seen: aio_pika_seen,
        settled: None,
    }
    .check();
}

fn aio_pika_seen(suffix: &str, _: &[String]) -> (Seen, Seen) {
    let r = |name: &str| topo::rabbit(&format!("{name}{suffix}"));
    let (price, alerts_q, archive_q, jobs, quote) = (
        r("price.events"),
        r("alerts.price"),
        r("archive.price"),
        r("jobs"),
        r("quote.rpc"),
    );
    let temporary = topo::rabbit(expected::TEMPORARY);
    let s = topo::service;
    let (ticker, alerts, archive, ingest, indexer, gateway, pricing) = (
        s("ticker"),
        s("alerts"),
        s("archive"),
        s("ingest"),
        s("indexer"),
        s("gateway"),
        s("pricing"),
    );
    let alone = Seen::want(
        &[
            (&price, BROKER, Some("exchange")),
            (&alerts_q, BROKER, Some("queue")),
            (&archive_q, BROKER, Some("queue")),
            (&jobs, BROKER, Some("queue")),
            (&quote, BROKER, Some("queue")),
            (&alerts, BROKER, None),
            (&archive, BROKER, None),
            (&indexer, BROKER, None),
            (&pricing, BROKER, None),
            (&default_exchange(), BROKER, Some("exchange")),
        ],
        &[
            ("route", &price, &alerts_q, 0, 0, BROKER),
            ("route", &price, &archive_q, 0, 0, BROKER),
            ("consume", &alerts_q, &alerts, 0, 0, BROKER),
            ("consume", &archive_q, &archive, 0, 0, BROKER),
            ("consume", &jobs, &indexer, 0, 0, BROKER),
            ("consume", &quote, &pricing, 0, 0, BROKER),
        ],
    );
    let merged = Seen::want(
        &[
            (&ticker, TRACES, None),
            (&ingest, TRACES, None),
            (&gateway, TRACES, None),
            (&price, BOTH, Some("exchange")),
            (&alerts_q, BOTH, Some("queue")),
            (&archive_q, BOTH, Some("queue")),
            (&jobs, BOTH, Some("queue")),
            (&quote, BOTH, Some("queue")),
            (&temporary, TRACES, None),
            (&alerts, BOTH, None),
            (&archive, BOTH, None),
            (&indexer, BOTH, None),
            (&pricing, BOTH, None),
            (&default_exchange(), BROKER, Some("exchange")),
        ],
        &[
            ("publish", &ticker, &price, 4, 0, TRACES),
            ("route", &price, &alerts_q, 4, 0, BOTH),
            ("route", &price, &archive_q, 4, 0, BOTH),
            ("consume", &alerts_q, &alerts, 4, 0, BOTH),
            ("consume", &archive_q, &archive, 4, 0, BOTH),
            ("publish", &ingest, &jobs, 6, 0, TRACES),
            ("consume", &jobs, &indexer, 6, 0, BOTH),
            ("publish", &gateway, &quote, 3, 0, TRACES),
            ("consume", &quote, &pricing, 3, 0, BOTH),
            ("publish", &pricing, &temporary, 3, 0, TRACES),
            ("consume", &temporary, &gateway, 3, 0, TRACES),
        ],
    );
    (alone, merged)
}

/// Celery (`press.py`, connections named through `broker_transport_options`): a work queue
/// with two renderer instances, a `Broadcast` (a fanout exchange, each worker's own
/// `bcast.<uuid>` queue) and request/reply (the rpc:// backend's replies are not traced).
/// Traces alone over OTLP/gRPC, merged over OTLP/HTTP protobuf.
#[test]
fn python_celery_from_traces_from_discovery_and_merged() {
    ThreeWay {
        name: "celery",
        traced_run: "python-celery-grpc",
        merged_run: "python-celery",
        traced: expected::python_celery,
        per_instance: 2,
        seen: celery_seen,
        settled: None,
    }
    .check();
}

/// An expected edge with owned node ids: kind, from, to, count, errors, seen_in.
type OwnedEdge = (
    &'static str,
    String,
    String,
    i64,
    i64,
    &'static [&'static str],
);

fn celery_seen(suffix: &str, bcast: &[String]) -> (Seen, Seen) {
    let r = |name: &str| topo::rabbit(&format!("{name}{suffix}"));
    let (render, mail, quote, flush) = (r("render"), r("mail"), r("quote"), r("cache.flush"));
    // The exchange Celery binds its queues to (its tasks go through the default exchange).
    let celery = topo::rabbit("celery");
    let s = topo::service;
    let (frontend, renderer, backoffice) = (s("frontend"), s("renderer"), s("backoffice"));
    let exchanges = [default_exchange(), celery.clone(), flush.clone()];
    let queues: Vec<&String> = [&render, &mail, &quote].into_iter().chain(bcast).collect();
    let nodes = |queues_seen: &'static [&'static str], flush_seen: &'static [&'static str]| {
        let mut n: Vec<(String, &[&str], Option<&str>)> = exchanges
            .iter()
            .map(|x| {
                let seen = if *x == flush { flush_seen } else { BROKER };
                (x.clone(), seen, Some("exchange"))
            })
            .collect();
        n.extend(
            queues
                .iter()
                .map(|q| ((*q).clone(), queues_seen, Some("queue"))),
        );
        n.push((renderer.clone(), queues_seen, None));
        n.push((backoffice.clone(), queues_seen, None));
        n
    };
    let routes = [&render, &mail, &quote].map(|q| ("route", celery.clone(), q.clone()));
    let edges = |traced: bool| {
        let (n, seen) = if traced { (1, BOTH) } else { (0, BROKER) };
        let mut e: Vec<OwnedEdge> = vec![
            ("consume", render.clone(), renderer.clone(), 6 * n, n, seen),
            ("consume", mail.clone(), backoffice.clone(), 5 * n, 0, seen),
            ("consume", quote.clone(), backoffice.clone(), 2 * n, 0, seen),
        ];
        e.extend(
            routes
                .iter()
                .map(|(k, f, t)| (*k, f.clone(), t.clone(), 0, 0, BROKER)),
        );
        for q in bcast {
            e.push(("route", flush.clone(), q.clone(), 2 * n, 0, seen));
            e.push(("consume", q.clone(), renderer.clone(), 2 * n, 0, seen));
        }
        if traced {
            e.extend([
                ("publish", frontend.clone(), render.clone(), 6, 0, TRACES),
                ("publish", renderer.clone(), mail.clone(), 5, 0, TRACES),
                ("publish", frontend.clone(), flush.clone(), 2, 0, TRACES),
                ("publish", frontend.clone(), quote.clone(), 2, 0, TRACES),
            ]);
        }
        e
    };
    let want = |nodes: &[(String, &[&str], Option<&str>)], edges: &[OwnedEdge]| {
        let nodes: Vec<(&str, &[&str], Option<&str>)> = nodes
            .iter()
            .map(|(id, seen, e)| (id.as_str(), *seen, *e))
            .collect();
        let edges: Vec<WantEdge> = edges
            .iter()
            .map(|(k, f, t, c, e, seen)| (*k, f.as_str(), t.as_str(), *c, *e, *seen))
            .collect();
        Seen::want(&nodes, &edges)
    };
    let alone = want(&nodes(BROKER, BROKER), &edges(false));
    let mut merged_nodes = nodes(BOTH, BOTH);
    merged_nodes.push((frontend.clone(), TRACES, None));
    let merged = want(&merged_nodes, &edges(true));
    (alone, merged)
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
