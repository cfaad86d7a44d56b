use super::*;

fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), AttrValue::String(v.to_string())))
        .collect()
}

fn read(pairs: &[(&str, &str)], kind: SpanKind, scope: &str) -> Option<Read> {
    messaging(&attrs(pairs), kind, "x", scope)
}

fn learned<'a>(r: &'a Read, key: &str) -> Option<&'a str> {
    r.learned
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_str())
}
/// The messaging facts alone, for spans from no particular instrumentation.
fn m(a: &Attributes, kind: SpanKind, name: &str) -> Option<Messaging> {
    messaging(a, kind, name, "").map(|r| r.messaging)
}

#[test]
fn legacy_and_current_names_agree() {
    let current = m(
        &attrs(&[
            ("messaging.system", "kafka"),
            ("messaging.destination.name", "orders"),
            ("messaging.operation.type", "send"),
            ("messaging.consumer.group.name", "g"),
        ]),
        SpanKind::Producer,
        "x",
    )
    .unwrap();
    let legacy = m(
        &attrs(&[
            ("messaging.system", "kafka"),
            ("messaging.destination", "orders"),
            ("messaging.operation", "publish"),
            ("messaging.kafka.consumer_group", "g"),
        ]),
        SpanKind::Internal,
        "x",
    )
    .unwrap();
    assert_eq!(current, legacy);
    assert_eq!(current.operation, Operation::Produce);
}

#[test]
fn operation_falls_back_on_kind_then_name() {
    let a = attrs(&[
        ("messaging.system", "rabbitmq"),
        ("messaging.destination", "tasks"),
    ]);
    assert_eq!(
        m(&a, SpanKind::Consumer, "x").unwrap().operation,
        Operation::Consume
    );
    assert_eq!(
        m(&a, SpanKind::Internal, "tasks process")
            .unwrap()
            .operation,
        Operation::Consume
    );
    assert!(m(&a, SpanKind::Internal, "something").is_none());
}

#[test]
fn default_exchange_uses_the_routing_key_and_reply_queues_fold() {
    let a = attrs(&[
        ("messaging.system", "rabbitmq"),
        ("messaging.destination", ""),
        ("messaging.rabbitmq.routing_key", "tasks"),
    ]);
    assert_eq!(m(&a, SpanKind::Producer, "x").unwrap().destination, "tasks");
    let t = attrs(&[
        ("messaging.system", "rabbitmq"),
        ("messaging.destination.name", "amq.gen-Xy12"),
    ]);
    let m = m(&t, SpanKind::Consumer, "x").unwrap();
    assert!(m.temporary);
    assert_eq!(m.destination, TEMPORARY_DESTINATION);
}

#[test]
fn aio_pika_composite_names_are_the_exchange_or_the_routing_key() {
    let rabbit = |dest: &str, kind| {
        read(
            &[
                ("messaging.system", "rabbitmq"),
                ("messaging.destination", dest),
            ],
            kind,
            "opentelemetry.instrumentation.aio_pika",
        )
        .unwrap()
    };
    // A named exchange is the destination; its consumers name the exchange alone.
    let publish = rabbit("price.events,price.changed.eu", SpanKind::Producer);
    assert_eq!(publish.messaging.destination, "price.events");
    let consumed = rabbit("price.events", SpanKind::Consumer);
    assert_eq!(
        consumed.messaging.destination,
        publish.messaging.destination
    );
    assert!(consumed.learned.is_empty());
    assert_eq!(
        learned(&publish, semconv::LEARNED_EXCHANGE),
        Some("price.events")
    );
    assert_eq!(
        learned(&publish, semconv::LEARNED_ROUTING_KEY),
        Some("price.changed.eu")
    );
    // The default exchange routes to the queue named by the routing key.
    let job = rabbit(",jobs", SpanKind::Producer);
    assert_eq!(job.messaging.destination, "jobs");
    assert_eq!(learned(&job, semconv::LEARNED_EXCHANGE), Some(""));
    assert_eq!(
        rabbit("amq.default,jobs", SpanKind::Producer)
            .messaging
            .destination,
        "jobs"
    );
    // A reply to a server-named queue folds into the temporary destination.
    let reply = rabbit(",amq.gen-IOBvMF3lqKomIUK7kO2Bug", SpanKind::Producer);
    assert!(reply.messaging.temporary);
    assert_eq!(reply.messaging.destination, TEMPORARY_DESTINATION);
    // Only the first comma splits; a lone comma names nothing.
    assert_eq!(
        rabbit("ex,a,b", SpanKind::Producer).messaging.destination,
        "ex"
    );
    assert!(read(
        &[
            ("messaging.system", "rabbitmq"),
            ("messaging.destination", ",")
        ],
        SpanKind::Producer,
        ""
    )
    .is_none());
    // Other systems keep commas as they are.
    let kafka = m(
        &attrs(&[
            ("messaging.system", "kafka"),
            ("messaging.destination", "a,b"),
        ]),
        SpanKind::Producer,
        "x",
    )
    .unwrap();
    assert_eq!(kafka.destination, "a,b");
}

