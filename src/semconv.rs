//! Attribute names Switchyard reads, current and legacy, as one alias table.
//!
//! Each [`Field`] lists the names that carry it, most current first; the first one present on
//! a span wins. docs/SEMCONV.md renders this table for users.

/// A fact Switchyard reads from spans or resources, and every attribute name that carries it.
pub struct Field {
    pub field: &'static str,
    pub names: &'static [&'static str],
}

pub const SERVICE_NAME: &str = "service.name";
pub const SERVICE_NAMESPACE: &str = "service.namespace";
pub const SERVICE_INSTANCE: &str = "service.instance.id";

pub const MESSAGING_SYSTEM: Field = Field {
    field: "system",
    names: &["messaging.system"],
};
pub const DESTINATION: Field = Field {
    field: "destination",
    names: &[
        "messaging.destination.name",
        "messaging.destination",
        "messaging.destination.template",
        "messaging.source.name",
        "messaging.source",
    ],
};
pub const OPERATION: Field = Field {
    field: "operation",
    names: &[
        "messaging.operation.type",
        "messaging.operation",
        "messaging.operation.name",
    ],
};
pub const MESSAGE_ID: Field = Field {
    field: "message id",
    names: &["messaging.message.id", "messaging.message_id"],
};
pub const CONVERSATION_ID: Field = Field {
    field: "conversation id",
    names: &[
        "messaging.message.conversation_id",
        "messaging.conversation_id",
        "messaging.rabbitmq.message.correlation_id",
        "messaging.correlation_id",
    ],
};
pub const CONSUMER_GROUP: Field = Field {
    field: "consumer group",
    names: &[
        "messaging.consumer.group.name",
        "messaging.kafka.consumer.group",
        "messaging.kafka.consumer_group",
        "messaging.eventhubs.consumer.group",
        "messaging.servicebus.destination.subscription_name",
        "messaging.destination.subscription.name",
    ],
};
pub const ROUTING_KEY: Field = Field {
    field: "routing key",
    names: &[
        "messaging.rabbitmq.destination.routing_key",
        "messaging.rabbitmq.routing_key",
    ],
};
pub const TEMPORARY: Field = Field {
    field: "temporary destination",
    // The legacy `messaging.temp_destination` is not read: opentelemetry-instrumentation-pika
    // sets it to true on every publish (see fixtures/README.md). Broker-generated names
    // (TEMPORARY_PREFIXES) cover reply queues there.
    names: &[
        "messaging.destination.temporary",
        "messaging.destination.anonymous",
    ],
};
pub const EXCHANGE: Field = Field {
    field: "exchange",
    // Celery's producer spans name a non-default exchange here (and no destination).
    names: &["celery.exchange"],
};
/// Celery's delivery facts on consumer spans: a Python dict's text with `exchange` and
/// `routing_key`, read when `messaging.destination` is empty (fanout and topic exchanges).
pub const CELERY_DELIVERY_INFO: &str = "celery.delivery_info";
pub const PEER_PORT: Field = Field {
    field: "peer port",
    names: &["server.port", "net.peer.port"],
};
pub const BATCH_COUNT: Field = Field {
    field: "batch message count",
    names: &["messaging.batch.message_count"],
};
/// The partition a message was written to or read from (Kafka): current, then the legacy
/// names (confluent-kafka's instrumentation sets the last).
pub const PARTITION: Field = Field {
    field: "partition",
    names: &[
        "messaging.destination.partition.id",
        "messaging.kafka.destination.partition",
        "messaging.kafka.partition",
    ],
};
pub const PEER_SERVICE: Field = Field {
    field: "peer service",
    names: &["peer.service"],
};
pub const DB_SYSTEM: Field = Field {
    field: "database system",
    names: &["db.system.name", "db.system"],
};
pub const DB_NAMESPACE: Field = Field {
    field: "database name",
    names: &["db.namespace", "db.name"],
};
pub const SERVER_ADDRESS: Field = Field {
    field: "server address",
    names: &[
        "server.address",
        "net.peer.name",
        "http.host",
        "net.host.name",
        "rpc.service",
    ],
};

/// Every field, for documentation and the `config`/`semconv` listings.
pub const ALL: &[&Field] = &[
    &MESSAGING_SYSTEM,
    &DESTINATION,
    &OPERATION,
    &MESSAGE_ID,
    &CONVERSATION_ID,
    &CONSUMER_GROUP,
    &ROUTING_KEY,
    &EXCHANGE,
    &PEER_PORT,
    &TEMPORARY,
    &BATCH_COUNT,
    &PARTITION,
    &PEER_SERVICE,
    &DB_SYSTEM,
    &DB_NAMESPACE,
    &SERVER_ADDRESS,
];

/// Temporary queue name prefixes that brokers generate (RabbitMQ server-named queues,
/// NATS inboxes), treated as temporary even when the span does not say so.
pub const TEMPORARY_PREFIXES: &[&str] = &["amq.gen-", "_INBOX.", "amq.rabbitmq.reply-to"];

/// Facts Switchyard adds to a span's attributes when it reads them from elsewhere.
/// How the messaging system was inferred, for spans that set no `messaging.system`.
pub const SYSTEM_INFERRED: &str = "switchyard.messaging.system_inferred";
/// The RabbitMQ exchange read from a composite destination or Celery's delivery facts
/// (`""` is the default exchange).
pub const LEARNED_EXCHANGE: &str = "switchyard.messaging.exchange";
/// The RabbitMQ routing key read from a composite destination or Celery's delivery facts.
pub const LEARNED_ROUTING_KEY: &str = "switchyard.messaging.routing_key";

/// The messaging system behind a well-known broker port, for spans without `messaging.system`.
pub const PORT_SYSTEMS: &[(u16, &str)] = &[
    (5672, "rabbitmq"),
    (5671, "rabbitmq"),
    (4222, "nats"),
    (9092, "kafka"),
    (6379, "redis"),
];

/// The messaging system an instrumentation scope speaks to (scope name prefix, system), for
/// spans without `messaging.system` and without a known peer port. Celery's instrumentation
/// names no broker; RabbitMQ (amqp) is Celery's default broker transport.
pub const SCOPE_SYSTEMS: &[(&str, &str)] = &[
    ("opentelemetry.instrumentation.celery", "rabbitmq"),
    ("opentelemetry.instrumentation.aio_pika", "rabbitmq"),
    ("opentelemetry.instrumentation.pika", "rabbitmq"),
    ("@opentelemetry/instrumentation-amqplib", "rabbitmq"),
    ("opentelemetry.instrumentation.kafka", "kafka"),
    ("opentelemetry.instrumentation.confluent_kafka", "kafka"),
    ("@opentelemetry/instrumentation-kafkajs", "kafka"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_name_is_claimed_twice() {
        let mut seen = std::collections::HashSet::new();
        for field in ALL {
            for name in field.names {
                assert!(
                    seen.insert(*name),
                    "{name} appears twice in the alias table"
                );
            }
        }
    }
}

#[cfg(test)]
mod doc_tests {
    #[test]
    fn the_user_documentation_lists_every_name() {
        let doc = include_str!("../docs/SEMCONV.md");
        for field in super::ALL {
            for name in field.names {
                assert!(
                    doc.contains(&format!("`{name}`")),
                    "docs/SEMCONV.md does not mention {name}"
                );
            }
        }
    }
}
