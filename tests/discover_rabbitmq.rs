//! Discovery of the machine's RabbitMQ through its management API (the plugin is enabled by
//! `tools/rabbitmq/management.sh`, which `.ci/run` calls): a real scenario (exchanges, queues
//! with a dead-letter exchange from an argument and from a policy, bindings, consumers with and
//! without a connection name, a publisher) shows up in `/api/brokers` and `/api/topology`; a
//! broker that is down, silent, garbage-answering or refusing the credentials gives a visible
//! error while ingest keeps answering; credentials never show.
//!
//! `SWITCHYARD_RECORD=1 cargo test --release --test discover_rabbitmq -- --ignored record`
//! re-records `fixtures/rabbitmq/` (see fixtures/README.md).

mod common;

use common::builder::{protobuf, span};
use common::{discover_flags, wait_for, wait_until, with_flags, TestEnv};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

const MANAGEMENT: &str = "http://127.0.0.1:15672";
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// The management API collects statistics every 5 s: conditions on them may take that long.
const STATS: Duration = Duration::from_secs(30);

/// The management API, as the guest user.
struct Admin {
    agent: ureq::Agent,
}

impl Admin {
    fn new() -> Admin {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        Admin { agent }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let req = self
            .agent
            .request(method, &format!("{MANAGEMENT}/api/{path}"))
            .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=");
        let answer = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        let text = answer
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn put(&self, path: &str, body: Value) {
        self.call("PUT", path, Some(body))
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
    }

    fn get(&self, path: &str) -> Value {
        self.call("GET", path, None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

fn enc(name: &str) -> String {
    switchyard::percent::encode(name)
}

/// A scenario on the default vhost, named after `prefix`, removed on drop.
struct Scenario {
    admin: Admin,
    prefix: String,
    rt: tokio::runtime::Runtime,
    connections: Vec<Connection>,
    /// Held: a dropped consumer is cancelled.
    consumers: Vec<lapin::Consumer>,
    /// The `P-shop` connection's channel, open from the start (its statistics go with it).
    shop: Option<lapin::Channel>,
}

impl Scenario {
    /// Exchanges `P.orders` (topic) -> `P.billing` (key `order.*`, dead-letters to `P.dlx` by
    /// argument), `P.orders` -> `P.audit` (exchange to exchange) -> `P.audit-log` (dead-letters
    /// to `P.dlx` by policy), `P.dlx` -> `P.dead`; a consumer on `P.billing` named
    /// `P-billing-worker`, an unnamed one on `P.audit-log`, and a publisher connection `P-shop`.
    fn start(prefix: &str) -> Scenario {
        let admin = Admin::new();
        let p = prefix;
        for (x, kind) in [("orders", "topic"), ("audit", "fanout"), ("dlx", "fanout")] {
            admin.put(
                &format!("exchanges/%2F/{}", enc(&format!("{p}.{x}"))),
                json!({"type": kind}),
            );
        }
        admin.put(
            &format!("queues/%2F/{}", enc(&format!("{p}.billing"))),
            json!({"arguments": {"x-dead-letter-exchange": format!("{p}.dlx")}}),
        );
        for q in ["audit-log", "dead"] {
            admin.put(
                &format!("queues/%2F/{}", enc(&format!("{p}.{q}"))),
                json!({}),
            );
        }
        admin.put(
            &format!("policies/%2F/{}", enc(&format!("{p}-dlx"))),
            json!({"pattern": format!("^{}$", regex_escape(&format!("{p}.audit-log"))),
                   "definition": {"dead-letter-exchange": format!("{p}.dlx")}, "apply-to": "queues"}),
        );
        let bind = |from: &str, kind: &str, to: &str, key: &str| {
            let path = format!(
                "bindings/%2F/e/{}/{kind}/{}",
                enc(&format!("{p}.{from}")),
                enc(&format!("{p}.{to}"))
            );
            admin
                .call("POST", &path, Some(json!({"routing_key": key})))
                .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        };
        bind("orders", "q", "billing", "order.*");
        bind("orders", "e", "audit", "#");
        bind("audit", "q", "audit-log", "");
        bind("dlx", "q", "dead", "");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let mut s = Scenario {
            admin,
            prefix: p.to_string(),
            rt,
            connections: Vec::new(),
            consumers: Vec::new(),
            shop: None,
        };
        s.consume(
            Some(&format!("{p}-billing-worker")),
            &format!("{p}.billing"),
        );
        s.consume(None, &format!("{p}.audit-log"));
        let shop = s.connect(Some(&format!("{p}-shop")));
        s.shop = Some(s.rt.block_on(shop.create_channel()).expect("channel"));
        s.connections.push(shop);
        s
    }

    fn connect(&self, name: Option<&str>) -> Connection {
        let mut props = ConnectionProperties::default();
        if let Some(n) = name {
            props = props.with_connection_name(n.into());
        }
        self.rt
            .block_on(Connection::connect(AMQP, props))
            .expect("amqp connection")
    }

    fn consume(&mut self, name: Option<&str>, queue: &str) {
        let conn = self.connect(name);
        let consumer = self
            .rt
            .block_on(async {
                let ch = conn.create_channel().await?;
                let passive = QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                };
                ch.queue_declare(queue, passive, FieldTable::default())
                    .await?;
                ch.basic_consume(
                    queue,
                    "",
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            })
            .expect("consumer");
        self.consumers.push(consumer);
        self.connections.push(conn);
    }

    /// Publishes `n` messages to `P.orders` from the `P-shop` connection.
    fn publish(&self, n: usize) {
        let ch = self.shop.as_ref().expect("shop channel");
        let exchange = format!("{}.orders", self.prefix);
        self.rt
            .block_on(async {
                for _ in 0..n {
                    ch.basic_publish(
                        &exchange,
                        "order.created",
                        BasicPublishOptions::default(),
                        b"{}",
                        BasicProperties::default(),
                    )
                    .await?
                    .await?;
                }
                Ok::<_, lapin::Error>(())
            })
            .expect("publish");
    }

    /// Consumers of the scenario's queues, once the management API lists both.
    fn wait_for_consumers(&self) -> Vec<Value> {
        wait_for("both consumers listed", STATS, || {
            let all = self.admin.get("consumers/%2F");
            let ours: Vec<Value> = all
                .as_array()?
                .iter()
                .filter(|c| self.ours(c["queue"]["name"].as_str().unwrap_or("")))
                .cloned()
                .collect();
            (ours.len() == 2).then_some(ours)
        })
    }

    fn ours(&self, name: &str) -> bool {
        name.starts_with(&format!("{}.", self.prefix))
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        self.consumers.clear();
        self.shop = None;
        for c in self.connections.drain(..) {
            let _ = self.rt.block_on(c.close(200, "done"));
        }
        let p = &self.prefix;
        let _ = self.admin.call(
            "DELETE",
            &format!("policies/%2F/{}", enc(&format!("{p}-dlx"))),
            None,
        );
        for q in ["billing", "audit-log", "dead"] {
            let _ = self.admin.call(
                "DELETE",
                &format!("queues/%2F/{}", enc(&format!("{p}.{q}"))),
                None,
            );
        }
        for x in ["orders", "audit", "dlx"] {
            let _ = self.admin.call(
                "DELETE",
                &format!("exchanges/%2F/{}", enc(&format!("{p}.{x}"))),
                None,
            );
        }
    }
}

fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

fn unique_prefix() -> String {
    format!(
        "sy-{}-{}",
        std::process::id(),
        common::builder::now_unix_nanos() % 1_000_000_000
    )
}

/// `/api/brokers` once every broker has been polled at least `polls` times.
fn brokers_after(env: &TestEnv, polls: u64) -> Vec<Value> {
    wait_for("every broker polled", Duration::from_secs(45), || {
        let b = env.api().get_json("/api/brokers")["brokers"]
            .as_array()?
            .clone();
        b.iter()
            .all(|s| s["polls"].as_u64().unwrap_or(0) >= polls)
            .then_some(b)
    })
}

/// A user of the machine's RabbitMQ with a password no other text holds; removed on drop.
struct Watcher<'a> {
    admin: &'a Admin,
    user: String,
    password: String,
}

impl<'a> Watcher<'a> {
    fn create(admin: &'a Admin, prefix: &str) -> Watcher<'a> {
        let user = format!("{prefix}-watcher");
        let password = format!("Pw-{}-q7Zx", prefix.replace('-', ""));
        admin.put(
            &format!("users/{}", enc(&user)),
            json!({"password": password, "tags": "monitoring"}),
        );
        admin.put(
            &format!("permissions/%2F/{}", enc(&user)),
            json!({"configure": "", "write": "", "read": ".*"}),
        );
        Watcher {
            admin,
            user,
            password,
        }
    }
}

impl Drop for Watcher<'_> {
    fn drop(&mut self) {
        let _ = self
            .admin
            .call("DELETE", &format!("users/{}", enc(&self.user)), None);
    }
}

/// Everything a user can read of the server: pages, API, exports, its log.
fn everything_shown(env: &TestEnv) -> String {
    let api = env.api();
    [
        api.get("/brokers").text(),
        api.get("/api/brokers").text(),
        api.get("/api/topology").text(),
        api.get("/api/topology.dot").text(),
        env.server().announced.to_string(),
        env.log(1),
    ]
    .join("\n")
}

#[test]
fn a_real_broker_shows_in_brokers_and_topology() {
    let prefix = unique_prefix();
    let scenario = Scenario::start(&prefix);
    scenario.wait_for_consumers();
    let watcher = Watcher::create(&scenario.admin, &prefix);
    let url = format!(
        "rabbitmq=http://{}:{}@127.0.0.1:15672",
        enc(&watcher.user),
        enc(&watcher.password)
    );
    let env = with_flags(&discover_flags(&url));
    let p = &prefix;
    let q = |name: &str| common::topo::rabbit(&format!("{p}.{name}"));

    let worker = common::topo::service(&format!("{p}-billing-worker"));
    let unnamed = "external:guest (lapin)".to_string();
    let wanted = [
        ("route", q("orders"), q("billing")),
        ("route", q("orders"), q("audit")),
        ("dead_letter", q("billing"), q("dlx")),
        ("dead_letter", q("audit-log"), q("dlx")),
        ("consume", q("billing"), worker.clone()),
        ("consume", q("audit-log"), unnamed.clone()),
    ];
    // Policies and the queues' own figures follow the broker's statistics (every 5 s).
    let (status, t) = wait_until("a good poll with the scenario", STATS, || {
        let s = env.api().get_json("/api/brokers")["brokers"][0].clone();
        if s["state"] != "ok" {
            return Err(format!("not yet: {s}"));
        }
        let t = env.api().get_json("/api/topology");
        let edges = common::topo::edges(&t);
        let missing: Vec<_> = wanted
            .iter()
            .filter(|(k, from, to)| !edges.contains_key(&(k.to_string(), from.clone(), to.clone())))
            .collect();
        let consumers = common::topo::nodes(&t)
            .get(&q("billing"))
            .map(|n| n["broker"]["consumers"].clone());
        if missing.is_empty() && consumers == Some(json!(1)) {
            Ok((s, t))
        } else {
            Err(format!(
                "missing {missing:?}; billing consumers {consumers:?}"
            ))
        }
    });
    assert_eq!(status["broker"], "rabbitmq 127.0.0.1:15672", "{status}");
    assert_eq!(status["kind"], "rabbitmq");
    assert!(status["last_latency_micros"].as_u64().is_some(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");

    let nodes = common::topo::nodes(&t);
    for (name, entity) in [
        ("billing", "queue"),
        ("audit-log", "queue"),
        ("dead", "queue"),
        ("orders", "exchange"),
        ("dlx", "exchange"),
    ] {
        let n = &nodes[&q(name)];
        assert_eq!(n["entity"], entity, "{name}: {n}");
        assert!(
            n["seen_in"].as_array().unwrap().contains(&json!("broker")),
            "{n}"
        );
    }
    let route = common::topo::edge(&t, "route", &q("orders"), &q("billing"));
    assert!(
        route["seen_in"]
            .as_array()
            .unwrap()
            .contains(&json!("broker")),
        "{route}"
    );
    let consume = common::topo::edge(&t, "consume", &q("billing"), &worker);
    assert!(consume["seen_in"]
        .as_array()
        .unwrap()
        .contains(&json!("broker")));
    assert!(nodes[&worker]["seen_in"]
        .as_array()
        .unwrap()
        .contains(&json!("broker")));
    // The unnamed consumer is an external node named by its user and client product, never by
    // an address.
    assert!(nodes.contains_key(&unnamed), "{:?}", nodes.keys());

    // A publisher on a broker with basic rates is inferred from the counters.
    scenario.publish(5);
    let shop = common::topo::service(&format!("{p}-shop"));
    wait_for("the inferred publisher", STATS, || {
        let t = env.api().get_json("/api/topology");
        common::topo::edges(&t)
            .contains_key(&("publish".into(), shop.clone(), q("orders")))
            .then_some(())
    });

    let shown = everything_shown(&env);
    assert!(
        !shown.contains(&watcher.password),
        "the password shows somewhere"
    );
    let page = env.api().get("/brokers").text();
    assert!(
        page.contains("rabbitmq 127.0.0.1:15672") && page.contains("ok"),
        "{page}"
    );
}

/// Accepts connections and answers each with `answer` (nothing at all when `None`), until the
/// test ends.
fn fake_broker(answer: Option<&'static [u8]>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if let Some(a) = answer {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(a);
            } else {
                held.push(stream);
            }
        }
    });
    addr.to_string()
}

#[test]
fn failing_brokers_are_visible_and_ingest_keeps_answering() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let silent = fake_broker(None);
    let garbage = fake_broker(Some(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\n<html>oops!",
    ));
    let password = "Wrong-Pw-5rT9-distinct";
    let values = [
        format!("rabbitmq=http://u:{password}@{closed}"),
        format!("rabbitmq=http://u:{password}@{silent}"),
        format!("rabbitmq=http://u:{password}@{garbage}"),
        format!("rabbitmq=http://guest:{password}@127.0.0.1:15672"),
        // A name with markup: shown escaped.
        format!("rabbitmq=http://u:{password}@x<img>:1"),
    ];
    let mut flags = Vec::new();
    for v in &values {
        flags.extend(["--discover".to_string(), v.clone()]);
    }
    flags.extend(["--discover-interval".to_string(), "1s".to_string()]);
    let env = with_flags(&flags);

