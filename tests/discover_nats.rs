//! NATS discovery against a real `nats-server` each test starts for itself (JetStream on a
//! temporary directory, monitoring on its own port): streams, durable and ephemeral
//! consumers, core subscriptions, and what each source makes of them; credentials that never
//! show; a closed port and a silent server that fail within the timeout.

mod common;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use std::path::Path;
use std::time::{Duration, Instant};

use switchyard::discover::nats::{
    self as nats_source, api, jetstream as js_source, monitor, names, Limits,
};
use switchyard::discover::{DiscoverError, Source, Spec};
use switchyard::model::broker::{BrokerSnapshot, NamedBy};

use common::nats::{free_port, NatsServer};
use std::net::TcpListener;

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
/// none acked, the first refused once and delivered again); core subscriptions `payments.*` by connection `billing` and `metrics.cpu` by an
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
    let mut first = None;
    for _ in 0..7 {
        let m = push.next().await.expect("delivered").expect("message");
        first.get_or_insert(m);
    }
    // Refused once, so delivered again: one redelivery.
    let refused = first.expect("first message");
    refused
        .ack_with(jetstream::AckKind::Nak(None))
        .await
        .expect("nak");
    let again = push.next().await.expect("redelivered").expect("message");
    assert_eq!(again.payload, refused.payload);
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

/// What the recorded answers of fixtures/nats/ map to (the unit tests check those figures one
/// by one): the live server, running the same scenario, must give the same.
fn recorded() -> (BrokerSnapshot, BrokerSnapshot, BrokerSnapshot) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/nats");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("fixture");
    let streams: api::StreamPage = serde_json::from_str(&read("stream_list.json")).expect("json");
    let consumers: api::ConsumerPage =
        serde_json::from_str(&read("consumer_list_ORDERS.json")).expect("json");
    let (streams, consumers) = (
        streams.streams.unwrap_or_default(),
        consumers.consumers.unwrap_or_default(),
    );
    let connz = serde_json::from_str(&read("connz.json")).expect("json");
    let jsz = serde_json::from_str(&read("jsz.json")).expect("json");
    let (core, revealed) = monitor::snapshot("", 0, &connz, &jsz);
    let none = names::Revealed::new();
    let before = js_source::snapshot("", 0, &streams, &consumers, &none);
    let after = js_source::snapshot("", 0, &streams, &consumers, &revealed);
    (before, core, after)
}

/// A snapshot without what changes from run to run: its time, its label, and the
/// server-given name of the ephemeral consumer (which names its service until a monitor
/// reveals the connection).
fn normalised(mut s: BrokerSnapshot) -> BrokerSnapshot {
    // Every other service the scenario has is named by its connection or durable name.
    let known = ["invoicer", "auditor", "billing"];
    let random = |name: &mut String| {
        if !known.contains(&name.as_str()) && !name.starts_with("anonymous (") {
            *name = "(ephemeral)".to_string();
        }
    };
    s.broker.clear();
    s.taken_unix_nanos = 0;
    s.services.iter_mut().for_each(|x| random(&mut x.name));
    s.flows.iter_mut().for_each(|f| random(&mut f.to));
    s.services.sort_by(|a, b| a.name.cmp(&b.name));
    s.flows
        .sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    s
}

