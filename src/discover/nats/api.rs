//! The JetStream API's answers (`$JS.API.STREAM.LIST`, `$JS.API.CONSUMER.LIST.<stream>`, and
//! the same objects inside the monitoring endpoint's `/jsz`), read into the few fields
//! discovery uses, and mapped into a [`BrokerSnapshot`]'s destinations, services and flows.
//! Pure: no IO, so the mapping is tested over answers recorded from a real server.

use super::names::{Revealed, Service};
use crate::model::broker::{BrokerDestination, BrokerFlow, Entity, Figures, FlowKind, NamedBy};
use serde::Deserialize;

/// The error object every JetStream API answer may carry instead of its result.
#[derive(Debug, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub description: String,
}

/// One page of `$JS.API.STREAM.LIST`.
#[derive(Debug, Deserialize)]
pub struct StreamPage {
    #[serde(default)]
    pub error: Option<ApiError>,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub streams: Option<Vec<StreamInfo>>,
}

/// One page of `$JS.API.CONSUMER.LIST.<stream>`.
#[derive(Debug, Deserialize)]
pub struct ConsumerPage {
    #[serde(default)]
    pub error: Option<ApiError>,
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub consumers: Option<Vec<ConsumerInfo>>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StreamInfo {
    pub config: StreamConfig,
    #[serde(default)]
    pub state: StreamState,
}

#[derive(Clone, Debug, Deserialize)]
pub struct StreamConfig {
    pub name: String,
    #[serde(default)]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub storage: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct StreamState {
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub consumer_count: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    #[serde(default)]
    pub config: ConsumerConfig,
    #[serde(default)]
    pub num_pending: u64,
    #[serde(default)]
    pub num_ack_pending: u64,
    #[serde(default)]
    pub num_redelivered: u64,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConsumerConfig {
    #[serde(default)]
    pub durable_name: Option<String>,
    #[serde(default)]
    pub filter_subject: Option<String>,
    #[serde(default)]
    pub deliver_subject: Option<String>,
}

/// Whether a name the server gave can be put into an API subject as one token.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>'))
}

/// A stream as a destination: its subjects and storage as detail, its counts as figures.
pub fn stream_destination(s: &StreamInfo) -> BrokerDestination {
    // A mirror or a stream made of sources has no subjects of its own.
    let parts = [
        ("subjects", s.config.subjects.join(", ")),
        ("storage", s.config.storage.clone()),
    ];
    let detail = parts
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    BrokerDestination {
        name: s.config.name.clone(),
        namespace: None,
        entity: Entity::Stream,
        detail: Some(detail).filter(|d| !d.is_empty()),
        subjects: s.config.subjects.clone(),
        figures: Figures {
            messages: Some(s.state.messages),
            bytes: Some(s.state.bytes),
            consumers: Some(s.state.consumer_count),
            ..Figures::default()
        },
    }
}

/// The service a consumer delivers to: the connection the monitoring endpoint revealed
/// (through the push consumer's deliver subject), else its durable name, else (an ephemeral
/// consumer nobody revealed) its server-given name.
pub fn consumer_service(c: &ConsumerInfo, revealed: &Revealed) -> Service {
    if let Some(found) = revealed.get(&(c.stream_name.clone(), c.name.clone())) {
        return found.clone();
    }
    let name = match c.config.durable_name.as_deref() {
        Some(durable) if !durable.is_empty() => durable,
        _ => c.name.as_str(),
    };
    Service {
        name: name.to_string(),
        named_by: NamedBy::Durable,
    }
}

/// A consumer as a flow stream -> service, keyed by its filter subject.
pub fn consumer_flow(c: &ConsumerInfo, service: &Service) -> BrokerFlow {
    BrokerFlow {
        kind: FlowKind::Consume,
        from: c.stream_name.clone(),
        to: service.name.clone(),
        key: c.config.filter_subject.clone().filter(|f| !f.is_empty()),
        inferred: false,
        figures: Figures {
            pending: Some(c.num_pending),
            ack_pending: Some(c.num_ack_pending),
            redelivered: Some(c.num_redelivered),
            ..Figures::default()
        },
    }
}