    let brokers = brokers_after(&env, 1);
    let error = |i: usize| brokers[i]["last_error"].as_str().unwrap_or("").to_string();
    assert!(
        brokers.iter().all(|b| b["state"] == "failing"),
        "{brokers:?}"
    );
    assert!(error(0).starts_with("unreachable"), "{}", error(0));
    assert!(error(1).starts_with("no answer within"), "{}", error(1));
    assert!(error(2).contains("not the expected JSON"), "{}", error(2));
    assert_eq!(error(3), "refused the credentials (HTTP 401)");
    assert_eq!(brokers[1]["broker"], format!("rabbitmq {silent}"));

    // Ingest answers while every broker fails.
    let body = protobuf(&[&span("shop", "publish", common::builder::Producer)]);
    let r = env.post_otlp(
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &body,
    );
    assert_eq!(r.status, 200);

    let page = env.api().get("/brokers").text();
    for b in &brokers[..4] {
        assert!(page.contains(b["broker"].as_str().unwrap()), "{page}");
    }
    assert!(
        page.contains("refused the credentials (HTTP 401)"),
        "{page}"
    );
    assert!(page.contains("failing"), "{page}");
    assert_eq!(brokers[4]["broker"], "rabbitmq x<img>:1");
    assert!(error(4).starts_with("unreachable"), "{}", error(4));
    assert!(
        page.contains("rabbitmq x&#60;img&#62;:1") && !page.contains("<img"),
        "{page}"
    );
    assert!(
        !everything_shown(&env).contains(password),
        "the password shows somewhere"
    );
    // A poll in flight (the silent broker) does not hold up a clean stop.
    let mut env = env;
    assert!(env.sigterm().success());
}