#[test]
fn celery_spans_infer_rabbitmq_from_the_scope_and_read_the_exchange() {
    const CELERY: &str = "opentelemetry.instrumentation.celery";
    let work = read(
        &[
            ("celery.action", "run"),
            (
                "celery.delivery_info",
                "{'exchange': '', 'routing_key': 'render', 'priority': 0, 'redelivered': False}",
            ),
            ("messaging.destination", "render"),
            ("messaging.message.id", "9653b834"),
        ],
        SpanKind::Consumer,
        CELERY,
    )
    .unwrap();
    assert_eq!(work.messaging.system, "rabbitmq");
    assert_eq!(work.messaging.destination, "render");
    assert_eq!(work.messaging.operation, Operation::Consume);
    assert_eq!(work.messaging.message_id.as_deref(), Some("9653b834"));
    assert_eq!(
        learned(&work, semconv::SYSTEM_INFERRED),
        Some("instrumentation scope opentelemetry.instrumentation.celery")
    );
    assert_eq!(learned(&work, semconv::LEARNED_ROUTING_KEY), Some("render"));
    // A broadcast: the producer names only the exchange, the consumer an empty destination.
    let published = read(
        &[
            ("celery.exchange", "cache.flush"),
            ("messaging.message.id", "13fc"),
        ],
        SpanKind::Producer,
        CELERY,
    )
    .unwrap();
    let consumed = read(
        &[
            (
                "celery.delivery_info",
                "{'exchange': 'cache.flush', 'routing_key': '', 'priority': 0}",
            ),
            ("messaging.destination", ""),
        ],
        SpanKind::Consumer,
        CELERY,
    )
    .unwrap();
    assert_eq!(published.messaging.destination, "cache.flush");
    assert_eq!(consumed.messaging.destination, "cache.flush");
    assert_eq!(
        learned(&consumed, semconv::LEARNED_EXCHANGE),
        Some("cache.flush")
    );
    // INTERNAL spans without a messaging operation stay plain spans.
    assert!(read(
        &[("messaging.destination", "render")],
        SpanKind::Internal,
        CELERY
    )
    .is_none());
}

#[test]
fn a_broker_port_names_the_system_before_the_scope() {
    let by_port = |port: &str| {
        read(
            &[("messaging.destination", "orders"), ("net.peer.port", port)],
            SpanKind::Producer,
            "opentelemetry.instrumentation.celery",
        )
        .map(|r| {
            (
                r.messaging.system.clone(),
                learned(&r, semconv::SYSTEM_INFERRED).map(str::to_string),
            )
        })
    };
    assert_eq!(
        by_port("5672"),
        Some(("rabbitmq".into(), Some("peer port 5672".into())))
    );
    assert_eq!(
        by_port("6379"),
        Some(("redis".into(), Some("peer port 6379".into())))
    );
    // An unknown port falls back on the scope; no scope and no port: not messaging.
    assert_eq!(by_port("1234").unwrap().0, "rabbitmq");
    assert!(read(
        &[("messaging.destination", "orders")],
        SpanKind::Producer,
        "my.lib"
    )
    .is_none());
    // A declared system is never overridden or annotated.
    let declared = read(
        &[
            ("messaging.system", "RabbitMQ"),
            ("messaging.destination", "orders"),
            ("server.port", "4222"),
        ],
        SpanKind::Producer,
        "",
    )
    .unwrap();
    assert_eq!(declared.messaging.system, "rabbitmq");
    assert!(declared.learned.is_empty());
}

#[test]
fn delivery_facts_parse_python_and_json_text_only() {
    let python = "{'exchange': 'x', 'routing_key': 'a.b', 'priority': 0}";
    assert_eq!(dict_str(python, "exchange"), Some("x"));
    assert_eq!(dict_str(python, "routing_key"), Some("a.b"));
    assert_eq!(dict_str(python, "priority"), None);
    assert_eq!(dict_str(r#"{"exchange": "y"}"#, "exchange"), Some("y"));
    assert_eq!(dict_str("{'exchange': 'unterminated", "exchange"), None);
    assert_eq!(dict_str(r"{'exchange': 'a\'b'}", "exchange"), None);
    let huge = attrs(&[("celery.delivery_info", &"x".repeat(MAX_DELIVERY_INFO + 1))]);
    assert_eq!(celery_delivery(&huge), RabbitName::default());
}

#[test]
fn partitions_are_read_from_current_and_legacy_names() {
    let kafkajs = attrs(&[
        ("messaging.system", "kafka"),
        ("messaging.destination.name", "orders"),
        ("messaging.operation.type", "process"),
        ("messaging.destination.partition.id", "2"),
    ]);
    assert_eq!(
        m(&kafkajs, SpanKind::Consumer, "x").and_then(|m| m.partition),
        Some(2)
    );
    // confluent-kafka's instrumentation sends the legacy name as an integer.
    let mut legacy = attrs(&[
        ("messaging.system", "kafka"),
        ("messaging.destination", "orders"),
        ("messaging.operation", "process"),
    ]);
    legacy.push(("messaging.kafka.partition".into(), serde_json::json!(1)));
    assert_eq!(
        m(&legacy, SpanKind::Consumer, "x").and_then(|m| m.partition),
        Some(1)
    );
    // Nothing readable as a partition: none.
    for bad in ["-1", "one", "99999999999", ""] {
        let a = attrs(&[
            ("messaging.system", "kafka"),
            ("messaging.destination.name", "orders"),
            ("messaging.operation.type", "send"),
            ("messaging.destination.partition.id", bad),
        ]);
        assert_eq!(
            m(&a, SpanKind::Producer, "x").and_then(|m| m.partition),
            None,
            "{bad}"
        );
    }
}
