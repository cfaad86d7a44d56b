//! The expected topology of each recorded scenario (fixtures/README.md), parameterised by the
//! suffix that live runs append to exchange and queue names (`RUN_SUFFIX`).

use super::topo::{self, nats, rabbit, service};
use serde_json::Value;

/// The reply queue `amq.gen-...` is folded into this destination.
pub const TEMPORARY: &str = "(temporary)";

#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// (service name, spans, span errors)
    pub services: Vec<(String, i64, i64)>,
    /// RabbitMQ destination names
    pub destinations: Vec<String>,
    /// (kind, from, to, count, errors)
    pub edges: Vec<(String, String, String, i64, i64)>,
    /// (destination, service, distinct consumer instances) of consume edges
    pub instances: Vec<(String, String, i64)>,
    /// (from, to, via, count)
    pub dependencies: Vec<(String, String, String, Option<i64>)>,
    /// (pattern, main node, every node)
    pub findings: Vec<(String, String, Vec<String>)>,
    /// The messaging system of `destinations` (empty: rabbitmq).
    pub system: String,
}

fn publish(svc: &str, dest: &str, count: i64) -> (String, String, String, i64, i64) {
    ("publish".into(), service(svc), rabbit(dest), count, 0)
}

fn consume(dest: &str, svc: &str, count: i64, errors: i64) -> (String, String, String, i64, i64) {
    ("consume".into(), rabbit(dest), service(svc), count, errors)
}

fn dep(from: &str, to: &str, via: &str, count: i64) -> (String, String, String, Option<i64>) {
    (service(from), service(to), rabbit(via), Some(count))
}

/// The broadcast part of `shop.py`: orders -> order.created -> shipping and billing (order-3 fails).
pub fn broadcast(suffix: &str) -> Expected {
    let oc = format!("order.created{suffix}");
    Expected {
        services: vec![
            ("orders".into(), 5, 0),
            ("shipping".into(), 5, 0),
            ("billing".into(), 5, 1),
        ],
        destinations: vec![oc.clone()],
        edges: vec![
            publish("orders", &oc, 5),
            consume(&oc, "shipping", 5, 0),
            consume(&oc, "billing", 5, 1),
        ],
        instances: vec![
            (rabbit(&oc), service("shipping"), 1),
            (rabbit(&oc), service("billing"), 1),
        ],
        dependencies: vec![
            dep("orders", "shipping", &oc, 5),
            dep("orders", "billing", &oc, 5),
        ],
        findings: vec![(
            "broadcast".into(),
            rabbit(&oc),
            vec![rabbit(&oc), service("billing"), service("shipping")],
        )],
        system: String::new(),
    }
}

/// `fixtures/otlp/python-pika`: broadcast, work queue, rpc over a reply queue, audit dead end.
pub fn python_pika(suffix: &str) -> Expected {
    let mut e = broadcast(suffix);
    let tasks = format!("tasks{suffix}");
    let fa = format!("identity.2fa{suffix}");
    let audit = format!("audit.events{suffix}");
    e.services.extend([
        ("checkout".into(), 6, 0),
        ("worker".into(), 6, 0),
        ("wallet".into(), 6, 0),
        ("identity".into(), 6, 0),
        ("audit".into(), 2, 0),
    ]);
    e.destinations.extend([
        tasks.clone(),
        fa.clone(),
        TEMPORARY.to_string(),
        audit.clone(),
    ]);
    e.edges.extend([
        publish("checkout", &tasks, 6),
        consume(&tasks, "worker", 6, 0),
        publish("wallet", &fa, 3),
        consume(&fa, "identity", 3, 0),
        publish("identity", TEMPORARY, 3),
        consume(TEMPORARY, "wallet", 3, 0),
        publish("audit", &audit, 2),
    ]);
    e.instances.extend([
        (rabbit(&tasks), service("worker"), 2),
        (rabbit(&fa), service("identity"), 1),
        (rabbit(TEMPORARY), service("wallet"), 1),
    ]);
    e.dependencies.extend([
        dep("checkout", "worker", &tasks, 6),
        dep("wallet", "identity", &fa, 3),
        dep("identity", "wallet", TEMPORARY, 3),
    ]);
    e.findings.extend([
        (
            "work_queue".into(),
            rabbit(&tasks),
            vec![rabbit(&tasks), service("worker")],
        ),
        (
            "action_response".into(),
            service("identity"),
            vec![
                service("identity"),
                service("wallet"),
                rabbit(TEMPORARY),
                rabbit(&fa),
            ],
        ),
        ("dead_end".into(), rabbit(&audit), vec![rabbit(&audit)]),
    ]);
    e
}

