//! The management API's answers -> one [`BrokerSnapshot`], in the model's terms: exchanges and
//! queues as destinations (named as spans name them, the default exchange `""`), connections
//! as services (named by their client-provided name, else `user (product)`), bindings as route
//! flows, dead-letter configuration as dead-letter flows, consumers and publishers. Pure: the
//! publisher inference keeps its counters in [`Publishers`], which the source owns.

use super::api::{Answers, Connection, MessageStats, Queue};
use super::infer::Publishers;
use crate::model::broker::{
    BrokerDestination, BrokerFlow, BrokerService, BrokerSnapshot, Entity, Figures, FlowKind,
    NamedBy,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The messaging system of RabbitMQ's destinations, as spans name it.
pub const SYSTEM: &str = "rabbitmq";

/// Queue argument and policy key naming a queue's dead-letter exchange (and routing key).
const DLX_ARGUMENT: &str = "x-dead-letter-exchange";
const DLX_KEY_ARGUMENT: &str = "x-dead-letter-routing-key";
const DLX_POLICY: &str = "dead-letter-exchange";
const DLX_KEY_POLICY: &str = "dead-letter-routing-key";

/// A product name for clients that send none.
const UNKNOWN_PRODUCT: &str = "unknown client";

/// The service a connection is: its client-provided name, or `user (product)` when it has
/// none (never its address: the port changes with every connection).
pub fn service_of(c: &Connection) -> BrokerService {
    let given = c
        .client_properties
        .connection_name
        .as_deref()
        .or(c.user_provided_name.as_deref())
        .map(str::trim)
        .filter(|n| !n.is_empty());
    match given {
        Some(name) => BrokerService {
            name: name.to_string(),
            named_by: NamedBy::ConnectionName,
        },
        None => BrokerService {
            name: format!(
                "{} ({})",
                c.user,
                c.client_properties
                    .product
                    .as_deref()
                    .filter(|p| !p.trim().is_empty())
                    .unwrap_or(UNKNOWN_PRODUCT)
            ),
            named_by: NamedBy::UserAndProduct,
        },
    }
}

/// Builds the snapshot of one poll; `publishers` carries the inference across polls.
pub fn snapshot(
    broker: &str,
    taken_unix_nanos: u64,
    a: &Answers,
    publishers: &mut Publishers,
) -> BrokerSnapshot {
    // The broker's connection name -> the service it is.
    let by_connection: HashMap<&str, BrokerService> = a
        .connections
        .iter()
        .map(|c| (c.name.as_str(), service_of(c)))
        .collect();
    let mut services: BTreeMap<String, BrokerService> = BTreeMap::new();
    for s in by_connection.values() {
        services
            .entry(s.name.clone())
            .and_modify(|old| {
                if s.named_by == NamedBy::ConnectionName {
                    old.named_by = NamedBy::ConnectionName;
                }
            })
            .or_insert_with(|| s.clone());
    }
    let channel_service: HashMap<&str, &str> = a
        .channels
        .iter()
        .filter_map(|ch| {
            let s = by_connection.get(ch.connection_details.name.as_str())?;
            Some((ch.name.as_str(), s.name.as_str()))
        })
        .collect();

    let mut flows = Vec::new();
    flows.extend(routes(a));
    flows.extend(a.queues.iter().filter_map(dead_letter));
    flows.extend(consumes(a, &by_connection));
    flows.extend(publishes(a, &channel_service));
    let reported: BTreeSet<(String, String)> = flows
        .iter()
        .filter(|f| f.kind == FlowKind::Publish)
        .map(|f| (f.from.clone(), f.to.clone()))
        .collect();
    for (service, exchange) in publishers.observe(a, &channel_service) {
        if services.contains_key(&service)
            && !reported.contains(&(service.clone(), exchange.clone()))
        {
            flows.push(BrokerFlow {
                kind: FlowKind::Publish,
                from: service,
                to: exchange,
                key: None,
                inferred: true,
                figures: Figures::default(),
            });
        }
    }

    BrokerSnapshot {
        broker: broker.to_string(),
        system: SYSTEM.to_string(),
        taken_unix_nanos,
        destinations: destinations(a, &flows),
        services: services.into_values().collect(),
        flows,
    }
}

/// Exchanges and queues. The built-in exchanges (the default one and `amq.*`) appear only when
/// something uses them: a binding, a flow or messages published into them.
fn destinations(a: &Answers, flows: &[BrokerFlow]) -> Vec<BrokerDestination> {
    let used: BTreeSet<&str> = flows
        .iter()
        .flat_map(|f| [f.from.as_str(), f.to.as_str()])
        .collect();
    let mut out = Vec::with_capacity(a.exchanges.len() + a.queues.len());
    for e in &a.exchanges {
        let stats = e.message_stats.clone().unwrap_or_default();
        let built_in = e.name.is_empty() || e.name.starts_with("amq.");
        if built_in && !used.contains(e.name.as_str()) && stats.publish_in.unwrap_or(0) == 0 {
            continue;
        }
        out.push(BrokerDestination {
            name: e.name.clone(),
            namespace: Some(e.vhost.clone()),
            entity: Entity::Exchange,
            detail: Some(if e.internal {
                format!("{} (internal)", e.kind)
            } else {
                e.kind.clone()
            }),
            subjects: Vec::new(),
            figures: Figures {
                publish_rate: rate(&stats.publish_in_details),
                deliver_rate: rate(&stats.publish_out_details),
                ..Figures::default()
            },
        });
    }
    let dead_letters = dead_letters_held(a, flows);
    for q in &a.queues {
        let stats = q.message_stats.clone().unwrap_or_default();
        out.push(BrokerDestination {
            name: q.name.clone(),
            namespace: Some(q.vhost.clone()),
            entity: if q.kind == "stream" {
                Entity::Stream
            } else {
                Entity::Queue
            },
            detail: Some(queue_detail(q)),
            subjects: Vec::new(),
            figures: Figures {
                depth: q.messages_ready,
                unacked: q.messages_unacknowledged,
                consumers: q.consumers,
                publish_rate: rate(&stats.publish_details),
                deliver_rate: rate(&stats.deliver_get_details),
                redeliver_rate: rate(&stats.redeliver_details),
                redelivered: stats.redeliver,
                dead_letters: dead_letters.get(q.name.as_str()).copied(),
                ..Figures::default()
            },
        });
    }
    out
}

/// Per queue with a dead-letter exchange: the messages (ready and unacknowledged) held in
/// the queues that exchange routes to. RabbitMQ counts no dead-lettering per queue; growth of
/// these is what the topology reads as messages dead-lettered.
fn dead_letters_held<'a>(a: &'a Answers, flows: &'a [BrokerFlow]) -> HashMap<&'a str, u64> {
    let held: HashMap<&str, u64> = a
        .queues
        .iter()
        .map(|q| {
            let n = q.messages_ready.unwrap_or(0) + q.messages_unacknowledged.unwrap_or(0);
            (q.name.as_str(), n)
        })
        .collect();
    let mut routed: HashMap<&str, Vec<&str>> = HashMap::new();
    for f in flows.iter().filter(|f| f.kind == FlowKind::Route) {
        routed
            .entry(f.from.as_str())
            .or_default()
            .push(f.to.as_str());
    }
    flows
        .iter()
        .filter(|f| f.kind == FlowKind::DeadLetter)
        .map(|f| {
            // The default exchange routes by the dead-letter routing key to that queue.
            let direct = f.key.as_deref().filter(|_| f.to.is_empty());
            let queues = routed.get(f.to.as_str()).into_iter().flatten().copied();
            let n = queues.chain(direct).filter_map(|q| held.get(q)).sum();
            (f.from.as_str(), n)
        })
        .collect()
}

fn rate(r: &Option<super::api::Rate>) -> Option<f64> {
    r.map(|r| r.rate)
}

/// `classic`, or `quorum {"x-dead-letter-exchange":"dlx"}` when it has arguments.
fn queue_detail(q: &Queue) -> String {
    let kind = if q.kind.is_empty() {
        "classic"
    } else {
        &q.kind
    };
    if q.arguments.is_empty() {
        kind.to_string()
    } else {
        let args = serde_json::to_string(&q.arguments).unwrap_or_default();
        format!("{kind} {args}")
    }
}

/// Bindings exchange -> queue and exchange -> exchange. The default exchange's implicit
/// binding to every queue (by the queue's name) is left out: it says nothing a queue's name
/// does not.
fn routes(a: &Answers) -> impl Iterator<Item = BrokerFlow> + '_ {
    a.bindings
        .iter()
        .filter(|b| !b.source.is_empty())
        .filter(|b| b.destination_type == "queue" || b.destination_type == "exchange")
        .map(|b| BrokerFlow {
            kind: FlowKind::Route,
            from: b.source.clone(),
            to: b.destination.clone(),
            key: Some(b.routing_key.clone()),
            inferred: false,
            figures: Figures::default(),
        })
}

