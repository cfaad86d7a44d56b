//! The topology built from recorded SDK payloads and from synthetic traces: nodes, edges with
//! counts and errors, dependencies, findings, and independence from arrival order.

mod common;

use common::builder::{self, span, Client, Consumer, Internal, Producer, Server, SpanB};
use common::expected::{self, Expected};
use common::fixtures::{self, Window};
use common::topo::{self, rabbit, service};
use common::TestEnv;
use serde_json::Value;

fn fixture_topology(set: &str, consumers_first: bool) -> Value {
    let mut files = fixtures::load(set);
    if consumers_first {
        assert!(
            files.iter().any(|f| f.only_consumers()),
            "{set} has no file holding only consumer spans"
        );
        // Consumer-only files first, then the others in reverse order.
        files.reverse();
        files.sort_by_key(|f| !f.only_consumers());
    }
    let env = TestEnv::start();
    env.post_fixtures(&files);
    env.topology(&Window::of_sets(&[set]))
}

fn check_fixture_set(set: &str, want: Expected) {
    let in_order = fixture_topology(set, false);
    want.assert_topology(&in_order);
    let consumers_first = fixture_topology(set, true);
    want.assert_topology(&consumers_first);
    topo::assert_same_topology(&in_order, &consumers_first, "consumers posted first");
}

#[test]
fn python_pika_fixtures_give_the_recorded_topology_in_any_arrival_order() {
    check_fixture_set(fixtures::PYTHON_PIKA, expected::python_pika(""));
}

#[test]
fn python_pika_gzip_fixtures_give_the_recorded_topology_in_any_arrival_order() {
    check_fixture_set(fixtures::PYTHON_PIKA_GZIP, expected::python_pika_gzip());
}

#[test]
fn node_amqplib_json_fixtures_give_the_recorded_topology_in_any_arrival_order() {
    check_fixture_set(fixtures::NODE_AMQPLIB_JSON, expected::node_amqplib(""));
}

#[test]
fn python_aio_pika_fixtures_give_the_recorded_topology_in_any_arrival_order() {
    check_fixture_set(fixtures::PYTHON_AIO_PIKA, expected::python_aio_pika(""));
}

#[test]
fn python_celery_fixtures_give_the_recorded_topology_in_any_arrival_order() {
    check_fixture_set(fixtures::PYTHON_CELERY, expected::python_celery(""));
}

#[test]
fn python_nats_fixtures_give_the_recorded_topology_in_any_arrival_order() {
    check_fixture_set(fixtures::PYTHON_NATS, expected::python_nats(""));
}