/// `fixtures/otlp/python-pika-gzip`: the broadcast part only.
pub fn python_pika_gzip() -> Expected {
    broadcast("")
}

/// The retry part of `shop.py`: cashier -> queue payments -> settler, who nacks every first
/// delivery with requeue and dead-letters payment-2. Traces alone: each message is one message
/// however often it was delivered (8 consume spans, 4 messages); no instrumentation marks the
/// redeliveries.
pub fn python_pika_retry(suffix: &str) -> Expected {
    let payments = format!("payments{suffix}");
    Expected {
        services: vec![("cashier".into(), 4, 0), ("settler".into(), 8, 0)],
        destinations: vec![payments.clone()],
        edges: vec![
            publish("cashier", &payments, 4),
            consume(&payments, "settler", 4, 0),
        ],
        instances: vec![(rabbit(&payments), service("settler"), 1)],
        dependencies: vec![dep("cashier", "settler", &payments, 4)],
        findings: vec![],
        system: String::new(),
    }
}

/// `fixtures/otlp/node-amqplib-json`: inventory -> stock.changed -> catalog.
pub fn node_amqplib(suffix: &str) -> Expected {
    let sc = format!("stock.changed{suffix}");
    Expected {
        services: vec![("inventory".into(), 4, 0), ("catalog".into(), 4, 0)],
        destinations: vec![sc.clone()],
        edges: vec![publish("inventory", &sc, 4), consume(&sc, "catalog", 4, 0)],
        instances: vec![(rabbit(&sc), service("catalog"), 1)],
        dependencies: vec![dep("inventory", "catalog", &sc, 4)],
        findings: vec![],
        system: String::new(),
    }
}

/// `fixtures/otlp/python-aio-pika` (`quotes.py`): a topic exchange to two services, a work
/// queue on the default exchange, and request/reply over a server-named reply queue. aio-pika
/// names destinations `"exchange,routing_key"` on publish; they fold into the exchange, or
/// the queue behind the default exchange.
pub fn python_aio_pika(suffix: &str) -> Expected {
    let price = format!("price.events{suffix}");
    let jobs = format!("jobs{suffix}");
    let quote = format!("quote.rpc{suffix}");
    Expected {
        services: vec![
            ("ticker".into(), 4, 0),
            ("alerts".into(), 4, 0),
            ("archive".into(), 4, 0),
            ("ingest".into(), 6, 0),
            ("indexer".into(), 6, 0),
            ("gateway".into(), 6, 0),
            ("pricing".into(), 6, 0),
        ],
        destinations: vec![
            price.clone(),
            jobs.clone(),
            quote.clone(),
            TEMPORARY.to_string(),
        ],
        edges: vec![
            publish("ticker", &price, 4),
            consume(&price, "alerts", 4, 0),
            consume(&price, "archive", 4, 0),
            publish("ingest", &jobs, 6),
            consume(&jobs, "indexer", 6, 0),
            publish("gateway", &quote, 3),
            consume(&quote, "pricing", 3, 0),
            publish("pricing", TEMPORARY, 3),
            consume(TEMPORARY, "gateway", 3, 0),
        ],
        instances: vec![
            (rabbit(&price), service("alerts"), 1),
            (rabbit(&price), service("archive"), 1),
            (rabbit(&jobs), service("indexer"), 2),
            (rabbit(&quote), service("pricing"), 1),
            (rabbit(TEMPORARY), service("gateway"), 1),
        ],
        dependencies: vec![
            dep("ticker", "alerts", &price, 4),
            dep("ticker", "archive", &price, 4),
            dep("ingest", "indexer", &jobs, 6),
            dep("gateway", "pricing", &quote, 3),
            dep("pricing", "gateway", TEMPORARY, 3),
        ],
        findings: vec![
            (
                "broadcast".into(),
                rabbit(&price),
                vec![rabbit(&price), service("alerts"), service("archive")],
            ),
            (
                "work_queue".into(),
                rabbit(&jobs),
                vec![rabbit(&jobs), service("indexer")],
            ),
            (
                "action_response".into(),
                service("gateway"),
                vec![
                    service("gateway"),
                    service("pricing"),
                    rabbit(TEMPORARY),
                    rabbit(&quote),
                ],
            ),
        ],
        system: String::new(),
    }
}

