//! The observed architecture as an AsyncAPI 3.0 document (`GET /api/asyncapi`,
//! `switchyard export --format asyncapi`): one channel per destination (its address is the
//! destination's name), one `send` operation per service and destination it publishes to and
//! one `receive` per destination it consumes from, one server per messaging system, with the
//! AMQP, Kafka and NATS bindings the topology knows. What only Switchyard knows (node ids,
//! counts, rates, where a flow was seen) is in `x-switchyard-*` extensions.
//!
//! A 3.0 document describes one application; this one describes them all, so each operation
//! names its service in `x-switchyard-service`. Deterministic: ids are sorted and unique.

use crate::model::window::rfc3339;
use crate::model::{EdgeKind, Entity, NodeKind};
use crate::topology::{Edge, Node, SeenIn, Topology};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const VERSION: &str = "3.0.0";
const AMQP_BINDING: &str = "0.3.0";
const KAFKA_BINDING: &str = "0.5.0";
const NATS_BINDING: &str = "0.1.0";
/// AMQP names are at most this long (the binding's schema says so); longer ones get no binding.
const AMQP_MAX_NAME: usize = 255;

/// What the document cannot learn from the topology.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `host[:port]` of the embedded broker's HTTP API (the server answering the request);
    /// `localhost` when unknown.
    pub embedded_host: Option<String>,
}

/// An id usable as a map key and in a `$ref` pointer: `[A-Za-z0-9_.-]`, others become `_`.
fn safe_id(text: &str) -> String {
    let id: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() {
        "_".to_string()
    } else {
        id
    }
}

/// `wanted`, or `wanted_2`, `wanted_3`, ... when taken.
fn unique(taken: &mut BTreeSet<String>, wanted: String) -> String {
    let mut id = wanted.clone();
    let mut n = 2;
    while taken.contains(&id) {
        id = format!("{wanted}_{n}");
        n += 1;
    }
    taken.insert(id.clone());
    id
}

/// The AsyncAPI protocol of a messaging system.
fn protocol(system: &str) -> (String, Option<&'static str>) {
    match system {
        "rabbitmq" => ("amqp".into(), Some("0.9.1")),
        "kafka" => ("kafka".into(), None),
        "nats" => ("nats".into(), None),
        "switchyard" => ("http".into(), None),
        "aws_sqs" => ("sqs".into(), None),
        "aws_sns" => ("sns".into(), None),
        "gcp_pubsub" => ("googlepubsub".into(), None),
        "activemq" => ("jms".into(), None),
        other => (safe_id(&other.to_ascii_lowercase()), None),
    }
}

fn seen(list: &[SeenIn]) -> Value {
    list.iter().map(|s| Value::from(s.as_str())).collect()
}

/// A destination's detail (an exchange's type) and namespace (a vhost), as its broker says.
type Said<'a> = (Option<&'a str>, Option<&'a str>);

/// What the brokers' newest polls say of each destination, by (system, name); and each
/// system's broker address.
struct BrokerFacts<'a> {
    destinations: HashMap<(&'a str, &'a str), Said<'a>>,
    hosts: BTreeMap<&'a str, String>,
}

impl<'a> BrokerFacts<'a> {
    fn of(topo: &'a Topology) -> BrokerFacts<'a> {
        let mut facts = BrokerFacts {
            destinations: HashMap::new(),
            hosts: BTreeMap::new(),
        };
        let Some(part) = &topo.part else {
            return facts;
        };
        for s in part.snapshots() {
            for d in &s.destinations {
                facts.destinations.insert(
                    (s.system.as_str(), d.name.as_str()),
                    (d.detail.as_deref(), d.namespace.as_deref()),
                );
            }
            // `KIND ADDRESS` (`rabbitmq 127.0.0.1:15672`); the embedded broker has none.
            let Some(address) = s
                .broker
                .split_once(' ')
                .map(|(_, a)| a.trim())
                .filter(|a| !a.is_empty() && !a.starts_with('('))
            else {
                continue;
            };
            let host = if s.system == "rabbitmq" {
                // The management API's address: the AMQP port is not known.
                address.rsplit_once(':').map_or(address, |(h, _)| h)
            } else {
                address
            };
            facts
                .hosts
                .entry(s.system.as_str())
                .or_insert(host.to_string());
        }
        facts
    }
}

pub fn document(topo: &Topology, opts: &Options) -> Value {
    let facts = BrokerFacts::of(topo);
    let mut dests: Vec<&Node> = topo
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Destination)
        .collect();
    dests.sort_by(|a, b| a.id.cmp(&b.id));
    let by_id: HashMap<&str, &Node> = topo.nodes.iter().map(|n| (n.id.as_str(), n)).collect();

