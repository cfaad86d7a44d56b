//! NATS discovery against a real `nats-server` each test starts for itself (JetStream on a
//! temporary directory, monitoring on its own port): streams, durable and ephemeral
//! consumers, core subscriptions, and what each source makes of them; credentials that never
//! show; a closed port and a silent server that fail within the timeout.

mod common;

use async_nats::jetstream::{self, consumer, stream};
use common::wait_until;
use futures_util::StreamExt;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard::discover::nats::{self as nats_source, monitor, Limits};
use switchyard::discover::{DiscoverError, Source, Spec};
use switchyard::model::broker::{BrokerSnapshot, Entity, NamedBy};

const NATS_SERVER: &str = "/usr/sbin/nats-server";

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A `nats-server` of this test's own; dropping it kills the process.
struct NatsServer {
    child: Child,
    _dir: tempfile::TempDir,
    port: u16,
    monitor: u16,
}

impl NatsServer {
    fn start(extra: &[&str]) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, monitor) = (free_port(), free_port());
        let store = dir.path().to_string_lossy().to_string();
        let (p, m) = (port.to_string(), monitor.to_string());
        let mut args = vec!["-js", "-sd", &store, "-p", &p, "-m", &m, "-a", "127.0.0.1"];
        args.extend_from_slice(extra);
        let child = Command::new(NATS_SERVER)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        let server = NatsServer {
            child,
            _dir: dir,
            port,
            monitor,
        };
        let health = format!("http://127.0.0.1:{monitor}/healthz?js-enabled-only=true");
        wait_until("nats-server answers", Duration::from_secs(20), || {
            ureq::get(&health)
                .timeout(Duration::from_secs(2))
                .call()
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn source(spec: &str) -> Box<dyn Source> {
    let spec: Spec = spec.parse().expect("spec");
    nats_source::open(&spec).expect("source")
}

/// What the scenario leaves behind, held so its connections stay open.
struct Scenario {
    _clients: Vec<async_nats::Client>,
    _subscriptions: Vec<async_nats::Subscriber>,
    _push: consumer::push::Messages,
}

/// Stream ORDERS (orders.>, file storage) with 5 `orders.created` and 2 `orders.cancelled`;
/// durable pull consumer `invoicer` (filter orders.created) that fetched 3 and acked none; an
/// ephemeral push consumer delivering to `deliver.audit`, read by connection `auditor` (all 7,
/// none acked); core subscriptions `payments.*` by connection `billing` and `metrics.cpu` by an
/// unnamed connection.
async fn scenario(url: &str) -> Scenario {
    let named = |name: &str| async_nats::ConnectOptions::new().name(name);
    let billing = named("billing")
        .connect(url)
        .await
        .expect("connect billing");
    let auditor = named("auditor")
        .connect(url)
        .await
        .expect("connect auditor");
    let unnamed = async_nats::connect(url).await.expect("connect unnamed");
    let js = jetstream::new(billing.clone());
    let orders = js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("stream");
    for (subject, n) in [("orders.created", 5), ("orders.cancelled", 2)] {
        for i in 0..n {
            let ack = js
                .publish(subject, format!("{i}").into())
                .await
                .expect("publish");
            ack.await.expect("stored");
        }
    }
    let hold = Duration::from_secs(600);
    let invoicer: consumer::PullConsumer = orders
        .create_consumer(consumer::pull::Config {
            durable_name: Some("invoicer".into()),
            filter_subject: "orders.created".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: hold,
            ..Default::default()
        })
        .await
        .expect("durable consumer");
    let mut batch = invoicer
        .fetch()
        .max_messages(3)
        .messages()
        .await
        .expect("fetch");
    let mut fetched = 0;
    while let Some(m) = batch.next().await {
        m.expect("message");
        fetched += 1;
    }
    assert_eq!(fetched, 3);
    let push: consumer::PushConsumer = jetstream::new(auditor.clone())
        .get_stream("ORDERS")
        .await
        .expect("stream for auditor")
        .create_consumer(consumer::push::Config {
            deliver_subject: "deliver.audit".into(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: hold,
            ..Default::default()
        })
        .await
        .expect("ephemeral consumer");
    let mut push = push.messages().await.expect("push messages");
    for _ in 0..7 {
        push.next().await.expect("delivered").expect("message");
    }
    let payments = billing.subscribe("payments.*").await.expect("subscribe");
    let metrics = unnamed.subscribe("metrics.cpu").await.expect("subscribe");
    for c in [&billing, &unnamed] {
        c.flush().await.expect("flush");
    }
    Scenario {
        _clients: vec![billing, auditor, unnamed],
        _subscriptions: vec![payments, metrics],
        _push: push,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn flow<'a>(
    s: &'a BrokerSnapshot,
    from: &str,
    to: &str,
) -> &'a switchyard::model::broker::BrokerFlow {
    s.flows
        .iter()
        .find(|f| f.from == from && f.to == to)
        .unwrap_or_else(|| panic!("no flow {from} -> {to} in {:#?}", s.flows))
}

fn named_by(s: &BrokerSnapshot, service: &str) -> NamedBy {
    s.services
        .iter()
        .find(|x| x.name == service)
        .unwrap_or_else(|| panic!("no service {service} in {:#?}", s.services))
        .named_by
}

#[test]
fn jetstream_and_monitor_sources_read_a_real_server() {
    let server = NatsServer::start(&[]);
    let rt = runtime();
    let _scenario = rt.block_on(scenario(&server.url()));
    let mut js = source(&format!("nats={}", server.url()));
    let mut monitor = source(&format!("nats-monitor={}", server.monitor_url()));
    assert_eq!(js.label(), format!("nats 127.0.0.1:{}", server.port));
    assert_eq!(
        monitor.label(),
        format!("nats-monitor 127.0.0.1:{}", server.monitor)
    );

    let before = js.poll().expect("jetstream poll");
    assert_eq!(before.system, "nats");
    assert_eq!(before.destinations.len(), 1);
    let orders = &before.destinations[0];
    assert_eq!(
        (orders.name.as_str(), orders.entity),
        ("ORDERS", Entity::Stream)
    );
    assert_eq!(
        orders.detail.as_deref(),
        Some("subjects: orders.>; storage: file")
    );
    assert_eq!(orders.figures.messages, Some(7));
    assert_eq!(orders.figures.consumers, Some(2));
    assert!(orders.figures.bytes.unwrap_or(0) > 0);
    let invoicer = flow(&before, "ORDERS", "invoicer");
    assert_eq!(invoicer.key.as_deref(), Some("orders.created"));
    assert_eq!(
        (
            invoicer.figures.pending,
            invoicer.figures.ack_pending,
            invoicer.figures.redelivered
        ),
        (Some(2), Some(3), Some(0))
    );
    assert_eq!(named_by(&before, "invoicer"), NamedBy::Durable);
    // No monitor has polled yet: the ephemeral consumer is named by its own name.
    let ephemeral = before
        .flows
        .iter()
        .find(|f| f.to != "invoicer")
        .expect("ephemeral flow");
    assert_eq!(ephemeral.key, None);
    assert_eq!(
        (ephemeral.figures.pending, ephemeral.figures.ack_pending),
        (Some(0), Some(7))
    );

    let core = monitor.poll().expect("monitor poll");
    assert_eq!(core.system, "nats");
    let mut subjects: Vec<_> = core
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.entity, d.figures.consumers))
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            ("metrics.cpu", Entity::Subject, Some(1)),
            ("payments.*", Entity::Subject, Some(1))
        ]
    );
    flow(&core, "payments.*", "billing");
    assert_eq!(named_by(&core, "billing"), NamedBy::ConnectionName);
    // The unnamed connection: its user and client product, never its address.
    let unnamed = core
        .flows
        .iter()
        .find(|f| f.from == "metrics.cpu")
        .expect("metrics.cpu flow");
    assert!(unnamed.to.starts_with("anonymous (rust "), "{}", unnamed.to);
    assert_eq!(named_by(&core, &unnamed.to), NamedBy::UserAndProduct);
    assert!(
        core.services.iter().all(|s| s.name != "auditor"),
        "{:?}",
        core.services
    );

    // The monitor revealed which connection reads the push consumer.
    let after = js.poll().expect("jetstream poll");
    let audit = flow(&after, "ORDERS", "auditor");
    assert_eq!(audit.figures.ack_pending, Some(7));
    assert_eq!(named_by(&after, "auditor"), NamedBy::ConnectionName);
    assert_eq!(after.flows.len(), 2);
}