/// `fixtures/otlp/python-celery` (`press.py`): Celery tasks on RabbitMQ. The spans name no
/// messaging system; it is inferred from the instrumentation scope.
pub fn python_celery(suffix: &str) -> Expected {
    let render = format!("render{suffix}");
    let mail = format!("mail{suffix}");
    let quote = format!("quote{suffix}");
    let flush = format!("cache.flush{suffix}");
    Expected {
        services: vec![
            ("frontend".into(), 10, 0),
            ("renderer".into(), 15, 1),
            ("backoffice".into(), 7, 0),
        ],
        destinations: vec![render.clone(), mail.clone(), quote.clone(), flush.clone()],
        edges: vec![
            publish("frontend", &render, 6),
            consume(&render, "renderer", 6, 1),
            publish("renderer", &mail, 5),
            consume(&mail, "backoffice", 5, 0),
            publish("frontend", &flush, 2),
            consume(&flush, "renderer", 2, 0),
            publish("frontend", &quote, 2),
            consume(&quote, "backoffice", 2, 0),
        ],
        instances: vec![
            (rabbit(&render), service("renderer"), 2),
            (rabbit(&mail), service("backoffice"), 1),
            (rabbit(&flush), service("renderer"), 2),
            (rabbit(&quote), service("backoffice"), 1),
        ],
        dependencies: vec![
            dep("frontend", "renderer", &render, 6),
            dep("renderer", "backoffice", &mail, 5),
            dep("frontend", "renderer", &flush, 2),
            dep("frontend", "backoffice", &quote, 2),
        ],
        // The broadcast reaches both renderer instances: each runs every flush, 4 deliveries
        // of the 2 messages published, and every edge counts the 2 logical messages
        // (docs/SEMCONV.md); every instance getting every message (4 deliveries paired) is a
        // broadcast to instances, not a work queue.
        findings: vec![
            (
                "work_queue".into(),
                rabbit(&render),
                vec![rabbit(&render), service("renderer")],
            ),
            (
                "broadcast".into(),
                rabbit(&flush),
                vec![rabbit(&flush), service("renderer")],
            ),
        ],
        system: String::new(),
    }
}

/// `fixtures/otlp/python-nats` (`orders_nats.py`): nats-py on JetStream, traced by hand with
/// the SDK, trace context in the message headers. checkout publishes 4 `orders.created` and 2
/// `orders.cancelled`; the durable pull consumer `invoicer` (two instances) gets the 4 created
/// (order-3 fails), the durable push consumer `auditor` all 6. Destinations are subjects.
pub fn python_nats(suffix: &str) -> Expected {
    let created = format!("orders.created{suffix}");
    let cancelled = format!("orders.cancelled{suffix}");
    let (c, x) = (nats(&created), nats(&cancelled));
    Expected {
        services: vec![
            ("checkout".into(), 6, 0),
            ("invoicer".into(), 4, 1),
            ("auditor".into(), 6, 0),
        ],
        destinations: vec![created.clone(), cancelled.clone()],
        edges: vec![
            ("publish".into(), service("checkout"), c.clone(), 4, 0),
            ("publish".into(), service("checkout"), x.clone(), 2, 0),
            ("consume".into(), c.clone(), service("invoicer"), 4, 1),
            ("consume".into(), c.clone(), service("auditor"), 4, 0),
            ("consume".into(), x.clone(), service("auditor"), 2, 0),
        ],
        instances: vec![
            (c.clone(), service("invoicer"), 2),
            (c.clone(), service("auditor"), 1),
            (x.clone(), service("auditor"), 1),
        ],
        dependencies: vec![
            (service("checkout"), service("invoicer"), c.clone(), Some(4)),
            (service("checkout"), service("auditor"), c.clone(), Some(4)),
            (service("checkout"), service("auditor"), x.clone(), Some(2)),
        ],
        // invoicer's two instances share its messages, but `orders.created` has two consuming
        // services, so the work queue detector (one service per destination) stays silent.
        findings: vec![(
            "broadcast".into(),
            c.clone(),
            vec![c.clone(), service("auditor"), service("invoicer")],
        )],
        system: "nats".into(),
    }
}