/// A queue's dead-letter exchange: its own argument first, else the policy in force.
fn dead_letter(q: &Queue) -> Option<BrokerFlow> {
    let text = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    let policy = q.effective_policy_definition.as_ref();
    let (exchange, key) = match text(q.arguments.get(DLX_ARGUMENT)) {
        Some(x) => (x, text(q.arguments.get(DLX_KEY_ARGUMENT))),
        None => (
            text(policy.and_then(|p| p.get(DLX_POLICY)))?,
            text(policy.and_then(|p| p.get(DLX_KEY_POLICY))),
        ),
    };
    Some(BrokerFlow {
        kind: FlowKind::DeadLetter,
        from: q.name.clone(),
        to: exchange,
        key,
        inferred: false,
        figures: Figures::default(),
    })
}

/// Queue -> service, one flow per pair with the number of consumers behind it.
fn consumes(a: &Answers, by_connection: &HashMap<&str, BrokerService>) -> Vec<BrokerFlow> {
    let mut pairs: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for c in &a.consumers {
        if let Some(s) = by_connection.get(c.channel_details.connection_name.as_str()) {
            *pairs
                .entry((c.queue.name.as_str(), s.name.as_str()))
                .or_default() += 1;
        }
    }
    pairs
        .into_iter()
        .map(|((queue, service), n)| BrokerFlow {
            kind: FlowKind::Consume,
            from: queue.to_string(),
            to: service.to_string(),
            key: None,
            inferred: false,
            figures: Figures {
                consumers: Some(n),
                ..Figures::default()
            },
        })
        .collect()
}

/// Service -> exchange from the channels' per-exchange publish statistics (filled when the
/// broker keeps detailed rates), rates summed over a service's channels.
fn publishes(a: &Answers, channel_service: &HashMap<&str, &str>) -> Vec<BrokerFlow> {
    let mut pairs: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for ch in &a.channels {
        let Some(service) = channel_service.get(ch.name.as_str()) else {
            continue;
        };
        for p in &ch.publishes {
            *pairs
                .entry((service, p.exchange.name.as_str()))
                .or_default() += publish_rate(&p.stats);
        }
    }
    pairs
        .into_iter()
        .map(|((service, exchange), rate)| BrokerFlow {
            kind: FlowKind::Publish,
            from: service.to_string(),
            to: exchange.to_string(),
            key: None,
            inferred: false,
            figures: Figures {
                publish_rate: Some(rate),
                ..Figures::default()
            },
        })
        .collect()
}

fn publish_rate(s: &MessageStats) -> f64 {
    s.publish_details.map_or(0.0, |r| r.rate)
}
