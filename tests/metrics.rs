//! `GET /metrics` read with a real Prometheus text-format parser (`prometheus-parse`): the
//! collector's counters against `/api/stats`, Tempo's service-graph series and the
//! per-destination series against `/api/topology` on recorded SDK traffic, refusals and
//! request durations per receiver, the cap on label sets, the embedded broker's counters and
//! depths against `/broker/subscriptions`, and the token guard.

mod common;

use common::builder::{self, span, Consumer, Producer};
use common::fixtures::{self, Window};
use common::{topo, TestEnv};
use prometheus_parse::{Sample, Scrape, Value as Prom};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the scrape parses")
}

fn scrape(env: &TestEnv) -> Scrape {
    let reply = env.get("/metrics");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .content_type()
            .starts_with("text/plain; version=0.0.4"),
        "{}",
        reply.content_type()
    );
    parse(&reply.text())
}

fn number(v: &Prom) -> f64 {
    match v {
        Prom::Counter(x) | Prom::Gauge(x) | Prom::Untyped(x) => *x,
        other => panic!("not a number: {other:?}"),
    }
}

fn has_labels(s: &Sample, labels: &[(&str, &str)]) -> bool {
    labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
}

/// The one sample of `metric` with these labels (others may be present).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = s
        .samples
        .iter()
        .filter(|x| x.metric == metric && has_labels(x, labels))
        .collect();
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    number(&found[0].value)
}

/// Every sample of `metric`, keyed by the values of `keys`.
fn by(s: &Scrape, metric: &str, keys: &[&str]) -> BTreeMap<Vec<String>, f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .map(|x| {
            let key = keys
                .iter()
                .map(|k| x.labels.get(k).unwrap_or("").to_string())
                .collect();
            (key, number(&x.value))
        })
        .collect()
}

/// The last bucket (`+Inf`) of a histogram sample: its count.
fn histogram_count(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = s
        .samples
        .iter()
        .find(|x| x.metric == metric && has_labels(x, labels))
        .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
    let Prom::Histogram(buckets) = &found.value else {
        panic!("{metric} is not a histogram: {found:?}")
    };
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite(), "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].count <= w[1].count),
        "cumulative: {buckets:?}"
    );
    let count = value(s, &format!("{metric}_count"), labels);
    assert_eq!(last.count, count, "{metric} +Inf bucket and _count");
    count
}