impl Expected {
    fn destination_id(&self, name: &str) -> String {
        match self.system.as_str() {
            "" => rabbit(name),
            system => format!("destination:{system}:{name}"),
        }
    }

    fn system_name(&self) -> String {
        match self.system.as_str() {
            "" => "rabbitmq".into(),
            system => system.into(),
        }
    }

    /// Both scenarios in one store (their names do not overlap).
    pub fn and(mut self, other: Expected) -> Expected {
        self.services.extend(other.services);
        self.destinations.extend(other.destinations);
        self.edges.extend(other.edges);
        self.instances.extend(other.instances);
        self.dependencies.extend(other.dependencies);
        self.findings.extend(other.findings);
        self
    }

    /// Asserts the topology is exactly this one: nodes, edges with counts and errors, consumer
    /// instances, dependencies and findings; consume latencies are publish-to-consume delays of
    /// every paired message.
    pub fn assert_topology(&self, t: &Value) {
        let nodes = topo::nodes(t);
        let mut want_nodes: Vec<(String, String, String, Option<String>)> = self
            .services
            .iter()
            .map(|(n, _, _)| (service(n), "service".into(), n.clone(), None))
            .collect();
        want_nodes.extend(self.destinations.iter().map(|d| {
            (
                self.destination_id(d),
                "destination".into(),
                d.clone(),
                Some(self.system_name()),
            )
        }));
        topo::assert_same_set(
            "nodes (id, kind, name, system)",
            nodes.values().map(|n| {
                (
                    n["id"].as_str().unwrap().to_string(),
                    n["kind"].as_str().unwrap().to_string(),
                    n["name"].as_str().unwrap().to_string(),
                    n["system"].as_str().map(str::to_string),
                )
            }),
            want_nodes,
        );
        topo::assert_same_set(
            "service span counts (id, spans, span_errors)",
            nodes.values().filter(|n| n["kind"] == "service").map(|n| {
                (
                    n["id"].as_str().unwrap().to_string(),
                    n["spans"].as_i64(),
                    n["span_errors"].as_i64(),
                )
            }),
            self.services
                .iter()
                .map(|(n, s, e)| (service(n), Some(*s), Some(*e))),
        );
        topo::assert_same_set(
            "edges (kind, from, to, count, errors)",
            topo::edges(t)
                .into_iter()
                .map(|((k, f, to), (c, e))| (k, f, to, c, e)),
            self.edges.clone(),
        );
        for (dest, svc, n) in &self.instances {
            let e = topo::edge(t, "consume", dest, svc);
            assert_eq!(
                e["instances"].as_i64(),
                Some(*n),
                "instances of {dest} -> {svc}: {e}"
            );
            // One delay sample per delivery paired with its publish: at least one per message
            // (a message delivered to two instances is one message with two samples).
            assert!(
                e["latency"]["samples"].as_i64() >= e["count"].as_i64(),
                "every consumed message was paired with its publish: {e}"
            );
        }
        topo::assert_same_set(
            "dependencies (from, to, via, count)",
            topo::dependencies(t)
                .into_iter()
                .map(|((f, to, v), c)| (f, to, v, c)),
            self.dependencies.clone(),
        );
        topo::assert_same_set(
            "findings (pattern, main node, nodes)",
            topo::findings(t),
            self.findings
                .iter()
                .map(|(p, m, n)| (p.clone(), m.clone(), n.iter().cloned().collect())),
        );
    }
}
