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
}

/// The node name used for temporary and anonymous destinations.
pub const TEMPORARY_DESTINATION: &str = "(temporary)";