#[test]
fn jetstream_and_monitor_sources_read_a_real_server() {
    let server = NatsServer::start(&[]);
    let rt = runtime();
    let _scenario = rt.block_on(scenario(&server.url()));
    let mut js = source(&format!("nats={}", server.url()));
    let mut monitor = source(&format!("nats-monitor={}", server.monitor_url()));
    assert_eq!(js.label(), format!("nats 127.0.0.1:{}", server.port));
    let monitor_label = format!("nats-monitor 127.0.0.1:{}", server.monitor);
    assert_eq!(monitor.label(), monitor_label);
    let (before, core, after) = recorded();

    // No monitor has polled yet: the ephemeral consumer is named by its own name.
    let live = js.poll().expect("jetstream poll");
    assert_eq!(live.system, "nats");
    assert_eq!(normalised(live), normalised(before));
    let live = monitor.poll().expect("monitor poll");
    assert_eq!(live.broker, monitor_label);
    assert_eq!(normalised(live), normalised(core));
    // The monitor revealed which connection reads the push consumer.
    let live = js.poll().expect("jetstream poll");
    let auditor = live.services.iter().find(|x| x.name == "auditor");
    assert_eq!(auditor.map(|x| x.named_by), Some(NamedBy::ConnectionName));
    assert_eq!(normalised(live), normalised(after));
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

#[test]
fn credentials_in_the_url_are_used_and_never_shown() {
    let secret = "s3cret-Pw";
    let server = NatsServer::start(&["--user", "alice", "--pass", secret]);
    let host = format!("127.0.0.1:{}", server.port);
    let mut good = source(&format!("nats=nats://alice:{secret}@{host}"));
    assert_eq!(good.label(), format!("nats {host}"));
    let snapshot = good.poll().expect("poll with the right credentials");
    assert!(snapshot.destinations.is_empty());
    let shown = serde_json::to_string(&snapshot).expect("json");
    assert!(
        !shown.contains(secret) && !shown.contains("alice"),
        "{shown}"
    );

    let wrong = "wr0ng-Pw";
    let mut bad = source(&format!("nats=nats://alice:{wrong}@{host}"));
    let err = bad.poll().expect_err("wrong credentials");
    let text = format!("{err} {err:?} {}", bad.label());
    assert!(matches!(err, DiscoverError::Unreachable(_)), "{text}");
    assert!(text.contains("credentials"), "{text}");
    assert!(!text.contains(wrong) && !text.contains("alice"), "{text}");
    let mut anonymous = source(&format!("nats=nats://{host}"));
    assert!(anonymous.poll().is_err());

    let token = "t0ken-Secret";
    let server = NatsServer::start(&["--auth", token]);
    let mut with_token = source(&format!("nats=nats://{token}@127.0.0.1:{}", server.port));
    with_token.poll().expect("poll with the token");
    assert!(!with_token.label().contains(token));
}

/// Both sources against `addr`, with a one-second timeout: the errors they give.
fn poll_both(addr: &str) -> Vec<DiscoverError> {
    let limits = Limits {
        timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    ["nats=nats://", "nats-monitor=http://"]
        .iter()
        .map(|kind| {
            let spec: Spec = format!("{kind}{addr}").parse().expect("spec");
            let mut source = nats_source::open_with(&spec, limits).expect("source");
            let started = Instant::now();
            let err = source.poll().expect_err("no broker there");
            // Generous against a slow machine; what matters is that it ends.
            assert!(started.elapsed() < Duration::from_secs(20), "{err}");
            err
        })
        .collect()
}

#[test]
fn a_closed_port_and_a_silent_server_fail_within_the_timeout() {
    let closed = format!("127.0.0.1:{}", free_port());
    for err in poll_both(&closed) {
        assert!(matches!(err, DiscoverError::Unreachable(_)), "{err}");
    }
    // Listening, never accepting: the kernel completes the handshake, nobody ever answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = silent.local_addr().expect("addr").to_string();
    for err in poll_both(&addr) {
        assert_eq!(err, DiscoverError::Timeout(1000), "{err}");
    }
}

#[test]
fn a_monitor_answering_garbage_is_a_bad_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answering = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().expect("accept");
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let body = "<html>not json</html>";
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        conn.write_all(format!("{head}{body}").as_bytes())
            .expect("write");
    });
    let err = source(&format!("nats-monitor=http://{addr}"))
        .poll()
        .expect_err("garbage");
    assert!(matches!(err, DiscoverError::BadAnswer(_)), "{err}");
    answering.join().expect("answered");
}

#[test]
fn a_server_without_jetstream_is_a_bad_answer_to_one_source_only() {
    let server = NatsServer::start_with(false, &[]);
    let err = source(&format!("nats={}", server.url()))
        .poll()
        .expect_err("no JetStream");
    assert!(matches!(err, DiscoverError::BadAnswer(_)), "{err}");
    assert!(err.to_string().contains("JetStream"), "{err}");
    let core = source(&format!("nats-monitor={}", server.monitor_url()))
        .poll()
        .expect("the monitor still answers");
    assert!(core.destinations.is_empty() && core.flows.is_empty());
}