/// Service names by node id, from a topology.
fn names(t: &Value) -> BTreeMap<String, String> {
    topo::nodes(t)
        .into_iter()
        .map(|(id, n)| (id, n["name"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// What the topology says the service-graph counters must be: (client, server, connection
/// type) -> requests, from dependency edges (messages) and calls between services.
fn expected_pairs(t: &Value) -> BTreeMap<Vec<String>, f64> {
    let names = names(t);
    let mut out: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for ((kind, from, to), (count, _)) in topo::edges(t) {
        if kind == "call" && to.starts_with("service:") {
            let key = vec![names[&from].clone(), names[&to].clone(), String::new()];
            *out.entry(key).or_default() += count as f64;
        }
    }
    for ((from, to, _via), count) in topo::dependencies(t) {
        let count = count.expect("dependencies seen in traces have counts");
        let key = vec![
            names[&from].clone(),
            names[&to].clone(),
            "messaging_system".into(),
        ];
        *out.entry(key).or_default() += count as f64;
    }
    out
}

#[test]
fn a_scrape_matches_the_topology_and_the_stats_and_its_counters_only_grow() {
    let env = TestEnv::start();
    let sets = [fixtures::PYTHON_PIKA, fixtures::NODE_AMQPLIB_JSON];
    for set in sets {
        env.post_fixtures(&fixtures::load(set));
    }
    let window = Window::of_sets(&sets);
    let m = scrape(&env);
    let stats = env.get_json("/api/stats");
    let stat = |k: &str| stats[k].as_f64().unwrap();
    assert_eq!(
        value(&m, "switchyard_ingest_spans_stored_total", &[]),
        stat("spans_stored")
    );
    assert_eq!(
        value(&m, "switchyard_ingest_spans_duplicate_total", &[]),
        stat("spans_duplicate")
    );
    assert_eq!(
        value(&m, "switchyard_ingest_requests_total", &[]),
        stat("requests")
    );
    assert_eq!(
        value(&m, "switchyard_store_spans", &[]),
        stat("spans_in_store")
    );
    assert_eq!(
        value(&m, "switchyard_ingest_spans_received_total", &[]),
        stat("spans_stored") + stat("spans_duplicate") + stat("spans_rejected")
    );
    assert!(value(&m, "switchyard_store_size_bytes", &[]) > 0.0);
    assert_eq!(value(&m, "switchyard_store_queue_depth", &[]), 0.0);

    // Tempo's service graph: exactly the topology's service-to-service edges.
    let t = env.topology(&window);
    let want = expected_pairs(&t);
    assert!(
        want.keys().any(|k| k[2] == "messaging_system"),
        "the recordings have messages between services: {want:?}"
    );
    let keys = ["client", "server", "connection_type"];
    assert_eq!(by(&m, "traces_service_graph_request_total", &keys), want);
    for (k, total) in &want {
        let labels: Vec<(&str, &str)> = keys
            .iter()
            .copied()
            .zip(k.iter().map(String::as_str))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        assert_eq!(
            histogram_count(&m, "traces_service_graph_request_server_seconds", &labels),
            *total
        );
        assert_eq!(
            histogram_count(&m, "traces_service_graph_request_client_seconds", &labels),
            *total
        );
    }
    let failed = by(&m, "traces_service_graph_request_failed_total", &keys);
    assert!(failed.iter().all(|(k, f)| *f <= want[k]), "{failed:?}");

    // Per destination: what its publish and consume edges count.
    let nodes = topo::nodes(&t);
    let mut published: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    let mut consumed: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for ((kind, from, to), (count, _)) in topo::edges(&t) {
        let (dest, into) = match kind.as_str() {
            "publish" => (&to, &mut published),
            "consume" => (&from, &mut consumed),
            _ => continue,
        };
        let n = &nodes[dest];
        let key = vec![
            n["system"].as_str().unwrap().to_string(),
            n["name"].as_str().unwrap().to_string(),
        ];
        *into.entry(key).or_default() += count as f64;
    }
    assert!(!published.is_empty());
    let dkeys = ["system", "destination"];
    let shown_published = by(
        &m,
        "switchyard_destination_published_messages_total",
        &dkeys,
    );
    for (k, v) in &published {
        assert_eq!(shown_published.get(k), Some(v), "published to {k:?}");
    }
    let shown_consumed = by(&m, "switchyard_destination_consumed_messages_total", &dkeys);
    for (k, v) in &consumed {
        assert_eq!(shown_consumed.get(k), Some(v), "consumed from {k:?}");
    }
    // Each message paired producer -> consumer adds one delay sample to its destination.
    let delays: f64 = by(
        &m,
        "switchyard_destination_delivery_delay_seconds_count",
        &dkeys,
    )
    .values()
    .sum();
    let messages: f64 = want
        .iter()
        .filter(|(k, _)| k[2] == "messaging_system")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(delays, messages);

    // More traffic: every counter keeps or grows its value.
    env.post_fixtures(&fixtures::load(fixtures::PYTHON_AIO_PIKA));
    let later = scrape(&env);
    let mut compared = 0;
    for s in m
        .samples
        .iter()
        .filter(|s| matches!(s.value, Prom::Counter(_)))
    {
        let after = later
            .samples
            .iter()
            .find(|x| x.metric == s.metric && x.labels == s.labels)
            .unwrap_or_else(|| panic!("{} {:?} gone", s.metric, s.labels));
        assert!(
            number(&after.value) >= number(&s.value),
            "{} went down",
            s.metric
        );
        compared += 1;
    }
    assert!(compared > 20, "{compared} counters compared");
    assert!(
        value(&later, "switchyard_ingest_spans_stored_total", &[])
            > value(&m, "switchyard_ingest_spans_stored_total", &[])
    );
}

#[test]
fn refusals_and_request_durations_are_counted_per_receiver() {
    let env = TestEnv::with_args(&["--max-body", "64KiB"]);
    let refused = |m: &Scrape, code: &str| {
        value(
            m,
            "switchyard_ingest_requests_refused_total",
            &[("receiver", "otlp_http"), ("code", code)],
        )
    };
    let before = scrape(&env);
    assert_eq!(refused(&before, "400"), 0.0);
    assert_eq!(env.post_protobuf(b"\xff\xff\xff not protobuf").status, 400);
    let text = env.post_otlp("/v1/traces", &[("Content-Type", "text/plain")], b"hello");
    assert_eq!(text.status, 415);
    assert_eq!(env.post_protobuf(&vec![0u8; 100 * 1024]).status, 413);
    let (valid, invalid) = builder::mixed_validity();
    let all: Vec<&builder::SpanB> = valid.iter().chain(&invalid).collect();
    assert_eq!(env.post_protobuf(&builder::protobuf(&all)).status, 200);
    let m = scrape(&env);
    assert_eq!(refused(&m, "400"), 1.0);
    assert_eq!(refused(&m, "415"), 1.0);
    assert_eq!(refused(&m, "413"), 1.0);
    assert_eq!(refused(&m, "429"), 0.0);
    assert_eq!(
        value(
            &m,
            "switchyard_ingest_requests_refused_total",
            &[("receiver", "otlp_grpc"), ("code", "400")]
        ),
        0.0
    );
    assert_eq!(
        histogram_count(
            &m,
            "switchyard_ingest_request_duration_seconds",
            &[("receiver", "otlp_http")]
        ),
        4.0
    );
    assert_eq!(
        value(
            &m,
            "switchyard_ingest_spans_refused_total",
            &[("reason", "invalid")]
        ),
        invalid.len() as f64
    );
    assert_eq!(
        value(
            &m,
            "switchyard_ingest_spans_refused_total",
            &[("reason", "outside_retention")]
        ),
        0.0
    );

    // gRPC: one export, counted under its own receiver.
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    let (rt, channel) = env.grpc_channel();
    let one = span("grpc-client", "work", Consumer).messaging("kafka", "grpc-topic");
    rt.block_on(async move {
        TraceServiceClient::new(channel)
            .export(builder::request(&[&one]))
            .await
            .expect("export")
    });
    let m = scrape(&env);
    assert_eq!(
        histogram_count(
            &m,
            "switchyard_ingest_request_duration_seconds",
            &[("receiver", "otlp_grpc")]
        ),
        1.0
    );
}

#[test]
fn label_sets_past_the_cap_are_counted_not_shown() {
    let env = TestEnv::with_args(&["--metrics-max-series", "3"]);
    // One request (one commit) per destination, in order: the first three are admitted.
    for i in 0..5 {
        let p = span("capped", "send", Producer).messaging("kafka", &format!("cap-{i}"));
        assert_eq!(env.post_protobuf(&builder::protobuf(&[&p])).status, 200);
    }
    let m = scrape(&env);
    let shown = by(
        &m,
        "switchyard_destination_published_messages_total",
        &["destination"],
    );
    let want: BTreeMap<Vec<String>, f64> =
        (0..3).map(|i| (vec![format!("cap-{i}")], 1.0)).collect();
    assert_eq!(shown, want);
    assert_eq!(value(&m, "switchyard_metrics_series", &[]), 3.0);
    assert_eq!(value(&m, "switchyard_metrics_max_series", &[]), 3.0);
    assert_eq!(
        value(&m, "switchyard_metrics_series_dropped_total", &[]),
        2.0
    );
    // A label set already shown keeps counting; one more new one is counted as dropped.
    let again = span("capped", "send", Producer).messaging("kafka", "cap-0");
    let new = span("capped", "send", Producer).messaging("kafka", "cap-9");
    assert_eq!(
        env.post_protobuf(&builder::protobuf(&[&again, &new]))
            .status,
        200
    );
    let m = scrape(&env);
    assert_eq!(
        value(
            &m,
            "switchyard_destination_published_messages_total",
            &[("destination", "cap-0")]
        ),
        2.0
    );
    assert_eq!(
        value(&m, "switchyard_metrics_series_dropped_total", &[]),
        3.0
    );
    assert_eq!(value(&m, "switchyard_metrics_series", &[]), 3.0);
}

#[test]
fn the_embedded_broker_counts_its_operations_and_shows_each_subscription_depth() {
    let env = TestEnv::start();
    let c = env.broker("metrics-producer");
    c.declare_topic("m-orders").unwrap();
    c.declare_subscription("m-billing", "m-orders", 30_000, 1)
        .unwrap();
    c.declare_subscription("m-audit", "m-orders", 30_000, 5)
        .unwrap();
    for n in 0..3 {
        c.publish_json("m-orders", &json!({ "n": n }), None)
            .unwrap();
    }
    let got = c.pull("m-billing", 2, Duration::from_secs(5)).unwrap();
    assert_eq!(got.len(), 2);
    c.ack("m-billing", &[got[0].lease_id.clone()]).unwrap();
    // One attempt allowed: a nack dead-letters the message.
    c.nack("m-billing", &[got[1].lease_id.clone()], 0).unwrap();
    let m = scrape(&env);
    assert_eq!(
        value(&m, "switchyard_broker_published_messages_total", &[]),
        3.0
    );
    assert_eq!(
        value(&m, "switchyard_broker_delivered_messages_total", &[]),
        2.0
    );
    assert_eq!(
        value(&m, "switchyard_broker_acked_messages_total", &[]),
        1.0
    );
    assert_eq!(
        value(&m, "switchyard_broker_nacked_messages_total", &[]),
        1.0
    );
    assert_eq!(
        value(&m, "switchyard_broker_dead_lettered_messages_total", &[]),
        1.0
    );
    let subs = c.subscriptions().unwrap();
    assert_eq!(subs.len(), 2);
    for s in subs {
        for (state, n) in [("ready", s.ready), ("leased", s.leased), ("dead", s.dead)] {
            let labels = [
                ("subscription", s.spec.name.as_str()),
                ("topic", "m-orders"),
                ("state", state),
            ];
            assert_eq!(
                value(&m, "switchyard_broker_subscription_messages", &labels),
                n as f64,
                "{labels:?}"
            );
        }
    }
    assert_eq!(
        value(
            &m,
            "switchyard_broker_subscription_messages",
            &[("subscription", "m-audit"), ("state", "ready")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            "switchyard_broker_subscription_messages",
            &[("subscription", "m-billing"), ("state", "dead")]
        ),
        1.0
    );
}

#[test]
fn metrics_and_the_jaeger_api_need_the_token_when_one_is_set() {
    const TOKEN: &str = "metrics-test-token-0123456789";
    let env = TestEnv::with_args(&["--auth-token", TOKEN]);
    let bearer = format!("Bearer {TOKEN}");
    for path in ["/metrics", "/jaeger/api/services"] {
        assert_eq!(env.get(path).status, 401, "{path}");
        let reply = env
            .api()
            .send("GET", path, &[("Authorization", bearer.as_str())], b"");
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let reply = env.api().send(
        "GET",
        "/metrics",
        &[("Authorization", bearer.as_str())],
        b"",
    );
    let m = parse(&reply.text());
    assert_eq!(value(&m, "switchyard_ingest_requests_total", &[]), 0.0);
}
