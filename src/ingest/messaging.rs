//! The messaging role of one span: the system (declared or inferred), the operation and one
//! destination name per real destination, whatever spelling the instrumentation used.
//! docs/SEMCONV.md states these rules with an example from each instrumentation.

use crate::model::messaging::TEMPORARY_DESTINATION;
use crate::model::span::attr_str;
use crate::model::{AttrValue, Attributes, Messaging, Operation, SpanKind};
use crate::semconv::{self, Field};
use std::borrow::Cow;

/// The largest `messaging.batch.message_count` believed.
const MAX_BATCH: u64 = 100_000;
/// The longest Celery delivery-facts text that is parsed.
const MAX_DELIVERY_INFO: usize = 4096;

/// What was read: the messaging facts and the attributes Switchyard adds to the span (how the
/// system was inferred; the exchange and routing key learned from a composite name).
#[derive(Debug, PartialEq)]
pub(super) struct Read {
    pub messaging: Messaging,
    pub learned: Attributes,
}

pub(super) fn first<'a>(attrs: &'a Attributes, field: &Field) -> Option<Cow<'a, str>> {
    field
        .names
        .iter()
        .find_map(|name| attr_str(attrs, name))
        .filter(|v| !v.trim().is_empty())
}

/// Reads the messaging role of a span: a system (declared, else inferred) and a destination
/// are required; the operation comes from the attributes, else the span kind
/// (PRODUCER/CONSUMER), else the verb in the span name (`orders publish`, `tasks process`).
pub(super) fn messaging(
    attrs: &Attributes,
    kind: SpanKind,
    name: &str,
    scope: &str,
) -> Option<Read> {
    let mut learned = Attributes::new();
    let declared_operation = first(attrs, &semconv::OPERATION);
    let system = match first(attrs, &semconv::MESSAGING_SYSTEM) {
        Some(s) => s.trim().to_ascii_lowercase(),
        None => {
            let messaging_kind = matches!(kind, SpanKind::Producer | SpanKind::Consumer);
            if !messaging_kind && declared_operation.is_none() {
                return None;
            }
            let (system, how) = infer_system(attrs, scope)?;
            learned.push((semconv::SYSTEM_INFERRED.to_string(), AttrValue::String(how)));
            system.to_string()
        }
    };
    let operation = declared_operation
        .and_then(|op| Operation::parse(&op))
        .or(match kind {
            SpanKind::Producer => Some(Operation::Produce),
            SpanKind::Consumer => Some(Operation::Consume),
            _ => None,
        })
        .or_else(|| name.split_whitespace().find_map(Operation::parse))?;
    let destination = if system == "rabbitmq" {
        let name = rabbit_destination(attrs);
        learned.extend(name.learned());
        name.destination?
    } else {
        first(attrs, &semconv::DESTINATION)?.trim().to_string()
    };
    let declared_temporary = semconv::TEMPORARY.names.iter().any(|n| {
        matches!(
            attrs.iter().find(|(k, _)| k == n),
            Some((_, AttrValue::Bool(true)))
        )
    });
    let temporary = declared_temporary
        || semconv::TEMPORARY_PREFIXES
            .iter()
            .any(|p| destination.starts_with(p));
    let messaging = Messaging {
        destination: if temporary {
            TEMPORARY_DESTINATION.to_string()
        } else {
            destination
        },
        system,
        operation,
        consumer_group: first(attrs, &semconv::CONSUMER_GROUP).map(|c| c.into_owned()),
        message_id: first(attrs, &semconv::MESSAGE_ID).map(|c| c.into_owned()),
        conversation_id: first(attrs, &semconv::CONVERSATION_ID).map(|c| c.into_owned()),
        temporary,
        batch_count: first(attrs, &semconv::BATCH_COUNT)
            .and_then(|c| c.parse::<u64>().ok())
            .map(|n| n.clamp(1, MAX_BATCH)),
        partition: first(attrs, &semconv::PARTITION)
            .and_then(|p| p.trim().parse::<i32>().ok())
            .filter(|p| *p >= 0),
    };
    Some(Read { messaging, learned })
}

