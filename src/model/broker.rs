//! What a broker reports of itself at one poll (RabbitMQ's management API, NATS JetStream and
//! its monitoring endpoints): its destinations, the services connected to it, and the flows
//! between them, each with the broker's own figures. Plain values: discovery sources build
//! them, the store keeps them (the latest per broker, and each destination's figures over
//! time), and `topology` merges them with what traces show.
//!
//! Names are the names spans use: a RabbitMQ queue or exchange by its name (the default
//! exchange is `""`), a JetStream stream by its name, a subject as written. Node ids follow
//! from them as for traces (`destination:<system>:<name>`, `service:<name>`), which is what
//! makes a destination seen in traces and in the broker one node.

use serde::{Deserialize, Serialize};

/// One poll of one broker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerSnapshot {
    /// The configured broker as shown to users: its kind and address, never credentials
    /// (`rabbitmq 127.0.0.1:15672`).
    pub broker: String,
    /// The messaging system of its destinations, as spans name it (`rabbitmq`, `nats`).
    pub system: String,
    pub taken_unix_nanos: u64,
    pub destinations: Vec<BrokerDestination>,
    pub services: Vec<BrokerService>,
    pub flows: Vec<BrokerFlow>,
}

/// What a destination is on its broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Entity {
    Exchange,
    Queue,
    Stream,
    Subject,
    Topic,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Exchange => "exchange",
            Entity::Queue => "queue",
            Entity::Stream => "stream",
            Entity::Subject => "subject",
            Entity::Topic => "topic",
        }
    }

    /// What a destination is whatever its name, where its messaging system (as spans name
    /// it) has one kind of destination only: a Kafka destination is a topic, a NATS one a
    /// subject (a JetStream stream is known only from the server, which resolves subjects to
    /// it). `None` where the system has several (RabbitMQ's exchanges and queues, the embedded
    /// broker's topics, queues and streams) or is unknown: spans alone would be a guess there.
    pub fn implied_by(system: &str) -> Option<Entity> {
        match system {
            "kafka" => Some(Entity::Topic),
            "nats" => Some(Entity::Subject),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerDestination {
    pub name: String,
    /// Where one broker holds several namespaces: a RabbitMQ vhost, a NATS account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub entity: Entity,
    /// What the broker says of its kind: an exchange's type (`topic`, `fanout`), a queue's
    /// type and arguments, a stream's subjects and storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The subjects a JetStream stream stores (NATS wildcards `*` and `>`): spans name the
    /// subject a message was sent to, and the topology resolves it to the stream that holds
    /// it. Empty for everything else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub figures: Figures,
}

/// How a service's name was found in broker state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedBy {
    /// The client-provided connection name (`connection_name` in RabbitMQ, the connection
    /// name in NATS): the service's own name for itself.
    ConnectionName,
    /// A durable JetStream consumer's name.
    Durable,
    /// A connection with no name: `user (product)`; shown as an external node, never named by
    /// an ephemeral port.
    UserAndProduct,
    /// A Kafka consumer group's members all introduce themselves with this client id.
    ClientId,
    /// A Kafka consumer group whose members name no common client id: the group's id.
    ConsumerGroup,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerService {
    pub name: String,
    pub named_by: NamedBy,
}

/// A flow the broker knows of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// Service -> destination (a channel publishing to an exchange, a stream's publisher).
    Publish,
    /// Destination -> service (a queue's consumer, a JetStream consumer).
    Consume,
    /// Destination -> destination (a binding exchange -> queue or exchange -> exchange).
    Route,
    /// Destination -> destination (a queue's dead-letter exchange, from its arguments or a
    /// policy).
    DeadLetter,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrokerFlow {
    pub kind: FlowKind,
    /// A service name (publish) or a destination name (the others).
    pub from: String,
    /// A destination name, or a service name (consume).
    pub to: String,
    /// The routing or binding key, or a consumer's filter subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Not reported by the broker but inferred (a publisher found by matching a channel's
    /// publish counter with an exchange's incoming counter across polls).
    #[serde(default)]
    pub inferred: bool,
    #[serde(default)]
    pub figures: Figures,
}

/// A broker's own figures for a destination or a flow, under the names the API shows. Rates
/// are per second, as the broker computed them; counts are what it held at the poll.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Messages ready for delivery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u64>,
    /// Delivered, not yet acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unacked: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeliver_rate: Option<f64>,
    /// JetStream consumers: messages not yet delivered to the consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u64>,
    /// JetStream consumers: delivered, waiting for their ack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_pending: Option<u64>,
    /// JetStream consumers: messages delivered more than once; RabbitMQ queues: deliveries
    /// of a message again (after a nack or reject with requeue), counted since the queue was
    /// declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivered: Option<u64>,
    /// Streams: messages and bytes stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Messages held in the destination's dead-letter queue (the embedded broker's
    /// subscriptions; RabbitMQ queues with a dead-letter exchange: the messages in the queues
    /// it routes to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letters: Option<u64>,
    /// Kafka: per partition, the end offset, and (a consumer group's) committed offset and
    /// lag; on a topic, each partition's messages, consumers and lag summed over its groups.
    /// `pending` is the sum of the lags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lag: Vec<PartitionLag>,
}

/// One Kafka partition's offsets at a poll.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub partition: i32,
    /// The offset the next message written gets.
    pub end_offset: u64,
    /// Messages the partition holds (end offset less the first offset kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// A group's committed offset (on a consume flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed: Option<u64>,
    /// Group members the partition is assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumers: Option<u64>,
    /// Messages written and not yet committed (end offset less committed offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
}

impl Figures {
    pub fn is_empty(&self) -> bool {
        *self == Figures::default()
    }
}
