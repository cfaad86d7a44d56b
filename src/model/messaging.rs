//! The messaging role of a span, normalised from current and legacy semantic conventions.

use serde::Serialize;

/// What a messaging span does to a message. `create`, `send` and `publish` produce;
/// `receive`, `process` and `deliver` consume; `settle` acks, nacks or rejects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Produce,
    Consume,
    Settle,
}

impl Operation {
    /// Maps an operation name (any convention's spelling) to its role.
    pub fn parse(text: &str) -> Option<Operation> {
        match text.trim().to_ascii_lowercase().as_str() {
            "create" | "send" | "publish" | "produce" => Some(Operation::Produce),
            "receive" | "process" | "deliver" | "consume" => Some(Operation::Consume),
            "settle" | "ack" | "nack" | "reject" => Some(Operation::Settle),
            _ => None,
        }
    }

    /// A one-byte code for compact storage; [`Operation::from_code`] inverts it.
    pub fn code(self) -> u8 {
        match self {
            Operation::Produce => 0,
            Operation::Consume => 1,
            Operation::Settle => 2,
        }
    }

    pub fn from_code(code: u8) -> Operation {
        match code {
            0 => Operation::Produce,
            1 => Operation::Consume,
            _ => Operation::Settle,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Produce => "produce",
            Operation::Consume => "consume",
            Operation::Settle => "settle",
        }
    }
}

/// The messaging facts of one span. Invariant: `system` and `destination` are non-empty;
/// temporary or anonymous destinations are folded into one `(temporary)` destination per
/// system so that reply queues do not flood the graph (the real name stays in the attributes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Messaging {
    pub system: String,
    pub destination: String,
    pub operation: Operation,
    pub consumer_group: Option<String>,
    pub message_id: Option<String>,
    pub conversation_id: Option<String>,
    pub temporary: bool,
    /// How many messages a batch operation covers (`messaging.batch.message_count`).
    pub batch_count: Option<u64>,
    /// The partition the message went to or came from (Kafka), where the span names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
}

/// The node name used for temporary and anonymous destinations.
pub const TEMPORARY_DESTINATION: &str = "(temporary)";

/// A redelivered message (a delivery after a nack or an expired lease), as the embedded
/// broker marks its receive spans: not a new message.
pub const REDELIVERED: &str = "messaging.switchyard.redelivered";
/// A stream event read again (from before the reader's position): not a new message, and its
/// publish-to-consume delay is a replay's, kept apart.
pub const REPLAY: &str = "messaging.switchyard.replay";
/// Why an operation failed (OpenTelemetry's `error.type`).
pub const ERROR_TYPE: &str = "error.type";
/// Operation names that settle a message as failed.
const FAILED_SETTLES: &[&str] = &["nack", "reject"];

fn flag(span: &super::Span, key: &str) -> bool {
    span.attributes.iter().any(|(k, v)| {
        k == key && (v == &serde_json::Value::Bool(true) || v.as_str() == Some("true"))
    })
}

/// What pairing needs of a span's attributes and events, read before they are encoded for
/// storage (the writer sees the span without them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// A redelivery ([`is_redelivery`]).
    pub redelivery: bool,
    /// A replayed stream read ([`is_replay`]).
    pub replay: bool,
    /// The instrumentation states whether this consume is a redelivery, either way
    /// ([`stated_redelivery`]).
    pub delivery_stated: bool,
    /// Why the span failed its message ([`failure_reason`]), at most
    /// [`super::node::MAX_REASON`] bytes.
    pub failure: Option<String>,
}

impl Marks {
    pub fn of(span: &super::Span) -> Marks {
        let consume = span
            .messaging
            .as_ref()
            .is_some_and(|m| m.operation == Operation::Consume);
        let stated = stated_redelivery(span).filter(|_| consume);
        Marks {
            redelivery: consume && (is_redelivery(span) || stated == Some(true)),
            delivery_stated: stated.is_some(),
            replay: consume && is_replay(span),
            failure: failure_reason(span).map(|r| super::NodeKey::reason(&r).id),
        }
    }
}

/// Whether a consume span delivers a message again (see [`REDELIVERED`]).
pub fn is_redelivery(span: &super::Span) -> bool {
    flag(span, REDELIVERED)
}

/// The AMQP `redelivered` bit as an instrumentation records it, or `None` when it does not:
/// Celery's `celery.delivery_info` (`{..., 'redelivered': False}`).
pub fn stated_redelivery(span: &super::Span) -> Option<bool> {
    let info = super::span::attr_str(&span.attributes, "celery.delivery_info")?;
    // The key itself (quoted, then a colon), not the word inside a routing key or an
    // exchange's name.
    info.match_indices("redelivered").find_map(|(at, key)| {
        let quote = info[..at].chars().next_back()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let rest = info[at + key.len()..].strip_prefix(quote)?;
        let value = rest.trim_start().strip_prefix(':')?.trim_start();
        if value.starts_with("True") || value.starts_with("true") {
            Some(true)
        } else if value.starts_with("False") || value.starts_with("false") {
            Some(false)
        } else {
            None
        }
    })
}

/// Whether a consume span reads a stream event again (see [`REPLAY`]).
pub fn is_replay(span: &super::Span) -> bool {
    flag(span, REPLAY)
}

/// Why a consume or settle span is a failure of the message it handles, or `None`: the
/// span's `error.type` when it has one; a settle named `nack` or `reject` (whatever its
/// status); any other error span by the `exception.type` of its exception event, else as
/// `error`.
pub fn failure_reason(span: &super::Span) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    let operation = span.messaging.as_ref()?.operation;
    if operation == Operation::Produce {
        return None;
    }
    let declared = super::span::attr_str(&span.attributes, ERROR_TYPE)
        .filter(|t| !t.trim().is_empty() && t.trim() != "_OTHER");
    if let Some(t) = declared {
        return Some(t);
    }
    if operation == Operation::Settle {
        let named = ["messaging.operation.name", "messaging.operation"]
            .iter()
            .find_map(|k| super::span::attr_str(&span.attributes, k))
            .map(|n| n.trim().to_ascii_lowercase());
        if let Some(n) = named.filter(|n| FAILED_SETTLES.contains(&n.as_str())) {
            return Some(Cow::Owned(n));
        }
    }
    if !span.is_error() {
        return None;
    }
    // An error span without `error.type`: the type of the exception it recorded, if any.
    let exception = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .find_map(|e| super::span::attr_str(&e.attributes, "exception.type"))
        .filter(|t| !t.trim().is_empty());
    Some(exception.unwrap_or(Cow::Borrowed("error")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::span;
    use crate::model::SpanKind;

    #[test]
    fn the_redelivered_key_is_read_not_the_word_in_a_name() {
        let of = |info: &str| {
            let mut s = span(1, 1, None, "worker", SpanKind::Consumer);
            s.attributes.push((
                "celery.delivery_info".into(),
                serde_json::Value::from(info.to_string()),
            ));
            stated_redelivery(&s)
        };
        assert_eq!(
            of("{'exchange': 'x', 'routing_key': 'redelivered', 'redelivered': True}"),
            Some(true)
        );
        assert_eq!(
            of("{'exchange': 'redelivered', 'redelivered': False}"),
            Some(false)
        );
        assert_eq!(of("{\"redelivered\": true}"), Some(true));
        assert_eq!(of("{'routing_key': 'redelivered'}"), None);
        assert_eq!(of("{'redelivered': None}"), None);
    }
}