    let mut servers = Map::new();
    let systems: BTreeSet<&str> = dests.iter().filter_map(|n| n.system.as_deref()).collect();
    let mut server_ids = BTreeMap::new();
    let mut taken = BTreeSet::new();
    for system in systems {
        let id = unique(&mut taken, safe_id(system));
        servers.insert(id.clone(), server(system, &facts, opts));
        server_ids.insert(system, id);
    }

    let mut channel_ids: HashMap<&str, String> = HashMap::new();
    let mut taken = BTreeSet::new();
    for n in &dests {
        let id = unique(&mut taken, safe_id(&n.name));
        channel_ids.insert(n.id.as_str(), id);
    }
    let mut channels = Map::new();
    for n in &dests {
        let id = &channel_ids[n.id.as_str()];
        let mut c = Map::new();
        c.insert("address".into(), json!(n.name));
        if let Some(server) = n.system.as_deref().and_then(|s| server_ids.get(s)) {
            c.insert(
                "servers".into(),
                json!([{ "$ref": format!("#/servers/{server}") }]),
            );
        }
        if let Some(b) = channel_bindings(topo, n, &facts) {
            c.insert("bindings".into(), b);
        }
        c.insert("x-switchyard-node".into(), json!(n.id));
        c.insert(
            "x-switchyard-entity".into(),
            json!(entity(topo, n).map(Entity::as_str)),
        );
        c.insert("x-switchyard-seen-in".into(), seen(&n.seen_in));
        let routes: Vec<Value> = topo
            .edges
            .iter()
            .filter(|e| matches!(e.kind, EdgeKind::Route | EdgeKind::DeadLetter) && e.from == n.id)
            .filter_map(|e| {
                let to = channel_ids.get(e.to.as_str())?;
                let mut r = json!({ "channel": { "$ref": format!("#/channels/{to}") }, "kind": e.kind.as_str() });
                if let Some(key) = &e.key {
                    r["key"] = json!(key);
                }
                Some(r)
            })
            .collect();
        if !routes.is_empty() {
            c.insert("x-switchyard-routes".into(), Value::Array(routes));
        }
        channels.insert(id.clone(), Value::Object(c));
    }

    let mut operations = Map::new();
    let mut taken = BTreeSet::new();
    let mut flows: Vec<(&Node, &Node, &Edge, &str)> = topo
        .edges
        .iter()
        .filter_map(|e| {
            let (service, dest, action) = match e.kind {
                EdgeKind::Publish => (
                    by_id.get(e.from.as_str())?,
                    by_id.get(e.to.as_str())?,
                    "send",
                ),
                EdgeKind::Consume => (
                    by_id.get(e.to.as_str())?,
                    by_id.get(e.from.as_str())?,
                    "receive",
                ),
                _ => return None,
            };
            (service.kind == NodeKind::Service && dest.kind == NodeKind::Destination)
                .then_some((*service, *dest, e, action))
        })
        .collect();
    flows.sort_by(|a, b| (&a.0.id, a.3, &a.1.id).cmp(&(&b.0.id, b.3, &b.1.id)));
    for (service, dest, e, action) in flows {
        let channel = &channel_ids[dest.id.as_str()];
        let id = unique(
            &mut taken,
            format!("{}.{action}.{channel}", safe_id(&service.name)),
        );
        let mut op = json!({
            "action": action,
            "channel": { "$ref": format!("#/channels/{channel}") },
            "title": format!("{} {} {}", service.name, if action == "send" { "sends to" } else { "receives from" }, dest.name),
            "x-switchyard-service": service.name,
            "x-switchyard-service-node": service.id,
            "x-switchyard-count": e.count,
            "x-switchyard-errors": e.errors,
            "x-switchyard-rate-per-sec": e.rate_per_sec,
            "x-switchyard-seen-in": seen(&e.seen_in),
        });
        if let Some(p99) = e.latency.p99_micros {
            op["x-switchyard-p99-micros"] = json!(p99);
        }
        if let Some(b) = operation_bindings(topo, dest, action) {
            op["bindings"] = b;
        }
        operations.insert(id, op);
    }