/// The system of a span that names none: from the peer's port, else the instrumentation scope;
/// with how it was inferred, in words.
fn infer_system(attrs: &Attributes, scope: &str) -> Option<(&'static str, String)> {
    let port = first(attrs, &semconv::PEER_PORT).and_then(|p| p.trim().parse::<u16>().ok());
    if let Some((port, system)) = port.and_then(|port| {
        semconv::PORT_SYSTEMS
            .iter()
            .find(|(p, _)| *p == port)
            .map(|(_, s)| (port, *s))
    }) {
        return Some((system, format!("peer port {port}")));
    }
    semconv::SCOPE_SYSTEMS
        .iter()
        .find(|(prefix, _)| scope.starts_with(prefix))
        .map(|(_, system)| (*system, format!("instrumentation scope {scope}")))
}

/// A RabbitMQ destination as one name, and the exchange and routing key learned on the way.
#[derive(Debug, Default, PartialEq)]
struct RabbitName {
    destination: Option<String>,
    exchange: Option<String>,
    routing_key: Option<String>,
}

impl RabbitName {
    fn learned(&self) -> impl Iterator<Item = (String, AttrValue)> + '_ {
        [
            (semconv::LEARNED_EXCHANGE, &self.exchange),
            (semconv::LEARNED_ROUTING_KEY, &self.routing_key),
        ]
        .into_iter()
        .filter_map(|(key, value)| {
            value
                .as_ref()
                .map(|v| (key.to_string(), AttrValue::String(v.clone())))
        })
    }
}

/// Instrumentations name a RabbitMQ destination by exchange, by routing key, by queue, or as
/// `"exchange,routing_key"` (aio-pika). The default exchange (`""` or `amq.default`) routes by
/// routing key to the queue of that name, so there the routing key is the destination; a named
/// exchange is the destination otherwise. AMQP exchange names hold no comma, so the first comma
/// splits a composite name.
fn rabbit_destination(attrs: &Attributes) -> RabbitName {
    let routing_key = first(attrs, &semconv::ROUTING_KEY);
    let named = first(attrs, &semconv::DESTINATION).filter(|d| d.trim() != "amq.default");
    if let Some(name) = named {
        return match name.split_once(',') {
            Some((exchange, key)) => RabbitName {
                destination: by_exchange(exchange, Some(key)),
                exchange: Some(exchange.to_string()),
                routing_key: Some(key.to_string()),
            },
            None => {
                let mut out = celery_delivery(attrs);
                out.destination = Some(name.trim().to_string());
                out
            }
        };
    }
    // No destination name, or the default exchange's: Celery's exchange facts, else the
    // routing key.
    let mut out = celery_delivery(attrs);
    let exchange = first(attrs, &semconv::EXCHANGE).map(|e| e.trim().to_string());
    if exchange.is_some() {
        out.exchange = exchange;
    }
    let key = routing_key.as_deref().or(out.routing_key.as_deref());
    out.destination = by_exchange(out.exchange.as_deref().unwrap_or(""), key);
    out
}

/// The destination for a message sent to `exchange` with `routing_key`.
fn by_exchange(exchange: &str, routing_key: Option<&str>) -> Option<String> {
    let exchange = exchange.trim();
    let name = if exchange.is_empty() || exchange == "amq.default" {
        routing_key?.trim()
    } else {
        exchange
    };
    (!name.is_empty()).then(|| name.to_string())
}

/// The exchange and routing key in Celery's delivery facts, when the span has them.
fn celery_delivery(attrs: &Attributes) -> RabbitName {
    let Some(info) = attr_str(attrs, semconv::CELERY_DELIVERY_INFO) else {
        return RabbitName::default();
    };
    if info.len() > MAX_DELIVERY_INFO {
        return RabbitName::default();
    }
    RabbitName {
        destination: None,
        exchange: dict_str(&info, "exchange").map(str::to_string),
        routing_key: dict_str(&info, "routing_key").map(str::to_string),
    }
}

/// The string value of `key` in the text of a Python dict (`{'exchange': 'x', ...}`) or a
/// JSON object; None when absent or not a plain quoted string.
fn dict_str<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    ['\'', '"'].into_iter().find_map(|q| {
        let pattern = format!("{q}{key}{q}: {q}");
        let start = text.find(&pattern)? + pattern.len();
        let len = text[start..].find(q)?;
        let value = &text[start..start + len];
        (!value.contains('\\')).then_some(value)
    })
}

#[cfg(test)]
#[path = "messaging_tests.rs"]
mod tests;
