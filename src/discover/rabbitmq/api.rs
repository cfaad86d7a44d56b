//! The parts of RabbitMQ's management HTTP API answers that discovery reads. Every field has a
//! default: a field missing from an answer (statistics not yet collected, an older server) is
//! an empty value, never an error; an answer that is not this shape at all is.

use serde::Deserialize;
use std::collections::BTreeMap;

/// A rate as the management API gives it (`publish_details: {"rate": 1.5}`).
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct Rate {
    pub rate: f64,
}

/// `message_stats` of an exchange, a queue or a channel: counters since the object appeared,
/// with their rates. Absent until the broker has collected statistics.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct MessageStats {
    /// Exchanges: messages published into it.
    pub publish_in: Option<u64>,
    pub publish_in_details: Option<Rate>,
    /// Exchanges: messages routed out of it.
    pub publish_out_details: Option<Rate>,
    /// Queues: messages published into it; channels: messages the channel published.
    pub publish: Option<u64>,
    pub publish_details: Option<Rate>,
    /// Queues: deliveries and gets.
    pub deliver_get_details: Option<Rate>,
    /// Queues: messages delivered again (after a nack or reject with requeue, or a channel
    /// closed with them unacknowledged).
    pub redeliver: Option<u64>,
    pub redeliver_details: Option<Rate>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Exchange {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub internal: bool,
    pub message_stats: Option<MessageStats>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Queue {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub arguments: BTreeMap<String, serde_json::Value>,
    /// The policy in force, merged with operator policies (`dead-letter-exchange`, ...).
    pub effective_policy_definition: Option<BTreeMap<String, serde_json::Value>>,
    pub messages_ready: Option<u64>,
    pub messages_unacknowledged: Option<u64>,
    pub consumers: Option<u64>,
    pub message_stats: Option<MessageStats>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Binding {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    /// `queue` or `exchange`.
    pub destination_type: String,
    pub routing_key: String,
}

/// A queue or exchange as another object refers to it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct NameRef {
    pub name: String,
    pub vhost: String,
}

/// Which connection a channel or consumer belongs to (by the broker's own connection name,
/// `127.0.0.1:40000 -> 127.0.0.1:5672`, never shown).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ChannelDetails {
    pub name: String,
    pub connection_name: String,
    pub user: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Consumer {
    pub queue: NameRef,
    pub channel_details: ChannelDetails,
    pub consumer_tag: String,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ClientProperties {
    /// The name the client gave its connection (pika, amqplib, kombu, the Java client).
    pub connection_name: Option<String>,
    pub product: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Connection {
    /// The broker's name for it (peer and local address).
    pub name: String,
    pub vhost: String,
    pub user: String,
    /// The client-provided name, as the broker extracted it.
    pub user_provided_name: Option<String>,
    pub client_properties: ClientProperties,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ConnectionRef {
    pub name: String,
}

/// A channel's publishes to one exchange (`rates_mode = detailed` only).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct ChannelPublish {
    pub exchange: NameRef,
    pub stats: MessageStats,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Channel {
    pub name: String,
    pub vhost: String,
    pub user: String,
    pub connection_details: ConnectionRef,
    pub message_stats: Option<MessageStats>,
    /// Per-exchange publishes: filled in a channel's own answer when the broker keeps
    /// detailed rates, empty otherwise.
    pub publishes: Vec<ChannelPublish>,
}

/// `GET /api/overview`, for the rates mode.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub struct Overview {
    pub rates_mode: String,
    pub rabbitmq_version: String,
}

/// One poll's answers, as read.
#[derive(Debug, Default, Clone)]
pub struct Answers {
    pub exchanges: Vec<Exchange>,
    pub queues: Vec<Queue>,
    pub bindings: Vec<Binding>,
    pub consumers: Vec<Consumer>,
    pub connections: Vec<Connection>,
    pub channels: Vec<Channel>,
}
