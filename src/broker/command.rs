//! The commands the router takes: every broker operation is one, with a oneshot for its
//! answer (sent after COMMIT for writes).

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
    DeadLetters {
        subscription: String,
        max: usize,
        reply: Reply<Vec<DeadLetter>>,
    },
    /// Moves every dead letter of a subscription back to its queue, attempts reset.
    Redrive {
        subscription: String,
        reply: Reply<u64>,
    },
    Publish {
        topic: String,
        event: Event,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Published>,
    },
    Pull {
        subscription: String,
        max: usize,
        wait: Duration,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Vec<Delivery>>,
    },
    Settle {
        subscription: String,
        lease_ids: Vec<String>,
        action: Settle,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Settled>,
    },
    DeclareStream {
        spec: StreamSpec,
        reply: Reply<Declared>,
    },
    Streams {
        reply: Reply<Vec<StreamInfo>>,
    },
    /// Publishes a batch to a topic or stream: all of it in one savepoint, or none.
    PublishBatch {
        target: BatchTarget,
        events: Vec<Event>,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Vec<Published>>,
    },
    StreamPublish {
        stream: String,
        event: Event,
        caller: Caller,
        started: SystemTime,
        reply: Reply<Published>,
    },
    StreamRead {
        stream: String,
        from: ReadFrom,
        group: Option<String>,
        max: usize,
        wait: Duration,
        caller: Caller,
        reply: Reply<StreamBatch>,
    },
    Commit {
        stream: String,
        group: String,
        offset: u64,
        caller: Caller,
        reply: Reply<GroupInfo>,
    },
    /// Publishes a request with `replyto` and `correlationid` and waits for the reply: the
    /// next event published to `reply_to` with the same `correlationid`.
    Request {
        topic: String,
        reply_to: String,
        event: Event,
        caller: Caller,
        started: SystemTime,
        timeout: Duration,
        reply: Reply<Replied>,
    },
    /// Shutdown begins: answer waiting pulls now and let new ones not wait.
    Drain,
    Shutdown,
}

/// Where a batch is published.
#[derive(Debug)]
pub enum BatchTarget {
    Topic(String),
    Stream(String),
}
