//! The commands the router takes: every broker operation is one, with a oneshot for its
//! answer (sent after COMMIT for writes). The writes (applied in the turn's transaction, one
//! `apply` each) carry a struct of their own.

use super::event::Event;
use super::*;

/// One request to the router.
pub enum Command {
    DeclareTopic {
        name: String,
        reply: Reply<Declared>,
    },
    DeclareSubscription {
        spec: SubscriptionSpec,
        reply: Reply<Declared>,
    },
    Topics {
        reply: Reply<Vec<TopicInfo>>,
    },
    Subscriptions {
        reply: Reply<Vec<SubscriptionInfo>>,
    },
    /// Every subscription's row id and declaration (the listing counts their queues beside
    /// the router).
    SubscriptionRows {
        reply: Reply<Vec<(i64, SubscriptionSpec)>>,
    },
    /// A subscription's row id (listings read its rows beside the router).
    SubscriptionId {
        name: String,
        reply: Reply<i64>,
    },
    /// Deletes a topic (with its subscriptions), a subscription or a stream, with their
    /// messages.
    Delete {
        what: Deletable,
        name: String,
        reply: Reply<Deleted>,
    },
    /// Moves every dead letter of a subscription back to its queue, attempts reset.
    Redrive {
        subscription: String,
        reply: Reply<u64>,
    },
    Publish(Publish),
    Pull(Pull),
    Settle(Settlement),
    DeclareStream {
        spec: StreamSpec,
        reply: Reply<Declared>,
    },
    Streams {
        reply: Reply<Vec<StreamInfo>>,
    },
    /// What the broker holds of one destination (a topic or a stream).
    Destination {
        name: String,
        reply: Reply<DestinationState>,
    },
    /// The broker's state as a discovery snapshot.
    Snapshot {
        reply: Reply<crate::model::BrokerSnapshot>,
    },
    PublishBatch(PublishBatch),
    StreamPublish(StreamPublish),
    StreamRead(StreamRead),
    Commit(GroupCommit),
    Request(Request),
    /// Shutdown begins: answer waiting pulls now and let new ones not wait.
    Drain,
    Shutdown,
}

/// What a delete names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletable {
    Topic,
    Subscription,
    Stream,
}

/// Where a batch is published.
#[derive(Debug)]
pub enum BatchTarget {
    Topic(String),
    Stream(String),
}

pub struct Publish {
    pub topic: String,
    pub event: Event,
    pub caller: Caller,
    pub started: SystemTime,
    pub reply: Reply<Published>,
}

pub struct Pull {
    pub subscription: String,
    pub max: usize,
    pub wait: Duration,
    pub caller: Caller,
    pub started: SystemTime,
    pub reply: Reply<Vec<Delivery>>,
}

/// An ack or nack of leases.
pub struct Settlement {
    pub subscription: String,
    pub lease_ids: Vec<String>,
    pub action: Settle,
    pub caller: Caller,
    pub started: SystemTime,
    pub reply: Reply<Settled>,
}

/// Publishes a batch to a topic or stream: all of it in one savepoint, or none.
pub struct PublishBatch {
    pub target: BatchTarget,
    pub events: Vec<Event>,
    pub caller: Caller,
    pub started: SystemTime,
    pub reply: Reply<Vec<Published>>,
}

pub struct StreamPublish {
    pub stream: String,
    pub event: Event,
    pub caller: Caller,
    pub started: SystemTime,
    pub reply: Reply<Published>,
}

pub struct StreamRead {
    pub stream: String,
    pub from: ReadFrom,
    pub group: Option<String>,
    pub max: usize,
    pub wait: Duration,
    pub caller: Caller,
    pub reply: Reply<StreamBatch>,
}

/// Commits a consumer group's offset.
pub struct GroupCommit {
    pub stream: String,
    pub group: String,
    pub offset: u64,
    pub caller: Caller,
    pub reply: Reply<GroupInfo>,
}

/// Publishes a request with `replyto` and `correlationid` and waits for the reply: the next
/// event published to `reply_to` with the same `correlationid`.
pub struct Request {
    pub topic: String,
    pub reply_to: String,
    pub event: Event,
    pub caller: Caller,
    pub started: SystemTime,
    pub timeout: Duration,
    pub reply: Reply<Replied>,
}