/// Re-records fixtures/nats/ (the answers the unit tests map) from the same scenario:
/// `cargo test --release --test discover_nats -- --ignored record_fixtures`.
#[test]
#[ignore = "writes fixtures/nats/; run by hand to re-record"]
fn record_fixtures() {
    let server = NatsServer::start(&[]);
    let rt = runtime();
    let _scenario = rt.block_on(scenario(&server.url()));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/nats");
    std::fs::create_dir_all(&dir).expect("fixtures/nats");
    let client = rt
        .block_on(async_nats::connect(server.url()))
        .expect("connect");
    for (file, subject) in [
        ("stream_list.json", "$JS.API.STREAM.LIST"),
        ("consumer_list_ORDERS.json", "$JS.API.CONSUMER.LIST.ORDERS"),
    ] {
        let answer = rt
            .block_on(client.request(subject, r#"{"offset":0}"#.into()))
            .expect("answer");
        std::fs::write(dir.join(file), &answer.payload).expect("write");
    }
    for (file, path) in [
        (
            "connz.json",
            monitor::connz_path(Limits::default().max_connections),
        ),
        ("jsz.json", monitor::JSZ_PATH.to_string()),
    ] {
        let url = format!("{}{path}", server.monitor_url());
        let body = ureq::get(&url)
            .call()
            .expect("answer")
            .into_string()
            .expect("body");
        std::fs::write(dir.join(file), body).expect("write");
    }
}