    let (since, until) = (
        rfc3339(topo.since_unix_nanos),
        rfc3339(topo.until_unix_nanos),
    );
    json!({
        "asyncapi": VERSION,
        "info": {
            "title": "Observed architecture",
            "version": until,
            "description": format!(
                "What Switchyard observed from {since} to {until}: each destination is a channel, each service's traced or broker-reported publishes and consumes are its send and receive operations (the service in x-switchyard-service)."
            ),
            "x-switchyard-window": {
                "since": since,
                "until": until,
                "since_unix_nanos": topo.since_unix_nanos,
                "until_unix_nanos": topo.until_unix_nanos,
            },
        },
        "servers": servers,
        "channels": channels,
        "operations": operations,
    })
}

/// Pretty JSON with a final newline.
pub fn to_json(topo: &Topology, opts: &Options) -> String {
    serde_json::to_string_pretty(&document(topo, opts)).unwrap_or_else(|_| "{}".to_string()) + "\n"
}

fn server(system: &str, facts: &BrokerFacts, opts: &Options) -> Value {
    let (protocol, version) = protocol(system);
    let (host, description) = match (system, facts.hosts.get(system)) {
        ("switchyard", _) => (
            opts.embedded_host
                .clone()
                .unwrap_or_else(|| "localhost".into()),
            "Switchyard's embedded broker (its HTTP API)".to_string(),
        ),
        (_, Some(host)) => (host.clone(), format!("{system}, as its broker was polled")),
        (_, None) => (
            "unknown".to_string(),
            format!("{system}: spans name the system, not its address"),
        ),
    };
    let mut s = json!({ "host": host, "protocol": protocol, "description": description });
    if let Some(v) = version {
        s["protocolVersion"] = json!(v);
    }
    s
}

/// A destination's entity: what its broker says or its system implies (the topology's
/// `entity`), else what its edges show (RabbitMQ: routes leave an exchange and reach a queue).
fn entity(topo: &Topology, n: &Node) -> Option<Entity> {
    if let Some(Some(e)) = n.entity {
        return Some(e);
    }
    if n.system.as_deref() != Some("rabbitmq") {
        return None;
    }
    let routes_out = topo
        .edges
        .iter()
        .any(|e| e.kind == EdgeKind::Route && e.from == n.id);
    let routes_in = topo
        .edges
        .iter()
        .any(|e| e.kind == EdgeKind::Route && e.to == n.id);
    match (routes_out, routes_in) {
        (true, false) => Some(Entity::Exchange),
        (false, true) => Some(Entity::Queue),
        _ => None,
    }
}

fn channel_bindings(topo: &Topology, n: &Node, facts: &BrokerFacts) -> Option<Value> {
    let system = n.system.as_deref()?;
    match system {
        "rabbitmq" if n.name.len() <= AMQP_MAX_NAME => {
            let (detail, vhost) = facts
                .destinations
                .get(&(system, n.name.as_str()))
                .copied()
                .unwrap_or((None, None));
            let mut object = json!({ "name": n.name });
            if let Some(vhost) = vhost {
                object["vhost"] = json!(vhost);
            }
            let amqp = match entity(topo, n)? {
                Entity::Exchange => {
                    // The broker's type, without a mark such as " (internal)".
                    let kind = detail.and_then(|d| d.split_whitespace().next());
                    if let Some(kind) = kind
                        .filter(|k| ["topic", "direct", "fanout", "default", "headers"].contains(k))
                    {
                        object["type"] = json!(kind);
                    }
                    json!({ "is": "routingKey", "exchange": object, "bindingVersion": AMQP_BINDING })
                }
                Entity::Queue => {
                    json!({ "is": "queue", "queue": object, "bindingVersion": AMQP_BINDING })
                }
                _ => return None,
            };
            Some(json!({ "amqp": amqp }))
        }
        "kafka" => {
            let mut kafka = json!({ "topic": n.name, "bindingVersion": KAFKA_BINDING });
            let partitions: BTreeSet<i32> = n
                .broker
                .iter()
                .flat_map(|f| f.lag.iter().map(|p| p.partition))
                .collect();
            if !partitions.is_empty() {
                kafka["partitions"] = json!(partitions.len());
            }
            Some(json!({ "kafka": kafka }))
        }
        _ => None,
    }
}