/// kafkajs (current conventions: `send`, `process` with the partition and offset, a `poll`
/// CLIENT span per eachBatch whose `process` children link to the producer) and
/// confluent-kafka (legacy names: `publish`, an attribute-less `recv` CONSUMER span around a
/// `process` child that links to the producer) as one topic, its producers and its groups'
/// services, without a broker: every message counted once.
#[test]
fn kafka_fixtures_give_the_recorded_topology() {
    let (env, _, window) = TestEnv::with_recording(fixtures::KAFKA);
    let t = env.topology(&window);
    let orders = "destination:kafka:orders";
    let e = common::topo::edges(&t);
    let edge =
        |kind: &str, from: &str, to: &str| e.get(&(kind.into(), from.into(), to.into())).copied();
    assert_eq!(
        edge("publish", "service:checkout-js", orders),
        Some((8, 0)),
        "{e:#?}"
    );
    assert_eq!(
        edge("publish", "service:checkout-py", orders),
        Some((6, 0)),
        "{e:#?}"
    );
    assert_eq!(
        edge("consume", orders, "service:billing"),
        Some((12, 0)),
        "{e:#?}"
    );
    assert_eq!(
        edge("consume", orders, "service:audit"),
        Some((12, 2)),
        "audit failed order-3 and order-9: {e:#?}"
    );
    assert_eq!(
        e.len(),
        4,
        "no other edge (no call to the poll span's peer): {e:#?}"
    );
    let billing = common::topo::edge(&t, "consume", orders, "service:billing");
    assert_eq!(billing["instances"], 2, "{billing}");
    // A Kafka destination is a topic from the spans alone (no broker reported it), so a
    // group's two instances are a work queue inside it.
    let nodes = common::topo::nodes(&t);
    let node = &nodes[orders];
    assert_eq!(node["entity"], "topic", "{node}");
    assert_eq!(node["seen_in"], serde_json::json!(["traces"]), "{node}");
    let work = common::topo::findings(&t);
    assert!(
        work.iter()
            .any(|f| f.0 == "work_queue" && f.1 == orders && f.2.contains("service:billing")),
        "{work:?}"
    );
    let deps = common::topo::dependencies(&t);
    for (from, to) in [("checkout-js", "billing"), ("checkout-py", "audit")] {
        assert!(
            deps.keys()
                .any(|(f, d, via)| f == &format!("service:{from}")
                    && via == orders
                    && d == &format!("service:{to}")),
            "{from} -> {to} through the links: {deps:#?}"
        );
    }
    let patterns: std::collections::BTreeSet<String> = common::topo::findings(&t)
        .into_iter()
        .map(|f| f.0)
        .collect();
    assert!(patterns.contains("broadcast"), "{patterns:?}");

    // Partition by partition from the spans alone (no discovery): each group's service
    // consumed every message of every partition once (billing's eachBatch `poll` of 2 from
    // partition 1 and its 2 `process` children are one batch); the producers name no
    // partition, and no broker gives offsets.
    let p = env.get_json(&format!(
        "/api/partitions?node=destination%3Akafka%3Aorders&{}",
        window.query()
    ));
    let parts = p["partitions"].as_array().expect("partitions");
    // (partition, consumed, each service's name and consumed)
    type Row = (u64, u64, Vec<(String, u64)>);
    let shown: Vec<Row> = parts
        .iter()
        .map(|part| {
            assert!(part.get("end_offset").is_none(), "{part}");
            assert!(part.get("lag").is_none(), "{part}");
            assert_eq!(part["published"], 0, "{part}");
            let services = part["services"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    (
                        s["name"].as_str().unwrap_or_default().to_string(),
                        s["consumed"].as_u64().unwrap_or(0),
                    )
                })
                .collect();
            (
                part["partition"].as_u64().unwrap_or(99),
                part["consumed"].as_u64().unwrap_or(0),
                services,
            )
        })
        .collect();
    let both = |n: u64| vec![("audit".to_string(), n), ("billing".to_string(), n)];
    assert_eq!(
        shown,
        vec![(0, 10, both(5)), (1, 4, both(2)), (2, 10, both(5))],
        "{p}"
    );
}

#[test]
fn the_topology_window_is_reported_and_excludes_other_times() {
    let env = TestEnv::start();
    env.post_fixtures(&fixtures::load(fixtures::NODE_AMQPLIB_JSON));
    let w = Window::of_sets(&[fixtures::NODE_AMQPLIB_JSON]);
    let t = env.topology(&w);
    assert_eq!(t["since_unix_nanos"].as_u64(), Some(w.since_unix_nanos));
    assert_eq!(t["until_unix_nanos"].as_u64(), Some(w.until_unix_nanos));
    for e in t["edges"].as_array().unwrap() {
        let first = e["first_seen_unix_nanos"].as_u64().unwrap();
        let last = e["last_seen_unix_nanos"].as_u64().unwrap();
        assert!(
            w.since_unix_nanos <= first && first <= last && last < w.until_unix_nanos,
            "{e}"
        );
        let rate = e["rate_per_sec"].as_f64().unwrap();
        let secs = (w.until_unix_nanos - w.since_unix_nanos) as f64 / 1e9;
        let want = e["count"].as_f64().unwrap() / secs;
        assert!(
            (rate - want).abs() <= want * 1e-9,
            "rate {rate}, want {want}: {e}"
        );
    }
    // The day before the recording holds nothing.
    let day = 86_400_000_000_000;
    let before = Window {
        since_unix_nanos: w.since_unix_nanos - day,
        until_unix_nanos: w.since_unix_nanos - day / 2,
    };
    let empty = env.topology(&before);
    assert!(topo::is_empty(&empty), "{empty:#}");
}

