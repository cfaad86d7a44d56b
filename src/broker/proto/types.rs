//! The wire types of the `/broker/` JSON API: the declarations the API takes and the answers
//! it gives. The server, its handle and the Rust client share them.

use super::event::Event;
use crate::broker::error::BrokerError;
use serde::{Deserialize, Serialize};

/// A subscription's declaration. Invariant (checked by the router): `max_attempts >= 1`,
/// `visibility_timeout_ms >= 1`, the topic exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    pub name: String,
    pub topic: String,
    pub visibility_timeout_ms: u64,
    pub max_attempts: u32,
    /// Only events that match are queued on this subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Filter>,
    /// Deliver by POSTing to a webhook instead of waiting for pulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<Push>,
}

/// A subscription filter on CloudEvents attributes: every condition given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// The event's `type` equals this.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The event's `subject` starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_prefix: Option<String>,
}

impl Filter {
    pub fn matches(&self, event: &Event) -> bool {
        self.kind
            .as_deref()
            .is_none_or(|k| event.str_attr("type") == Some(k))
            && self
                .subject_prefix
                .as_deref()
                .is_none_or(|p| event.str_attr("subject").is_some_and(|s| s.starts_with(p)))
    }
}

/// A declaration's outcome: `created` false when it already existed identically.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Declared {
    pub created: bool,
}

/// What a delete removed: the topic, subscription or stream, and a topic's subscriptions
/// (deleted with it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: String,
    #[serde(default)]
    pub subscriptions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub subscriptions: Vec<String>,
}

/// A subscription and its queue: `ready` (deliverable now or after a nack delay), `leased`
/// (delivered, lease running), `dead` (in the dead-letter queue).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
    pub ready: u64,
    pub leased: u64,
    pub dead: u64,
}

/// A stream's declaration: events older than `max_age_ms` are deleted, and the oldest events
/// while the stream holds more than `max_bytes` (none: no such bound).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub name: String,
    pub max_age_ms: Option<u64>,
    /// Bytes of events (data and attributes) kept at most, checked once a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// A stream: offsets `first_offset..next_offset` are (or were, if retention removed them)
/// readable, and its consumer groups.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamInfo {
    #[serde(flatten)]
    pub spec: StreamSpec,
    pub first_offset: u64,
    pub next_offset: u64,
    pub groups: Vec<GroupInfo>,
}

/// A consumer group's committed offset (the next offset it will read) and its lag.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub committed: u64,
    pub lag: u64,
}

/// One event read from a stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamEvent {
    pub offset: u64,
    pub event: serde_json::Value,
    pub published_unix_nanos: u64,
    /// The receive span's context.
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// The answer to a stream read: the events and the offset to read next.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamBatch {
    pub events: Vec<StreamEvent>,
    pub next_offset: u64,
}

/// The answer to a publish, sent after COMMIT.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Published {
    pub id: String,
    pub topic: String,
    /// Subscriptions the message was queued on (0: nobody subscribes, the message is dropped).
    pub subscriptions: usize,
    /// The event's offset, for a stream publish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The publish span's context: deliveries carry it.
    pub traceparent: String,
}

/// The answer to a request (request/reply): the published request and the correlated reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Replied {
    pub request: Published,
    /// The reply event in structured form.
    pub reply: serde_json::Value,
    /// The requester's receive span of the reply.
    pub traceparent: String,
}

/// One leased delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Delivery {
    /// Settles this delivery (ack or nack) while it is the message's current lease.
    pub lease_id: String,
    /// The event in CloudEvents structured JSON (`data` or `data_base64`).
    pub event: serde_json::Value,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// The receive span's context: continue the trace from it.
    pub traceparent: String,
    pub tracestate: Option<String>,
    pub lease_expires_unix_nanos: u64,
}

/// A message in a dead-letter queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event: serde_json::Value,
    pub attempts: u32,
    pub dead_unix_nanos: u64,
}

/// A page of a dead-letter listing: `next`, when set, is the `after` of the next page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeadLetterPage {
    pub dead_letters: Vec<DeadLetter>,
    pub next: Option<String>,
}

/// The outcome of settling leases: ids that were current, and those that were not (expired
/// and redelivered, already settled, or unknown).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Settled {
    pub settled: Vec<String>,
    pub unknown: Vec<String>,
}

/// Longest backoff between two attempts of a push subscription.
pub const MAX_BACKOFF_MS: u64 = 60_000;

/// Where a push subscription delivers. Invariant: `url` is `http://...`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Push {
    pub url: String,
    /// The receiving service, for the spans (default: the URL's host and port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// First retry delay; doubled on each attempt (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_ms: Option<u64>,
}

impl Push {
    pub fn validate(&self) -> Result<(), BrokerError> {
        let rest = self.url.strip_prefix("http://").unwrap_or("");
        if rest.is_empty() {
            return Err(BrokerError::BadRequest(format!(
                "push url {:?} must be http://host[:port]/path",
                self.url
            )));
        }
        Ok(())
    }

    /// The receiving service: the one named, else the URL's host and port.
    pub fn service(&self) -> String {
        self.service.clone().unwrap_or_else(|| {
            let rest = self.url.trim_start_matches("http://");
            rest.split('/').next().unwrap_or(rest).to_string()
        })
    }

    /// The delay before attempt `attempt + 1`.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let base = self.backoff_ms.unwrap_or(1_000);
        base.saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(MAX_BACKOFF_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_cap_and_urls_are_checked() {
        let p = Push {
            url: "http://127.0.0.1:9/hook".into(),
            service: None,
            backoff_ms: Some(100),
        };
        assert_eq!(
            (p.backoff_ms(1), p.backoff_ms(2), p.backoff_ms(3)),
            (100, 200, 400)
        );
        assert_eq!(p.backoff_ms(40), MAX_BACKOFF_MS);
        assert_eq!(p.service(), "127.0.0.1:9");
        assert!(p.validate().is_ok());
        let https = Push {
            url: "https://example.com".into(),
            ..p
        };
        assert!(https.validate().is_err());
    }
}