fn operation_bindings(topo: &Topology, dest: &Node, action: &str) -> Option<Value> {
    match dest.system.as_deref()? {
        "rabbitmq" if action == "send" => {
            // The routing keys of the exchange's routes.
            let keys: BTreeSet<&str> = topo
                .edges
                .iter()
                .filter(|e| e.kind == EdgeKind::Route && e.from == dest.id)
                .filter_map(|e| e.key.as_deref())
                .collect();
            (!keys.is_empty())
                .then(|| json!({ "amqp": { "cc": keys, "bindingVersion": AMQP_BINDING } }))
        }
        "nats" if action == "receive" => {
            Some(json!({ "nats": { "bindingVersion": NATS_BINDING } }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EdgeKind::*;
    use crate::topology::detect::testing::topo;

    #[test]
    fn channels_operations_and_servers_with_safe_unique_ids() {
        let mut t = topo(&[
            ("s:orders", "destination:rabbitmq:orders x", Publish, 4),
            (
                "destination:rabbitmq:orders x",
                "destination:rabbitmq:billing",
                Route,
                4,
            ),
            ("destination:rabbitmq:billing", "s:billing", Consume, 4),
            ("s:orders", "destination:kafka:orders_x", Publish, 2),
        ]);
        t.edges
            .iter_mut()
            .filter(|e| e.kind == Route)
            .for_each(|e| e.key = Some("order.*".into()));
        let doc = document(&t, &Options::default());
        assert_eq!(doc["asyncapi"], "3.0.0");
        let channels = doc["channels"].as_object().unwrap();
        assert_eq!(channels.len(), 3);
        // Sorted by node id: the Kafka topic takes the plain id.
        assert_eq!(channels["orders_x"]["address"], "orders_x");
        assert_eq!(channels["orders_x_2"]["address"], "orders x");
        assert_eq!(
            channels["orders_x_2"]["bindings"]["amqp"]["is"],
            "routingKey"
        );
        assert_eq!(
            channels["billing"]["bindings"]["amqp"]["queue"]["name"],
            "billing"
        );
        assert_eq!(
            channels["orders_x"]["bindings"]["kafka"]["topic"],
            "orders_x"
        );
        assert_eq!(
            channels["orders_x_2"]["x-switchyard-routes"][0]["key"],
            "order.*"
        );
        let ops = doc["operations"].as_object().unwrap();
        let send = &ops["orders.send.orders_x_2"];
        assert_eq!(send["action"], "send");
        assert_eq!(send["channel"]["$ref"], "#/channels/orders_x_2");
        assert_eq!(send["bindings"]["amqp"]["cc"], json!(["order.*"]));
        assert_eq!(send["x-switchyard-count"], 4);
        assert_eq!(ops["billing.receive.billing"]["action"], "receive");
        assert_eq!(doc["servers"]["rabbitmq"]["protocol"], "amqp");
        assert_eq!(doc["servers"]["kafka"]["host"], "unknown");
        assert_eq!(
            to_json(&t, &Options::default()),
            to_json(&t, &Options::default())
        );
    }

    #[test]
    fn ids_are_pointer_safe() {
        assert_eq!(safe_id("a/b~c"), "a_b_c");
        assert_eq!(safe_id(""), "_");
        let mut taken = BTreeSet::new();
        assert_eq!(unique(&mut taken, "a".into()), "a");
        assert_eq!(unique(&mut taken, "a".into()), "a_2");
    }
}