/// Posts each group of spans as its own request.
fn post_groups(env: &TestEnv, groups: &[Vec<&SpanB>]) {
    for g in groups {
        let reply = env.post_protobuf(&builder::protobuf(g));
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
}

fn kafka(name: &str) -> String {
    format!("destination:kafka:{name}")
}

#[test]
fn a_produce_span_nested_in_another_counts_as_one_message() {
    let env = TestEnv::start();
    let mut dests = Vec::new();
    for (case, order) in ["parent-first", "child-first", "one-request"]
        .iter()
        .enumerate()
    {
        let dest = format!("nested.{case}");
        let outer = span("publisher", "orders publish", Producer).messaging("kafka", &dest);
        let inner = outer
            .child("publisher", "orders send", Producer)
            .messaging("kafka", &dest);
        let consumer = inner
            .child("reader", "orders process", Consumer)
            .messaging("kafka", &dest);
        match *order {
            "parent-first" => post_groups(&env, &[vec![&outer], vec![&inner], vec![&consumer]]),
            "child-first" => post_groups(&env, &[vec![&consumer], vec![&inner], vec![&outer]]),
            _ => post_groups(&env, &[vec![&inner, &consumer, &outer]]),
        }
        dests.push(dest);
    }
    let t = env.topology(&builder::window());
    let mut want = Vec::new();
    let mut deps = Vec::new();
    for d in &dests {
        want.push(("publish".to_string(), service("publisher"), kafka(d), 1, 0));
        want.push(("consume".to_string(), kafka(d), service("reader"), 1, 0));
        deps.push((service("publisher"), service("reader"), kafka(d), Some(1)));
    }
    topo::assert_same_set(
        "edges",
        topo::edges(&t)
            .into_iter()
            .map(|((k, f, to), (c, e))| (k, f, to, c, e)),
        want,
    );
    topo::assert_same_set(
        "dependencies",
        topo::dependencies(&t)
            .into_iter()
            .map(|((f, to, v), c)| (f, to, v, c)),
        deps,
    );
    assert_eq!(
        topo::nodes(&t)[&service("publisher")]["spans"],
        6,
        "every span is still counted as a span"
    );
}

#[test]
fn a_batch_consumer_linked_to_producers_of_other_traces_counts_each_message() {
    let env = TestEnv::start();
    let p1 = span("ingest", "batch.q send", Producer).messaging("kafka", "batch.q");
    let p2 = span("ingest", "batch.q send", Producer)
        .messaging("kafka", "batch.q")
        .at_ms(5);
    let batch = span("indexer", "batch.q process", Consumer)
        .messaging("kafka", "batch.q")
        .at_ms(20)
        .link(&p1)
        .link(&p2);
    assert_ne!(p1.trace_hex(), p2.trace_hex());
    assert_ne!(batch.trace_hex(), p1.trace_hex());
    // The batch span arrives before both producers.
    post_groups(&env, &[vec![&batch], vec![&p1], vec![&p2]]);

    // A batch that declares its size: the declared count wins over the number of links.
    let p3 = span("ingest", "sized.q send", Producer).messaging("kafka", "sized.q");
    let p4 = span("ingest", "sized.q send", Producer).messaging("kafka", "sized.q");
    let sized = span("indexer", "sized.q process", Consumer)
        .messaging("kafka", "sized.q")
        .attr("messaging.batch.message_count", 5i64)
        .at_ms(20)
        .link(&p3)
        .link(&p4);
    post_groups(&env, &[vec![&p3, &p4], vec![&sized]]);

    let t = env.topology(&builder::window());
    topo::assert_same_set(
        "edges",
        topo::edges(&t)
            .into_iter()
            .map(|((k, f, to), (c, e))| (k, f, to, c, e)),
        [
            (
                "publish".to_string(),
                service("ingest"),
                kafka("batch.q"),
                2,
                0,
            ),
            (
                "consume".to_string(),
                kafka("batch.q"),
                service("indexer"),
                2,
                0,
            ),
            (
                "publish".to_string(),
                service("ingest"),
                kafka("sized.q"),
                2,
                0,
            ),
            (
                "consume".to_string(),
                kafka("sized.q"),
                service("indexer"),
                5,
                0,
            ),
        ],
    );
    let consume = topo::edge(&t, "consume", &kafka("batch.q"), &service("indexer"));
    assert_eq!(
        consume["latency"]["samples"], 2,
        "one delay per linked message: {consume}"
    );
    let deps = topo::dependencies(&t);
    assert_eq!(
        deps.get(&(service("ingest"), service("indexer"), kafka("batch.q"))),
        Some(&Some(2)),
        "{deps:#?}"
    );
}

/// A frontend calls the catalog service over HTTP; the SERVER span is a child of the CLIENT span.
fn call_pair() -> (SpanB, SpanB) {
    let client = span("frontend", "GET /items", Client)
        .attr("peer.service", "catalog-api")
        .attr("server.address", "catalog.internal")
        .lasting_ms(8);
    let server = client.child("catalog", "GET /items", Server).lasting_ms(5);
    (client, server)
}

#[test]
fn a_client_call_pairs_with_the_server_span_of_another_service_in_either_order() {
    let (client, server) = call_pair();
    let client_first = TestEnv::start();
    post_groups(&client_first, &[vec![&client]]);
    let before = client_first.topology(&builder::window());
    topo::assert_same_set(
        "edges before the server span arrives",
        topo::edges(&before).into_keys(),
        [(
            "call".to_string(),
            service("frontend"),
            "external:catalog-api".to_string(),
        )],
    );
    assert_eq!(
        topo::nodes(&before)["external:catalog-api"]["kind"],
        "external"
    );
    post_groups(&client_first, &[vec![&server]]);
    let a = client_first.topology(&builder::window());

    let server_first = TestEnv::start();
    post_groups(&server_first, &[vec![&server], vec![&client]]);
    let b = server_first.topology(&builder::window());

    for (t, order) in [(&a, "client first"), (&b, "server first")] {
        topo::assert_same_set(
            &format!("edges ({order})"),
            topo::edges(t),
            [(
                ("call".to_string(), service("frontend"), service("catalog")),
                (1, 0),
            )],
        );
        topo::assert_same_set(
            &format!("nodes ({order})"),
            topo::node_ids(t),
            [service("frontend"), service("catalog")],
        );
    }
    topo::assert_same_topology(&a, &b, "client-first vs server-first");
}

#[test]
fn a_server_span_of_the_same_service_leaves_the_call_external() {
    let env = TestEnv::start();
    let client = span("frontend", "GET /self", Client).attr("peer.service", "frontend-api");
    let server = client.child("frontend", "GET /self", Server);
    post_groups(&env, &[vec![&client], vec![&server]]);
    let t = env.topology(&builder::window());
    topo::assert_same_set(
        "edges",
        topo::edges(&t),
        [(
            (
                "call".to_string(),
                service("frontend"),
                "external:frontend-api".to_string(),
            ),
            (1, 0),
        )],
    );
}

#[test]
fn unanswered_client_calls_go_to_external_nodes_with_their_errors() {
    let env = TestEnv::start();
    let db = span("frontend", "SELECT items", Client)
        .attr("db.system", "postgresql")
        .attr("db.namespace", "shop");
    let failed = span("frontend", "GET /rates", Client)
        .attr("server.address", "rates.example")
        .error("timeout");
    let ok = span("frontend", "GET /rates", Client).attr("server.address", "rates.example");
    post_groups(&env, &[vec![&db, &failed, &ok]]);
    let t = env.topology(&builder::window());
    topo::assert_same_set(
        "edges",
        topo::edges(&t),
        [
            (
                (
                    "call".to_string(),
                    service("frontend"),
                    "external:postgresql/shop".to_string(),
                ),
                (1, 0),
            ),
            (
                (
                    "call".to_string(),
                    service("frontend"),
                    "external:rates.example".to_string(),
                ),
                (2, 1),
            ),
        ],
    );
    let nodes = topo::nodes(&t);
    assert_eq!(nodes["external:postgresql/shop"]["kind"], "external");
    assert_eq!(nodes["external:rates.example"]["name"], "rates.example");
    assert_eq!(nodes[&service("frontend")]["span_errors"], 1);
}

/// How a scenario spells its messaging and call attributes.
#[derive(Clone, Copy, Debug)]
enum Names {
    Current,
    Legacy,
    /// No operation attribute: PRODUCER/CONSUMER span kinds say it.
    KindOnly,
}

/// The same spans (same ids and times) spelled with different attribute names.
fn spelled(names: Names, ids: &[(Vec<u8>, Vec<u8>)]) -> Vec<SpanB> {
    let (produce_kind, consume_kind) = match names {
        Names::KindOnly => (Producer, Consumer),
        _ => (Internal, Internal),
    };
    let (dest_key, op_key, id_key, send, receive) = match names {
        Names::Current => (
            "messaging.destination.name",
            "messaging.operation.type",
            "messaging.message.id",
            "send",
            "process",
        ),
        _ => (
            "messaging.destination",
            "messaging.operation",
            "messaging.message_id",
            "publish",
            "receive",
        ),
    };
    let mut out = Vec::new();
    for (i, (trace, span_id)) in ids.iter().enumerate() {
        let mut p = span("billing", "invoices.created", produce_kind)
            .ids(trace.clone(), span_id.clone())
            .at_ms(i as u64 * 10)
            .attr("messaging.system", "rabbitmq")
            .attr(dest_key, "invoices")
            .attr(id_key, format!("inv-{i}"));
        if !matches!(names, Names::KindOnly) {
            p = p.attr(op_key, send);
        }
        let mut c = p
            .child("mailer", "invoices.created", consume_kind)
            .ids(trace.clone(), vec![0xc0, 0, 0, 0, 0, 0, 0, i as u8 + 1])
            .attr("messaging.system", "rabbitmq")
            .attr(dest_key, "invoices")
            .attr(id_key, format!("inv-{i}"));
        if !matches!(names, Names::KindOnly) {
            c = c.attr(op_key, receive);
        }
        if i == 1 {
            c = c.error("bounce");
        }
        out.push(p);
        out.push(c);
    }
    let (addr_key, db_key, db_name_key) = match names {
        Names::Current => ("server.address", "db.system.name", "db.namespace"),
        _ => ("net.peer.name", "db.system", "db.name"),
    };
    let smtp = span("mailer", "send mail", Client)
        .ids(vec![0xd0; 16], vec![0xd1; 8])
        .attr(addr_key, "smtp.example");
    let db = span("billing", "INSERT invoice", Client)
        .ids(vec![0xe0; 16], vec![0xe1; 8])
        .attr(db_key, "postgresql")
        .attr(db_name_key, "ledger");
    out.push(smtp);
    out.push(db);
    out
}

#[test]
fn legacy_and_current_attribute_names_give_the_same_graph() {
    let ids: Vec<(Vec<u8>, Vec<u8>)> = (0..3)
        .map(|_| (builder::new_trace_id(), builder::new_span_id()))
        .collect();
    let mut graphs = Vec::new();
    for names in [Names::Current, Names::Legacy, Names::KindOnly] {
        let env = TestEnv::start();
        let spans = spelled(names, &ids);
        let refs: Vec<&SpanB> = spans.iter().collect();
        post_groups(&env, &[refs]);
        graphs.push((names, env.topology(&builder::window())));
    }
    let (_, current) = &graphs[0];
    topo::assert_same_set(
        "edges",
        topo::edges(current),
        [
            (
                (
                    "publish".to_string(),
                    service("billing"),
                    rabbit("invoices"),
                ),
                (3, 0),
            ),
            (
                ("consume".to_string(), rabbit("invoices"), service("mailer")),
                (3, 1),
            ),
            (
                (
                    "call".to_string(),
                    service("mailer"),
                    "external:smtp.example".to_string(),
                ),
                (1, 0),
            ),
            (
                (
                    "call".to_string(),
                    service("billing"),
                    "external:postgresql/ledger".to_string(),
                ),
                (1, 0),
            ),
        ],
    );
    for (names, t) in &graphs[1..] {
        topo::assert_same_topology(current, t, &format!("current names vs {names:?}"));
    }
}

#[test]
fn a_message_published_to_an_exchange_and_consumed_from_a_queue_adds_a_route_edge() {
    let env = TestEnv::start();
    let mut spans = Vec::new();
    for i in 0..2 {
        let p = span("orders", "orders.x publish", Producer)
            .messaging("rabbitmq", "orders.x")
            .at_ms(i * 10);
        let c = p
            .child("shipping", "orders.q process", Consumer)
            .messaging("rabbitmq", "orders.q");
        spans.push(p);
        spans.push(c);
    }
    post_groups(&env, &[spans.iter().collect()]);
    let t = env.topology(&builder::window());
    topo::assert_same_set(
        "edges",
        topo::edges(&t),
        [
            (
                ("publish".to_string(), service("orders"), rabbit("orders.x")),
                (2, 0),
            ),
            (
                ("route".to_string(), rabbit("orders.x"), rabbit("orders.q")),
                (2, 0),
            ),
            (
                (
                    "consume".to_string(),
                    rabbit("orders.q"),
                    service("shipping"),
                ),
                (2, 0),
            ),
        ],
    );
    topo::assert_same_set(
        "dependencies",
        topo::dependencies(&t),
        [(
            (service("orders"), service("shipping"), rabbit("orders.q")),
            Some(2),
        )],
    );
}

#[test]
fn a_route_edge_does_not_depend_on_arrival_order() {
    let env = TestEnv::start();
    let p = span("billing", "invoices.x publish", Producer).messaging("rabbitmq", "invoices.x");
    let c = p
        .child("mailer", "invoices.q process", Consumer)
        .messaging("rabbitmq", "invoices.q");
    post_groups(&env, &[vec![&c], vec![&p]]);
    let t = env.topology(&builder::window());
    topo::assert_same_set(
        "edges",
        topo::edges(&t),
        [
            (
                (
                    "publish".to_string(),
                    service("billing"),
                    rabbit("invoices.x"),
                ),
                (1, 0),
            ),
            (
                (
                    "route".to_string(),
                    rabbit("invoices.x"),
                    rabbit("invoices.q"),
                ),
                (1, 0),
            ),
            (
                (
                    "consume".to_string(),
                    rabbit("invoices.q"),
                    service("mailer"),
                ),
                (1, 0),
            ),
        ],
    );
}

#[test]
fn a_dependency_without_trace_context_is_inferred_with_a_null_count() {
    let env = TestEnv::start();
    // No parent, no link: the consumer did not receive the producer's context.
    let p = span("sensor", "readings send", Producer).messaging("kafka", "readings");
    let c = span("archive", "readings process", Consumer)
        .messaging("kafka", "readings")
        .at_ms(3);
    post_groups(&env, &[vec![&p, &c]]);
    let t = env.topology(&builder::window());
    topo::assert_same_set(
        "dependencies",
        topo::dependencies(&t),
        [(
            (service("sensor"), service("archive"), kafka("readings")),
            None,
        )],
    );
    let consume = topo::edge(&t, "consume", &kafka("readings"), &service("archive"));
    assert_eq!(consume["count"], 1, "{consume}");
}

#[test]
fn a_service_namespace_is_part_of_the_node_id() {
    let env = TestEnv::start();
    let p = span("orders", "orders send", Producer)
        .messaging("kafka", "orders")
        .namespace("shop");
    let c = p
        .child("orders", "orders process", Consumer)
        .messaging("kafka", "orders");
    post_groups(&env, &[vec![&p, &c]]);
    let t = env.topology(&builder::window());
    let nodes = topo::nodes(&t);
    let shop = &nodes["service:shop/orders"];
    assert_eq!(shop["name"], "orders", "{shop}");
    assert_eq!(shop["namespace"], "shop", "{shop}");
    assert_eq!(nodes["service:orders"]["namespace"], Value::Null);
    topo::assert_same_set(
        "edges",
        topo::edges(&t).into_keys(),
        [
            (
                "publish".to_string(),
                "service:shop/orders".to_string(),
                kafka("orders"),
            ),
            ("consume".to_string(), kafka("orders"), service("orders")),
        ],
    );
}
