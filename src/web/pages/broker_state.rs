//! The embedded broker's state of one destination, for its page: a topic's subscriptions
//! (ready, leased, dead-letter counts) or a stream's offsets and consumer groups (lag).
//!
//! Read through the broker handle's typed read ([`Broker::destination`], a router command):
//! the web module never reaches into broker state itself.

use crate::broker::traced::SYSTEM;
use crate::broker::{Broker, DestinationState, SubscriptionInfo};

/// One subscription of a topic: its queue depth, messages in flight and dead letters.
pub struct QueueRow {
    pub name: String,
    pub ready: u64,
    pub leased: u64,
    pub dead: u64,
    pub push: bool,
    pub filtered: bool,
    /// The services that pulled from it in the last minute, by name (`name@instance`).
    pub consumers: Vec<String>,
}

/// The subscription a destination page names (its own page): its topic and queue.
pub struct SubscriptionState {
    pub topic: String,
    pub max_attempts: u32,
    pub queue: QueueRow,
}

/// One consumer group of a stream.
pub struct GroupRow {
    pub name: String,
    pub committed: u64,
    pub lag: u64,
}

/// A stream's readable offsets and its groups.
pub struct StreamState {
    pub first_offset: u64,
    pub next_offset: u64,
    pub groups: Vec<GroupRow>,
}

/// What the broker knows of a destination (`declared` false: no topic or stream by that name).
pub struct BrokerState {
    pub declared: bool,
    /// When the page's destination is a subscription: that subscription.
    pub subscription: Option<SubscriptionState>,
    /// The services that read the stream in the last minute.
    pub stream_readers: Vec<String>,
    pub queues: Vec<QueueRow>,
    pub stream: Option<StreamState>,
    pub error: String,
}

/// Whether a destination node id names an embedded-broker destination.
pub fn is_broker_destination(node_id: &str) -> bool {
    node_id
        .strip_prefix("destination:")
        .and_then(|rest| rest.strip_prefix(SYSTEM))
        .is_some_and(|rest| rest.starts_with(':'))
}

/// Reads the state of destination `name` from the broker.
pub async fn load(broker: &Broker, name: &str) -> BrokerState {
    match broker.destination(name.to_string()).await {
        Ok(state) => BrokerState::of(state),
        Err(e) => BrokerState {
            declared: false,
            subscription: None,
            stream_readers: Vec::new(),
            queues: Vec::new(),
            stream: None,
            error: e.to_string(),
        },
    }
}

impl BrokerState {
    fn of(state: DestinationState) -> BrokerState {
        let consumers = |name: &str| -> Vec<String> {
            state
                .consumers
                .get(name)
                .into_iter()
                .flatten()
                .map(|c| c.service.clone())
                .collect()
        };
        let row = |s: SubscriptionInfo| QueueRow {
            push: s.spec.push.is_some(),
            filtered: s.spec.filter.is_some(),
            consumers: consumers(&s.spec.name),
            name: s.spec.name,
            ready: s.ready,
            leased: s.leased,
            dead: s.dead,
        };
        let subscription = state.subscription.clone().map(|s| SubscriptionState {
            topic: s.spec.topic.clone(),
            max_attempts: s.spec.max_attempts,
            queue: row(s),
        });
        let stream_readers = state
            .stream
            .as_ref()
            .map(|s| consumers(&s.spec.name))
            .unwrap_or_default();
        let queues = state.subscriptions.clone().into_iter().map(row).collect();
        let stream = state.stream.map(|s| StreamState {
            first_offset: s.first_offset,
            next_offset: s.next_offset,
            groups: s
                .groups
                .into_iter()
                .map(|g| GroupRow {
                    name: g.name,
                    committed: g.committed,
                    lag: g.lag,
                })
                .collect(),
        });
        BrokerState {
            declared: state.declared,
            subscription,
            stream_readers,
            queues,
            stream,
            error: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_switchyard_destinations_are_broker_destinations() {
        assert!(is_broker_destination("destination:switchyard:orders"));
        assert!(is_broker_destination("destination:switchyard:a:b"));
        assert!(!is_broker_destination("destination:rabbitmq:orders"));
        assert!(!is_broker_destination("destination:switchyardx:orders"));
        assert!(!is_broker_destination("service:switchyard"));
    }
}