#[test]
fn bad_discover_values_name_the_flag_and_hide_the_password() {
    let out = std::process::Command::new(common::binary())
        .args([
            "serve",
            "--discover",
            "rabbitmq=ftp://u:Hidden-Pw-3k@h:1",
            "--http",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--discover"), "{text}");
    assert!(!text.contains("Hidden-Pw-3k"), "{text}");
    let out = std::process::Command::new(common::binary())
        .args(["serve", "--discover-interval", "soon"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--discover-interval"));
}

/// The scenario's part of one poll's answers: its exchanges (and the built-in ones), queues,
/// bindings, consumers, and the connections and channels behind its consumers and publisher.
fn record_poll(s: &Scenario, dir: &std::path::Path) {
    let ours = |v: &Value, key: &str| v[key].as_str().is_some_and(|n| s.ours(n));
    let list = |what: &str| s.admin.get(what).as_array().cloned().unwrap_or_default();
    let exchanges: Vec<Value> = list("exchanges/%2F")
        .into_iter()
        .filter(|e| {
            ours(e, "name")
                || e["name"]
                    .as_str()
                    .is_some_and(|n| n.is_empty() || n.starts_with("amq."))
        })
        .collect();
    let queues: Vec<Value> = list("queues/%2F")
        .into_iter()
        .filter(|q| ours(q, "name"))
        .collect();
    let bindings: Vec<Value> = list("bindings/%2F")
        .into_iter()
        .filter(|b| ours(b, "destination"))
        .collect();
    let consumers: Vec<Value> = list("consumers/%2F")
        .into_iter()
        .filter(|c| ours(&c["queue"], "name"))
        .collect();
    let mut names: Vec<String> = consumers
        .iter()
        .filter_map(|c| {
            c["channel_details"]["connection_name"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let connections: Vec<Value> = list("connections")
        .into_iter()
        .filter(|c| {
            let given = c["client_properties"]["connection_name"]
                .as_str()
                .unwrap_or("");
            given.starts_with(&s.prefix) || names.iter().any(|n| c["name"] == n.as_str())
        })
        .collect();
    names.extend(
        connections
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string)),
    );
    let channels: Vec<Value> = list("channels")
        .into_iter()
        .filter(|c| {
            names
                .iter()
                .any(|n| c["connection_details"]["name"] == n.as_str())
        })
        .collect();
    std::fs::create_dir_all(dir).expect("fixture dir");
    for (name, v) in [
        ("exchanges", exchanges),
        ("queues", queues),
        ("bindings", bindings),
        ("consumers", consumers),
        ("connections", connections),
        ("channels", channels),
    ] {
        let text = serde_json::to_string_pretty(&Value::Array(v)).expect("json");
        std::fs::write(dir.join(format!("{name}.json")), text + "\n").expect("write fixture");
    }
}

#[test]
#[ignore = "re-records fixtures/rabbitmq (SWITCHYARD_RECORD=1)"]
fn record() {
    if std::env::var("SWITCHYARD_RECORD").as_deref() != Ok("1") {
        return;
    }
    let root = common::fixtures::root().join("rabbitmq");
    let s = Scenario::start("fixture");
    s.wait_for_consumers();
    wait_for("queue statistics", STATS, || {
        let q = s.admin.get("queues/%2F/fixture.billing");
        q["messages_ready"].is_u64().then_some(())
    });
    record_poll(&s, &root.join("poll1"));
    s.publish(5);
    wait_for("publish counters", STATS, || {
        let x = s.admin.get("exchanges/%2F/fixture.orders");
        let channels = s.admin.get("channels");
        let published = channels
            .as_array()?
            .iter()
            .any(|c| c["message_stats"]["publish"] == 5);
        (x["message_stats"]["publish_in"] == 5 && published).then_some(())
    });
    record_poll(&s, &root.join("poll2"));
    let version = s.admin.get("overview")["rabbitmq_version"].clone();
    eprintln!("recorded from RabbitMQ {version}");
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// A large broker (2,000 queues, each bound from one of 20 exchanges, 500 consumers on 10
/// named connections): one poll's wall time and CPU, against the management API's own answer
/// time for the same calls (read, not parsed), measured in the same run.
#[test]
#[ignore = "benchmark (SWITCHYARD_BENCH=1)"]
fn bench_poll_of_a_large_broker() {
    use switchyard::discover::Source;
    if std::env::var("SWITCHYARD_BENCH").as_deref() != Ok("1") {
        return;
    }
    let (queues, exchanges, consumers) = (2_000usize, 20usize, 500usize);
    let p = unique_prefix();
    let admin = Admin::new();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let setup = std::time::Instant::now();
    std::thread::scope(|s| {
        for part in 0..4 {
            let (admin, p) = (&admin, &p);
            s.spawn(move || {
                for x in (part..exchanges).step_by(4) {
                    admin.put(
                        &format!("exchanges/%2F/{}", enc(&format!("{p}.x{x}"))),
                        json!({"type": "direct"}),
                    );
                }
                for i in (part..queues).step_by(4) {
                    let q = enc(&format!("{p}.q{i}"));
                    admin.put(&format!("queues/%2F/{q}"), json!({}));
                }
            });
        }
    });
    std::thread::scope(|s| {
        for part in 0..4 {
            let (admin, p) = (&admin, &p);
            s.spawn(move || {
                for i in (part..queues).step_by(4) {
                    let path = format!(
                        "bindings/%2F/e/{}/q/{}",
                        enc(&format!("{p}.x{}", i % exchanges)),
                        enc(&format!("{p}.q{i}"))
                    );
                    admin
                        .call("POST", &path, Some(json!({"routing_key": format!("k{i}")})))
                        .expect("bind");
                }
            });
        }
    });
    let mut conns = Vec::new();
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for c in 0..10 {
            let props =
                ConnectionProperties::default().with_connection_name(format!("{p}-svc{c}").into());
            let conn = Connection::connect(AMQP, props).await.expect("connect");
            for k in 0..consumers / 10 {
                let ch = conn.create_channel().await.expect("channel");
                let q = format!("{p}.q{}", c * (consumers / 10) + k);
                let consumer = ch
                    .basic_consume(
                        &q,
                        "",
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .expect("consume");
                held.push((ch, consumer));
            }
            conns.push(conn);
        }
        held
    });
    eprintln!("setup: {:?}", setup.elapsed());
    wait_for("all consumers listed", Duration::from_secs(60), || {
        let n = admin
            .get("consumers/%2F")
            .as_array()?
            .iter()
            .filter(|c| {
                c["queue"]["name"]
                    .as_str()
                    .is_some_and(|q| q.starts_with(&p))
            })
            .count();
        (n == consumers).then_some(())
    });

    let url = "http://guest:guest@127.0.0.1:15672/%2F";
    let mut source =
        switchyard::discover::rabbitmq::Rabbitmq::new(url, Default::default()).expect("source");
    let mut baseline = Vec::new();
    let mut polls = Vec::new();
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let mut bytes = 0;
        for what in [
            "exchanges/%2F",
            "queues/%2F",
            "bindings/%2F",
            "consumers/%2F",
            "connections",
            "channels",
        ] {
            let r = admin
                .agent
                .get(&format!("{MANAGEMENT}/api/{what}"))
                .set("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
                .call()
                .expect("get");
            bytes += r.into_string().expect("body").len();
        }
        baseline.push(t.elapsed());
        let (t, cpu) = (std::time::Instant::now(), thread_cpu());
        let snap = source.poll().expect("poll");
        polls.push((t.elapsed(), thread_cpu() - cpu));
        eprintln!(
            "answers {bytes} bytes; snapshot: {} destinations, {} services, {} flows",
            snap.destinations.len(),
            snap.services.len(),
            snap.flows.len()
        );
    }
    baseline.sort();
    polls.sort();
    let (b, (w, c)) = (baseline[2], polls[2]);
    eprintln!(
        "median of 5: management API answers {b:?}; one poll {w:?} wall ({:.2}x the answers), {c:?} CPU of the polling thread",
        w.as_secs_f64() / b.as_secs_f64()
    );
    // Memory across 100 polls: the resident size after poll 5 and after poll 100.
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        pages * 4096 / 1024
    };
    let before = rss();
    for _ in 5..100 {
        source.poll().expect("poll");
    }
    eprintln!(
        "resident: {before} KiB after 5 polls, {} KiB after 100",
        rss()
    );
    drop(held);
    for c in conns {
        let _ = rt.block_on(c.close(200, "done"));
    }
    for x in 0..exchanges {
        let _ = admin.call(
            "DELETE",
            &format!("exchanges/%2F/{}", enc(&format!("{p}.x{x}"))),
            None,
        );
    }
    std::thread::scope(|s| {
        for part in 0..4 {
            let (admin, p) = (&admin, &p);
            s.spawn(move || {
                for i in (part..queues).step_by(4) {
                    let _ = admin.call(
                        "DELETE",
                        &format!("queues/%2F/{}", enc(&format!("{p}.q{i}"))),
                        None,
                    );
                }
            });
        }
    });
}

#[test]
fn the_discover_variable_holds_a_comma_separated_list() {
    let closed = || {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").to_string()
    };
    let (rabbit, nats, kafka_a, kafka_b) = (closed(), closed(), closed(), closed());
    let password = "Env-Pw-8qZ2-distinct";
    // A Kafka bootstrap list has commas of its own: they stay with the kafka= entry.
    let list = format!(
        "rabbitmq=http://u:{password}@{rabbit},nats=nats://{nats},kafka={kafka_a},{kafka_b}"
    );
    let env = TestEnv::with_args_and_env(
        &["--discover-interval", "1s"],
        &[("SWITCHYARD_DISCOVER", list.as_str())],
    );
    let brokers = brokers_after(&env, 1);
    let names: Vec<&str> = brokers
        .iter()
        .filter_map(|b| b["broker"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{brokers:?}");
    assert!(
        names[0].starts_with("rabbitmq") && names[0].contains(&rabbit),
        "{names:?}"
    );
    assert!(
        names[1].starts_with("nats") && names[1].contains(&nats),
        "{names:?}"
    );
    assert!(
        names[2].starts_with("kafka") && names[2].contains(&kafka_a),
        "{names:?}"
    );
    assert!(
        brokers.iter().all(|b| b["state"] == "failing"),
        "{brokers:?}"
    );
    assert!(!everything_shown(&env).contains(password));
}

/// A queue of the machine's RabbitMQ, deleted on drop.
struct TestQueue<'a>(&'a Admin, String);

impl Drop for TestQueue<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .call("DELETE", &format!("queues/%2F/{}", enc(&self.1)), None);
    }
}

/// `/api/topology` answers for one window are kept for reuse until the store commits again: a
/// span stored after an answer shows in the very next answer (its write was acknowledged), and
/// so does a queue the broker reports at its next poll.
#[test]
fn a_kept_topology_answer_never_hides_a_new_span_or_a_new_poll() {
    let admin = Admin::new();
    let prefix = unique_prefix();
    let env = with_flags(&discover_flags(
        "rabbitmq=http://guest:guest@127.0.0.1:15672",
    ));
    brokers_after(&env, 1);
    let path = format!("/api/topology?{}", common::builder::window().query());
    let publisher = common::topo::service(&format!("{prefix}-late"));
    let queue = format!("{prefix}.late-q");
    for _ in 0..2 {
        let t = env.api().get_json(&path);
        let nodes = common::topo::nodes(&t);
        assert!(!nodes.contains_key(&publisher), "{:?}", nodes.keys());
        assert!(!nodes.contains_key(&common::topo::rabbit(&queue)));
    }

    let late = span(
        &format!("{prefix}-late"),
        "publish",
        common::builder::Producer,
    )
    .messaging("rabbitmq", &format!("{prefix}.late-x"));
    let r = env.post_otlp(
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &protobuf(&[&late]),
    );
    assert_eq!(r.status, 200);
    let t = env.api().get_json(&path);
    assert!(
        common::topo::nodes(&t).contains_key(&publisher),
        "an acknowledged span is missing from the next answer"
    );

    admin.put(&format!("queues/%2F/{}", enc(&queue)), json!({}));
    let _queue = TestQueue(&admin, queue.clone());
    wait_for("the new queue in the same window", STATS, || {
        let t = env.api().get_json(&path);
        common::topo::nodes(&t)
            .contains_key(&common::topo::rabbit(&queue))
            .then_some(())
    });
}

/// A counter of the server's `/metrics` (0 when absent).
fn counter(env: &TestEnv, line_start: &str) -> u64 {
    let text = env.api().get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or(0)
}

/// `/api/topology` for the window a client asked (ending now) is built again ahead as soon as
/// a poll lands: the next request meets that build instead of building afresh. A span stored
/// and acknowledged is still in the very next answer.
#[test]
fn a_poll_builds_the_asked_topology_ahead_and_a_new_span_shows_at_once() {
    let prefix = unique_prefix();
    let env = with_flags(&discover_flags(
        "rabbitmq=http://guest:guest@127.0.0.1:15672",
    ));
    brokers_after(&env, 1);
    let ahead = "switchyard_topology_built_ahead_total ";
    let built = "switchyard_topology_answers_total{from=\"built\"} ";
    let met = |env: &TestEnv| {
        counter(env, "switchyard_topology_answers_total{from=\"template\"} ")
            + counter(env, "switchyard_topology_answers_total{from=\"waited\"} ")
    };
    // Asked once: the window ending now is remembered.
    env.api().get_json("/api/topology");
    assert_eq!(counter(&env, built), 1);
    wait_for(
        "a request served by a build made ahead after a poll",
        Duration::from_secs(30),
        || {
            let (ahead_before, built_before, met_before) =
                (counter(&env, ahead), counter(&env, built), met(&env));
            wait_for("a build ahead", Duration::from_secs(10), || {
                (counter(&env, ahead) > ahead_before).then_some(())
            });
            env.api().get_json("/api/topology");
            // Served by that build, or one still under way for a poll landed since.
            (counter(&env, built) == built_before && met(&env) > met_before).then_some(())
        },
    );

    // Read your writes: a span acknowledged shows in the next answer for a window ending now.
    let late = span(
        &format!("{prefix}-now"),
        "publish",
        common::builder::Producer,
    )
    .at(common::builder::now_unix_nanos() - 2_000_000_000)
    .messaging("rabbitmq", &format!("{prefix}.now-x"));
    let r = env.post_otlp(
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        &protobuf(&[&late]),
    );
    assert_eq!(r.status, 200);
    let t = env.api().get_json("/api/topology");
    assert!(
        common::topo::nodes(&t).contains_key(&common::topo::service(&format!("{prefix}-now"))),
        "an acknowledged span is missing from the next answer"
    );
}
